"""The configuration of one pruning run: which metric, which calibration data, how to allocate,
which weight update.

A :class:`PruneConfig` is what a search finds (``best_config.json``) and what
``adapruner prune --config`` applies to another model or ratio. It is plain JSON on disk.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from adapruner.errors import AdaprunerError

AGGREGATIONS = ("sum", "mean", "max", "prod", "last")


@dataclass
class MetricConfig:
    """An importance metric and its coefficients.

    ``name`` is one of :data:`adapruner.importance.METRICS`. For ``adapruner`` the score is
    ``alpha1 * align_vec * I_vec + alpha2 * align_el * I_el`` (paper Eq. 5; see
    importance/metrics.py for which term each alignment factor scales and why).
    ``aggregation`` combines the scores of a unit's members (q, k, v, o rows/columns ...).
    """

    name: str = "element1"
    alpha1: float = 0.5
    alpha2: float = 0.5
    align_vec: float = 1.0
    align_el: float = 0.01  # I_el is 20-100x I_vec on SmolLM2; 1e-2 puts them on one scale
    second_order_vec: float = 1.0  # scales the Fisher term inside |I_vec| (importance/taylor.py)
    second_order_el: float = 100.0  # scales the Fisher term inside |I_el|; 100 aligns it on SmolLM2 (importance/taylor.py)
    aggregation: str = "sum"
    seed: int = 0  # for the random metric
    # Settings of metrics registered outside this dataclass (see Metric.options).
    options: dict = field(default_factory=dict)


@dataclass
class CalibrationConfig:
    """Which calibration samples: ``indices`` into the window pool of ``source`` (the book texts,
    or a user text file) built with ``pool_seed`` and ``seq_len``; ``None`` indices means
    ``num_samples`` random windows drawn with ``seed``."""

    source: str = "books"  # or a .txt / .jsonl / .json file of the user's own text
    seq_len: int = 128
    num_samples: int = 10
    pool_seed: int = 0
    seed: int = 0
    indices: list[int] | None = None
    field: str = "text"  # the text field of a .jsonl / .json source


@dataclass
class AllocationConfig:
    """How the parameter budget is spread: ``mode`` uniform|global; ``layers`` = [first, last)
    decoder layers that may be pruned (None = skip the first 4 and last 2 like the paper);
    ``attention`` heads|kv|none; channel counts rounded to ``round_to``; ``options`` are the
    mode's own settings (``Allocator.options``)."""

    mode: str = "uniform"
    layers: list[int] | None = None
    attention: str = "heads"
    round_to: int = 8
    options: dict = field(default_factory=dict)  # settings of the mode (e.g. a schedule's knots)


@dataclass
class UpdateConfig:
    """The weight update applied after the plan is chosen (:mod:`adapruner.updates`): ``name``
    is a registered update (``none``, ``bias`` = FLAP's bias compensation, ...) and
    ``options`` its settings."""

    name: str = "none"
    options: dict = field(default_factory=dict)


@dataclass
class PruneConfig:
    """Everything that decides a pruning, apart from the model and the ratio."""

    metric: MetricConfig = field(default_factory=MetricConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)

    def to_json(self) -> dict:
        """A JSON-serialisable dict."""
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "PruneConfig":
        """Build from a dict, rejecting unknown keys with a clear error.

        Configs written before weight updates were their own section carry FLAP's bias
        compensation as ``metric.bias_compensation``; it is read as ``update: {name: bias}``.
        """
        if not isinstance(data, dict):
            raise AdaprunerError(f"a pruning config must be a JSON object, got {type(data).__name__}")
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        unknown = set(data) - {"metric", "calibration", "allocation", "update"}
        if unknown:
            raise AdaprunerError(f"unknown section(s) {sorted(unknown)} in the pruning config; "
                                 "valid: allocation, calibration, metric, update")
        metric = data.get("metric") or {}
        if isinstance(metric, dict) and "bias_compensation" in metric:
            legacy = metric.pop("bias_compensation")
            if legacy and not data.get("update"):
                data["update"] = {"name": "bias"}
        parts = {}
        for name, cls in (("metric", MetricConfig), ("calibration", CalibrationConfig),
                          ("allocation", AllocationConfig), ("update", UpdateConfig)):
            raw = data.get(name, {}) or {}
            if not isinstance(raw, dict):
                raise AdaprunerError(f"'{name}' of the pruning config must be an object, got {raw!r}")
            known = {f.name for f in fields(cls)}
            unknown = set(raw) - known
            if unknown:
                raise AdaprunerError(
                    f"unknown key(s) {sorted(unknown)} in '{name}' of the pruning config; valid: {sorted(known)}")
            parts[name] = cls(**raw)
        return PruneConfig(**parts)

    @staticmethod
    def load(path: str | Path) -> "PruneConfig":
        """Read a config JSON file (e.g. a search's ``best_config.json``)."""
        path = Path(path)
        if not path.is_file():
            raise AdaprunerError(f"config file {path} not found; pass the best_config.json a search wrote")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise AdaprunerError(f"config file {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise AdaprunerError(f"config file {path} must hold a JSON object (a best_config.json), "
                                 f"not a {type(data).__name__}")
        # A search's best_config.json wraps the config with its provenance.
        return PruneConfig.from_json(data.get("config", data))
