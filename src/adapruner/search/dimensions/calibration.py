"""The ``calibration`` dimension: which windows of the book pool a trial calibrates on.

Data spaces (paper Table 8), chosen by ``SearchSpace.data_space``:

* ``joint`` (default): ``sample_0 .. sample_{k-1}`` each range over the whole pool. Duplicated
  indices are *resampled deterministically*: a repeated index moves to the next unused pool
  index (wrapping around), so every trial calibrates on exactly ``k`` distinct windows and the
  mapping stays a pure function of the trial's parameters.
* ``subspaces`` ("10 subspaces"): the pool is cut into ``k`` contiguous disjoint parts and
  ``sample_i`` picks a window inside part ``i`` (duplicates are impossible).
* ``score`` and ``fixed``: the data is not searched; trials use the calibration set the worker
  fixed (the ``k`` best windows scored one by one, or ``k`` random windows drawn from the seed).
"""

from __future__ import annotations

from adapruner.config import PruneConfig
from adapruner.search.dimensions.base import SearchDimension, SuggestContext, register_dimension


def resolve_duplicates(indices: list[int], pool_size: int) -> list[int]:
    """Replace each repeated index by the next unused pool index (wrapping), keeping order."""
    seen: set[int] = set()
    out = []
    for i in indices:
        while i in seen:
            i = (i + 1) % pool_size
        seen.add(i)
        out.append(i)
    return out


@register_dimension
class CalibrationDimension(SearchDimension):
    """``sample_i`` parameters: the calibration windows of the trial."""

    name = "calibration"
    help = "the calibration windows (joint or subspaces data space)"

    def active(self, space, phase: str) -> bool:
        return space.searches_data(phase)

    def suggest(self, trial, space, config: PruneConfig, ctx: SuggestContext) -> None:
        if space.data_space == "subspaces":
            indices = [trial.suggest_int(f"sample_{i}", lo, hi - 1)
                       for i, (lo, hi) in enumerate(space.subspace_bounds(ctx.pool_size))]
        else:
            raw = [trial.suggest_int(f"sample_{i}", 0, ctx.pool_size - 1) for i in range(space.num_samples)]
            indices = resolve_duplicates(raw, ctx.pool_size)
        config.calibration.indices = sorted(indices)
        config.calibration.num_samples = len(indices)
