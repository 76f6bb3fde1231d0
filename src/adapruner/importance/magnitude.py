"""Data-free magnitude baselines: the L1 and L2 norm of each unit's weights."""

from __future__ import annotations

import torch

from adapruner.config import MetricConfig
from adapruner.importance.aggregation import aggregate
from adapruner.importance.base import Metric, register_metric
from adapruner.importance.statistics import Statistics


@register_metric
class L1Metric(Metric):
    """Sum of |W| over each member's block, aggregated over the unit's members."""

    name = "l1"
    help = "L1 norm of the unit's weights (data-free)"
    needs_calibration = False

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        return aggregate([v for _, v in stats.layers[layer].view(kind, "w_abs")], config.aggregation)


@register_metric
class L2Metric(Metric):
    """L2 norm of each member's block, aggregated over the unit's members."""

    name = "l2"
    help = "L2 norm of the unit's weights (data-free)"
    needs_calibration = False

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        return aggregate([v.sqrt() for _, v in stats.layers[layer].view(kind, "w_sq")], config.aggregation)
