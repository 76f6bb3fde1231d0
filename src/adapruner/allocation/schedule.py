"""``schedule`` allocation: the pruned fraction as a smooth function of depth, with a few knots.

The fraction of layer l (at relative depth t in [0, 1] over the layer range) is proportional to
the piecewise-linear interpolation of ``knots`` (positive weights at evenly spaced depths; 2-3
are enough), scaled so that the total removal meets the ratio (:mod:`.weighted`). ``[1, 1]`` is
uniform; increasing knots prune deep layers more, e.g. ``[0.6, 1.0, 1.2]`` is close to SlimGPT's
log-increasing schedule. A search tunes the knots (the ``schedule`` search dimension).
"""

from __future__ import annotations

from adapruner.allocation.base import Allocator, register_allocator
from adapruner.allocation.weighted import allocate_by_weights
from adapruner.errors import AdaprunerError


def interpolate(knots: list[float], t: float) -> float:
    """The piecewise-linear function through ``knots`` at evenly spaced points of [0, 1], at ``t``."""
    if len(knots) == 1:
        return float(knots[0])
    x = t * (len(knots) - 1)
    i = min(int(x), len(knots) - 2)
    return float(knots[i] + (knots[i + 1] - knots[i]) * (x - i))


def depth_weights(count: int, knots: list[float]) -> list[float]:
    """One weight per layer of a range of ``count`` layers."""
    return [interpolate(knots, i / (count - 1) if count > 1 else 0.0) for i in range(count)]


@register_allocator
class Schedule(Allocator):
    """Per-layer fractions from a knotted depth schedule (module docstring)."""

    name = "schedule"
    help = "fraction per layer from a depth schedule with a few knots (non-uniform; searchable)"
    options = {"knots": ([1.0, 1.0, 1.0], "relative pruning weight at evenly spaced depths of the layer range")}
    full_space_order = 1
    search_settings = {"knots": 3, "knot_range": [0.25, 4.0]}

    def suggest_options(self, trial, settings):
        # log-uniform: a knot of 2 and one of 0.5 are the same step away from an even schedule
        lo, hi = settings.get("knot_range", self.search_settings["knot_range"])
        count = int(settings.get("knots", self.search_settings["knots"]))
        return {"knots": [trial.suggest_float(f"knot_{i}", lo, hi, log=True) for i in range(count)]}

    def validate(self, config) -> None:
        knots = self.option(config, "knots")
        if not isinstance(knots, list) or not knots or not all(
                isinstance(k, (int, float)) and not isinstance(k, bool) and k > 0 for k in knots):
            raise AdaprunerError(f"schedule knots must be a non-empty list of positive numbers, got {knots!r}")

    def allocate(self, budgets, scores, target, config):
        return allocate_by_weights(budgets, scores, target, config,
                                   depth_weights(len(budgets), self.option(config, "knots")))
