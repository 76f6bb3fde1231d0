"""The ``metric`` dimension: the coefficients of the AdaPruner metric (paper Eq. 5).

Searches alpha1 and alpha2 in their ranges, every alignment / second-order factor with more than
one candidate (categorical), and the aggregation when the space lists more than one.
"""

from __future__ import annotations

from adapruner.config import MetricConfig, PruneConfig
from adapruner.search.dimensions.base import SearchDimension, SuggestContext, register_dimension


@register_dimension
class MetricDimension(SearchDimension):
    """alpha1, alpha2, the factors and the aggregation of the ``adapruner`` metric."""

    name = "metric"
    help = "alpha1, alpha2 and the alignment / second-order factors of Eq. 5"

    def active(self, space, phase: str) -> bool:
        return space.searches_metric(phase)

    def suggest(self, trial, space, config: PruneConfig, ctx: SuggestContext) -> None:
        # The order of the suggest calls is part of a seeded study's reproducibility: keep it.
        factors = {k: float(trial.suggest_categorical(k, v)) if len(v) > 1 else float(v[0])
                   for k, v in space.factors.items()}
        config.metric = MetricConfig(
            name="adapruner",
            alpha1=trial.suggest_float("alpha1", *space.alpha1),
            alpha2=trial.suggest_float("alpha2", *space.alpha2),
            aggregation=(trial.suggest_categorical("aggregation", space.aggregations)
                         if len(space.aggregations) > 1 else space.aggregations[0]),
            **factors,
        )
