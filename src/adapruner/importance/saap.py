"""SAAP: fusing vector- and element-wise importance by homoscedastic uncertainty.

SAAP weights its importance scores by their uncertainty in the manner of Kendall, Gal and Cipolla
(2018), who combine task losses as sum_i L_i / (2 sigma_i^2) + log sigma_i. The SAAP paper's exact
formula is not public; this is our reconstruction, applied to each layer and unit kind:

1. The two scores are those of the AdaPruner blend (:mod:`.taylor`), with the same second-order
   factors: I_vec (Eq. 2) and I_el (Eq. 4), aggregated over each unit's members.
2. Each is divided by its mean over the layer's units, so that neither dominates by scale
   (this plays the role of the alignment factors): I~_i = I_i / mean_u I_i.
3. sigma_i is the uncertainty of score i *as estimated from the calibration set*: the same
   first-order score computed on each calibration sample alone (|G_j . W_u| vector-wise,
   sum_k |G_jk W_k| element-wise), normalised the same way, gives N noisy estimates per unit; the
   squared standard error of their mean, averaged over units, is sigma_i^2:
   sigma_i^2 = mean_u Var_j(I~_i^(j)(u)) / N.
4. I_saap(u) = sum_i I~_i(u) / (2 sigma_i^2) + log sigma_i.

A score that is stable across calibration samples gets the larger weight. The log sigma_i terms
are constant within a layer and kind: they do not change which units a layer keeps, only how
layers compare under global allocation (a noisier layer's scores are shifted up, mirroring the
regulariser in Kendall et al.). With one calibration sample no spread can be measured and both
sigmas are 1 (an equal-weight sum of the normalised scores).
"""

from __future__ import annotations

import math

import torch

from adapruner.config import MetricConfig
from adapruner.importance.aggregation import aggregate
from adapruner.importance.base import Metric, register_metric
from adapruner.importance.statistics import Statistics
from adapruner.importance.taylor import element_members, factor_row, require_gradients, vector_members

_EPS = 1e-12


def _normalised(score: torch.Tensor) -> torch.Tensor:
    return score / score.mean().clamp_min(_EPS)


def _sigma(per_sample: torch.Tensor) -> float:
    """Standard error of the per-sample mean of a [N, U] score, averaged over units."""
    n = per_sample.shape[0]
    if n < 2:
        return 1.0
    per_sample = per_sample / per_sample.mean().clamp_min(_EPS)
    return max(math.sqrt(float(per_sample.var(dim=0).mean()) / n), 1e-6)


def saap_parts(stats: Statistics, index: int, kind: str, metric: MetricConfig) -> dict[str, tuple[torch.Tensor, float]]:
    """The normalised scores and sigmas that SAAP fuses: {"vec": (I~, sigma), "el": (I~, sigma)}."""
    require_gradients(stats)
    layer = stats.layers[index]
    agg = metric.aggregation
    vec = aggregate(vector_members(layer, kind, metric.second_order_vec), agg)
    el = aggregate(element_members(layer, kind, factor_row(stats, metric.second_order_el)), agg)
    vec_j = aggregate([d.double().abs() for _, d in layer.view(kind, "dot")], agg)
    el_j = aggregate([e.double() for _, e in layer.view(kind, "el1_sample")], agg)
    return {"vec": (_normalised(vec), _sigma(vec_j)), "el": (_normalised(el), _sigma(el_j))}


@register_metric
class SaapMetric(Metric):
    """Uncertainty-weighted fusion sum_i I~_i / (2 sigma_i^2) + log sigma_i (see module doc)."""

    name = "saap"
    full_space_order = 2
    help = "SAAP: vector- and element-wise scores fused by their calibration uncertainty"
    needs_gradients = True
    params = ("second_order_vec", "second_order_el", "aggregation")

    def element_factors(self, config: MetricConfig) -> tuple[float, ...]:
        return (float(config.second_order_el),)

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        parts = saap_parts(stats, layer, kind, config)
        return sum(score / (2 * sigma**2) + math.log(sigma) for score, sigma in parts.values())
