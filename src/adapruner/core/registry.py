"""Registries of pluggable implementations (metrics, allocators, search dimensions, weight updates).

Each implementation is one class in one file that registers itself with a decorator, in the
manner of PEFT's ``register_peft_method``::

    @register_metric
    class MyMetric(Metric):
        name = "mine"
        def score(self, stats, layer, kind, config): ...

A registry maps names to *instances* (iterating it gives the names, like a dict); CLI choices, help texts and space validation are read
from it, so a registered implementation is usable everywhere without touching another file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from adapruner.errors import AdaprunerError

T = TypeVar("T")


def check_options(what: str, name: str, declared: dict, given) -> None:
    """A one-line error unless ``given`` is a mapping whose keys ``name`` declares (``what`` is
    the kind, e.g. "weight update")."""
    if not isinstance(given, dict):
        raise AdaprunerError(f"{what} options must be a mapping of name to value, got {given!r}")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise AdaprunerError(f"{what} '{name}' has no option(s) {unknown}; its options: {', '.join(declared) or 'none'}")


class Registry(Generic[T]):
    """Named implementations of one kind (``what`` names the kind in error messages)."""

    def __init__(self, what: str, flag: str | None = None):
        self.what = what
        self.flag = flag
        self._items: dict[str, T] = {}

    def register(self, cls: type) -> type:
        """Class decorator: instantiate ``cls`` and register it under ``cls.name``.

        Registering a name twice replaces the earlier implementation (a user may override a
        built-in one deliberately).
        """
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'name' to be registered")
        self._items[name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests use it to clean up toy implementations)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The implementation ``name``; a one-line error listing the valid names otherwise."""
        if name not in self._items:
            flag = f" ({self.flag})" if self.flag else ""
            raise AdaprunerError(f"unknown {self.what} '{name}'{flag}; choose one of {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def help(self) -> str:
        """``name: one-line description`` for every implementation (for ``--help`` texts)."""
        return "; ".join(f"{n}: {getattr(v, 'help', '') or n}" for n, v in self._items.items())
