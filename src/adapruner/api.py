"""The Python API: :func:`prune`, :func:`search` and :func:`evaluate`, what the CLI commands call.

Each takes what its command takes, as keyword arguments with the same defaults, and returns a
result object with the model, the report the command writes and the paths it wrote::

    import adapruner

    pruned = adapruner.prune("smollm2-135m", 0.2, out="runs/p20", data_dir="../shared/data")
    scores = adapruner.evaluate(pruned.model_dir, ppl=["wikitext2"], max_windows=8, data_dir="../shared/data")
    print(pruned.report["ratio_achieved"], scores.perplexity["wikitext2"])

Bad input raises :class:`~adapruner.errors.AdaprunerError` with the same one-line message the
CLI prints.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

from adapruner.config import PruneConfig
from adapruner.errors import AdaprunerError, EnvironmentFault
from adapruner.recipes import DEFAULT_RECIPE, get_recipe


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so that a run is reproducible."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# -- prune ----------------------------------------------------------------------------------------
@dataclass
class PruneResult:
    """What :func:`prune` made: the pruned model (None when it was streamed to disk and never held
    whole), its tokenizer, the report (``pruning_report.json``), the plan, the kept widths of every
    decoder layer and the run directory."""

    model: object
    tokenizer: object
    report: dict
    plan: object
    widths: list
    out: Path | None

    @property
    def model_dir(self) -> Path | None:
        """The saved checkpoint (``OUT/model``), or None when nothing was saved."""
        return self.out / "model" if self.out else None


def resolve_config(config: PruneConfig | str | Path | None = None, recipe: str | None = None,
                   seed: int | None = None) -> PruneConfig:
    """The configuration a pruning uses: ``config`` (a :class:`PruneConfig`, its JSON dict, or a
    ``best_config.json`` path), else the ``recipe`` (default :data:`~adapruner.recipes.DEFAULT_RECIPE`) on the default
    settings; ``seed`` (when given) draws the calibration windows and seeds the random metric."""
    if config is not None and recipe is not None:
        raise AdaprunerError("config and recipe both say what to prune with; pass one of them")
    if config is None:
        config = get_recipe(recipe or DEFAULT_RECIPE).config()
    elif isinstance(config, dict):
        config = PruneConfig.from_json(config.get("config", config))
    elif not isinstance(config, PruneConfig):
        config = PruneConfig.load(config)
    if seed is not None:
        config = replace(config, calibration=replace(config.calibration, seed=seed, indices=None),
                         metric=replace(config.metric, seed=seed))
    return config


def check_budget(ratio: float | None, target_params: int | str | None) -> int | None:
    """Exactly one of ``ratio`` and ``target_params``; returns the target as a count (or None)."""
    from adapruner.core.params import check_ratio, parse_count

    if (ratio is None) == (target_params is None):
        raise AdaprunerError("give exactly one of --ratio (e.g. 0.2) and --target-params (e.g. 100M)")
    if ratio is not None:
        check_ratio(ratio)
        return None
    return target_params if isinstance(target_params, int) else parse_count(str(target_params))


def calibration_data_dir(config: PruneConfig, data_dir: str | Path | None) -> Path | None:
    """The data directory when the book texts are read; a bad calibration file fails before any loading."""
    from adapruner.planning import needs_data

    if needs_data(config) and config.calibration.source == "books":
        from adapruner.data.paths import resolve_data_dir

        return resolve_data_dir(data_dir)
    if needs_data(config):
        from adapruner.data.user_text import read_rows

        read_rows(config.calibration.source, config.calibration.field)
    return None


def prune(model, ratio: float | None = None, *, out: str | Path | None = None, config=None,
          recipe: str | None = None, target_params: int | str | None = None, ratio_of: str = "total",
          data_dir: str | Path | None = None, device: str = "auto", dtype: str = "float32", seed: int | None = None,
          stream: bool | None = None, max_memory: str | None = None, micro_batch: int | None = None,
          save_dtype: str | None = None, overwrite: bool = False, force_overwrite: bool = False,
          trust_remote_code: bool = False, report_extra: dict | None = None, verbose: bool = True) -> PruneResult:
    """Prune ``model`` (an alias, checkpoint directory, ``.gguf`` file or hub id) by ``ratio`` of its
    parameters (or to ``target_params``) and, with ``out``, save the run directory.

    Windows -> plan -> surgery -> report -> save, in memory or streamed one decoder layer at a time
    (``stream``: None decides from the predicted peak and ``max_memory``; a streamed run needs
    ``out``). ``config`` / ``recipe`` / ``seed`` as :func:`resolve_config`. ``report_extra`` adds
    entries to the report (the CLI records the budget as the user typed it).
    """
    from adapruner.core.params import count_parameters
    from adapruner.pruning.save import check_savable
    from adapruner.pruning.surgery import layer_widths
    from adapruner.streaming.memory import choose_path

    model = _spec(model)
    recipe_used = recipe or (DEFAULT_RECIPE if config is None else None)
    config = resolve_config(config, recipe, seed)
    out, target = _check_prune_request(model, config, out, ratio, target_params, micro_batch, overwrite,
                                       force_overwrite)
    asked = {"ratio": ratio, "ratio_of": ratio_of, "target_params": target}
    seed_everything(config.calibration.seed)
    data = calibration_data_dir(config, data_dir)
    choice = choose_path(model, config, stream, max_memory, device, dtype, micro_batch, trust_remote_code)
    if choice.streamed and out is None:
        raise AdaprunerError("a streamed pruning writes its layers as it goes; give it an output directory (--out)")
    if verbose:
        print(choice.summary())
    t = time.perf_counter()
    loaded = _load(model, choice.streamed, device, dtype, trust_remote_code)
    timings = {"load_s": time.perf_counter() - t}
    check_savable(loaded.model)
    ratio = _total_ratio(loaded.model, config, ratio, ratio_of, target)
    calib, update_calib = _windows(loaded.tokenizer, config, data)
    before = count_parameters(loaded.model)
    plan, views_before, streamed = _prune_loaded(loaded, config, ratio, calib, update_calib, out, choice.streamed,
                                                 micro_batch, save_dtype, timings)
    report = _report(loaded, model, config, ratio, before, plan, views_before, timings, choice, data,
                     device=device, dtype=dtype, save_dtype=save_dtype, budget=asked,
                     extra={"recipe": recipe_used, **(report_extra or {})})
    if out is not None:
        out = _save(loaded, streamed, report, out, save_dtype, overwrite, force_overwrite)
    return PruneResult(model=None if streamed else loaded.model, tokenizer=loaded.tokenizer, report=report, plan=plan,
                       widths=layer_widths(loaded.model), out=out)


def _check_prune_request(model: str, config: PruneConfig, out, ratio, target_params, micro_batch, overwrite: bool,
                         force_overwrite: bool) -> tuple[Path | None, int | None]:
    """Every check of a pruning request that needs no model: the output (never one of the inputs,
    never a directory adapruner did not write), the budget and the micro-batch; returns the output
    directory and the target parameter count (or None)."""
    from adapruner.pruning.save import check_output_dir

    if out is not None:
        from adapruner.core.io import check_output

        check_output(out, [model, config if isinstance(config, (str, Path)) else None])
        out = check_output_dir(out, overwrite, force_overwrite)
    target = check_budget(ratio, target_params)
    if micro_batch is not None and micro_batch < 1:
        raise AdaprunerError(f"--micro-batch must be at least 1 (samples per forward/backward), got {micro_batch}")
    return out, target


def _prune_loaded(loaded, config: PruneConfig, ratio: float, calib, update_calib, out, streamed: bool,
                  micro_batch, save_dtype, timings: dict):
    """Plan and prune the loaded model, in memory or streamed layer by layer into ``out``; returns
    the plan, the parameter views before, and the streamed run (None in memory)."""
    if streamed:
        from adapruner.streaming.prune import prune_streamed

        with _staged_writes(out):
            run = prune_streamed(loaded, config, ratio, calib, update_calib, out, micro_batch=micro_batch,
                                 save_dtype=_dtype(save_dtype))
        timings.update(run.timings)
        return run.plan, run.views_before, run
    from adapruner.planning import prune_in_place

    pruned = prune_in_place(loaded.model, config, ratio, calib, update_calib, micro_batch=micro_batch)
    timings.update(pruned.timings)
    return pruned.plan, pruned.views_before, None


def _save(loaded, streamed, report: dict, out: Path, save_dtype, overwrite: bool, force_overwrite: bool) -> Path:
    """Write the run directory: the streamed run's staged layers finished, or the pruned model saved."""
    if streamed is not None:
        from adapruner.streaming.prune import finish_streamed

        with _staged_writes(out):
            return finish_streamed(loaded, streamed, report, out, overwrite=overwrite or force_overwrite,
                                   save_dtype=_dtype(save_dtype))
    from adapruner.pruning.save import save_run

    if _dtype(save_dtype) is not None:
        loaded.model.to(_dtype(save_dtype))
    return save_run(loaded.model, loaded.tokenizer, out, report, overwrite=overwrite, force=force_overwrite)


