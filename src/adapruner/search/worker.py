"""The budgeted worker loop behind ``adapruner search``: every worker runs trials until the study
holds exactly ``N`` finished ones.

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
heartbeat is older than the grace period (Optuna RDB heartbeat). A process killed between
Optuna's ``ask`` and its first heartbeat leaves a trial with neither a worker tag nor a heartbeat,
which Optuna never calls stale: it is failed once it is older than the grace period (a live
trial tags itself within milliseconds of its start).
"""

from __future__ import annotations

import datetime
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from adapruner.config import AllocationConfig, CalibrationConfig, MetricConfig, PruneConfig
from adapruner.core.io import pid_alive
from adapruner.errors import AdaprunerError
from adapruner.search.results import best_trial
from adapruner.search.space import SearchSpace
from adapruner.search.storage import quiet_experimental

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_FAILURES_IN_ROW = 5


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    finished = sum(t.state in FINISHED for t in trials)
    return finished, len(trials) - finished


def worker_tag() -> str:
    """``host:pid`` of this process, stored on its trials to recognise them after a crash."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_dead_trials(study: optuna.Study) -> int:
    """Fail RUNNING trials of dead processes: this host's by pid, others' by stale heartbeat,
    and untagged ones (killed before their first heartbeat) once older than the grace period."""
    host = socket.gethostname()
    grace = datetime.timedelta(seconds=grace_period_s(study))
    now = datetime.datetime.now()
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = t.user_attrs.get("worker", "")
        h, _, pid = tag.rpartition(":")
        dead_here = h == host and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))
        never_tagged = not tag and t.datetime_start is not None and now - t.datetime_start > grace
        if dead_here or never_tagged:
            try:
                study.tell(t.number, state=TrialState.FAIL)
                failed += 1
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
                pass  # finished meanwhile
    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    return failed


def grace_period_s(study: optuna.Study) -> float:
    """Seconds a RUNNING trial may stay silent before it counts as dead (the storage's heartbeat
    grace period; Optuna's own default of two intervals where the storage sets none)."""
    storage = getattr(study._storage, "_backend", study._storage)  # unwrap Optuna's cache layer
    interval = study._storage.get_heartbeat_interval() or 10
    return float(getattr(storage, "grace_period", None) or 2 * interval)


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
    max_minutes: float | None = None  # start no trial after this many minutes of this worker


def trials_eta(study: optuna.Study, n_trials: int) -> str:
    """``ETA 12 min (median trial 7.1 s)`` from the durations of the study's finished trials.

    The median keeps the first trial of a process, which also fills the caches, from inflating
    the estimate; trials of other workers and earlier runs count too (a resumed study knows its
    pace at once). Empty until a trial has finished.
    """
    import statistics

    finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                if t.datetime_start and t.datetime_complete]
    left = n_trials - len(finished)
    if not finished or left <= 0:
        return ""
    median = statistics.median((t.datetime_complete - t.datetime_start).total_seconds() for t in finished)
    seconds = median * left
    when = f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return f"ETA {when} (median trial {median:.1f} s)"


