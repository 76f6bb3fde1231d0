"""Dimensions that choose *what kind* of pruning a trial does: the metric, the weight update and
the allocation mode, each a categorical over registered names with its own settings.

They make one search space over everything this tool can build (``--space full``): the
objective scores the model that would be delivered, update included, so the search can trade a
metric against an update or an allocation. Settings live in ``SearchSpace.options``:

* ``metric-choice``: ``{"choices": [...]}``; a metric that names a dimension in ``searched_by``
  (``adapruner``: ``metric``, its Eq. 5 coefficients) has its coefficients suggested by it.
* ``update``: ``{"choices": [...], "<update name>": {its options}}``, e.g. reconstruction with
  ``{"mode": "oneshot", "windows": 64}`` (one-shot Grams are cached for the whole study).
* ``allocation``: ``{"choices": [...], "knots": 3, "knot_range": [0.25, 4.0],
  "strength_range": [0.0, 2.0]}``; each mode suggests its own options
  (:meth:`~adapruner.allocation.base.Allocator.suggest_options`: ``schedule`` its knots,
  log-uniform in the range, ``saap`` its strength).

Nothing here names a metric, update or mode: each registered class declares its place in
``--space full`` (``full_space_order``) and its settings (``search_settings``), so a new one
joins the full space from its own file.
"""

from __future__ import annotations

from adapruner.config import MetricConfig, PruneConfig, UpdateConfig
from adapruner.errors import AdaprunerError
from adapruner.search.dimensions.base import DIMENSIONS, SearchDimension, SuggestContext, register_dimension


def _choices(space, name: str, registry) -> list[str]:
    settings = space.options.get(name, {})
    choices = settings.get("choices")
    if not isinstance(choices, list) or not choices:
        raise AdaprunerError(f"search dimension '{name}' needs options {{{name}: {{choices: [...]}}}}")
    for c in choices:
        registry.get(c)  # an unknown name is a one-line error listing the valid ones
    return choices


@register_dimension
class MetricChoice(SearchDimension):
    """``metric``: which importance metric (and, for ``adapruner``, its coefficients)."""

    name = "metric-choice"
    help = "which importance metric (adapruner's coefficients too)"

    def validate(self, space) -> None:
        from adapruner.importance import METRICS

        _choices(space, self.name, METRICS)
        if "metric" in space.dimensions:
            raise AdaprunerError("a space searches either 'metric' or 'metric-choice' (which includes it), not both")

    def active(self, space, phase: str) -> bool:
        return phase != "data"

    def suggest(self, trial, space, config: PruneConfig, ctx: SuggestContext) -> None:
        from adapruner.importance import METRICS

        choices = space.options[self.name]["choices"]
        name = trial.suggest_categorical("metric", choices) if len(choices) > 1 else choices[0]
        searched_by = METRICS.get(name).searched_by
        if searched_by is not None:
            DIMENSIONS.get(searched_by).suggest(trial, space, config, ctx)
        else:
            config.metric = MetricConfig(name=name, aggregation=space.aggregations[0])


@register_dimension
class UpdateChoice(SearchDimension):
    """``update``: which weight update, with the settings the space gives it."""

    name = "update"
    help = "which weight update (none, bias, reconstruct, ...)"

    def validate(self, space) -> None:
        from adapruner.updates.base import UPDATES, validate_update

        for c in _choices(space, self.name, UPDATES):
            validate_update(UpdateConfig(name=c, options=dict(space.options[self.name].get(c, {}))))

    def suggest(self, trial, space, config: PruneConfig, ctx: SuggestContext) -> None:
        settings = space.options[self.name]
        choices = settings["choices"]
        name = trial.suggest_categorical("update", choices) if len(choices) > 1 else choices[0]
        config.update = UpdateConfig(name=name, options=dict(settings.get(name, {})))


@register_dimension
class AllocationChoice(SearchDimension):
    """``allocation``: which allocation mode; a schedule's knots or SAAP's strength."""

    name = "allocation"
    help = "which allocation mode (uniform, global, schedule with searched knots, saap)"

    def validate(self, space) -> None:
        from adapruner.allocation import ALLOCATORS

        _choices(space, self.name, ALLOCATORS)
        settings = space.options[self.name]
        lo, hi = settings.get("knot_range", [0.25, 4.0])
        if not 0 < lo < hi:
            raise AdaprunerError(f"allocation knot_range must satisfy 0 < low < high, got {[lo, hi]}")

    def suggest(self, trial, space, config: PruneConfig, ctx: SuggestContext) -> None:
        from adapruner.allocation import ALLOCATORS

        settings = space.options[self.name]
        choices = settings["choices"]
        mode = trial.suggest_categorical("allocation", choices) if len(choices) > 1 else choices[0]
        config.allocation.mode = mode
        config.allocation.options = ALLOCATORS.get(mode).suggest_options(trial, settings)
