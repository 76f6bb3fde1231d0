"""Importance estimation: which heads, KV groups and MLP channels matter (SPEC step 3).

``compute_scores(model, metric, calib)`` scores every unit; the search uses the two halves,
``collect_statistics`` (one batched forward/backward per calibration set) and
``scores_from_statistics`` (any coefficients, no model pass).
"""

from adapruner.importance.coefficients import (
    ALIGN_EL_CHOICES,
    ALIGNMENT_CHOICES,
    ELEMENT_FACTORS,
    PAPER_SECOND_ORDER,
    SECOND_ORDER_EL_CHOICES,
    SECOND_ORDER_VEC_CHOICES,
)
from adapruner.importance.metrics import (
    METRICS,
    compute_scores,
    needs_calibration,
    needs_gradients,
    scores_from_statistics,
)
from adapruner.importance.statistics import Statistics, collect_statistics

__all__ = [
    "METRICS", "compute_scores", "needs_calibration", "needs_gradients", "collect_statistics",
    "scores_from_statistics", "Statistics", "ALIGNMENT_CHOICES", "ALIGN_EL_CHOICES", "SECOND_ORDER_EL_CHOICES",
    "SECOND_ORDER_VEC_CHOICES", "PAPER_SECOND_ORDER", "ELEMENT_FACTORS",
]
