"""The Optuna study behind ``adapruner search``: storage, identity, a budgeted worker loop, results.

Budget. A study is *done* when exactly ``N`` trials are **finished**, where finished means
COMPLETE or PRUNED (a pruned trial ran until the pruner judged it hopeless; it is a spent,
informative evaluation). FAILED trials (exceptions, NaN, killed workers) are recorded but never
counted. Every worker (one process per machine or device, all started with the same command)
loops: fail stale trials -> count -> start one trial only if finished + running < N. Two workers
may still race past that check; a trial therefore also checks, once created, that fewer than N
finished-or-running trials have a *lower* number, and otherwise records itself as FAILED with
``discarded`` set. Lower numbers win, so the total is exactly N however many workers run.

Crashes. A RUNNING trial of a killed process is failed (not counted) and re-run: immediately
when it was started on this host by a process that no longer exists, otherwise once its
heartbeat is older than the grace period (Optuna RDB heartbeat).

Identity. The model, ratio, space hash, objective protocol and sampler are stored as study user
attributes; continuing a study with any of them changed is refused.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from adapruner.config import MetricConfig, PruneConfig
from adapruner.errors import AdaprunerError
from adapruner.search.space import SearchSpace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SAMPLERS = ("tpe", "random")
PRUNERS = ("percentile", "median", "none")
MAX_FAILURES_IN_ROW = 5


@dataclass
class StudyIdentity:
    """What a study is about; stored as user attributes and checked on every (re)start."""

    model: str
    ratio: float
    space: SearchSpace
    protocol: dict
    sampler: str

    def attrs(self) -> dict:
        """The user attributes of the study."""
        return {"model": self.model, "ratio": self.ratio, "space_hash": self.space.digest(),
                "space": self.space.to_json(), "protocol": self.protocol, "sampler": self.sampler}


def default_storage(out_dir: str | Path) -> str:
    """The SQLite URL of a search's default storage: ``DIR/study.db``."""
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def open_storage(url: str, heartbeat: int = 10) -> optuna.storages.RDBStorage:
    """Connect to an Optuna RDB storage, as a one-line error when it cannot be used.

    A corrupt SQLite file is reported and left untouched (the storage is only read until the
    schema is found valid).
    """
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if path.exists() and path.stat().st_size and path.read_bytes()[:16] != b"SQLite format 3\x00":
            raise AdaprunerError(f"{path} is not an SQLite database (corrupt?); move it away or pass another --out/--storage")
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        url = _postgres_driver(url)
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    elif "://" not in url:
        raise AdaprunerError(f"--storage '{url}' is not a database URL; use sqlite:///FILE or postgresql://USER@HOST/DB")
    for attempt in range(5):
        try:
            with _quiet():
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                                                  grace_period=3 * heartbeat)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            # Workers started together on a fresh database race to create the schema; the loser
            # sees a duplicate-key error and simply finds the tables on its next try.
            racing = ("duplicate key", "already exists", "UNIQUE constraint failed")
            if any(r in first for r in racing) and attempt < 4:
                time.sleep(0.5 + attempt)
                continue
            raise AdaprunerError(f"cannot use study storage {_redact(url)}: {first}") from None
    raise AssertionError("unreachable")


def _postgres_driver(url: str) -> str:
    """Pick an installed PostgreSQL driver for a plain ``postgresql://`` URL.

    SQLAlchemy 2.1 maps plain URLs to psycopg 3, while our ``postgres`` extra installs psycopg2.
    """
    import importlib.util

    if not url.startswith("postgresql://"):
        return url  # the user named a driver
    if importlib.util.find_spec("psycopg") is not None:
        return url
    if importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    raise AdaprunerError("PostgreSQL storage needs a driver: pip install 'adapruner[postgres]' (psycopg2-binary)")


def _redact(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}" if ":" in cred else url
    return url


