"""The AdaPruner search (paper Eq. 6-11): solution space, cached objective, Optuna study, plots.

``space`` maps an Optuna trial to a :class:`~adapruner.config.PruneConfig`; ``objective`` scores
a configuration by the masked model's validation perplexity; ``study`` runs a budgeted,
resumable, multi-worker study and writes its results; ``plots`` draws the convergence curve.
"""

from adapruner.search.objective import CachedEvaluator, EvalProtocol, Objective, TrialResult
from adapruner.search.space import SearchSpace, space_from_args

__all__ = ["SearchSpace", "space_from_args", "EvalProtocol", "Objective", "CachedEvaluator", "TrialResult"]
