"""Taylor-expansion importance (paper Eq. 2-5, LLM-Pruner's Vector / Element1 / Element2).

Removing a member block W_u changes the calibration loss by about
``g . W_u - 1/2 W_u^T H W_u``. With the Hessian approximated by the empirical Fisher
H ~ sum_j G_j G_j^T (G_j: sample j's gradient) the quadratic term of a whole block is
``sum_j (G_j . W_u)^2`` and that of one element is ``F_kk W_k^2`` with F_kk = sum_j G_jk^2.

* vector-wise, Eq. 2: I_vec(u) = |g . W_u - s_vec/2 sum_j (G_j . W_u)^2|
* element-wise, Eq. 4: I_el(u) = sum_k |g_k W_k - s_el/2 F_kk W_k^2|
* AdaPruner blend, Eq. 5: I = alpha1 * a_vec * I_vec + alpha2 * a_el * I_el, per member, then
  aggregated over the unit's members (:mod:`adapruner.importance.adapruner`).

Alignment factors (the paper gives the ranges {1e5,1e6,1e7}, {1e-2,1e-3}, {1e-4} but not which
term each scales). Measured on SmolLM2-135M with 10 x 128 book tokens (median over units of a
member, sums over a unit's block; README "Importance metrics"): the element-wise first-order term
is 130x (k_proj) to 1100x (MLP) larger than its Fisher term, the vector-wise first-order term 4x
(attention) to 55x (MLP) larger than its Fisher term, and I_el is 20x (MLP) to 100x (o_proj)
larger than I_vec. So, in this implementation:

* ``second_order_el`` (s_el) scales the Fisher term *inside* the element-wise absolute value. At
  1 (literal Eq. 4, the ``element2`` metric) it barely moves the score; 1e2-1e3 puts both terms
  on one scale on SmolLM2. The paper's {1e5,1e6,1e7} is this factor for LLaMA-7B, whose
  per-element gradients are much smaller (the gap grows with width). Because it sits inside
  ``|.|`` per element, every candidate is folded during collection
  (:data:`~adapruner.importance.coefficients.ELEMENT_FACTORS`; the search's candidate lists are
  there too).
* ``second_order_vec`` (s_vec) scales the Fisher term inside the vector-wise absolute value; any
  value works after collection (per-unit scalars).
* ``align_el`` (a_el) scales I_el against I_vec; the paper's {1e-2,1e-3} range is this factor
  (1e-2 brings the two to one scale on SmolLM2). ``align_vec`` (a_vec) stays 1: only the ratio of the two
  alignments changes a ranking. The paper's single-valued {1e-4} range cannot change a ranking
  that the other factors do not already cover, so it is not a separate knob.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from adapruner.config import MetricConfig
from adapruner.errors import AdaprunerError
from adapruner.importance.aggregation import aggregate
from adapruner.importance.base import Metric, register_metric
from adapruner.importance.statistics import LayerStatistics, Statistics


def factor_row(stats: Statistics, factor: float) -> int:
    """Index of ``factor`` among the element-wise factors folded during collection."""
    for i, c in enumerate(stats.element_factors):
        if abs(c - factor) <= 1e-9 * max(1.0, abs(factor)):
            return i
    raise AdaprunerError(
        f"second-order factor {factor:g} was not collected; choose one of "
        f"{', '.join(f'{c:g}' for c in stats.element_factors)} (or collect statistics with it)")


def vector_members(layer: LayerStatistics, kind: str, second_order: float) -> list[torch.Tensor]:
    """Per-member I_vec = |g.W_u - s/2 sum_j (G_j.W_u)^2| (one value per unit of ``kind``)."""
    out = []
    for _, dot in layer.view(kind, "dot"):
        d = dot.double()
        out.append((d.mean(0) - 0.5 * second_order * (d * d).sum(0)).abs())
    return out


def element_members(layer: LayerStatistics, kind: str, row: int) -> list[torch.Tensor]:
    """Per-member I_el = sum_k |g_k W_k - c/2 F_kk W_k^2| for the collected factor ``row``."""
    return [el2[row].double() for _, el2 in layer.view(kind, "el2")]


def require_gradients(stats: Statistics) -> None:
    """A one-line error unless ``stats`` were collected with the backward pass."""
    if not stats.has_gradients:
        raise AdaprunerError("this metric needs gradient statistics; collect them with gradients=True")


class TaylorMetric(Metric):
    """Base of the gradient metrics (not registered itself): they need calibration data and the
    backward pass, and define their per-member scores in :meth:`members`."""

    needs_gradients = True

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        require_gradients(stats)
        return aggregate(self.members(stats, stats.layers[layer], kind, config), config.aggregation)

    @abstractmethod
    def members(self, stats: Statistics, layer: LayerStatistics, kind: str, config: MetricConfig) -> list[torch.Tensor]:
        """Per-member scores of one layer's units of ``kind`` (aggregated by :meth:`score`)."""


@register_metric
class VectorMetric(TaylorMetric):
    """LLM-Pruner Vector: |g . W_u| per member (first order), aggregated."""

    name = "vector"
    help = "LLM-Pruner vector-wise first-order Taylor |g.W|"

    def members(self, stats, layer, kind, config):
        return vector_members(layer, kind, 0.0)


@register_metric
class Element1Metric(TaylorMetric):
    """LLM-Pruner Element1: sum_k |g_k W_k| per member, aggregated."""

    name = "element1"
    full_space_order = 1
    help = "LLM-Pruner element-wise first-order Taylor sum|g*W|"

    def members(self, stats, layer, kind, config):
        return [v.double() for _, v in layer.view(kind, "el1")]


@register_metric
class Element2Metric(TaylorMetric):
    """Element2 (paper Eq. 4 literally): sum_k |g_k W_k - 1/2 F_kk W_k^2|, aggregated."""

    name = "element2"
    help = "LLM-Pruner element-wise second-order Taylor (Fisher) sum|gW - FW^2/2|"

    def element_factors(self, config: MetricConfig) -> tuple[float, ...]:
        return (1.0,)

    def members(self, stats, layer, kind, config):
        return element_members(layer, kind, factor_row(stats, 1.0))