def existing_study(storage, name: str) -> optuna.Study | None:
    """The study ``name`` if the storage holds it."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def check_identity(study: optuna.Study, identity: StudyIdentity) -> None:
    """Refuse to continue a study created for another model, ratio, space, protocol or sampler."""
    have = study.user_attrs
    want = identity.attrs()
    for key in ("model", "ratio", "space_hash", "protocol", "sampler"):
        if key in have and have[key] != want[key]:
            raise AdaprunerError(
                f"study '{study.study_name}' was created with {key}={_short(have[key])}, this run has "
                f"{key}={_short(want[key])}; refusing to mix them: use another --study or --out")


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (the paper's BO-TPE) or uniform random sampling (Fig. 4's baseline)."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise AdaprunerError(f"unknown sampler '{name}'; choose tpe or random")


def make_pruner(name: str, warmup_steps: int = 2) -> optuna.pruners.BasePruner:
    """The early-stopping rule for hopeless trials (their running objective is reported per batch)."""
    if name == "percentile":
        return optuna.pruners.PercentilePruner(75.0, n_startup_trials=5, n_warmup_steps=warmup_steps)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_steps)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise AdaprunerError(f"unknown pruner '{name}'; choose one of {', '.join(PRUNERS)}")


def open_study(storage, name: str, identity: StudyIdentity, sampler, pruner) -> optuna.Study:
    """Create the study or load it (after :func:`check_identity`)."""
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner,
                                direction="minimize", load_if_exists=True)
    check_identity(study, identity)
    if "space_hash" not in study.user_attrs:
        for key, value in identity.attrs().items():
            study.set_user_attr(key, value)
    return study


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    finished = sum(t.state in FINISHED for t in trials)
    return finished, len(trials) - finished


def worker_tag() -> str:
    """``host:pid`` of this process, stored on its trials to recognise them after a crash."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study: optuna.Study) -> int:
    """Fail RUNNING trials of dead processes: this host's by pid, others' by stale heartbeat."""
    host = socket.gethostname()
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = t.user_attrs.get("worker", "")
        h, _, pid = tag.rpartition(":")
        if h == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "error", "worker process died")
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                failed += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
    with _quiet():
        optuna.storages.fail_stale_trials(study)
    return failed


