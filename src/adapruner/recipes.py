"""Named pruning recipes that need no search: a metric, a weight update and an allocation mode.

A recipe is generic (it holds no calibration indices, knots or other values an earlier search
found), so it applies to any model and ratio. ``adapruner prune`` without ``--config`` or
``--metric`` uses :data:`DEFAULT_RECIPE`, the best of these on the measured table in
``docs/results.md`` (``benchmarks/recipes``: WikiText-2, PTB and Alpaca responses at 20 % and
50 %); every search in a space that can express them starts from them
(:mod:`adapruner.search.starts`), so a search never delivers a model worse than ``prune``'s default
on its own objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from adapruner.config import PruneConfig, UpdateConfig
from adapruner.errors import AdaprunerError


@dataclass(frozen=True)
class Recipe:
    """A metric, a weight update (with its options) and an allocation mode."""

    name: str
    help: str
    metric: str
    update: str = "none"
    update_options: dict = field(default_factory=dict)
    mode: str = "uniform"

    def config(self, base: PruneConfig | None = None) -> PruneConfig:
        """``base`` (default: every setting at its default) with this recipe's metric, update and mode."""
        base = base or PruneConfig()
        return replace(base, metric=replace(base.metric, name=self.metric, options={}),
                       update=UpdateConfig(name=self.update, options=dict(self.update_options)),
                       allocation=replace(base.allocation, mode=self.mode, options={}))


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("wanda-sp-reconstruct", "structured Wanda scores, then a least-squares re-fit of the kept "
           "o_proj/down_proj columns, layer by layer (SparseGPT's order)", "wanda-sp", "reconstruct"),
    Recipe("flap-bias", "FLAP's fluctuation metric with its bias compensation", "flap", "bias"),
    Recipe("element1", "the AdaPruner paper's baseline: LLM-Pruner's element-wise first-order Taylor, "
           "uniform widths", "element1"),
)}
DEFAULT_RECIPE = "wanda-sp-reconstruct"


def get_recipe(name: str) -> Recipe:
    """The recipe ``name``; a one-line error listing the recipes otherwise."""
    if name not in RECIPES:
        raise AdaprunerError(f"unknown recipe '{name}' (--recipe); choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


__all__ = ["DEFAULT_RECIPE", "RECIPES", "Recipe", "get_recipe"]
