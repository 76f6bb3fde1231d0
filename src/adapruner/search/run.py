"""The library-level search: run (or continue) a study, then deliver the best trial's model.

``adapruner search`` is parse -> :func:`check_request` -> load the model -> :func:`run_search`
-> print. A library user does the same::

    from adapruner import load_model
    from adapruner.search import SearchRequest, SearchSpace, check_request, run_search

    request = SearchRequest(ratio=0.2, trials=100, out="runs/x", space=SearchSpace())
    check_request(request, "smollm2-135m")            # refuses a mismatched study before loading
    result = run_search(load_model("smollm2-135m"), request, data_dir="../shared/data")

When the budget of finished trials is spent, the model is planned with the best trial's
configuration through the same :func:`adapruner.planning.plan_pruning` that planned the trial,
physically pruned, and its objective on the same validation windows is *checked* against the
trial's value (a loud warning, recorded in the report, when they differ beyond float noise).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapruner.errors import AdaprunerError
from adapruner.search.identity import StudyIdentity, check_identity, open_study
from adapruner.search.objective import EVAL_DATASETS, TRIAL_PRECISIONS, Measure, ObjectiveProtocol
from adapruner.search.samplers import (EARLY_STOPS, SAMPLERS, TPE_STARTUP, early_stop_for, make_early_stop,
                                       make_sampler)
from adapruner.search.space import SearchSpace
from adapruner.search.storage import default_storage, existing_study, open_storage, redact

# The final model must reproduce its trial's objective; masked vs physically pruned forwards
# differ by float rounding only (~1e-6 relative on CPU float32).
REPRODUCE_RTOL = 1e-3


@contextlib.contextmanager
def phase(what: str, show: bool = True):
    """Print a setup phase and its duration on stderr (the long silent parts before trial 1)."""
    t0 = time.perf_counter()
    if show:
        print(f"[search] {what} ...", file=sys.stderr, flush=True)
    yield
    if show:
        print(f"[search] {what}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


@dataclass
class SearchRequest:
    """Everything that defines a search besides the model: budget, space, storage, objective."""

    ratio: float
    trials: int
    out: str | Path
    space: SearchSpace = field(default_factory=SearchSpace)
    sampler: str = "tpe"
    early_stop: str | None = None  # None: samplers.early_stop_for (halving with starting points, else percentile)
    storage: str | None = None  # default: sqlite:///OUT/study.db
    study: str | None = None  # default: adapruner-SAMPLER
    eval_windows: int = 16
    eval_batch_size: int = 8
    heartbeat: int = 10
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    budget: dict | None = None  # the budget as the user gave it (ratio / ratio_of / target_params), for the report
    starting_points: bool = True  # a new study first tries the recipes that need no search (search/starts.py)
    max_minutes: float | None = None  # stop starting trials after this many minutes and deliver the best so far
    micro_batch: int | None = None  # calibration windows per pass of a streamed trial (None: all at once)
    objective: str = "ppl"  # the search objective (adapruner.objectives)
    objective_options: dict = field(default_factory=dict)
    finalists: int = 0  # re-score this many best trials on the zero-shot proxy and deliver its best (search/finalists.py)
    finalist_examples: int = 200  # examples per development task of that proxy
    startup_trials: int = TPE_STARTUP  # finished trials before TPE models the study (Optuna's 10)
    refine_every: int = 0  # every K-th trial after the start-up refines the best one (samplers.RefineBest); 0: off
    neighbour_every: int = 0  # every K-th trial after the start-up swaps windows of the best (samplers.NeighbourOfBest)
    trial_precision: str = "model"  # a trial's validation forward (objective.trial_autocast); bfloat16: re-scored at the end

    @property
    def study_name(self) -> str:
        """The study's name in the storage."""
        return self.study or f"adapruner-{self.sampler}"

    @property
    def storage_url(self) -> str:
        """The Optuna storage URL."""
        return self.storage or default_storage(Path(self.out))

    def measure(self) -> Measure:
        """The objective trials are scored by, with its options resolved."""
        return Measure(self.objective, dict(self.objective_options)).resolved()

    def protocol(self) -> ObjectiveProtocol:
        """The objective's evaluation protocol."""
        datasets = self.measure().objective.datasets or EVAL_DATASETS
        return ObjectiveProtocol(datasets=tuple(datasets), seq_len=self.space.seq_len, windows=self.eval_windows,
                                 batch_size=self.eval_batch_size)

    def protocol_json(self) -> dict:
        """The protocol as stored with the study (part of its identity)."""
        p = self.protocol()
        out = {"datasets": list(p.datasets), "split": p.split, "seq_len": p.seq_len,
               "windows_per_dataset": p.windows, "objective": "mean perplexity (paper Eq. 6)",
               "window_selection": "evenly spaced over all non-overlapping windows of the split"}
        measure = self.measure()
        if measure.name != "ppl":  # the paper's objective keeps the protocol its studies were created with
            out.update(objective=measure.describe(), objective_name=measure.name, objective_options=measure.options)
        if self.trial_precision != "model":  # likewise: studies screened as loaded keep their identity
            out["trial_precision"] = self.trial_precision
        return out


