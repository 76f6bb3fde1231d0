"""The metric registry: names for ``--metric``, and scores from statistics or from a model.

``compute_scores`` = ``collect_statistics`` (one batched pass, only as much as the metric needs)
+ ``scores_from_statistics``. The search calls the two halves itself so that trying new
coefficients on the same calibration set needs no new backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from adapruner.config import AGGREGATIONS, MetricConfig
from adapruner.errors import AdaprunerError
from adapruner.importance import activation, magnitude, saap, taylor
from adapruner.importance.statistics import Statistics, collect_statistics, weight_statistics
from adapruner.pruning.adapters import adapter_for
from adapruner.pruning.structure import UNIT_KINDS, Scores


@dataclass(frozen=True)
class Metric:
    """One importance metric: what data it needs and how it scores a layer's units of one kind."""

    name: str
    score: Callable[[Statistics, int, str, MetricConfig], torch.Tensor]
    calibration: bool  # needs calibration samples
    gradients: bool  # needs a backward pass
    finish: Callable[[Scores], Scores] | None = None  # a step over all layers (FLAP standardisation)


REGISTRY: dict[str, Metric] = {m.name: m for m in (
    Metric("random", magnitude.random_scores, calibration=False, gradients=False),
    Metric("l1", magnitude.l1_scores, calibration=False, gradients=False),
    Metric("l2", magnitude.l2_scores, calibration=False, gradients=False),
    Metric("vector", taylor.vector_scores, calibration=True, gradients=True),
    Metric("element1", taylor.element1_scores, calibration=True, gradients=True),
    Metric("element2", taylor.element2_scores, calibration=True, gradients=True),
    Metric("adapruner", taylor.adapruner_scores, calibration=True, gradients=True),
    Metric("saap", saap.saap_scores, calibration=True, gradients=True),
    Metric("wanda-sp", activation.wanda_sp_scores, calibration=True, gradients=False),
    Metric("flap", activation.flap_scores, calibration=True, gradients=False, finish=activation.standardise),
)}

METRICS: tuple[str, ...] = tuple(REGISTRY)


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; an error listing the valid names otherwise."""
    if name not in REGISTRY:
        raise AdaprunerError(f"unknown importance metric '{name}'; choose one of {', '.join(METRICS)}")
    return REGISTRY[name]


def needs_calibration(name: str) -> bool:
    """Whether metric ``name`` needs calibration samples (random, l1 and l2 do not)."""
    return get_metric(name).calibration


def needs_gradients(name: str) -> bool:
    """Whether metric ``name`` needs a backward pass (the Taylor family and SAAP)."""
    return get_metric(name).gradients


def validate_metric(metric: MetricConfig) -> Metric:
    """Check a metric configuration's name, aggregation and coefficients; return the metric."""
    m = get_metric(metric.name)
    if metric.aggregation not in AGGREGATIONS:
        raise AdaprunerError(f"unknown aggregation '{metric.aggregation}'; choose one of {', '.join(AGGREGATIONS)}")
    for key in ("alpha1", "alpha2", "align_vec", "align_el", "second_order_vec", "second_order_el"):
        value = getattr(metric, key)
        if not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
            raise AdaprunerError(f"metric coefficient {key} must be a finite number, got {value!r}")
    return m


def scores_from_statistics(stats: Statistics, metric: MetricConfig) -> Scores:
    """Per-unit scores of every decoder layer from already collected statistics.

    Cheap (no model pass): the search calls it once per trial with new coefficients. Returns
    ``{layer: {"head": [num_heads], "kv": [num_kv_heads], "channel": [intermediate]}}`` in
    float64 on the CPU; higher = keep.
    """
    m = validate_metric(metric)
    scores: Scores = {}
    for index in sorted(stats.layers):
        scores[index] = {kind: m.score(stats, index, kind, metric) for kind in UNIT_KINDS}
    if m.finish is not None:
        scores = m.finish(scores)
    for index, per_layer in scores.items():
        for kind, value in per_layer.items():
            if not torch.isfinite(value).all():
                raise AdaprunerError(
                    f"metric '{metric.name}' gave non-finite scores in layer {index} ({kind}); "
                    "try aggregation 'sum' or smaller coefficients")
    return scores


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
    m = validate_metric(metric)
    adapter_for(model)  # an unsupported architecture fails here, before any work
    if not m.calibration:
        stats = Statistics(layers=weight_statistics(model), num_samples=0, seq_len=0, element_factors=())
    else:
        # Fold only the factors this metric reads (element2: 1; adapruner/saap: theirs).
        factors = tuple(sorted({1.0, float(metric.second_order_el)})) if m.gradients else ()
        stats = collect_statistics(model, calib, micro_batch=micro_batch, gradients=m.gradients,
                                   seq_len=seq_len, element_factors=factors, progress=progress)
    return scores_from_statistics(stats, metric)
