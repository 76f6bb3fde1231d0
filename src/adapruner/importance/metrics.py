"""Scores from statistics or from a model, with any registered metric (:mod:`.base`).

``compute_scores`` = ``collect_statistics`` (one batched pass, only as much as the metric needs)
+ ``scores_from_statistics``. The search calls the two halves itself so that trying new
coefficients on the same calibration set needs no new backward pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from adapruner.config import AGGREGATIONS, MetricConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.registry import check_options
from adapruner.core.structure import UNIT_KINDS, Scores
from adapruner.errors import AdaprunerError
from adapruner.importance.base import METRICS, Metric, get_metric
from adapruner.importance.statistics import Statistics, collect

_COEFFICIENTS = ("alpha1", "alpha2", "align_vec", "align_el", "second_order_vec", "second_order_el")


def needs_calibration(name: str) -> bool:
    """Whether metric ``name`` needs calibration samples (random, l1 and l2 do not)."""
    return get_metric(name).needs_calibration


def needs_gradients(name: str) -> bool:
    """Whether metric ``name`` needs a backward pass (the Taylor family and SAAP)."""
    return get_metric(name).needs_gradients


def validate_metric(metric: MetricConfig) -> Metric:
    """Check a metric configuration's name, aggregation, coefficients and options; return the metric."""
    m = get_metric(metric.name)
    if metric.aggregation not in AGGREGATIONS:
        raise AdaprunerError(f"unknown aggregation '{metric.aggregation}'; choose one of {', '.join(AGGREGATIONS)}")
    for key in _COEFFICIENTS:
        value = getattr(metric, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AdaprunerError(f"metric coefficient {key} must be a finite number, got {value!r}")
    check_options("metric", m.name, m.options, metric.options)
    return m


def scores_from_statistics(stats: Statistics, metric: MetricConfig) -> Scores:
    """Per-unit scores of every decoder layer from already collected statistics.

    Cheap (no model pass): the search calls it once per trial with new coefficients. Returns
    ``{layer: {"head": [num_heads], "kv": [num_kv_heads], "channel": [intermediate]}}`` in
    float64 on the CPU; higher = keep.
    """
    validate_metric(metric)
    return finish_scores({index: layer_scores(stats, index, metric) for index in sorted(stats.layers)}, metric)


def layer_scores(stats: Statistics, index: int, metric: MetricConfig) -> dict[str, torch.Tensor]:
    """The raw scores of decoder layer ``index`` (before the metric's step over all layers); the
    streamed path scores each layer as soon as its statistics are complete."""
    m = get_metric(metric.name)
    return {kind: m.score(stats, index, kind, metric) for kind in UNIT_KINDS}


def finish_scores(scores: Scores, metric: MetricConfig) -> Scores:
    """The metric's step over all layers' raw scores (:meth:`Metric.finish`), checked finite."""
    scores = get_metric(metric.name).finish(scores)
    for index, per_layer in scores.items():
        for kind, value in per_layer.items():
            if not torch.isfinite(value).all():
                raise AdaprunerError(
                    f"metric '{metric.name}' gave non-finite scores in layer {index} ({kind}); "
                    "try aggregation 'sum' or smaller coefficients")
    return scores


def metric_statistics(model: nn.Module, metric: MetricConfig, calib: torch.Tensor | None,
                      micro_batch: int | None = None, seq_len: int | None = None,
                      progress: bool = True) -> Statistics:
    """The statistics ``metric`` needs (:func:`~adapruner.importance.statistics.collect`): weights only for
    data-free metrics, else one calibration pass (backward only for gradient metrics)."""
    m = validate_metric(metric)
    adapter_for(model)  # an unsupported architecture fails here, before any work
    return collect(model, calib, m.statistics_needs(metric), micro_batch=micro_batch, seq_len=seq_len,
                   progress=progress)


def compute_scores(
    model: nn.Module,
    metric: MetricConfig,
    calib: torch.Tensor | None,
    micro_batch: int | None = None,
    seq_len: int | None = None,
    progress: bool = True,
) -> Scores:
    """Score every head, KV group and MLP channel of ``model`` with ``metric``.

    ``calib`` is a LongTensor [N, T] of calibration token ids (ignored, may be None, for random,
    l1 and l2). ``micro_batch`` bounds the samples per forward/backward; ``seq_len``, when given,
    is the requested sample length and is checked against ``calib``.
    """
    stats = metric_statistics(model, metric, calib, micro_batch=micro_batch, seq_len=seq_len, progress=progress)
    return scores_from_statistics(stats, metric)


__all__ = ["METRICS", "compute_scores", "finish_scores", "layer_scores", "metric_statistics",
           "needs_calibration",
           "needs_gradients", "scores_from_statistics", "validate_metric"]
