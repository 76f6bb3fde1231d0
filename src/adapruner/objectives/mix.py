"""Perplexity on a mix of domains: the paper's objective, widened beyond the two corpora it is
tested on.

Validation perplexity on WikiText-2 and PTB rewards a pruned model for what those two corpora
reward, and a search that minimises it can fit them at the cost of other text. This objective
scores the same way (each dataset's perplexity, then their mean) on four kinds of text: the
WikiText-2 and PTB validation splits, held-back windows of the calibration pool's books (prose
no calibration set holds, see :func:`adapruner.data.books.held_back_windows`) and Alpaca answers
(instruction-following prose). It costs what ``ppl`` costs per window, on twice the windows.
"""

from __future__ import annotations

from adapruner.objectives.base import Scorer, SearchObjective, register_objective
from adapruner.objectives.perplexity import PerplexityScorer


@register_objective
class MixedPerplexity(SearchObjective):
    name = "mix"
    help = "mean perplexity over four domains: WikiText-2 and PTB validation, held-back book windows, Alpaca answers"
    datasets = ("wikitext2", "ptb", "books", "alpaca")

    def scorer(self, options: dict) -> Scorer:
        return PerplexityScorer()
