"""The ``random`` baseline: uniform random scores, reproducible from the metric's seed."""

from __future__ import annotations

import zlib

import torch

from adapruner.config import MetricConfig
from adapruner.importance.base import Metric, register_metric
from adapruner.importance.statistics import Statistics


@register_metric
class RandomMetric(Metric):
    """Uniform random scores per unit (the paper's Random row)."""

    name = "random"
    help = "uniform random scores (data-free baseline)"
    needs_calibration = False
    params = ("seed",)

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        """Random scores seeded by ``config.seed``, the layer index and the kind."""
        shape = stats.layers[layer].shape
        count = {"head": shape.num_heads, "kv": shape.num_kv_heads, "channel": shape.intermediate_size}[kind]
        seed = zlib.crc32(f"{config.seed}:{layer}:{kind}".encode())
        return torch.rand(count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
