"""The AdaPruner search (paper Eq. 6-11), one concern per module.

:mod:`.space` (the solution space) and :mod:`.dimensions` (its registered parts) turn an Optuna
trial into a :class:`~adapruner.config.PruneConfig`; :mod:`.objective` scores it by the masked
model's validation perplexity; :mod:`.storage`, :mod:`.identity`, :mod:`.samplers` and
:mod:`.worker` run a budgeted, resumable, multi-worker study; :mod:`.results` and :mod:`.plots`
report it; :mod:`.run` is the library entry point (:func:`run_search`).
"""

from adapruner.search.objective import CachedEvaluator, Objective, ObjectiveProtocol, TrialResult
from adapruner.search.run import SearchRequest, SearchResult, check_request, run_search
from adapruner.search.space import SearchSpace, space_from_args

__all__ = ["SearchSpace", "space_from_args", "ObjectiveProtocol", "Objective", "CachedEvaluator", "TrialResult",
           "SearchRequest", "SearchResult", "check_request", "run_search"]
