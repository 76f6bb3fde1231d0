"""Family adapters: where each model family keeps its decoder layers, heads, MLP channels and norm.

An adapter is pure data (:class:`~adapruner.core.family.FamilyAdapter`), declared in the family's
own file (:mod:`adapruner.core.families`). Everything else (importance, masks, surgery, saving)
asks the adapter for the decoder layers, a layer's :class:`~adapruner.core.structure.LayerShape`
and its :class:`~adapruner.core.structure.Member` list, so a new family is one more file, never
an ``if model_type == ...`` elsewhere.
"""

from __future__ import annotations

from adapruner.core.families import FAMILIES
from adapruner.core.family import FamilyAdapter, text_config  # noqa: F401  (the adapter vocabulary)
from adapruner.errors import AdaprunerError

ADAPTERS: tuple[FamilyAdapter, ...] = tuple(f.adapter for f in FAMILIES)


def supported_model_types() -> list[str]:
    """All transformers ``model_type`` values the engine can prune."""
    return sorted(t for a in ADAPTERS for t in a.model_types)


def adapter_for(model_or_type) -> FamilyAdapter:
    """The adapter for a model (or a ``model_type`` string); a clear error if unsupported."""
    if isinstance(model_or_type, str):
        model_type = model_or_type
    else:
        cfg = model_or_type.config
        # A pruned checkpoint records the family it came from.
        model_type = getattr(cfg, "base_model_type", None) or cfg.model_type
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise AdaprunerError(
        f"unsupported architecture '{model_type}'; supported model types: {', '.join(supported_model_types())}"
    )