@dataclass
class SearchResult:
    """What a finished search delivered: the best trial, its configuration, the report, the files."""

    best_trial: int
    objective: float
    validation_ppl: dict
    config: dict
    report: dict
    out: Path
    files: list[str]
    reproduced: bool
    model: object = None  # the pruned model, in memory
    tokenizer: object = None

    @property
    def model_dir(self) -> Path:
        """The saved checkpoint (``OUT/model``)."""
        return self.out / "model"


def check_request(request: SearchRequest, model: str) -> StudyIdentity:
    """Validate ``request`` and refuse a stored study of another identity, before any loading.

    Returns the identity the study will carry. Creates ``out`` only when the default SQLite
    storage needs it.
    """
    from adapruner.core.params import check_ratio

    if isinstance(request.trials, bool) or not isinstance(request.trials, int) or request.trials < 1:
        raise AdaprunerError(f"--trials must be an integer >= 1 (got {request.trials})")
    if request.max_minutes is not None and not request.max_minutes > 0:
        raise AdaprunerError(f"--max-minutes must be positive (got {request.max_minutes}); omit it for no time limit")
    check_ratio(request.ratio)
    if request.eval_windows < 1 or request.eval_batch_size < 1:
        raise AdaprunerError("--eval-windows and --eval-batch-size must be >= 1")
    if request.study is not None and not request.study.strip():
        raise AdaprunerError("--study is empty; give the study a name or leave the flag out (default adapruner-SAMPLER)")
    if request.heartbeat < 1:
        raise AdaprunerError("--heartbeat must be >= 1 second")
    if request.finalists < 0 or request.finalist_examples < 1:
        raise AdaprunerError(f"--finalists must be >= 0 and --finalist-examples >= 1 (got {request.finalists} and "
                             f"{request.finalist_examples})")
    if request.startup_trials < 0:
        raise AdaprunerError(f"--startup-trials must be >= 0, got {request.startup_trials}")
    if request.refine_every < 0:
        raise AdaprunerError(f"--refine-every must be >= 0 (0: off), got {request.refine_every}")
    if request.neighbour_every < 0:
        raise AdaprunerError(f"--neighbour-every must be >= 0 (0: off), got {request.neighbour_every}")
    if request.trial_precision not in TRIAL_PRECISIONS:
        raise AdaprunerError(f"unknown --trial-precision '{request.trial_precision}'; choose one of "
                             f"{', '.join(TRIAL_PRECISIONS)}")
    if request.sampler not in SAMPLERS:
        raise AdaprunerError(f"unknown sampler '{request.sampler}'; choose one of {', '.join(SAMPLERS)}")
    if request.early_stop is not None and request.early_stop not in EARLY_STOPS:
        raise AdaprunerError(f"unknown early-stop rule '{request.early_stop}'; choose one of {', '.join(EARLY_STOPS)}")
    space = request.space
    if space.data_space == "fixed" and space.metric != "adapruner":
        raise AdaprunerError("--no-data-search with --fixed-metric leaves nothing to search; drop one of them")
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise AdaprunerError(f"--out {out} exists and is not a directory")
    from adapruner.core.io import check_writable

    check_writable(out)
    identity = StudyIdentity(model=model, ratio=request.ratio, space=space, protocol=request.protocol_json(),
                             sampler=request.sampler)
    # Only an existing study is opened here: a new --out (and its study.db) is created once the
    # model and the data have loaded, so a failed start leaves nothing behind.
    if request.storage is not None or (out / "study.db").exists():
        storage = open_storage(request.storage_url, heartbeat=request.heartbeat)
        existing = existing_study(storage, request.study_name)
        if existing is not None:
            check_identity(existing, identity)
    return identity


