"""What a search dimension is, and the registry of dimensions a search space can hold.

A dimension is one part of the configuration that a trial chooses: the calibration data, the
metric coefficients, and whatever is registered next (metric choice, allocation schedule, weight
update). :meth:`SearchSpace.suggest <adapruner.search.space.SearchSpace.suggest>` starts from the
space's fixed configuration and lets every active dimension, in the space's ``dimensions``
order, fill in its part from the Optuna trial. Adding one is one file::

    from adapruner.search.dimensions.base import SearchDimension, register_dimension

    @register_dimension
    class RoundTo(SearchDimension):
        name = "round-to"
        def validate(self, space): ...   # its settings are space.options["round-to"]
        def suggest(self, trial, space, config, ctx):
            config.allocation.round_to = trial.suggest_categorical("round_to", space.options[self.name]["choices"])

and a space file with ``dimensions: [calibration, metric, round-to]`` searches it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from adapruner.config import MetricConfig, PruneConfig
from adapruner.core.registry import Registry

DIMENSIONS: Registry["SearchDimension"] = Registry("search dimension", flag="dimensions in --space")
register_dimension = DIMENSIONS.register


@dataclass
class SuggestContext:
    """What a trial's suggestion depends on besides the trial: the pool size, the phase of a
    sequential search (``joint``, ``data`` or ``metric``), and the calibration set / metric of
    trials that do not search them."""

    pool_size: int
    phase: str = "joint"
    fixed_indices: list[int] | None = None
    fixed_metric: MetricConfig | None = None


class SearchDimension(ABC):
    """One searched part of the configuration. Subclasses set ``name`` and implement :meth:`suggest`."""

    name: ClassVar[str]
    help: ClassVar[str] = ""

    def validate(self, space) -> None:
        """Raise :class:`~adapruner.errors.AdaprunerError` for settings of ``space`` this dimension rejects."""

    def active(self, space, phase: str) -> bool:
        """Whether trials of ``phase`` search this dimension (default: always)."""
        return True

    @abstractmethod
    def suggest(self, trial, space, config: PruneConfig, ctx: SuggestContext) -> None:
        """Fill this dimension's part of ``config`` (a draft of the trial's configuration) from ``trial``."""
