"""Search objectives: what a trial of the search is scored by (``search --objective NAME``).

Importing this package registers the built-in objectives, one file each: ``ppl`` (validation
perplexity, the paper's), ``kl`` (KL divergence from the dense model's next-token
distribution) and ``mix`` (perplexity on four domains).
"""

from adapruner.objectives import perplexity  # noqa: F401, I001  (each registers its objective, in --objective order)
from adapruner.objectives import kl  # noqa: F401
from adapruner.objectives import mix  # noqa: F401
from adapruner.objectives.base import OBJECTIVES, Scorer, SearchObjective, register_objective

__all__ = ["OBJECTIVES", "Scorer", "SearchObjective", "register_objective"]