def _spec(model) -> str:
    """A model given as a path names its directory (or .gguf file)."""
    return str(model) if isinstance(model, Path) else model


def _load(model, streamed: bool, device: str, dtype: str, trust_remote_code: bool):
    """The model as the run needs it: weights read one layer at a time, or loaded whole."""
    if streamed:
        from adapruner.streaming.model import open_streamed as load
    else:
        from adapruner.models.load import load_model as load
    return load(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code)


def _total_ratio(model, config: PruneConfig, ratio, ratio_of: str, target: int | None) -> float:
    """The budget as a share of all parameters (the paper's definition)."""
    from adapruner.allocation import resolve_layer_range
    from adapruner.core.adapters import adapter_for
    from adapruner.core.params import total_ratio

    n_layers = len(adapter_for(model).decoder_layers(model))
    layer_range = list(range(*resolve_layer_range(n_layers, config.allocation.layers)))
    return total_ratio(model, layer_range, ratio, ratio_of, target)


def _windows(tokenizer, config: PruneConfig, data_dir):
    """The calibration windows (importance) and the weight update's windows, or (None, None) for a
    data-free configuration; the drawn indices are written into ``config`` so the report reproduces
    the run."""
    from adapruner.planning import needs_data, pool_windows

    if not needs_data(config):
        return None, None
    from adapruner.data.calibration import calibration_indices, source_pool

    cal = config.calibration
    pool = source_pool(tokenizer, cal, data_dir)
    cal.indices = calibration_indices(pool.shape[0], cal)
    return pool_windows(pool, config)


