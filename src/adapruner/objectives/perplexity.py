"""Validation perplexity: the paper's objective (Eq. 6), the mean over the datasets of each
dataset's perplexity exp(mean next-token NLL)."""

from __future__ import annotations

import torch

from adapruner.core.lm import TokenNLL
from adapruner.objectives.base import Scorer, SearchObjective, register_objective

# A ruined model's perplexity is capped at exp(700), below float overflow, so it still gets a score.
SCORE_CAP = 700.0


class PerplexityScorer(Scorer):
    def __init__(self):
        self.nll: dict[str, TokenNLL] = {}

    def add(self, dataset: str, logits: torch.Tensor, ids: torch.Tensor, reference) -> None:
        self.nll.setdefault(dataset, TokenNLL()).add(logits, ids)

    def per_dataset(self) -> dict[str, float]:
        return {name: v.ppl(cap=SCORE_CAP) for name, v in self.nll.items()}


@register_objective
class Perplexity(SearchObjective):
    name = "ppl"
    help = "mean perplexity (paper Eq. 6)"

    def scorer(self, options: dict) -> Scorer:
        return PerplexityScorer()
