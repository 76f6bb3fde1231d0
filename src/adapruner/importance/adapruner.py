"""The AdaPruner metric (paper Eq. 5): a searched blend of the vector- and element-wise Taylor scores.

``I = alpha1 * a_vec * I_vec + alpha2 * a_el * I_el`` per member, then aggregated over the unit's
members; I_vec and I_el carry their own second-order factors (see :mod:`.taylor` for what each
factor scales and why the defaults are what they are).
"""

from __future__ import annotations

from adapruner.config import MetricConfig
from adapruner.importance.base import register_metric
from adapruner.importance.taylor import TaylorMetric, element_members, factor_row, vector_members


@register_metric
class AdaprunerMetric(TaylorMetric):
    """AdaPruner Eq. 5: alpha1*a_vec*I_vec + alpha2*a_el*I_el per member, aggregated."""

    name = "adapruner"
    full_space_order = 0
    searched_by = "metric"  # its Eq. 5 coefficients
    help = "AdaPruner Eq. 5 blend alpha1*I_vec + alpha2*I_el (the searched metric)"
    params = ("alpha1", "alpha2", "align_vec", "align_el", "second_order_vec", "second_order_el", "aggregation")

    def element_factors(self, config: MetricConfig) -> tuple[float, ...]:
        return (float(config.second_order_el),)

    def members(self, stats, layer, kind, config):
        vec = vector_members(layer, kind, config.second_order_vec)
        el = element_members(layer, kind, factor_row(stats, config.second_order_el))
        return [config.alpha1 * config.align_vec * v + config.alpha2 * config.align_el * e for v, e in zip(vec, el)]