class Worker:
    """Runs trials of one study until it holds exactly ``n_trials`` finished trials."""

    def __init__(self, study: optuna.Study, ctx: WorkerContext):
        self.study, self.ctx = study, ctx
        self.failures_in_row = 0
        self.last_error = ""
        self.scored_indices: list[int] | None = None
        self.stop: BaseException | None = None
        # The highest trial number before the current optimize call (None: no call yet).
        self.last_number: int | None = None
        self.out_of_time = False  # stopped by ``max_minutes`` before the budget of trials was spent

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Loop until the budget is spent (waits for other workers' running trials)."""
        from tqdm.auto import tqdm

        n = self.ctx.n_trials
        finished, _ = counts(self.study)
        if self.ctx.space.data_space == "score" and finished < n:
            self.scored_indices = score_data(self.study, self.ctx)  # before any trial: it takes a while
        # tqdm's own ETA would count the setup (the first trial caches the dense model's hidden
        # states) as trial time; the postfix carries an ETA from the trials' own durations.
        bar = tqdm(total=n, initial=min(finished, n), desc=f"search {self.study.study_name}", unit="trial",
                   disable=not self.ctx.progress, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        bar.set_postfix_str("first trial also caches the dense hidden states", refresh=True)
        started = time.perf_counter()
        try:
            while True:
                fail_dead_trials(self.study)
                finished, running = counts(self.study)
                if bar.n != min(finished, n):
                    bar.n = min(finished, n)
                    bar.set_postfix_str(self._postfix(), refresh=False)
                bar.refresh()
                if finished >= n:
                    return
                if self.ctx.max_minutes is not None and time.perf_counter() - started > 60 * self.ctx.max_minutes:
                    self.out_of_time = finished > 0  # with no finished trial there is nothing to deliver yet
                    if self.out_of_time:
                        return
                if finished + running >= n:
                    time.sleep(self.ctx.poll_s)  # the rest of the budget is running elsewhere
                    continue
                self.stop = None
                # Trials numbered above this one that carry no worker tag yet were created by the
                # optimize call below (Ctrl-C between Optuna's ask and our first storage call).
                self.last_number = max((t.number for t in self.study.get_trials(deepcopy=False)), default=-1)
                self.study.optimize(self._trial, n_trials=1)
                if self.stop is not None:
                    raise self.stop  # Ctrl-C or a user error inside the trial, now that it is recorded
                if self.failures_in_row >= MAX_FAILURES_IN_ROW:
                    raise AdaprunerError(f"{MAX_FAILURES_IN_ROW} trials in a row failed; last error: {self.last_error}")
        except KeyboardInterrupt:
            self._fail_own_running()
            raise
        finally:
            bar.close()

    def _fail_own_running(self) -> None:
        """Mark this process's RUNNING trials failed (an interrupt between Optuna's steps)."""
        tag = worker_tag()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            untagged_new = (self.last_number is not None and "worker" not in t.user_attrs
                            and t.number > self.last_number)
            if t.user_attrs.get("worker") == tag or untagged_new:
                try:
                    self.study.tell(t.number, state=TrialState.FAIL)
                except Exception:  # finished meanwhile, or owned by another process after all
                    pass

    def _postfix(self) -> str:
        """Best objective so far and the dense model's, for the progress bar."""
        best = best_trial(self.study, required=False)
        dense = getattr(self.ctx.objective, "dense_ppl", None)
        parts = [f"best {best.value:.2f} (trial {best.number})"] if best is not None else []
        if dense:
            parts.append(f"dense {sum(dense.values()) / len(dense):.2f}")
        eta = trials_eta(self.study, self.ctx.n_trials)
        if eta:
            parts.append(eta)
        return ", ".join(parts)

    # -- one trial -------------------------------------------------------------------------------
    def _trial(self, trial: optuna.Trial) -> float:
        try:
            return self._run_trial(trial)
        except KeyboardInterrupt as exc:
            # Recorded as FAILED by returning NaN (Optuna would log a traceback for a raise, also
            # for one from its storage calls); the worker loop re-raises it once stored.
            self.stop = exc
            try:
                trial.set_user_attr("error", "interrupted (Ctrl-C)")
            except Exception:  # the storage call itself may have been what Ctrl-C cut short
                pass
            return float("nan")

    def _run_trial(self, trial: optuna.Trial) -> float:
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
        except optuna.TrialPruned:
            raise
        except AdaprunerError as exc:
            self.stop = exc  # a user error: recorded quietly, re-raised by the worker loop
            trial.set_user_attr("error", str(exc))
            return float("nan")
        except Exception as exc:  # a broken trial is recorded, the study goes on
            self.failures_in_row += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", self.last_error)
            trial.set_user_attr("traceback", traceback.format_exc()[-2000:])
            return float("nan")
        trial.set_user_attr("ppl", result.ppl)
        if result.parts and result.parts != result.ppl:
            trial.set_user_attr("objective_parts", result.parts)
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
    return PruneConfig(metric=metric, calibration=CalibrationConfig(seq_len=space.seq_len, num_samples=1,
                                                                    pool_seed=space.pool_seed, indices=[index],
                                                                    source=space.source, field=space.field),
                       allocation=AllocationConfig(**space.allocation))
