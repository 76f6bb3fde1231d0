"""What a search trial is scored by: the base class and the registry of search objectives.

A trial's pruned (masked) model runs the validation windows; an objective turns every batch's
logits into one number per dataset, and their mean is the value Optuna minimises. Objectives that
compare with the dense model (KL divergence) keep what they need of its outputs, computed once per
study when the dense windows are captured (:meth:`SearchObjective.reference`), beside each batch.
One file per objective registers it, like metrics and updates (``--objective NAME``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from adapruner.core.registry import Registry, check_options


class Scorer(ABC):
    """One trial's accumulation: batches in, a value per dataset out."""

    @abstractmethod
    def add(self, dataset: str, logits: torch.Tensor, ids: torch.Tensor, reference) -> None:
        """Add one batch: ``logits [B, T, V]`` of the pruned model on ``ids [B, T]``, and the
        dense model's ``reference`` of that batch (None for objectives without one)."""

    @abstractmethod
    def per_dataset(self) -> dict[str, float]:
        """The value of every dataset seen so far (lower is better)."""

    def value(self) -> float:
        """The objective: the mean over the datasets seen so far."""
        values = list(self.per_dataset().values())
        return sum(values) / len(values)


class SearchObjective(ABC):
    """One search objective. Subclasses set ``name`` and implement :meth:`scorer`.

    ``options``: settings of its own, ``{name: (default, help)}``; ``describe(options)`` is the
    sentence recorded in the study's protocol (a different objective, or other options, is another
    study). ``datasets``: the validation data it is scored on (names of
    :data:`adapruner.search.objective.VALIDATION_SOURCES`); None for the paper's WikiText-2 + PTB.
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    options: ClassVar[dict[str, tuple[object, str]]] = {}
    datasets: ClassVar[tuple[str, ...] | None] = None

    def resolved(self, options: dict | None) -> dict:
        """``options`` checked against the declared ones, with the defaults filled in."""
        check_options("search objective", self.name, self.options, options or {})
        return {k: (options or {}).get(k, default) for k, (default, _) in self.options.items()}

    def reference(self, logits: torch.Tensor, ids: torch.Tensor, options: dict):
        """What a trial's score of this batch needs from the dense model (None: nothing)."""
        return None

    @abstractmethod
    def scorer(self, options: dict) -> Scorer:
        """A fresh accumulation for one trial."""

    def describe(self, options: dict) -> str:
        """The objective in words, for the study's protocol and the report."""
        return self.help


OBJECTIVES: Registry[SearchObjective] = Registry("search objective", "--objective")
register_objective = OBJECTIVES.register

