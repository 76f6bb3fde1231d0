"""The structured-pruning solution space Z of the AdaPruner search (paper Eq. 5-6, Table 2, 8).

A point of Z is a calibration set D (``num_samples`` windows of the book-text pool) together with
an importance metric I (alpha1, alpha2 of Eq. 5, the alignment and second-order factors whose
candidates :mod:`adapruner.importance` defines, optionally the aggregation). :class:`SearchSpace` describes Z and its ablations; :meth:`SearchSpace.suggest`
turns one Optuna trial into a :class:`~adapruner.config.PruneConfig`, the same object that
``adapruner prune --config`` applies, so a found configuration transfers unchanged.

Data spaces (paper Table 8):

* ``joint`` (default): ``sample_0 .. sample_{k-1}`` each range over the whole pool.
  Duplicated indices are *resampled deterministically*: a repeated index moves to the next
  unused pool index (wrapping around), so every trial calibrates on exactly ``k`` distinct
  windows and the mapping stays a pure function of the trial's parameters.
* ``subspaces`` ("10 subspaces"): the pool is cut into ``k`` contiguous disjoint parts and
  ``sample_i`` picks a window inside part ``i`` (duplicates are impossible).
* ``score``: every candidate window is first scored alone (the objective of a pruning calibrated
  on that window only) and the ``k`` best are fixed; only the metric is searched.
* ``fixed`` (``--no-data-search``): ``k`` random windows drawn once from ``seed``.

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

DATA_SPACES = ("joint", "subspaces", "score", "fixed")
SEARCH_METRICS = ("adapruner", "element1", "element2")
FIXED_METRICS = {"first": "element1", "second": "element2"}


def default_factors() -> dict[str, list[float]]:
    """Candidate values of the metric's alignment/second-order factors (MetricConfig fields).

    The paper lists {1e5, 1e6, 1e7}, {1e-2, 1e-3} and {1e-4} without saying which term each
    scales; :mod:`adapruner.importance` decides and documents it, and exposes the candidate lists
    as ``ALIGNMENT_CHOICES``, which are used here unchanged.
    """
    from adapruner.importance import ALIGNMENT_CHOICES

    return {k: [float(x) for x in v] for k, v in ALIGNMENT_CHOICES.items()}


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
    allocation: dict = field(default_factory=lambda: asdict(AllocationConfig()))

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
        """Read a space file (``.json``, ``.yaml`` or ``.yml``)."""
        path = Path(path)
        if not path.is_file():
            raise AdaprunerError(f"search space file {path} not found; pass a JSON or YAML file")
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
        """Raise :class:`AdaprunerError` for values outside their domains."""
        if self.num_samples < 1:
            raise AdaprunerError(f"num_samples must be >= 1 (got {self.num_samples})")
        if self.data_space not in DATA_SPACES:
            raise AdaprunerError(f"data_space '{self.data_space}' unknown; choose one of {', '.join(DATA_SPACES)}")
        if self.metric not in SEARCH_METRICS:
            raise AdaprunerError(f"metric '{self.metric}' unknown; choose one of {', '.join(SEARCH_METRICS)}")
        for name in ("alpha1", "alpha2"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi <= 1.0:
                raise AdaprunerError(f"{name} range must satisfy 0 <= low <= high <= 1 (got [{lo}, {hi}])")
        metric_fields = {f.name for f in fields(MetricConfig)} - {"name", "alpha1", "alpha2", "aggregation", "seed"}
        for key, values in self.factors.items():
            if key not in metric_fields:
                raise AdaprunerError(f"factor '{key}' is not a metric coefficient; valid: {sorted(metric_fields)}")
            if not values:
                raise AdaprunerError(f"factor '{key}' needs at least one candidate value")
        bad = [a for a in self.aggregations if a not in AGGREGATIONS]
        if not self.aggregations or bad:
            raise AdaprunerError(f"aggregations must be a non-empty subset of {', '.join(AGGREGATIONS)}")
        if self.sequential and (self.data_space not in ("joint", "subspaces") or self.metric != "adapruner"):
            raise AdaprunerError("--sequential needs a searched data space (joint|subspaces) and the adapruner metric")
        AllocationConfig(**self.allocation)  # unknown keys raise TypeError early
        if self.score_candidates < self.num_samples:
            raise AdaprunerError("score_candidates must be >= num_samples")

    def to_json(self) -> dict:
        """A JSON-serialisable dict (the study stores it and its hash)."""
        return asdict(self)

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
        search the data; ``fixed_metric`` the metric of trials that do not search it.
        """
        self.check_pool(pool_size)
        if self.searches_data(phase):
            if self.data_space == "subspaces":
                indices = [trial.suggest_int(f"sample_{i}", lo, hi - 1)
                           for i, (lo, hi) in enumerate(self.subspace_bounds(pool_size))]
            else:
                raw = [trial.suggest_int(f"sample_{i}", 0, pool_size - 1) for i in range(self.num_samples)]
                indices = resolve_duplicates(raw, pool_size)
        else:
            if fixed_indices is None:
                raise ValueError("fixed_indices are needed when the data is not searched")
            indices = list(fixed_indices)
        if self.searches_metric(phase):
            factors = {k: float(trial.suggest_categorical(k, v)) if len(v) > 1 else float(v[0])
                       for k, v in self.factors.items()}
            metric = MetricConfig(
                name="adapruner",
                alpha1=trial.suggest_float("alpha1", *self.alpha1),
                alpha2=trial.suggest_float("alpha2", *self.alpha2),
                aggregation=(trial.suggest_categorical("aggregation", self.aggregations)
                             if len(self.aggregations) > 1 else self.aggregations[0]),
                **factors,
            )
        else:
            metric = fixed_metric or self.default_metric()
        calibration = CalibrationConfig(seq_len=self.seq_len, num_samples=len(indices), pool_seed=self.pool_seed,
                                        indices=sorted(indices))
        return PruneConfig(metric=metric, calibration=calibration, allocation=AllocationConfig(**self.allocation))


def resolve_duplicates(indices: list[int], pool_size: int) -> list[int]:
    """Replace each repeated index by the next unused pool index (wrapping), keeping order."""
    seen: set[int] = set()
    out = []
    for i in indices:
        while i in seen:
            i = (i + 1) % pool_size
        seen.add(i)
        out.append(i)
    return out


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
