"""One pruning decision, end to end: statistics -> importance scores -> allocation -> weight update.

Every plan adapruner makes goes through :func:`plan_pruning`: each search trial (with the
statistics of its calibration set cached between trials) and the model a search or ``prune``
delivers. So the model a search saves is, by construction, the model its best trial scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from adapruner.allocation import allocate, check_allocation
from adapruner.config import PruneConfig
from adapruner.core.structure import PruningPlan, Scores
from adapruner.errors import AdaprunerError
from adapruner.importance import scores_from_statistics, validate_metric
from adapruner.importance.needs import StatisticsNeeds
from adapruner.importance.statistics import Statistics, collect
from adapruner.updates.base import validate_update


def pool_windows(pool: torch.Tensor, config: PruneConfig) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The importance samples of ``config`` (its calibration indices, in ascending order) and the
    weight update's own windows, out of the calibration ``pool``: what every caller plans with
    (``prune``, a search trial, the search's delivered model)."""
    indices = config.calibration.indices
    return (pool[sorted(indices)] if indices is not None else None), update_samples(pool, config)


def update_samples(pool: torch.Tensor, config: PruneConfig) -> torch.Tensor | None:
    """The weight update's own windows out of ``pool`` (None when it reads the importance samples)."""
    from adapruner.data.calibration import update_indices

    count = update_windows(config)
    if count is None:
        return None
    return pool[update_indices(pool.shape[0], count, config.calibration.seed)]


@dataclass
class PlanResult:
    """A plan with the scores it was allocated from and the statistics they came from."""

    plan: PruningPlan
    scores: Scores
    stats: Statistics


def statistics_needs(config) -> StatisticsNeeds:
    """What the calibration pass of :class:`~adapruner.config.PruneConfig` ``config`` must collect:
    its metric's needs, joined with its weight update's when the update reads the importance
    samples rather than windows of its own."""
    needs = validate_metric(config.metric).statistics_needs(config.metric)
    update = validate_update(config.update)
    if update.calibration_windows(config.update) is None:
        needs = needs | update.statistics_needs(config.update)
    return needs


def needs_data(config: PruneConfig) -> bool:
    """Whether the metric or the weight update of ``config`` reads calibration samples."""
    return validate_metric(config.metric).needs_calibration or validate_update(config.update).needs_calibration


def check_config(model: nn.Module, config: PruneConfig, ratio: float) -> None:
    """Every check that needs no data: metric, update, allocation and ratio (reachable on ``model``)."""
    validate_metric(config.metric)
    validate_update(config.update)
    check_allocation(model, ratio, config.allocation)


def update_windows(config: PruneConfig) -> int | None:
    """The number of calibration windows the weight update reads itself (None: the importance samples)."""
    return validate_update(config.update).calibration_windows(config.update)


def plan_pruning(model: nn.Module, calib: torch.Tensor | None, config: PruneConfig, ratio: float,
                 stats: Statistics | None = None, micro_batch: int | None = None,
                 progress: bool = True, update_calib: torch.Tensor | None = None,
                 cache: dict | None = None) -> PlanResult:
    """Plan the removal of ``ratio`` of ``model``'s parameters with ``config``.

    ``calib`` are the calibration token ids ``[N, T]`` (None is allowed when neither the metric
    nor the update reads data). ``stats``, when given, are statistics of the same ``calib``
    collected earlier (the search caches them per calibration set); otherwise what the
    configuration needs (:func:`statistics_needs`) is collected here. The returned plan carries
    the update's :class:`~adapruner.core.structure.LinearUpdate` values; the model is left
    unchanged.
    ``micro_batch`` bounds the calibration samples per forward/backward (memory, not results).
    ``update_calib`` are the update's own windows when it reads some (:func:`update_windows`;
    :func:`adapruner.data.calibration.update_samples` draws them); ``cache`` is kept by the caller
    between plans of one model (a search: per study) for the update's plan-independent work.
    """
    if stats is None:
        check_config(model, config, ratio)  # before the scoring work; with given stats, allocate checks
    metric, update = validate_metric(config.metric), validate_update(config.update)
    own = update.calibration_windows(config.update)
    reads_samples = metric.needs_calibration or (update.needs_calibration and own is None)
    if reads_samples and calib is None:
        raise AdaprunerError(f"metric '{config.metric.name}' / update '{config.update.name}' need calibration "
                             "text; pass --data-dir or set ADAPRUNER_DATA_DIR")
    if stats is None:
        stats = collect(model, calib, statistics_needs(config), micro_batch=micro_batch, progress=progress)
    scores = scores_from_statistics(stats, config.metric)
    plan = allocate(model, scores, ratio, config.allocation)
    if own is not None and update_calib is None:
        raise AdaprunerError(f"weight update '{update.name}' reads {own} calibration windows of its own; "
                             "pass --data-dir or set ADAPRUNER_DATA_DIR")
    plan.updates = update.compute(model, plan, update_calib if own is not None else calib, config.update,
                                  stats=stats if stats.needs.samples and own is None else None,
                                  micro_batch=micro_batch, cache=cache)
    return PlanResult(plan=plan, scores=scores, stats=stats)


@dataclass
class Pruned:
    """A model pruned in place: its plan, the parameter views of the pruned layers before the
    surgery (for the report's budget) and the seconds of planning and surgery."""

    plan: PruningPlan
    views_before: dict
    timings: dict


def prune_in_place(model: nn.Module, config: PruneConfig, ratio: float, calib: torch.Tensor | None,
                   update_calib: torch.Tensor | None = None, micro_batch: int | None = None,
                   cache: dict | None = None, progress: bool = True) -> Pruned:
    """Plan with :func:`plan_pruning` and remove the planned units from ``model`` (surgery, with
    the weight update applied): the in-memory pruning of ``prune``, the Python API and the model a
    search delivers."""
    import time

    from adapruner.core.params import parameter_views
    from adapruner.pruning.surgery import prune_model

    t = time.perf_counter()
    plan = plan_pruning(model, calib, config, ratio, micro_batch=micro_batch, update_calib=update_calib,
                        cache=cache, progress=progress).plan
    timings = {"plan_s": time.perf_counter() - t}
    views_before = parameter_views(model, sorted(plan.layers))
    t = time.perf_counter()
    prune_model(model, plan)
    timings["surgery_s"] = time.perf_counter() - t
    return Pruned(plan=plan, views_before=views_before, timings=timings)