def run_search(loaded, request: SearchRequest, data_dir: str | Path, progress: bool = True,
               execution: dict | None = None) -> SearchResult:
    """Run or continue the study of ``request`` on ``loaded`` (a :class:`~adapruner.models.load.LoadedModel`,
    or a :class:`~adapruner.streaming.model.StreamedModel`: every trial then runs one decoder layer at
    a time), then deliver the best trial's model and reports into ``request.out`` (see
    :func:`finalize`). ``execution`` (the path chosen and why) goes into the report."""
    import optuna

    from adapruner.allocation import check_allocation
    from adapruner.config import AllocationConfig, CalibrationConfig
    from adapruner.data.calibration import source_pool
    from adapruner.search.objective import Objective, load_eval_windows
    from adapruner.search.starts import enqueue_starting_points, starting_points
    from adapruner.search.worker import Worker, WorkerContext, counts

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the bar shows progress; trials.csv the details
    identity = check_request(request, loaded.spec)
    if getattr(loaded, "streamed", False) and request.finalists > 1:
        raise AdaprunerError("--finalists needs the whole model in memory (the proxy runs through "
                             "lm-evaluation-harness); drop it, or --no-stream")
    if getattr(loaded, "streamed", False) and request.trial_precision != "model":
        raise AdaprunerError("--trial-precision bfloat16 screens trials of a model in memory; a streamed trial runs "
                             "as loaded: drop the flag, or --no-stream")
    space = request.space
    model, tokenizer = loaded.model, loaded.tokenizer
    check_allocation(model, request.ratio, AllocationConfig(**space.allocation))  # unreachable ratio: fail now
    with phase("tokenizing the calibration pool (cached after the first run)", progress):
        pool = source_pool(tokenizer, CalibrationConfig(source=space.source, field=space.field, seq_len=space.seq_len,
                                                        pool_seed=space.pool_seed), data_dir)
    space.check_pool(len(pool))
    with phase("loading the validation windows", progress):
        windows = load_eval_windows(tokenizer, data_dir, request.protocol())

    url = request.storage_url
    if request.storage is None:
        Path(request.out).mkdir(parents=True, exist_ok=True)
    storage = open_storage(url, heartbeat=request.heartbeat)
    # Seeded per trial (samplers.PerTrialSeed): resumed runs and parallel workers never replay a draw.
    seed = request.seed
    points = starting_points(space, len(pool), request.seed, request.trials) if request.starting_points else {}
    early_stop = request.early_stop or early_stop_for(len(points))
    study = open_study(storage, request.study_name, identity,
                       make_sampler(request.sampler, seed, request.startup_trials, request.refine_every,
                                    request.neighbour_every),
                       make_early_stop(early_stop, datasets=len(windows)))
    if points:
        starts = enqueue_starting_points(study, points)
        if starts and progress:
            print(f"first trials: the recipes that need no search ({', '.join(starts)})", flush=True)
    streamed = getattr(loaded, "streamed", False)
    if streamed:
        from adapruner.streaming.trial import StreamedObjective

        objective = StreamedObjective(loaded, pool, windows, request.ratio, batch_size=request.eval_batch_size,
                                      micro_batch=request.micro_batch, measure=request.measure())
    else:
        objective = Objective(model, pool, windows, request.ratio, batch_size=request.eval_batch_size,
                              element_factors=space.element_factors(), measure=request.measure(),
                              precision=request.trial_precision)
    ctx = WorkerContext(space=space, pool_size=len(pool), n_trials=request.trials, objective=objective,
                        seed=request.seed, progress=progress, max_minutes=request.max_minutes)
    if progress and not streamed:  # a streamed model has no weights to time a forward with
        setup, per_trial = expected_seconds(model, windows, space, request.eval_batch_size, request.trial_precision)
        left = max(0, request.trials - counts(study)[0])
        print(f"expected: ~{(setup + left * per_trial) / 60:.0f} min for {left} trials (~{per_trial:.0f} s each after "
              f"~{setup:.0f} s of one-off work; from one timed forward pass, the bar's ETA then follows the measured "
              "trials)", flush=True)
    t0 = time.perf_counter()
    worker = Worker(study, ctx)
    worker.run()
    search_s = time.perf_counter() - t0
    if worker.out_of_time and progress:
        print(f"--max-minutes {request.max_minutes:g} reached after {counts(study)[0]} of {request.trials} trials: "
              "delivering the best so far (the same command continues the study)", flush=True)
    return finalize(study, storage, loaded, request, pool, objective, data_dir,
                    {"sampler_seed": seed, "sampler_startup_trials": request.startup_trials,
                     "sampler_refine_every": request.refine_every,
                     "sampler_neighbour_every": request.neighbour_every, "early_stop": early_stop,
                     "storage": redact(url),
                     "this_worker_search_s": round(search_s, 1),
                     "max_minutes": request.max_minutes, "stopped_on_time_budget": worker.out_of_time,
                     "execution": execution or {"streamed": streamed}})


