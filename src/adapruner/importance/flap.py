"""FLAP (An et al. 2024): the fluctuation metric, standardised across layers.

A unit scores the sum over its o_proj/down_proj input columns c of ``Var(X_c) * ||W_:,c||^2``
(variance over the calibration tokens); the scores of each unit kind are then standardised over
all layers, ``(S - mean) / std``, so heads and channels of different layers compare under global
allocation. FLAP's bias compensation is a weight update of its own (``--update bias``,
:mod:`adapruner.updates.bias`) and combines with any metric.
"""

from __future__ import annotations

import torch

from adapruner.config import MetricConfig
from adapruner.core.structure import Scores
from adapruner.importance.aggregation import aggregate
from adapruner.importance.base import Metric, register_metric
from adapruner.importance.statistics import Statistics


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


@register_metric
class FlapMetric(Metric):
    """Fluctuation Var(X_c) * ||W_:,c||^2 summed over a unit's columns, standardised per kind."""

    name = "flap"
    full_space_order = 4
    help = "FLAP fluctuation: input variance x column norm, standardised across layers (no gradients)"

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        return aggregate([v.double() for _, v in stats.layers[layer].view(kind, "fluctuation")],
                         config.aggregation)

    def finish(self, scores: Scores) -> Scores:
        return standardise(scores)
