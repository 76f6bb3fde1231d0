"""The supported model families, one file each (:class:`~adapruner.core.family.Family`).

A new family is one file here that defines ``FAMILY`` (or ``FAMILIES`` for several variants), and
its name in :data:`MODULES`. ``tests/test_families.py`` runs every family it finds.
"""

from __future__ import annotations

import importlib

from adapruner.core.family import Family

MODULES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")


def _load() -> tuple[Family, ...]:
    out: list[Family] = []
    for name in MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        out.extend(getattr(module, "FAMILIES", None) or (module.FAMILY,))
    return tuple(out)


FAMILIES: tuple[Family, ...] = _load()


def pruned_types() -> dict[str, tuple[str, str]]:
    """``model_type -> (config class, causal-LM class)`` of every family that can be saved pruned."""
    return {f.model_type: f.pruned_type for f in FAMILIES if f.pruned_type}