@contextlib.contextmanager
def _quiet():
    """Silence Optuna's ExperimentalWarning: heartbeats have been "experimental" since 2.9 but are
    the documented way to fail the trials of dead workers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@dataclass
class WorkerContext:
    """What a worker needs besides the study: the space, the pool size and the objective."""

    space: SearchSpace
    pool_size: int
    n_trials: int
    objective: Callable  # (PruneConfig, report) -> TrialResult
    seed: int = 0
    poll_s: float = 2.0
    progress: bool = True


class Worker:
    """Runs trials of one study until it holds exactly ``n_trials`` finished trials."""

    def __init__(self, study: optuna.Study, ctx: WorkerContext):
        self.study, self.ctx = study, ctx
        self.failures_in_row = 0
        self.last_error = ""
        self.scored_indices: list[int] | None = None

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Loop until the budget is spent (waits for other workers' running trials)."""
        from tqdm.auto import tqdm

        n = self.ctx.n_trials
        finished, _ = counts(self.study)
        if self.ctx.space.data_space == "score" and finished < n:
            self.scored_indices = score_data(self.study, self.ctx)  # before any trial: it takes a while
        bar = tqdm(total=n, initial=min(finished, n), desc=f"search {self.study.study_name}", unit="trial",
                   disable=not self.ctx.progress)
        try:
            while True:
                fail_dead_trials(self.study)
                finished, running = counts(self.study)
                bar.n = min(finished, n)
                bar.refresh()
                if finished >= n:
                    return
                if finished + running >= n:
                    time.sleep(self.ctx.poll_s)  # the rest of the budget is running elsewhere
                    continue
                self.study.optimize(self._trial, n_trials=1)
                if self.failures_in_row >= MAX_FAILURES_IN_ROW:
                    raise AdaprunerError(f"{MAX_FAILURES_IN_ROW} trials in a row failed; last error: {self.last_error}")
        finally:
            bar.close()

    # -- one trial -------------------------------------------------------------------------------
    def _trial(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_tag())
        ahead = [t for t in self.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                 if t.number < trial.number]
        if len(ahead) >= self.ctx.n_trials:
            trial.set_user_attr("discarded", "budget already taken by trials of other workers")
            return float("nan")
        space = self.ctx.space
        phase = "joint"
        if space.sequential:
            phase = "data" if len(ahead) < self.ctx.n_trials // 2 else "metric"
        trial.set_user_attr("phase", phase)
        config = space.suggest(trial, self.ctx.pool_size, phase=phase, fixed_indices=self._fixed_indices(phase),
                               fixed_metric=None)
        trial.set_user_attr("config", config.to_json())

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_step", step)
                raise optuna.TrialPruned()

        try:
            result = self.ctx.objective(config, report)
        except (optuna.TrialPruned, AdaprunerError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a broken trial is recorded, the study goes on
            self.failures_in_row += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", self.last_error)
            trial.set_user_attr("traceback", traceback.format_exc()[-2000:])
            return float("nan")
        trial.set_user_attr("ppl", result.ppl)
        trial.set_user_attr("seconds", round(result.seconds, 3))
        trial.set_user_attr("timings", {k: round(v, 3) for k, v in result.timings.items()})
        if not math.isfinite(result.value):
            self.failures_in_row += 1
            self.last_error = f"objective is {result.value}"
            trial.set_user_attr("error", self.last_error)
            return float("nan")
        self.failures_in_row = 0
        return result.value

    def _fixed_indices(self, phase: str) -> list[int] | None:
        """The calibration set of trials that do not search the data."""
        space = self.ctx.space
        if space.searches_data(phase):
            return None
        if space.data_space == "fixed":
            return space.fixed_indices(self.ctx.pool_size, self.ctx.seed)
        if space.data_space == "score":
            return self.scored_indices if self.scored_indices is not None else score_data(self.study, self.ctx)
        best = best_trial(self.study, phase="data", required=False)  # sequential, metric phase
        if best is None:
            return space.fixed_indices(self.ctx.pool_size, self.ctx.seed)
        return best.user_attrs["config"]["calibration"]["indices"]


def score_data(study: optuna.Study, ctx: WorkerContext) -> list[int]:
    """The ``score`` data space: score candidate windows one by one, keep the best ``k``.

    Each candidate is scored by the objective of a pruning calibrated on it alone with the
    space's default metric; scores live in the study (system attrs) so a restart resumes.
    """
    space = ctx.space
    import torch

    g = torch.Generator().manual_seed(ctx.seed)
    candidates = torch.randperm(ctx.pool_size, generator=g)[: min(space.score_candidates, ctx.pool_size)].tolist()
    scores = dict(study.user_attrs.get("sample_scores", {}))
    missing = [i for i in candidates if str(i) not in scores]
    if missing:
        from tqdm.auto import tqdm

        metric = space.default_metric()
        for i in tqdm(missing, desc="scoring calibration windows", disable=not ctx.progress):
            value = ctx.objective(_single(space, i, metric), None).value
            scores[str(i)] = value if math.isfinite(value) else 1e308
            study.set_user_attr("sample_scores", scores)
    ranked = sorted(candidates, key=lambda i: scores[str(i)])
    return sorted(ranked[: space.num_samples])


def _single(space: SearchSpace, index: int, metric: MetricConfig) -> PruneConfig:
    from adapruner.config import AllocationConfig, CalibrationConfig

    return PruneConfig(metric=metric, calibration=CalibrationConfig(seq_len=space.seq_len, num_samples=1,
                                                                    pool_seed=space.pool_seed, indices=[index]),
                       allocation=AllocationConfig(**space.allocation))


# -- results ------------------------------------------------------------------------------------
def best_trial(study: optuna.Study, phase: str | None = None, required: bool = True) -> FrozenTrial | None:
    """The COMPLETE trial with the lowest objective (optionally of one sequential phase)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and (phase is None or t.user_attrs.get("phase") == phase)]
    if not done:
        if required:
            raise AdaprunerError(f"study '{study.study_name}' has no completed trial; run more trials")
        return None
    return min(done, key=lambda t: (t.value, t.number))


def best_config(study: optuna.Study) -> tuple[PruneConfig, FrozenTrial]:
    """The :class:`PruneConfig` of the best trial."""
    trial = best_trial(study)
    return PruneConfig.from_json(trial.user_attrs["config"]), trial


def trial_rows(study: optuna.Study) -> list[dict]:
    """One flat dict per trial (for trials.csv)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        ppl = t.user_attrs.get("ppl", {})
        cal = t.user_attrs.get("config", {}).get("calibration", {})
        row = {"number": t.number, "state": t.state.name, "value": t.value,
               "seconds": t.user_attrs.get("seconds"), "phase": t.user_attrs.get("phase"),
               **{f"ppl_{k}": v for k, v in ppl.items()},
               **{f"param_{k}": v for k, v in t.params.items()},
               "indices": " ".join(map(str, cal.get("indices") or [])),
               "worker": t.user_attrs.get("worker"),
               "error": t.user_attrs.get("error") or t.user_attrs.get("discarded"),
               "start": t.datetime_start.isoformat() if t.datetime_start else None,
               "complete": t.datetime_complete.isoformat() if t.datetime_complete else None}
        rows.append(row)
    return rows


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """All trials of the study, one row each, written atomically."""
    rows = trial_rows(study)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def convergence_curves(storage, model: str, ratio: float) -> dict[str, list[tuple[int, float]]]:
    """Finished-trial objectives (in trial order) of every study in ``storage`` on the same
    model and ratio, labelled ``study (sampler)``: the data of the convergence plot."""
    curves = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        attrs = summary.user_attrs
        if attrs.get("model") != model or attrs.get("ratio") != ratio:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        points = [(t.number, t.value) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if points:
            curves[f"{summary.study_name} ({attrs.get('sampler', '?')})"] = sorted(points)
    return curves


def study_summary(study: optuna.Study) -> dict:
    """Counts, best value and median trial time of a study (for the report)."""
    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    seconds = sorted(t.user_attrs["seconds"] for t in trials if t.state == TrialState.COMPLETE and "seconds" in t.user_attrs)
    best = best_trial(study, required=False)
    return {"study": study.study_name, "states": {k: v for k, v in states.items() if v},
            "best_value": best.value if best else None, "best_trial": best.number if best else None,
            "median_trial_seconds": seconds[len(seconds) // 2] if seconds else None}
