"""Activation-based baselines that need no gradients: Wanda-sp and FLAP.

Both score the *input side* of the output projections, o_proj (per head) and down_proj (per
channel), from the calibration activations X entering them:

* Wanda-sp (structured Wanda, An et al. 2024): column c scores sum_r |W_rc| * ||X_c||_2;
  a head or channel sums its columns.
* FLAP (An et al. 2024): the fluctuation metric Var(X_c) * ||W_:,c||^2 (variance over the
  calibration tokens), summed over a unit's columns, then standardised per unit kind across all
  layers ((S - mean) / std) so heads and channels of different layers are comparable under global
  allocation. FLAP's bias compensation (adding W_:,pruned . mean(X_pruned) to the output bias) is
  left to the engine; the means it needs are in ``LayerStatistics.input_mean``.
"""

from __future__ import annotations

import torch

from adapruner.config import MetricConfig
from adapruner.importance.aggregation import aggregate
from adapruner.importance.statistics import Statistics
from adapruner.pruning.structure import Scores


def wanda_sp_scores(stats: Statistics, index: int, kind: str, metric: MetricConfig) -> torch.Tensor:
    """sum over a unit's o_proj/down_proj columns of |W_:,c|_1 * ||X_c||_2."""
    return aggregate([v.double() for _, v in stats.layers[index].view(kind, "wanda")], metric.aggregation)


def flap_scores(stats: Statistics, index: int, kind: str, metric: MetricConfig) -> torch.Tensor:
    """sum over a unit's o_proj/down_proj columns of Var(X_c) * ||W_:,c||^2 (before standardising)."""
    return aggregate([v.double() for _, v in stats.layers[index].view(kind, "fluctuation")], metric.aggregation)


def standardise(scores: Scores) -> Scores:
    """FLAP's standardisation: (S - mean) / std of each unit kind over all layers."""
    kinds = {k for per_layer in scores.values() for k in per_layer}
    for kind in kinds:
        allv = torch.cat([s[kind] for s in scores.values() if kind in s])
        mean = allv.mean()
        std = allv.std().clamp_min(1e-12) if allv.numel() > 1 else torch.tensor(1.0, dtype=allv.dtype)
        for per_layer in scores.values():
            if kind in per_layer:
                per_layer[kind] = (per_layer[kind] - mean) / std
    return scores
