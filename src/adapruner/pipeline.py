"""One pruning decision, end to end: calibration samples -> importance scores -> allocation.

``adapruner prune`` and the final step of ``adapruner search`` both call :func:`plan_pruning`;
what they do with the plan (surgery and saving, or masks) is theirs.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from adapruner.config import CalibrationConfig, PruneConfig
from adapruner.errors import AdaprunerError
from adapruner.pruning.allocation import allocate, check_allocation
from adapruner.pruning.structure import PruningPlan, Scores


def calibration_indices(pool_size: int, calibration: CalibrationConfig) -> list[int]:
    """The pool windows a run calibrates on: the configured ``indices``, else ``num_samples``
    windows drawn with ``seed`` (the same draw as the search's no-data-search baseline)."""
    if calibration.indices is not None:
        bad = [i for i in calibration.indices if not 0 <= int(i) < pool_size]
        if bad:
            raise AdaprunerError(
                f"calibration indices {bad[:5]} are outside the pool of {pool_size} windows; "
                "use a best_config.json made with the same data directory, tokenizer and seq_len")
        return [int(i) for i in calibration.indices]
    if calibration.num_samples < 1:
        raise AdaprunerError(f"--num-samples must be at least 1, got {calibration.num_samples}")
    if calibration.num_samples > pool_size:
        raise AdaprunerError(
            f"{calibration.num_samples} calibration samples asked but the pool has only {pool_size} windows "
            f"of {calibration.seq_len} tokens; lower --num-samples or --calib-seq-len")
    g = torch.Generator().manual_seed(int(calibration.seed))
    return sorted(torch.randperm(pool_size, generator=g)[: calibration.num_samples].tolist())


def calibration_samples(tokenizer, config: PruneConfig, data_dir: str | Path) -> torch.Tensor:
    """Token ids ``[N, seq_len]`` of the calibration samples ``config`` selects from the book pool."""
    from adapruner.data.books import calibration_pool

    cal = config.calibration
    if cal.source != "books":
        raise AdaprunerError(f"unknown calibration source '{cal.source}'; the only source is 'books'")
    pool = calibration_pool(tokenizer, data_dir, seq_len=cal.seq_len, seed=cal.pool_seed)
    return pool[calibration_indices(pool.shape[0], cal)]


def plan_pruning(model: nn.Module, tokenizer, config: PruneConfig, ratio: float,
                 data_dir: str | Path | None, micro_batch: int | None = None) -> tuple[PruningPlan, Scores]:
    """Score ``model`` with ``config.metric`` and allocate ``ratio`` of its parameters for removal.

    Calibration samples are drawn from the book pool only when the metric needs them (random, l1
    and l2 do not, and then ``data_dir`` may be None). Cheap validation runs first, so a bad ratio
    or layer range fails before any scoring work. ``micro_batch`` bounds the calibration samples
    per forward/backward (memory, not results: the statistics are sums over samples).
    """
    from adapruner.importance import compute_scores, needs_calibration

    check_allocation(model, ratio, config.allocation)
    calib = None
    scored_on_data, compensate = needs_calibration(config.metric.name), config.metric.bias_compensation
    if scored_on_data or compensate:
        if data_dir is None:
            what = f"metric '{config.metric.name}'" if scored_on_data else "bias compensation"
            raise AdaprunerError(f"{what} needs calibration text; pass --data-dir or set ADAPRUNER_DATA_DIR")
        calib = calibration_samples(tokenizer, config, data_dir)
    scores = compute_scores(model, config.metric, calib if scored_on_data else None, micro_batch=micro_batch)
    plan = allocate(model, scores, ratio, config.allocation)
    if compensate:
        from adapruner.pruning.compensation import bias_compensation, input_means

        plan.bias = bias_compensation(model, plan, input_means(model, calib, micro_batch))
    return plan, scores
