"""What a weight update is, and the registry of updates (``--update`` choices).

Adding one is one file::

    from adapruner.updates.base import WeightUpdate, register_update

    @register_update
    class Scale(WeightUpdate):
        name = "scale"
        needs_calibration = False
        options = {"factor": (1.0, "multiplier of the kept o_proj/down_proj columns")}

        def compute(self, model, plan, calib, config, stats=None, micro_batch=None):
            ...  # return {layer: {linear path: LinearUpdate(weight=..., bias=...)}}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn as nn

from adapruner.config import UpdateConfig
from adapruner.core.registry import Registry, check_options
from adapruner.core.structure import LinearUpdate, PruningPlan
from adapruner.errors import AdaprunerError
from adapruner.importance.needs import WEIGHTS_ONLY, StatisticsNeeds

UPDATES: Registry["WeightUpdate"] = Registry("weight update", flag="--update")
register_update = UPDATES.register

Updates = dict[int, dict[str, LinearUpdate]]


class WeightUpdate(ABC):
    """One weight update. Subclasses set ``name`` and implement :meth:`compute`.

    ``needs_calibration``: reads calibration samples. ``options``: its settings,
    ``{name: (default, help)}``, read from ``UpdateConfig.options``. For the search:
    ``full_space_order`` is its place among the updates ``--space full`` chooses from (None: not
    offered there) and ``search_settings`` the options it has there.
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = True
    options: ClassVar[dict[str, tuple[object, str]]] = {}
    full_space_order: ClassVar[int | None] = None
    search_settings: ClassVar[dict] = {}

    def option(self, config: UpdateConfig, key: str):
        """The value of option ``key``: the configured one, else its declared default."""
        return config.options.get(key, self.options[key][0])

    def calibration_windows(self, config: UpdateConfig) -> int | None:
        """How many calibration windows of its own the update reads (None: the importance samples)."""
        return None

    def statistics_needs(self, config: UpdateConfig) -> StatisticsNeeds:
        """What it reads from the importance samples' statistics when it has no windows of its
        own (:mod:`adapruner.importance.needs`): nothing by default."""
        return WEIGHTS_ONLY

    def carry(self, config: UpdateConfig) -> str | None:
        """The hidden states the streamed path carries for :meth:`layer_update`: ``"dense"`` (each
        layer's input under the unpruned layers before it), ``"pruned"`` (under the layers before
        it as pruned and updated), or None (it reads none)."""
        return None

    def layer_update(self, model: nn.Module, index: int, plan: PruningPlan, inputs: list[tuple] | None,
                     config: UpdateConfig, stats=None) -> dict[str, LinearUpdate]:
        """The streamed path's step (:mod:`adapruner.streaming.prune`): the updates of decoder layer
        ``index`` alone, whose weights are the only ones in memory.

        ``inputs`` are ``(hidden, args, kwargs)`` batches entering the layer, as :meth:`carry`
        asks (None when it asks for none); ``stats`` are the streamed statistics of the
        importance samples. Must equal ``compute(...)[index]``.
        """
        raise AdaprunerError(f"weight update '{self.name}' cannot run streamed (it has no layer_update); "
                             "pass --no-stream")

    @abstractmethod
    def compute(self, model: nn.Module, plan: PruningPlan, calib: torch.Tensor | None, config: UpdateConfig,
                stats=None, micro_batch: int | None = None, cache: dict | None = None) -> Updates:
        """The updates of the dense ``model`` for ``plan``: ``{layer: {linear path: LinearUpdate}}``.

        ``calib`` are the importance samples, or the update's own windows when it asks for them
        (:meth:`calibration_windows`). ``stats`` are the importance statistics of the same
        samples when the caller has them (an update may reuse what they hold instead of another
        pass). ``cache`` is a dict the caller keeps between plans of one model (a search keeps
        one per study) for what does not depend on the plan.
        """


def get_update(name: str) -> WeightUpdate:
    """The registered update ``name``; a one-line error listing the valid names otherwise."""
    return UPDATES.get(name)


def validate_update(config: UpdateConfig) -> WeightUpdate:
    """Check an update configuration's name and option names; return the update."""
    update = get_update(config.name)
    check_options("weight update", update.name, update.options, config.options)
    return update