# A trial's cost in forward-pass units: a forward over the calibration windows, and for a
# gradient metric a backward too (~3 forwards of their tokens), the validation windows (the pruned
# layer range only, ~0.85 of a forward on average), and per-trial overhead (scoring, masks, the
# update's solves, and the random start-up trials' slower configurations). One-off work: the dense
# validation pass and, in a space with one-shot reconstruction, a forward over the update's
# windows that also accumulates their Gram matrices (GRAM_COST forwards' worth per token). Both are
# fitted on the quick start's study (benchmarks/results/quickstart/run.json), TRIAL_OVERHEAD to its
# *mean* trial (20.9 s; the median, 14.6 s, would predict 14 of its 19.6 minutes), since the
# total is what the estimate is for.
TRIAL_OVERHEAD = 1.65
GRAM_COST = 1.8


def expected_seconds(model, windows: dict, space: SearchSpace, batch_size: int,
                     precision: str = "model") -> tuple[float, float]:
    """``(one-off seconds, seconds per trial)`` expected before any trial ran: a timed forward of a
    validation batch as loaded (and one in the trials' ``precision``, which their validation
    forward runs in), scaled by the tokens the study pushes through the model."""
    first = next(iter(windows.values()))[:batch_size]
    per_token = _seconds_per_token(model, first, "model")
    screened = per_token if precision == "model" else _seconds_per_token(model, first, precision)
    validation = sum(w.numel() for w in windows.values())
    # A gradient metric's trial runs forward and backward over its windows, any other a forward.
    calibration = (1 + 2 * gradient_share(space)) * space.num_samples * space.seq_len
    trial = TRIAL_OVERHEAD * (per_token * calibration + screened * 0.85 * validation)
    update = space.options.get("update", {})
    reconstruct = update.get("reconstruct", {}) if "reconstruct" in update.get("choices", []) else {}
    gram_tokens = int(reconstruct.get("windows", 0)) * space.seq_len
    return per_token * (validation + GRAM_COST * gram_tokens), trial


def _seconds_per_token(model, batch, precision: str) -> float:
    import torch

    from adapruner.search.objective import trial_autocast

    with torch.no_grad(), trial_autocast(model, precision):
        model(batch[:1])  # warm-up: the first call pays for allocations (and bfloat16 kernels)
        t = time.perf_counter()
        model(batch)
        return (time.perf_counter() - t) / batch.numel()


def gradient_share(space: SearchSpace) -> float:
    """The share of the metrics a trial may choose that need the backward pass."""
    from adapruner.importance import METRICS

    names = list(space.options.get("metric-choice", {}).get("choices", [])) or [space.metric]
    return sum(METRICS.get(n).needs_gradients for n in names) / len(names)


@dataclass
class Delivered:
    """The best configuration applied: its plan, parameter counts, the dense and the delivered
    model's perplexity on the trials' windows, and ``save(report)`` writing ``OUT/model``."""

    plan: object
    dense_params: int
    pruned_params: int
    dense: dict
    check: dict
    save: Callable[[dict], None]
    parts: dict  # the delivered model's objective per dataset (its perplexity for the paper's objective)


