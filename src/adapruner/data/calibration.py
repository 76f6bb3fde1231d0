"""Which calibration samples a run uses: windows of the book-text pool chosen by a config."""

from __future__ import annotations

from pathlib import Path

import torch

from adapruner.config import CalibrationConfig
from adapruner.errors import AdaprunerError


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


def source_pool(tokenizer, calibration: CalibrationConfig, data_dir: str | Path | None) -> torch.Tensor:
    """The window pool of the calibration source: ``books`` (the data directory's book texts) or a
    user text file (``.txt`` / ``.jsonl`` / ``.json``, :mod:`adapruner.data.user_text`)."""
    from adapruner.data import user_text

    if calibration.source == "books":
        from adapruner.data.books import calibration_pool
        from adapruner.data.paths import resolve_data_dir

        return calibration_pool(tokenizer, resolve_data_dir(data_dir) if data_dir is None else data_dir,
                                seq_len=calibration.seq_len, seed=calibration.pool_seed)
    if user_text.is_user_text(calibration.source):
        return user_text.text_pool(tokenizer, calibration.source, calibration.seq_len, calibration.pool_seed,
                                   calibration.field)
    raise AdaprunerError(f"unknown calibration source '{calibration.source}'; use 'books', a .txt/.jsonl/.json file or a hub dataset org/name")


def calibration_samples(tokenizer, calibration: CalibrationConfig, data_dir: str | Path) -> torch.Tensor:
    """Token ids ``[N, seq_len]`` of the calibration samples ``calibration`` selects from its pool."""
    pool = source_pool(tokenizer, calibration, data_dir)
    return pool[calibration_indices(pool.shape[0], calibration)]


def update_indices(pool_size: int, count: int, seed: int) -> list[int]:
    """The pool windows a weight update reads: the first ``count`` of a permutation drawn with
    ``seed`` (so they overlap the importance samples only by chance; all of the pool if smaller)."""
    if count > pool_size:
        raise AdaprunerError(f"the weight update asks for {count} calibration windows but the pool has only "
                             f"{pool_size}; lower its windows option or use a shorter --calib-seq-len")
    g = torch.Generator().manual_seed(int(seed) + 1)  # +1: not the importance draw's permutation
    return sorted(torch.randperm(pool_size, generator=g)[:count].tolist())
