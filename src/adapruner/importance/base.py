"""What an importance metric is, and the registry of metrics (``--metric`` choices).

A metric turns the :class:`~adapruner.importance.statistics.Statistics` of one calibration set
into one score per unit (head, KV group, MLP channel) of a layer; higher = keep. It declares
what the statistics pass must collect for it (calibration data, a backward pass, second-order
factors), so the pass collects no more than that. Adding a metric is one file::

    from adapruner.importance.base import Metric, register_metric

    @register_metric
    class MyMetric(Metric):
        name = "mine"
        help = "what it measures"
        needs_gradients = False
        options = {"power": (2.0, "exponent applied to the Wanda score")}

        def score(self, stats, layer, kind, config):
            return stats.layers[layer].view(kind, "wanda")[0][1] ** config.options.get("power", 2.0)

and ``adapruner prune --metric mine --metric-option power=3`` works.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from adapruner.config import MetricConfig
from adapruner.core.registry import Registry
from adapruner.core.structure import Scores
from adapruner.importance.needs import WEIGHTS_ONLY, StatisticsNeeds
from adapruner.importance.statistics import Statistics

METRICS: Registry["Metric"] = Registry("importance metric", flag="--metric")
register_metric = METRICS.register

# Help texts of the MetricConfig coefficients a built-in metric may read (``Metric.params``).
PARAM_HELP = {
    "alpha1": "weight of the vector-wise term (Eq. 5)",
    "alpha2": "weight of the element-wise term (Eq. 5)",
    "align_vec": "alignment factor of the vector-wise term",
    "align_el": "alignment factor of the element-wise term (1e-2 puts I_el on I_vec's scale on SmolLM2)",
    "second_order_vec": "factor on the Fisher term inside the vector-wise score",
    "second_order_el": "factor on the Fisher term inside the element-wise score",
    "aggregation": "how a unit's member scores combine (sum, mean, max, prod, last)",
    "seed": "seed of the random scores",
}


class Metric(ABC):
    """One importance metric. Subclasses set ``name`` and implement :meth:`score`.

    ``needs_calibration``: scored on calibration samples (random, l1, l2 are not).
    ``needs_gradients``: needs the backward pass of the statistics collection.
    ``needs_gram``: needs the input Gram matrices of the output projections.
    :meth:`statistics_needs` turns these flags into what the calibration pass collects; override
    it when the needs depend on the configuration.
    ``params``: the :class:`MetricConfig` fields it reads (help in :data:`PARAM_HELP`).
    ``options``: settings of its own, ``{name: (default, help)}``, read from ``MetricConfig.options``.
    For the search: ``full_space_order`` is its place among the metrics ``--space full`` chooses
    from (None: not offered there); ``searched_by`` names the search dimension that suggests its
    coefficients when a trial chooses it (None: it is used with its defaults).
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = True
    needs_gradients: ClassVar[bool] = False
    needs_gram: ClassVar[bool] = False  # the input Gram matrices of o_proj / down_proj
    params: ClassVar[tuple[str, ...]] = ("aggregation",)
    options: ClassVar[dict[str, tuple[object, str]]] = {}
    full_space_order: ClassVar[int | None] = None
    searched_by: ClassVar[str | None] = None

    def element_factors(self, config: MetricConfig) -> tuple[float, ...]:
        """Second-order factors whose element-wise scores the collection must fold (none)."""
        return ()

    def statistics_needs(self, config: MetricConfig) -> StatisticsNeeds:
        """What the calibration pass must collect for ``config`` (:mod:`.needs`): by default what
        the class flags say, and for a gradient metric the factor 1 and its own factors."""
        if not self.needs_calibration:
            return WEIGHTS_ONLY
        factors = tuple(sorted({1.0, *map(float, self.element_factors(config))})) if self.needs_gradients else ()
        return StatisticsNeeds(samples=True, gradients=self.needs_gradients, gram=self.needs_gram,
                               element_factors=factors)

    @abstractmethod
    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        """Scores of every unit of ``kind`` ("head", "kv", "channel") in decoder ``layer``."""

    def finish(self, scores: Scores) -> Scores:
        """A step over all layers' scores (FLAP standardises across layers); default: none."""
        return scores


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; a one-line error listing the valid names otherwise."""
    return METRICS.get(name)
