"""Allocation: turn per-unit scores and a target ratio into a :class:`~adapruner.core.structure.PruningPlan`.

:mod:`.budget` says what each layer can give, :mod:`.base` holds the registry and the entry point
:func:`allocate`; each mode is one registered file: :mod:`.uniform` (the paper's) and
:mod:`.greedy` (``global``), and the non-uniform :mod:`.schedule` (a knotted depth schedule)
and :mod:`.saap` (SAAP's adaptive layer selection), both on :mod:`.weighted`.
"""

from adapruner.allocation import uniform  # noqa: F401, I001  (each registers its mode, in --mode order)
from adapruner.allocation import greedy  # noqa: F401
from adapruner.allocation import schedule  # noqa: F401
from adapruner.allocation import saap  # noqa: F401
from adapruner.allocation.base import ALLOCATORS, Allocator, allocate, check_allocation, register_allocator
from adapruner.allocation.budget import (
    ATTENTION_MODES,
    LayerBudget,
    default_layer_range,
    layer_budgets,
    max_reachable_ratio,
    removed_parameters,
    resolve_layer_range,
)
from adapruner.core.params import count_parameters

__all__ = ["ALLOCATORS", "ATTENTION_MODES", "Allocator", "LayerBudget", "allocate", "check_allocation",
           "count_parameters", "default_layer_range", "layer_budgets", "max_reachable_ratio",
           "register_allocator", "removed_parameters", "resolve_layer_range"]
