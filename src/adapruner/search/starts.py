"""Starting points: every new study first tries the recipes that need no search.

The first trials of a study are the generic recipes of :mod:`adapruner.recipes` (``prune``'s
default first), each on the calibration windows ``prune --seed S`` draws for the study's seed, so
the search's first minutes already give a model as good as ``prune``'s and its best can never be
worse on the search's own objective. Only the recipes the space can express are enqueued: a
space without the ``metric-choice`` dimension (the paper's, whose reproduction stays exactly as
it was) gets none. A recipe's update runs with the settings the space gives that update (the full
space re-fits with one-shot Grams, which a study computes once).
"""

from __future__ import annotations

from adapruner.config import CalibrationConfig
from adapruner.recipes import DEFAULT_RECIPE, RECIPES, Recipe

# prune's default first, then FLAP + bias compensation, then the paper's baseline.
ORDER = (DEFAULT_RECIPE, *(name for name in RECIPES if name != DEFAULT_RECIPE))


def _choice(space, dimension: str, value: str, fixed: str) -> dict | None:
    """``{param: value}`` when the space's ``dimension`` offers ``value``, ``{}`` when the
    dimension is absent and the space's fixed setting is already ``value``, else None."""
    param = {"metric-choice": "metric", "update": "update", "allocation": "allocation"}[dimension]
    if dimension not in space.dimensions:
        return {} if value == fixed else None
    choices = space.options.get(dimension, {}).get("choices") or []
    if value not in choices:
        return None
    return {param: value} if len(choices) > 1 else {}


def recipe_params(space, recipe: Recipe, pool_size: int, seed: int) -> dict | None:
    """The trial parameters that make ``recipe`` in ``space`` (None when it cannot be expressed)."""
    if "metric-choice" not in space.dimensions or space.sequential or space.data_space not in ("joint", "fixed"):
        return None
    params: dict = {}
    for dimension, value, fixed in (("metric-choice", recipe.metric, space.metric),
                                    ("update", recipe.update, "none"),
                                    ("allocation", recipe.mode, space.allocation.get("mode", "uniform"))):
        part = _choice(space, dimension, value, fixed)
        if part is None:
            return None
        params.update(part)
    if space.data_space == "joint":
        from adapruner.data.calibration import calibration_indices

        windows = calibration_indices(pool_size, CalibrationConfig(num_samples=space.num_samples, seed=seed))
        params.update({f"sample_{i}": index for i, index in enumerate(windows)})
    return params


def starting_points(space, pool_size: int, seed: int, budget: int) -> dict[str, dict]:
    """Recipe name -> trial parameters of the recipes ``space`` can express, at most ``budget``."""
    out: dict[str, dict] = {}
    for name in ORDER:
        params = recipe_params(space, RECIPES[name], pool_size, seed)
        if params is not None and len(out) < budget:
            out[name] = params
    return out


def enqueue_starting_points(study, points: dict[str, dict]) -> list[str]:
    """Enqueue the :func:`starting_points` into a study that has no trial yet; return their names.
    A study that already has trials is left alone, so a resumed or joined study never gets them
    twice."""
    if study.get_trials(deepcopy=False):
        return []
    for name, params in points.items():
        study.enqueue_trial(params, user_attrs={"recipe": name}, skip_if_exists=True)
    return list(points)