def finalize(study, storage, loaded, request: SearchRequest, pool, objective, data_dir, runtime: dict) -> SearchResult:
    """Plan with the best trial (or, with ``request.finalists``, the finalist with the best
    zero-shot proxy), prune, check, save the model and write best_config.json, trials.csv,
    pruning_report.json and convergence.png (idempotent: every finishing worker may run it)."""
    from adapruner.config import PruneConfig
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.pruning.save import checkpoint_flavour
    from adapruner.search.results import best_trial, study_summary, write_trials_csv

    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    best = best_trial(study)
    finalists, rescored = None, None  # rescored: [(trial, its objective as loaded)] after a bfloat16 screen
    if request.trial_precision != "model":
        from adapruner.search.finalists import RESCORED, rescore_as_loaded

        with phase(f"re-scoring the {RESCORED} best trials as loaded (screened in {request.trial_precision})", True):
            rescored = rescore_as_loaded(study, objective)
        best = min(rescored, key=lambda r: r[1])[0]
    if request.finalists > 1:  # the zero-shot proxy chooses among the best by the (screened) objective
        from adapruner.search.finalists import score_finalists

        with phase(f"re-scoring the {request.finalists} best trials on the zero-shot proxy", True):
            best, finalists = score_finalists(study, objective, loaded.tokenizer, data_dir, request.finalists,
                                              request.finalist_examples)
        if rescored is not None:
            rescored = rescore_as_loaded(study, objective, extra=(best,))
    config = PruneConfig.from_json(best.user_attrs["config"])
    expected = next(v for t, v in rescored if t.number == best.number) if rescored is not None else best.value
    streamed = getattr(loaded, "streamed", False)
    with phase(f"pruning with best trial {best.number} and checking it", True):
        deliver = _deliver_streamed if streamed else _deliver_in_memory
        done = deliver(loaded, config, request, pool, objective)
    # The physically pruned model on the same validation windows must reproduce the trial's value.
    reproduction = reproduction_check(best.number, expected, done.parts)
    provenance = {
        "model": loaded.spec, "ratio": request.ratio, "study": study.study_name,
        "sampler": request.sampler, "best_trial": best.number, "objective": expected,
        "validation_ppl": best.user_attrs.get("ppl"), "space_hash": request.space.digest(), "seed": request.seed,
        "budget_asked": request.budget or {"ratio": request.ratio, "ratio_of": "total", "target_params": None},
    }
    report = {
        "command": "search",
        "provenance": provenance,
        "config": config.to_json(),
        "space": request.space.to_json(),
        "protocol": request.protocol_json(),
        "study": study_summary(study),
        "dense_validation_ppl": done.dense,
        "pruned_validation_ppl": done.check,
        **({"pruned_objective": done.parts} if request.objective != "ppl" else {}),
        "reproduction": reproduction,
        **({"finalists": finalists} if finalists else {}),
        **({"rescored": {"trial_precision": request.trial_precision, "trials": [
            {"trial": t.number, "screened": t.value, "as_loaded": v} for t, v in rescored]}}
           if rescored is not None else {}),
        "parameters": {"dense": done.dense_params, "pruned": done.pruned_params,
                       "removed_fraction": 1 - done.pruned_params / done.dense_params},
        "plan": done.plan.to_json(),
        "model_source": {"spec": loaded.spec, "path": loaded.path,
                         **getattr(loaded, "info", {})},
        "runtime": {"device": request.device, "dtype": request.dtype, **runtime},
        "versions": versions("optuna"),
    }
    done.save(report)
    report["checkpoint_flavour"] = checkpoint_flavour(loaded.model)
    write_json(out / "best_config.json", {"config": config.to_json(), "provenance": provenance})
    write_trials_csv(study, out / "trials.csv")
    write_json(out / "pruning_report.json", report)
    # The dense model's line is its perplexity, which only the paper's objective is measured in.
    plot_study(storage, provenance["model"], request.ratio, out / "convergence.png",
               done.dense if request.objective == "ppl" else None)
    files = ["model", "best_config.json", "trials.csv", "pruning_report.json", "convergence.png"]
    return SearchResult(best_trial=best.number, objective=expected, validation_ppl=best.user_attrs.get("ppl") or {},
                        config=config.to_json(), report=report, out=out, files=files,
                        reproduced=reproduction["reproduced"], model=None if streamed else loaded.model,
                        tokenizer=loaded.tokenizer)


