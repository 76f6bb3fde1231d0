"""Wanda-sp (structured Wanda, An et al. 2024): weight magnitude times input activation norm.

Scores the input side of the output projections, o_proj (per head) and down_proj (per channel):
column c scores ``sum_r |W_rc| * ||X_c||_2`` over the calibration tokens X entering it, and a head
or channel sums its columns. No gradients.
"""

from __future__ import annotations

import torch

from adapruner.config import MetricConfig
from adapruner.importance.aggregation import aggregate
from adapruner.importance.base import Metric, register_metric
from adapruner.importance.statistics import Statistics


@register_metric
class WandaSpMetric(Metric):
    """sum over a unit's o_proj/down_proj columns of |W_:,c|_1 * ||X_c||_2."""

    name = "wanda-sp"
    full_space_order = 3
    help = "structured Wanda: |W| x input activation norm (no gradients)"

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        return aggregate([v.double() for _, v in stats.layers[layer].view(kind, "wanda")], config.aggregation)