def _report(loaded, spec, config, ratio, before, plan, views_before, timings, choice, data_dir, *, device, dtype,
            save_dtype, extra, budget) -> dict:
    """The ``pruning_report.json`` of a pruning: config, budget asked and achieved, parameters,
    plan, seed, execution, timings and versions."""
    from adapruner.core.params import count_parameters, parameter_views, removed_views
    from adapruner.core.versions import versions

    after = count_parameters(loaded.model)
    views_after = parameter_views(loaded.model, sorted(plan.layers))
    return {
        "command": "prune",
        "model": {"spec": str(spec), "path": str(loaded.path), "source": getattr(loaded, "source", None)},
        "recipe": None,
        "config": config.to_json(),
        "ratio_requested": ratio,
        "budget_asked": budget,
        "ratio_achieved": (before - after) / before,
        "parameters_before": before,
        "parameters_after": after,
        "budget": {"before": views_before, "after": views_after,
                   "removed_fraction": removed_views(views_before, views_after)},
        "seed": config.calibration.seed,
        "device": device, "dtype": dtype, "save_dtype": save_dtype or dtype,
        "execution": choice.to_json(),
        "data_dir": str(data_dir) if data_dir else None,
        "plan": plan.to_json(),
        "timings": timings,
        "versions": versions(),
        **(extra or {}),
    }


def _dtype(name: str | None):
    """The torch dtype of a ``save_dtype`` name (None: the weights are saved as computed)."""
    if name is None:
        return None
    from adapruner.models.load import DTYPES

    return DTYPES[name]