def _deliver_in_memory(loaded, config, request: SearchRequest, pool, objective) -> Delivered:
    """Prune the loaded model in place with ``config`` and measure it on the trials' windows."""
    from adapruner.core.params import count_parameters
    from adapruner.core.structure import PruningPlan
    from adapruner.eval.perplexity import perplexity
    from adapruner.planning import pool_windows, prune_in_place
    from adapruner.pruning.save import save_pruned

    model, tokenizer = loaded.model, loaded.tokenizer

    def ppl() -> dict:
        return {name: perplexity(model, w, batch_size=request.eval_batch_size, progress=False).ppl
                for name, w in objective.windows.items()}

    dense_params = count_parameters(model)
    dense = objective.dense_ppl or ppl()  # a process that ran no trial (a finished study re-finalised)
    scored = objective.measure.name != "ppl"
    if scored and objective.evaluator is None:
        objective.evaluator_for(PruningPlan({}))  # the dense references, before the model is pruned
    calib, update_calib = pool_windows(pool, config)
    plan = prune_in_place(model, config, request.ratio, calib, update_calib, cache=objective.update_cache,
                          progress=False).plan
    check = ppl()
    # Layers below the evaluator's first cached one are unpruned: its cached inputs stay valid.
    parts = objective.evaluator.evaluate()[0] if scored else check
    return Delivered(plan=plan, dense_params=dense_params, pruned_params=count_parameters(model), dense=dense,
                     check=check, parts=parts,
                     save=lambda report: save_pruned(model, tokenizer, Path(request.out) / "model", report,
                                                     overwrite=True))


def _deliver_streamed(sm, config, request: SearchRequest, pool, objective) -> Delivered:
    """Prune the streamed model with ``config`` layer by layer into a staging directory inside
    ``OUT`` (a killed delivery resumes there), measure the staged checkpoint one layer at a time
    on the trials' windows, and on ``save`` move its ``model/`` to ``OUT/model``."""
    import dataclasses
    import shutil

    from adapruner.core.params import count_parameters
    from adapruner.planning import pool_windows
    from adapruner.streaming.checkpoint import CheckpointTensors
    from adapruner.streaming.prune import finish_streamed, prune_streamed

    out = Path(request.out)
    dense_params = count_parameters(sm.model)
    objective.ensure_dense()  # a process that ran no trial: the dense pass before the skeleton is cut
    dense = objective.dense_ppl
    calib, update_calib = pool_windows(pool, config)
    staging = out / "model-streamed"
    run = prune_streamed(sm, config, request.ratio, calib, update_calib, staging, micro_batch=request.micro_batch,
                         progress=False, log=lambda line: None)
    # The pruned skeleton reading the staged shards is the delivered model, before it is installed.
    parts, check = objective.score(dataclasses.replace(sm, tensors=CheckpointTensors(run.staged / "model")))

    def save(report: dict) -> None:
        finish_streamed(sm, run, report, staging, overwrite=True)
        shutil.rmtree(out / "model", ignore_errors=True)
        os.replace(staging / "model", out / "model")
        shutil.rmtree(staging)

    return Delivered(plan=run.plan, dense_params=dense_params, pruned_params=count_parameters(sm.model), dense=dense,
                     check=check, parts=parts, save=save)


def reproduction_check(trial: int, value: float, check: dict[str, float]) -> dict:
    """The delivered model's objective (``check``: its perplexity per dataset on the trials' windows)
    against trial ``trial``'s ``value`` (as loaded); a warning when they differ by more than float noise."""
    final_value = sum(check.values()) / len(check)
    rel = abs(final_value - value) / max(abs(value), 1e-12)
    reproduced = rel <= REPRODUCE_RTOL
    if not reproduced:
        print(f"WARNING: the saved model's objective {final_value:.4f} differs from best trial {trial}'s "
              f"{value:.4f} by {rel:.2%} (more than float noise); the report records both",
              file=sys.stderr)
    return {"trial_objective": value, "final_objective": final_value, "relative_difference": rel,
            "tolerance": REPRODUCE_RTOL, "reproduced": reproduced}


def plot_study(storage, spec: str, ratio: float, path: Path, dense: dict | None) -> None:
    """``convergence.png``: every study of the storage on this model and ratio, early-stopped trials
    as crosses, the dense model's objective as a line."""
    from optuna.trial import TrialState

    from adapruner.search.plots import plot_convergence
    from adapruner.search.results import convergence_curves

    curves = convergence_curves(storage, spec, ratio)
    stopped = convergence_curves(storage, spec, ratio, TrialState.PRUNED)
    plot_convergence(curves, path, title=f"{spec} at {ratio:.0%}", stopped=stopped,
                     dense=sum(dense.values()) / len(dense) if dense else None)
