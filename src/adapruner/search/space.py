"""The structured-pruning solution space Z of the AdaPruner search (paper Eq. 5-6, Table 2, 8).

A point of Z is a calibration set D (``num_samples`` windows of the book-text pool) together with
an importance metric I (alpha1, alpha2 of Eq. 5, the alignment and second-order factors whose
candidates :mod:`adapruner.importance` defines, optionally the aggregation), plus whatever further
registered :mod:`dimensions <adapruner.search.dimensions>` the space lists.
:class:`SearchSpace` describes Z and its ablations; :meth:`SearchSpace.suggest` turns one Optuna
trial into a :class:`~adapruner.config.PruneConfig`, the same object that ``adapruner prune
--config`` applies, so a found configuration transfers unchanged.

Data spaces (``data_space``, paper Table 8): ``joint`` (default), ``subspaces``, ``score`` (the
``k`` best windows scored one by one are fixed; only the metric is searched) and ``fixed``
(``--no-data-search``: ``k`` random windows drawn once from the seed); see
:mod:`adapruner.search.dimensions.calibration`.

Metric spaces: ``adapruner`` searches alpha1, alpha2, every factor with more than one candidate (and the
aggregation when more than one is listed); ``element1`` / ``element2`` fix LLM-Pruner's
first-/second-order metric (``--fixed-metric first|second``). ``sequential`` spends the first
half of the budget on the data (metric fixed at the space's default point) and the second half
on the metric with the best data found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from adapruner.config import AGGREGATIONS, AllocationConfig, CalibrationConfig, MetricConfig, PruneConfig
from adapruner.errors import AdaprunerError
from adapruner.search.dimensions import DIMENSIONS, SuggestContext
from adapruner.search.dimensions.calibration import resolve_duplicates  # noqa: F401  (public name)

DATA_SPACES = ("joint", "subspaces", "score", "fixed")
SEARCH_METRICS = ("adapruner", "element1", "element2")
FIXED_METRICS = {"first": "element1", "second": "element2"}


def default_factors() -> dict[str, list[float]]:
    """Candidate values of the metric's alignment/second-order factors (MetricConfig fields).

    The paper lists {1e5, 1e6, 1e7}, {1e-2, 1e-3} and {1e-4} without saying which term each
    scales; :mod:`adapruner.importance.coefficients` decides and documents it, and exposes the
    candidate lists as ``FACTOR_CHOICES``, which are used here unchanged.
    """
    from adapruner.importance.coefficients import FACTOR_CHOICES

    return {k: [float(x) for x in v] for k, v in FACTOR_CHOICES.items()}


DEFAULT_DIMENSIONS = ("calibration", "metric")

def offered(registry) -> list[str]:
    """The registered names that ``--space full`` chooses from, in their declared order."""
    names = [n for n in registry.names() if registry.get(n).full_space_order is not None]
    return sorted(names, key=lambda n: registry.get(n).full_space_order)


def full_space() -> dict:
    """``--space full``: every metric, weight update and allocation mode that declares a place in
    it (``full_space_order``), with the settings they declare, and the calibration data."""
    from adapruner.allocation import ALLOCATORS
    from adapruner.importance import METRICS
    from adapruner.updates.base import UPDATES

    updates, modes = offered(UPDATES), offered(ALLOCATORS)
    allocation: dict = {"choices": modes}
    for mode in modes:
        allocation.update(ALLOCATORS.get(mode).search_settings)
    return {
        "dimensions": ["calibration", "metric-choice", "update", "allocation"],
        "options": {
            "metric-choice": {"choices": offered(METRICS)},
            "update": {"choices": updates, **{u: dict(UPDATES.get(u).search_settings) for u in updates
                                              if UPDATES.get(u).search_settings}},
            "allocation": allocation,
        },
    }


# Named spaces for ``--space NAME``. ``paper`` is the AdaPruner paper's space (the default, so
# the paper tables stay reproducible); ``full`` searches every metric, weight update and
# allocation mode this tool offers there, together with the calibration data.
PRESETS: dict[str, object] = {"paper": dict, "full": full_space}


@dataclass
class SearchSpace:
    """The solution space and its ablation switches (JSON/YAML keys = field names)."""

    num_samples: int = 10
    seq_len: int = 128
    pool_seed: int = 0
    data_space: str = "joint"
    metric: str = "adapruner"
    alpha1: list[float] = field(default_factory=lambda: [0.0, 1.0])
    alpha2: list[float] = field(default_factory=lambda: [0.0, 1.0])
    factors: dict[str, list[float]] = field(default_factory=default_factors)
    aggregations: list[str] = field(default_factory=lambda: ["sum"])
    sequential: bool = False
    score_candidates: int = 64
    # The allocation without its ``options`` (a searched schedule brings its own), so the hash of
    # a default space names the fixed allocation alone.
    allocation: dict = field(default_factory=lambda: {k: v for k, v in asdict(AllocationConfig()).items()
                                                      if k != "options"})
    # Registered dimensions searched, in suggestion order, and the settings of dimensions that
    # keep them outside the fields above ({dimension name: {...}}).
    dimensions: list[str] = field(default_factory=lambda: list(DEFAULT_DIMENSIONS))
    options: dict = field(default_factory=dict)
    # The calibration text: the book texts, or a user .txt / .jsonl / .json file (and its field).
    source: str = "books"
    field: str = "text"

    # -- loading and identity ----------------------------------------------------------------
    @staticmethod
    def from_dict(data: dict) -> "SearchSpace":
        """Build from a dict, rejecting unknown keys and invalid values with a clear error."""
        known = {f.name for f in fields(SearchSpace)}
        unknown = set(data) - known
        if unknown:
            raise AdaprunerError(f"unknown key(s) {sorted(unknown)} in the search space; valid: {sorted(known)}")
        space = SearchSpace(**data)
        space.validate()
        return space

    @staticmethod
    def load(path: str | Path) -> "SearchSpace":
        """Read a space file (``.json``, ``.yaml`` or ``.yml``) or a named space (:data:`PRESETS`)."""
        if str(path) in PRESETS:
            return SearchSpace.from_dict(json.loads(json.dumps(PRESETS[str(path)]())))
        path = Path(path)
        if not path.is_file():
            raise AdaprunerError(f"search space file {path} not found; pass a JSON or YAML file or one of "
                                 f"the named spaces {', '.join(PRESETS)}")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:  # yaml and json raise different error types
            raise AdaprunerError(f"search space file {path} cannot be parsed ({type(exc).__name__}); fix its syntax") from None
        if not isinstance(data, dict):
            raise AdaprunerError(f"search space file {path} must hold a mapping of settings")
        return SearchSpace.from_dict(data)

    def validate(self) -> None:
        """Raise :class:`AdaprunerError` for values outside their domains or of the wrong type."""
        _check_int("num_samples", self.num_samples, 1)
        _check_int("seq_len", self.seq_len, 2)
        _check_int("pool_seed", self.pool_seed, None)
        _check_int("score_candidates", self.score_candidates, 1)
        if self.data_space not in DATA_SPACES:
            raise AdaprunerError(f"data_space '{self.data_space}' unknown; choose one of {', '.join(DATA_SPACES)}")
        if self.metric not in SEARCH_METRICS:
            raise AdaprunerError(f"metric '{self.metric}' unknown; choose one of {', '.join(SEARCH_METRICS)}")
        for name in ("alpha1", "alpha2"):
            value = getattr(self, name)
            if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)):
                raise AdaprunerError(f"{name} must be a range [low, high] of two numbers (got {value!r})")
            lo, hi = value
            if not 0.0 <= lo <= hi <= 1.0:
                raise AdaprunerError(f"{name} range must satisfy 0 <= low <= high <= 1 (got [{lo}, {hi}])")
        if not isinstance(self.factors, dict):
            raise AdaprunerError(f"factors must map a metric coefficient to its candidate values (got {self.factors!r})")
        metric_fields = {f.name for f in fields(MetricConfig)} - {"name", "alpha1", "alpha2", "aggregation", "seed",
                                                                 "options"}
        for key, values in self.factors.items():
            if key not in metric_fields:
                raise AdaprunerError(f"factor '{key}' is not a metric coefficient; valid: {sorted(metric_fields)}")
            if not isinstance(values, (list, tuple)) or not values or not all(_is_number(v) for v in values):
                raise AdaprunerError(f"factor '{key}' needs a non-empty list of numbers (got {values!r})")
        if not isinstance(self.aggregations, (list, tuple)) or not self.aggregations or \
                any(a not in AGGREGATIONS for a in self.aggregations):
            raise AdaprunerError(f"aggregations must be a non-empty subset of {', '.join(AGGREGATIONS)} "
                                 f"(got {self.aggregations!r})")
        if self.sequential and (self.data_space not in ("joint", "subspaces") or self.metric != "adapruner"):
            raise AdaprunerError("--sequential needs a searched data space (joint|subspaces) and the adapruner metric")
        if not isinstance(self.allocation, dict):
            raise AdaprunerError(f"allocation must be a mapping of AllocationConfig keys (got {self.allocation!r})")
        known = {f.name for f in fields(AllocationConfig)}
        unknown = set(self.allocation) - known
        if unknown:
            raise AdaprunerError(f"unknown allocation key(s) {sorted(unknown)} in the search space; valid: {sorted(known)}")
        from adapruner.allocation.base import validate_allocation

        validate_allocation(AllocationConfig(**self.allocation))
        if self.source != "books":
            from adapruner.data.user_text import is_hub_dataset, is_text_file

            if not is_hub_dataset(self.source) and (not is_text_file(self.source) or not Path(self.source).is_file()):
                raise AdaprunerError(f"calibration source '{self.source}' is neither 'books', an existing "
                                     ".txt/.jsonl/.json file nor a hub dataset org/name")
        if self.score_candidates < self.num_samples:
            raise AdaprunerError("score_candidates must be >= num_samples")
        if not isinstance(self.dimensions, (list, tuple)) or not isinstance(self.options, dict):
            raise AdaprunerError("dimensions must be a list of names and options a mapping of dimension settings")
        for name in self.dimensions:
            DIMENSIONS.get(name).validate(self)
        stray = set(self.options) - set(self.dimensions)
        if stray:
            raise AdaprunerError(f"options given for dimension(s) {sorted(stray)} that the space does not search; "
                                 f"add them to dimensions ({', '.join(DIMENSIONS.names())})")

    def needs_gram(self) -> bool:
        """Whether a trial may choose a metric that reads the output projections' Gram matrices."""
        from adapruner.importance import METRICS

        names = [self.metric] + list(self.options.get("metric-choice", {}).get("choices", []))
        return any(n in METRICS and METRICS.get(n).needs_gram for n in names)

    def element_factors(self) -> tuple[float, ...]:
        """Every element-wise second-order factor a trial of this space may read: the collection
        folds all of them in its one pass (so a space value off the default list still works)."""
        from adapruner.importance.coefficients import ELEMENT_FACTORS

        extra = [float(v) for v in self.factors.get("second_order_el", [])]
        return tuple(sorted({*ELEMENT_FACTORS, *extra}))

    def to_json(self) -> dict:
        """A JSON-serialisable dict (the study stores it and its hash).

        ``dimensions`` and ``options`` are left out while at their defaults, so the hash of a
        space that does not use them is the one it had before they existed (old studies resume).
        """
        data = asdict(self)
        if list(data["dimensions"]) == list(DEFAULT_DIMENSIONS):
            del data["dimensions"]
        if not data["options"]:
            del data["options"]
        for key, default in (("source", "books"), ("field", "text")):
            if data[key] == default:
                del data[key]
        return data

    def digest(self) -> str:
        """A short stable hash of the space, to refuse mixing studies of different spaces."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # -- phases --------------------------------------------------------------------------------
    def searches_data(self, phase: str) -> bool:
        """Whether trials of ``phase`` choose calibration indices."""
        return self.data_space in ("joint", "subspaces") and phase != "metric"

    def searches_metric(self, phase: str) -> bool:
        """Whether trials of ``phase`` choose metric coefficients."""
        return self.metric == "adapruner" and phase != "data"

    def default_metric(self) -> MetricConfig:
        """The fixed metric of trials that do not search it (ablations, sequential phase 1)."""
        if self.metric != "adapruner":
            return MetricConfig(name=self.metric, aggregation=self.aggregations[0])
        middle = {k: float(v[len(v) // 2]) for k, v in self.factors.items()}
        return MetricConfig(name="adapruner", alpha1=0.5, alpha2=0.5, aggregation=self.aggregations[0], **middle)

    # -- sampling -------------------------------------------------------------------------------
    def check_pool(self, pool_size: int) -> None:
        """A pool must offer at least as many windows as a calibration set needs."""
        if pool_size < self.num_samples:
            raise AdaprunerError(
                f"the calibration pool has {pool_size} windows of {self.seq_len} tokens but {self.num_samples} samples "
                "are asked; lower num_samples or use more book text")

    def fixed_indices(self, pool_size: int, seed: int) -> list[int]:
        """The random calibration set of the ``fixed`` data space (no data search)."""
        g = torch.Generator().manual_seed(seed)
        return sorted(torch.randperm(pool_size, generator=g)[: self.num_samples].tolist())

    def subspace_bounds(self, pool_size: int) -> list[tuple[int, int]]:
        """[start, end) of each of the ``num_samples`` disjoint pool parts (``subspaces``)."""
        edges = [round(i * pool_size / self.num_samples) for i in range(self.num_samples + 1)]
        return list(zip(edges[:-1], edges[1:]))

    def suggest(self, trial, pool_size: int, phase: str = "joint", fixed_indices: list[int] | None = None,
                fixed_metric: MetricConfig | None = None) -> PruneConfig:
        """The :class:`PruneConfig` of one trial.

        ``phase`` is ``joint`` (search everything the space searches), ``data`` or ``metric``
        (sequential ablation). ``fixed_indices`` is the calibration set of trials that do not
        search the data; ``fixed_metric`` the metric of trials that do not search it. Every
        active dimension, in ``dimensions`` order, fills its part of the configuration.
        """
        self.check_pool(pool_size)
        if not self.searches_data(phase) and fixed_indices is None:
            raise ValueError("fixed_indices are needed when the data is not searched")
        indices = sorted(fixed_indices) if fixed_indices is not None else None
        config = PruneConfig(
            metric=fixed_metric or self.default_metric(),
            calibration=CalibrationConfig(seq_len=self.seq_len, num_samples=len(indices) if indices else self.num_samples,
                                          pool_seed=self.pool_seed, indices=indices, source=self.source,
                                          field=self.field),
            allocation=AllocationConfig(**self.allocation))
        ctx = SuggestContext(pool_size=pool_size, phase=phase, fixed_indices=fixed_indices, fixed_metric=fixed_metric)
        for name in self.dimensions:
            dimension = DIMENSIONS.get(name)
            if dimension.active(self, phase):
                dimension.suggest(trial, self, config, ctx)
        return config


def space_from_args(base: SearchSpace, no_data_search: bool = False, fixed_metric: str | None = None,
                    sequential: bool = False, data_space: str | None = None) -> SearchSpace:
    """Apply the CLI ablation switches (paper Tables 2 and 8) to a space."""
    data = base.to_json()
    if data_space:
        data["data_space"] = data_space
    if no_data_search:
        if data_space not in (None, "joint", "fixed"):
            raise AdaprunerError("--no-data-search cannot be combined with --data-space subspaces|score")
        data["data_space"] = "fixed"
    if fixed_metric:
        if fixed_metric not in FIXED_METRICS:
            raise AdaprunerError(f"--fixed-metric must be first or second (got '{fixed_metric}')")
        data["metric"] = FIXED_METRICS[fixed_metric]
    if sequential:
        data["sequential"] = True
    return SearchSpace.from_dict(data)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_int(name: str, value, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise AdaprunerError(f"{name} must be an integer{bound} (got {value!r})")
