"""An objective chosen for one study (:class:`Measure`: a registered name and its options) and the
result of one trial scored by it (:class:`TrialResult`), shared by the in-memory and the streamed
search. Importing this module registers the built-in objectives."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from adapruner.objectives import OBJECTIVES
from adapruner.objectives.base import Scorer, SearchObjective


@dataclass(frozen=True)
class Measure:
    """A search objective chosen by name, with its options: what one study scores trials by."""

    name: str = "ppl"
    options: dict = field(default_factory=dict)

    @property
    def objective(self) -> SearchObjective:
        return OBJECTIVES.get(self.name)

    def resolved(self) -> "Measure":
        """This measure with its options checked and the defaults filled in."""
        return Measure(self.name, self.objective.resolved(self.options))

    def reference(self, logits: torch.Tensor, ids: torch.Tensor):
        return self.objective.reference(logits, ids, self.options)

    def scorer(self) -> Scorer:
        return self.objective.scorer(self.options)

    def describe(self) -> str:
        return self.objective.describe(self.options)


PERPLEXITY = Measure()


@dataclass
class TrialResult:
    """The outcome of one objective evaluation: the value, the objective and the perplexity per dataset."""

    value: float
    ppl: dict[str, float]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
