"""Search dimensions: registered parts of the configuration a trial chooses (:mod:`.base`).

Built-in, one file each: ``calibration`` (the calibration windows, paper Eq. 6 and Table 8) and
``metric`` (the coefficients of the AdaPruner metric, Eq. 5); ``metric-choice``, ``update`` and
``allocation`` (:mod:`.choices`: one space over every metric, weight update and allocation mode).
"""

from adapruner.search.dimensions import calibration, choices, metric  # noqa: F401  (each registers itself)
from adapruner.search.dimensions.base import DIMENSIONS, SearchDimension, SuggestContext, register_dimension

__all__ = ["DIMENSIONS", "SearchDimension", "SuggestContext", "register_dimension"]
