"""Candidate coefficient values of the AdaPruner metric subspace (imported by the search).

See :mod:`adapruner.importance.taylor` for what each factor scales and why these values (measured
magnitudes on SmolLM2-135M). ``alpha1``/``alpha2`` are continuous in [0, 1] and need no list.
"""

from __future__ import annotations

# a_el: scales I_el against I_vec (paper's {1e-2, 1e-3} range; 1e-2 equalises them on SmolLM2).
ALIGN_EL_CHOICES: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
# s_el: scales the Fisher term inside the element-wise |.| (1 = literal Eq. 4).
SECOND_ORDER_EL_CHOICES: tuple[float, ...] = (1.0, 1e1, 1e2, 1e3)
# s_vec: scales the Fisher term inside the vector-wise |.| (0 = LLM-Pruner Vector).
SECOND_ORDER_VEC_CHOICES: tuple[float, ...] = (0.0, 1.0, 1e1)
# The paper's range for the second-order factor, tuned for LLaMA-7B; collected too, so a config
# with these values still needs no extra pass.
PAPER_SECOND_ORDER: tuple[float, ...] = (1e5, 1e6, 1e7)

# Every element-wise factor folded by default in one collection pass (0 gives element1).
ELEMENT_FACTORS: tuple[float, ...] = tuple(sorted({0.0, 1.0, *SECOND_ORDER_EL_CHOICES, *PAPER_SECOND_ORDER}))

# The candidate lists of the alignment and second-order factors, by MetricConfig field, as
# search/space.py reads them. ``align_vec`` has one value: only the ratio align_el / align_vec
# changes a ranking.
FACTOR_CHOICES: dict[str, tuple[float, ...]] = {
    "align_vec": (1.0,),
    "align_el": ALIGN_EL_CHOICES,
    "second_order_vec": SECOND_ORDER_VEC_CHOICES,
    "second_order_el": SECOND_ORDER_EL_CHOICES,
}
