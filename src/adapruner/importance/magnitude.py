"""Data-free baselines: random scores and weight magnitude (L1, L2 norm of each member)."""

from __future__ import annotations

import zlib

import torch

from adapruner.config import MetricConfig
from adapruner.importance.aggregation import aggregate
from adapruner.importance.statistics import Statistics


def random_scores(stats: Statistics, index: int, kind: str, metric: MetricConfig) -> torch.Tensor:
    """Uniform random scores, reproducible from ``metric.seed``, the layer index and the kind."""
    shape = stats.layers[index].shape
    count = {"head": shape.num_heads, "kv": shape.num_kv_heads,
             "channel": shape.intermediate_size}[kind]
    seed = zlib.crc32(f"{metric.seed}:{index}:{kind}".encode())
    return torch.rand(count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def l1_scores(stats: Statistics, index: int, kind: str, metric: MetricConfig) -> torch.Tensor:
    """Sum of |W| over each member's block, aggregated over members."""
    return aggregate([v for _, v in stats.layers[index].view(kind, "w_abs")], metric.aggregation)


def l2_scores(stats: Statistics, index: int, kind: str, metric: MetricConfig) -> torch.Tensor:
    """L2 norm of each member's block, aggregated over members."""
    return aggregate([v.sqrt() for _, v in stats.layers[index].view(kind, "w_sq")], metric.aggregation)
