"""What an allocator is, the registry of allocation modes (``--mode``), and the entry point.

The ratio is the paper's: the share of the model's *total* parameters (embeddings included) that
is removed. An allocator receives every layer's removal steps (:mod:`.budget`), the scores and
the parameter target, and returns a :class:`~adapruner.core.structure.PruningPlan`. Adding one is
one file::

    from adapruner.allocation.base import Allocator, register_allocator
    from adapruner.allocation.budget import layer_plan

    @register_allocator
    class LastLayersFirst(Allocator):
        name = "last-first"
        def allocate(self, budgets, scores, target, config): ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch.nn as nn

from adapruner.allocation.budget import ATTENTION_MODES, LayerBudget, layer_budgets, resolve_layer_range
from adapruner.config import AllocationConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.params import check_ratio, count_parameters
from adapruner.core.registry import Registry, check_options
from adapruner.core.structure import PruningPlan, Scores
from adapruner.errors import AdaprunerError

ALLOCATORS: Registry["Allocator"] = Registry("allocation mode", flag="--mode")
register_allocator = ALLOCATORS.register


class Allocator(ABC):
    """One allocation mode. Subclasses set ``name`` and implement :meth:`allocate`.

    For the search: ``full_space_order`` is its place among the modes ``--space full`` chooses
    from (None: not offered there); ``search_settings`` are the space settings it reads, with
    their defaults; :meth:`suggest_options` picks its options for a trial.
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    options: ClassVar[dict[str, tuple[object, str]]] = {}
    full_space_order: ClassVar[int | None] = None
    search_settings: ClassVar[dict] = {}

    def suggest_options(self, trial, settings: dict) -> dict:
        """The options a search trial (an Optuna trial) gives this mode, within the space's
        ``settings``; default: none (the mode has nothing to search)."""
        return {}

    def option(self, config: AllocationConfig, key: str):
        """The value of option ``key``: the configured one, else its declared default."""
        return config.options.get(key, self.options[key][0])

    def validate(self, config: AllocationConfig) -> None:
        """Reject bad option values (one-line error); the default accepts every declared option."""

    @abstractmethod
    def allocate(self, budgets: list[LayerBudget], scores: Scores, target: float,
                 config: AllocationConfig) -> PruningPlan:
        """The plan removing about ``target`` parameters from the layers of ``budgets``.

        Every layer must stay a valid GQA layer (use :func:`.budget.layer_plan` to turn step
        counts into kept units) and no layer may go beyond its ``attn_max_steps`` or below
        ``channel_min_keep``.
        """


def validate_allocation(config: AllocationConfig) -> None:
    """Reject unknown modes, unknown options and bad rounding with a one-line error."""
    allocator = ALLOCATORS.get(config.mode)
    check_options("allocation mode", allocator.name, allocator.options, config.options)
    allocator.validate(config)
    if config.attention not in ATTENTION_MODES:
        raise AdaprunerError(
            f"unknown attention mode '{config.attention}'; choose one of {', '.join(ATTENTION_MODES)}")
    if isinstance(config.round_to, bool) or not isinstance(config.round_to, int) or config.round_to < 1:
        raise AdaprunerError(f"round_to must be an integer >= 1, got {config.round_to!r}")


def check_allocation(model: nn.Module, ratio: float, config: AllocationConfig) -> list[LayerBudget]:
    """Validate ``ratio`` and ``config`` against ``model`` before any scoring work.

    Raises :class:`AdaprunerError` for a ratio outside (0, 1), an unknown mode, a bad layer
    range, or a ratio beyond the maximum reachable one (the message states that maximum).
    Returns the layer budgets of the range.
    """
    ratio = check_ratio(ratio)
    validate_allocation(config)
    n = len(adapter_for(model).decoder_layers(model))
    layer_range = resolve_layer_range(n, config.layers)
    budgets = layer_budgets(model, layer_range, config)
    reachable = sum(b.max_removable for b in budgets) / count_parameters(model)
    if ratio > reachable + 1e-9:
        raise AdaprunerError(
            f"ratio {ratio:g} cannot be reached: with layers [{layer_range[0]}, {layer_range[1]}) and attention "
            f"'{config.attention}' at most {reachable:.4f} of the parameters can be removed; lower --ratio, "
            f"widen --layers or prune attention")
    return budgets


def allocate(model: nn.Module, scores: Scores, ratio: float, config: AllocationConfig) -> PruningPlan:
    """Decide which heads/KV groups/channels every layer keeps so ``ratio`` of all parameters go.

    ``scores`` (higher = keep) must cover every layer of the range. The removed share lands
    within about one ``round_to`` block of MLP channels of ``ratio``; errors as in
    :func:`check_allocation`.
    """
    budgets = check_allocation(model, ratio, config)
    missing = [b.index for b in budgets if b.index not in scores]
    if missing:
        raise AdaprunerError(f"importance scores lack layers {missing}; compute scores for every layer in the range")
    target = ratio * count_parameters(model)
    return ALLOCATORS.get(config.mode).allocate(budgets, scores, target, config)
