"""Importance estimation: which heads, KV groups and MLP channels matter.

``compute_scores(model, metric, calib)`` scores every unit; the search uses the two halves,
``collect_statistics`` (one batched forward/backward per calibration set) and
``scores_from_statistics`` (any coefficients, no model pass). Metrics are registered
implementations (:mod:`.base`); importing this package registers the built-in ones, one file each.
"""

# Each module registers its metric(s); the import order is the order of `--metric` choices.
from adapruner.importance import uniform_random  # noqa: F401, I001
from adapruner.importance import magnitude  # noqa: F401
from adapruner.importance import taylor  # noqa: F401
from adapruner.importance import adapruner  # noqa: F401
from adapruner.importance import saap  # noqa: F401
from adapruner.importance import wanda_sp  # noqa: F401
from adapruner.importance import flap  # noqa: F401
from adapruner.importance import obs  # noqa: F401
from adapruner.importance.base import METRICS, Metric, get_metric, register_metric
from adapruner.importance.coefficients import (
    ALIGN_EL_CHOICES,
    ELEMENT_FACTORS,
    FACTOR_CHOICES,
    PAPER_SECOND_ORDER,
    SECOND_ORDER_EL_CHOICES,
    SECOND_ORDER_VEC_CHOICES,
)
from adapruner.importance.metrics import (
    compute_scores,
    metric_statistics,
    needs_calibration,
    needs_gradients,
    scores_from_statistics,
    validate_metric,
)
from adapruner.importance.statistics import Statistics, collect_statistics

__all__ = [
    "METRICS", "Metric", "register_metric", "get_metric", "compute_scores", "needs_calibration", "needs_gradients",
    "collect_statistics", "scores_from_statistics", "validate_metric", "metric_statistics",
    "Statistics", "FACTOR_CHOICES", "ALIGN_EL_CHOICES", "SECOND_ORDER_EL_CHOICES", "SECOND_ORDER_VEC_CHOICES",
    "PAPER_SECOND_ORDER", "ELEMENT_FACTORS",
]