@contextlib.contextmanager
def _staged_writes(out):
    """A write that fails in a streamed run (a full disk) is a one-line error: the finished layers
    stay staged and the same command resumes once the fault is fixed."""
    import errno

    from adapruner.streaming.prune import staging_dir

    try:
        yield
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        raise EnvironmentFault(f"writing the streamed run failed ({reason}); its finished layers are kept in "
                             f"{staging_dir(out)}: fix that and run the same command to resume") from None


# -- evaluate -------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """What :func:`evaluate` measured: the report (``eval`` JSON), perplexity per corpus (of the
    first window length) and the zero-shot results, and the file written (if any)."""

    report: dict
    out: Path | None = None
    model: object = None

    @property
    def perplexity(self) -> dict[str, float]:
        """``corpus -> PPL`` (the first window length of the run)."""
        first = self.report["perplexity"][0]["seq_len"] if self.report["perplexity"] else None
        return {r["dataset"]: r["ppl"] for r in self.report["perplexity"] if r["seq_len"] == first}

    @property
    def zeroshot(self) -> dict | None:
        """lm-evaluation-harness results per task (None without tasks)."""
        return self.report.get("zeroshot")


def evaluate(model, *, ppl=("wikitext2", "ptb"), tasks=(), split: str = "test", seq_len=128,
             max_windows: int | None = None, batch_size: int | None = None, limit: int | None = None,
             text_field: str = "text", data_dir: str | Path | None = None, device: str = "auto",
             dtype: str = "float32", seed: int = 0, stream: bool = False, trust_remote_code: bool = False,
             out: str | Path | None = None, verbose: bool = True, resume_to: str | Path | None = None) -> EvalResult:
    """Perplexity of ``model`` on the corpora ``ppl`` (WikiText-2, PTB, or .txt/.jsonl/.json files)
    at each window length of ``seq_len`` (LLM-Pruner's protocol), and zero-shot accuracy on
    ``tasks`` through lm-evaluation-harness; with ``out``, the report is written there as JSON
    (to a temporary file, then renamed). Finished zero-shot tasks are kept beside ``resume_to``
    (default ``out``) until the report is written, so a killed evaluation resumes per task."""
    from adapruner.core import io
    from adapruner.core.versions import versions
    from adapruner.data.corpora import CORPORA
    from adapruner.eval.perplexity import check_seq_len, evaluate_corpus
    from adapruner.eval.zeroshot import zeroshot_resume_file

    model = _spec(model)
    corpora, tasks = list(ppl or ()), list(tasks or ())
    seq_lens = [seq_len] if isinstance(seq_len, int) else list(seq_len)
    if not corpora and not tasks:
        raise AdaprunerError("nothing to evaluate: give --ppl wikitext2,ptb and/or --tasks")
    if max_windows is not None and max_windows < 1:
        raise AdaprunerError(f"--max-windows must be at least 1 (got {max_windows})")
    if batch_size is not None and batch_size < 1:
        raise AdaprunerError(f"--batch-size must be at least 1 (got {batch_size})")
    for n in seq_lens:
        if n < 2:
            raise AdaprunerError(f"--seq-len must be at least 2 (got {n}): a window needs a token to predict")
    if stream and tasks:
        raise AdaprunerError("zero-shot tasks need the whole model in memory; drop --stream or --tasks")
    builtin = any(n in CORPORA for n in corpora) or bool(tasks)
    if builtin:
        from adapruner.data.paths import resolve_data_dir

        data_dir = resolve_data_dir(data_dir)
    else:
        data_dir = None
    if out is not None:
        out = io.check_writable(Path(out))
    seed_everything(seed)
    start = time.perf_counter()
    loaded = _load(model, stream, device, dtype, trust_remote_code)
    scorer = loaded if stream else loaded.model  # a StreamedModel scores one layer at a time
    load_seconds = time.perf_counter() - start
    for n in seq_lens:
        check_seq_len(loaded.model, n)
    report: dict = {
        "command": "eval", "model": str(model), "model_path": loaded.path, "model_source": loaded.source,
        "load_info": loaded.info, "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "seed": seed, "device": loaded.info.get("device", device), "dtype": dtype, "streamed": stream,
        "data_dir": str(data_dir) if data_dir else None,
        "versions": versions(), "load_seconds": round(load_seconds, 2), "perplexity": [],
    }
    for n in seq_lens:
        for name in corpora:
            t0 = time.perf_counter()
            r = evaluate_corpus(scorer, loaded.tokenizer, name, data_dir, split=split, seq_len=n,
                                max_windows=max_windows, batch_size=batch_size, field=text_field)
            report["perplexity"].append({"dataset": name, "split": r["protocol"]["split"], "seq_len": n, **r,
                                         "seconds": round(time.perf_counter() - t0, 2)})
            if verbose:
                print(f"{name} ({split}, seq_len {n}): PPL {r['ppl']:.3f} over {r['n_windows']} windows", flush=True)
    if tasks:
        from adapruner.eval.zeroshot import run_zeroshot

        t0 = time.perf_counter()
        if limit is not None and limit < 1:
            raise AdaprunerError(f"--limit must be at least 1 (got {limit}); omit it to evaluate every document")
        if limit is not None and verbose:
            from adapruner.eval.significance import implied_se

            one, mean = implied_se(limit, len(tasks))
            print(f"zero-shot on the first {limit} documents per task: a task's accuracy carries a standard error "
                  f"of up to {100 * one:.1f} points, the mean over {len(tasks)} tasks up to {100 * mean:.1f} "
                  "(omit --limit for the full sets)", flush=True)
        # A killed evaluation resumes per task from a file beside --out (same model, protocol, dtype).
        target = Path(resume_to) if resume_to is not None else out
        resume = zeroshot_resume_file(target) if target is not None else None
        key = {"model": report["model"], "model_path": str(loaded.path), "dtype": dtype, "device": report["device"]}
        report["zeroshot"] = run_zeroshot(loaded.model, loaded.tokenizer, tasks, data_dir, limit, batch_size or 8,
                                          resume=resume, key=key, log=print if verbose else (lambda line: None))
        report["zeroshot_seconds"] = round(time.perf_counter() - t0, 2)
    report["total_seconds"] = round(time.perf_counter() - start, 2)
    if out is not None:
        io.write_json_or_rescue(out, report)
        zeroshot_resume_file(out).unlink(missing_ok=True)
    return EvalResult(report=report, out=out, model=None if stream else loaded.model)


# -- search ---------------------------------------------------------------------------------------
def search(model, ratio: float | None = None, *, trials: int, out: str | Path, space="full",
           target_params: int | str | None = None, ratio_of: str = "total", sampler: str = "tpe",
           storage: str | None = None, study: str | None = None, eval_windows: int = 16, eval_batch_size: int = 8,
           early_stop: str | None = None, heartbeat: int = 10, starting_points: bool = True,
           max_minutes: float | None = None, data_dir: str | Path | None = None, device: str = "auto",
           dtype: str = "float32", seed: int = 0, trust_remote_code: bool = False, progress: bool = True,
           stream: bool | None = None, max_memory: str | None = None, micro_batch: int | None = None,
           objective: str = "ppl", objective_options: dict | None = None, finalists: int = 0,
           finalist_examples: int = 200, startup_trials: int = 10, refine_every: int = 0,
           neighbour_every: int = 0, trial_precision: str = "model"):
    """Run (or continue) the Optuna study that searches ``space`` (``"full"``, ``"paper"``, a space
    file or a :class:`~adapruner.search.space.SearchSpace`) for the best pruning of ``model`` by
    ``ratio``, then prune with the best trial and write ``out`` (``model/``, ``best_config.json``,
    ``trials.csv``, ``pruning_report.json``, ``convergence.png``). ``max_minutes`` stops starting
    trials after that many minutes and delivers the best so far (the same call continues). ``stream``
    runs every trial one decoder layer at a time (None: when the in-memory path's predicted peak
    exceeds ``max_memory``), with ``micro_batch`` calibration windows per pass. ``objective`` names
    what trials are scored by (:mod:`adapruner.objectives`: ``ppl``, the paper's, ``kl`` or ``mix``)
    with its ``objective_options``; ``finalists`` > 1 re-scores that many best trials on the zero-shot
    proxy (``finalist_examples`` per development task, :mod:`adapruner.search.finalists`) and
    delivers the most accurate. ``startup_trials``: finished trials before TPE models the study
    (Optuna's 10); ``refine_every`` K > 0 makes every K-th trial after them a refinement of the best
    (its categorical choices kept, :class:`~adapruner.search.samplers.RefineBest`), and
    ``neighbour_every`` K > 0 every K-th a neighbour of the best (one or two of its calibration
    windows swapped, :class:`~adapruner.search.samplers.NeighbourOfBest`).
    ``trial_precision="bfloat16"`` runs each trial's validation forward of a float32 model in bfloat16
    and re-scores the best trials as loaded before delivering one. Returns the
    :class:`~adapruner.search.run.SearchResult` (with the pruned ``model``, None when streamed)."""
    from adapruner.config import CalibrationConfig
    from adapruner.data.paths import resolve_data_dir
    from adapruner.search.run import SearchRequest, check_request, run_search
    from adapruner.search.space import SearchSpace
    from adapruner.streaming.memory import choose_path

    model = _spec(model)
    from adapruner.core.io import check_output

    check_output(out, [model, space if isinstance(space, (str, Path)) else None])
    if not isinstance(space, SearchSpace):
        space = SearchSpace.load(space)
    target = check_budget(ratio, target_params)
    paper_ratio = ratio_of == "total" and target is None
    budget = {"ratio": ratio, "ratio_of": ratio_of, "target_params": target}

    def request_for(total: float) -> SearchRequest:
        return SearchRequest(ratio=total, trials=trials, out=out, space=space, sampler=sampler, early_stop=early_stop,
                             storage=storage, study=study, eval_windows=eval_windows,
                             eval_batch_size=eval_batch_size, heartbeat=heartbeat, seed=seed, device=device,
                             dtype=dtype, budget=budget, starting_points=starting_points, max_minutes=max_minutes,
                             micro_batch=micro_batch, objective=objective,
                             objective_options=dict(objective_options or {}), finalists=finalists,
                             finalist_examples=finalist_examples, startup_trials=startup_trials,
                             refine_every=refine_every, neighbour_every=neighbour_every,
                             trial_precision=trial_precision)

    if paper_ratio:
        request = request_for(ratio)
        check_request(request, str(model))  # refuse a mismatched study before spending time on loading
    data = resolve_data_dir(data_dir)
    if micro_batch is not None and micro_batch < 1:
        raise AdaprunerError(f"--micro-batch must be at least 1 (samples per forward/backward), got {micro_batch}")
    # The path is predicted for a gradient metric's trial (the space's most memory-hungry statistics),
    # with the pruned copy its forward holds (at the kept fraction of the ratio asked; a budget in
    # other terms is predicted as if every layer were kept whole).
    trial_like = PruneConfig(calibration=CalibrationConfig(seq_len=space.seq_len, num_samples=space.num_samples))
    choice = choose_path(model, trial_like, stream, max_memory, device, dtype, micro_batch, trust_remote_code,
                         trial_ratio=ratio if paper_ratio else 0.0)
    if progress:
        print(choice.summary(times=False))  # the predicted times are a prune's, not a search's
        streamed_prune = choice.predictions.get("streamed")
        if choice.streamed and streamed_prune is not None:
            # A streamed trial is a streamed prune's two passes, its evaluation instead of writing shards.
            print(f"expected: ~{streamed_prune.seconds / 60:.0f} min per trial (a streamed prune's predicted time)",
                  flush=True)
    seed_everything(seed)
    loaded = _load(model, choice.streamed, device, dtype, trust_remote_code)
    if not paper_ratio:  # the budget in the user's terms needs the model's parameter counts
        from adapruner.config import AllocationConfig

        request = request_for(_total_ratio(loaded.model, PruneConfig(allocation=AllocationConfig(**space.allocation)),
                                           ratio, ratio_of, target))
        check_request(request, str(model))
    return run_search(loaded, request, data, progress=progress, execution=choice.to_json())


__all__ = ["EvalResult", "PruneResult", "evaluate", "prune", "resolve_config", "search", "seed_everything"]
