"""``adapruner search``: find calibration data and metric coefficients with Bayesian optimisation.

Runs (or continues) an Optuna study whose trials prune the model with masks and score it on small
validation subsets (:mod:`adapruner.search.objective`); when the budget of ``--trials`` finished
trials is spent, prunes the model physically with the best configuration and writes into
``--out``: ``model/``, ``best_config.json`` (for ``adapruner prune --config``), ``trials.csv``,
``pruning_report.json`` and ``convergence.png``. Re-running the same command continues the
study; several workers share one study through ``--storage postgresql://...``.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import time
from pathlib import Path

from adapruner.commands.common import add_data_arg, add_model_arg, add_runtime_args, seed_everything
from adapruner.errors import AdaprunerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``search`` and its flags."""
    p = subparsers.add_parser("search", help="AdaPruner search: Bayesian optimisation of calibration data and metric",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    p.add_argument("--ratio", type=float, required=True, help="fraction of all parameters to remove, e.g. 0.2")
    p.add_argument("--trials", type=int, required=True,
                   help="budget: the study ends with exactly this many finished (complete or pruned) trials")
    p.add_argument("--out", required=True, help="output directory (also holds study.db unless --storage is given)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random"], help="TPE (paper) or random (baseline)")
    p.add_argument("--storage", default=None, help="Optuna RDB URL (default: sqlite:///OUT/study.db); "
                   "postgresql://... lets several workers share one study")
    p.add_argument("--study", default=None, help="study name (default: adapruner-SAMPLER)")
    p.add_argument("--space", default=None, help="search space file (JSON/YAML; keys of adapruner.search.space.SearchSpace)")
    p.add_argument("--eval-windows", type=int, default=16,
                   help="validation windows per dataset (WikiText-2, PTB) of the objective (default 16)")
    p.add_argument("--eval-batch-size", type=int, default=8, help="windows per forward in the objective")
    p.add_argument("--pruner", default="percentile", choices=["percentile", "median", "none"],
                   help="early stop of hopeless trials (on the running objective after each batch)")
    p.add_argument("--heartbeat", type=int, default=10,
                   help="seconds between trial heartbeats; a trial silent for 3x this is failed and re-run")
    ab = p.add_argument_group("ablations (paper Tables 2 and 8)")
    ab.add_argument("--no-data-search", action="store_true", help="random calibration data drawn from --seed")
    ab.add_argument("--fixed-metric", choices=["first", "second"], default=None,
                    help="no metric search: LLM-Pruner element1 (first) or element2 (second order)")
    ab.add_argument("--sequential", action="store_true",
                    help="search the data first (half the budget), then the metric with the best data")
    ab.add_argument("--data-space", choices=["joint", "subspaces", "score"], default=None,
                    help="joint (default), 10 disjoint subspaces, or the top windows scored one by one")
    add_data_arg(p)
    add_runtime_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run or continue the search, then write the pruned model and the reports."""
    import optuna

    from adapruner.search import study as st
    from adapruner.search.objective import EvalProtocol
    from adapruner.search.space import SearchSpace, space_from_args

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # tqdm shows progress; trials.csv has the details

    if args.trials < 1:
        raise AdaprunerError(f"--trials must be >= 1 (got {args.trials})")
    if not 0.0 < args.ratio < 1.0:
        raise AdaprunerError(f"--ratio must be between 0 and 1 (got {args.ratio})")
    if args.eval_windows < 1 or args.eval_batch_size < 1:
        raise AdaprunerError("--eval-windows and --eval-batch-size must be >= 1")
    if args.heartbeat < 1:
        raise AdaprunerError("--heartbeat must be >= 1 second")
    base = SearchSpace.load(args.space) if args.space else SearchSpace()
    space = space_from_args(base, args.no_data_search, args.fixed_metric, args.sequential, args.data_space)
    if space.data_space == "fixed" and space.metric != "adapruner":
        raise AdaprunerError("--no-data-search with --fixed-metric leaves nothing to search; drop one of them")
    protocol = EvalProtocol(seq_len=space.seq_len, windows=args.eval_windows, batch_size=args.eval_batch_size)
    protocol_json = {"datasets": list(protocol.datasets), "split": protocol.split, "seq_len": protocol.seq_len,
                     "windows_per_dataset": protocol.windows, "objective": "mean perplexity (paper Eq. 6)",
                     "window_selection": "evenly spaced over all non-overlapping windows of the split"}

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise AdaprunerError(f"--out {out} exists and is not a directory")
    if args.storage is None:
        out.mkdir(parents=True, exist_ok=True)
    url = args.storage or st.default_storage(out)
    storage = st.open_storage(url, heartbeat=args.heartbeat)
    name = args.study or f"adapruner-{args.sampler}"
    identity = st.StudyIdentity(model=args.model, ratio=args.ratio, space=space, protocol=protocol_json,
                                sampler=args.sampler)
    existing = st.existing_study(storage, name)
    if existing is not None:
        st.check_identity(existing, identity)  # refuse before spending time on loading the model

    from adapruner.data.books import calibration_pool
    from adapruner.data.paths import resolve_data_dir
    from adapruner.models.load import load_model
    from adapruner.search.objective import Objective, load_eval_windows

    seed_everything(args.seed)
    data_dir = resolve_data_dir(args.data_dir)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    model, tokenizer = loaded.model, loaded.tokenizer
    from adapruner.pruning.allocation import check_allocation
    from adapruner.config import AllocationConfig

    check_allocation(model, args.ratio, AllocationConfig(**space.allocation))  # unreachable ratio: fail now
    pool = calibration_pool(tokenizer, data_dir, seq_len=space.seq_len, seed=space.pool_seed)
    space.check_pool(len(pool))
    windows = load_eval_windows(tokenizer, data_dir, protocol)

    sampler_seed = _worker_seed(args.seed, url, args.storage is None)
    study = st.open_study(storage, name, identity, st.make_sampler(args.sampler, sampler_seed),
                          st.make_pruner(args.pruner))
    objective = Objective(model, pool, windows, args.ratio, batch_size=args.eval_batch_size)
    ctx = st.WorkerContext(space=space, pool_size=len(pool), n_trials=args.trials, objective=objective, seed=args.seed)
    t0 = time.perf_counter()
    st.Worker(study, ctx).run()
    search_s = time.perf_counter() - t0

    finalize(study, storage, out, loaded, tokenizer, data_dir, args, space, protocol_json, objective,
             {"sampler_seed": sampler_seed, "storage": st._redact(url), "this_worker_search_s": round(search_s, 1)})
    return 0


def _worker_seed(seed: int, url: str, local: bool) -> int:
    """The sampler seed: ``--seed`` for a local study; distinct per worker process for a shared
    storage, so concurrent workers do not propose identical trials."""
    if local:
        return seed
    from adapruner.search.study import worker_tag

    return int(hashlib.sha256(f"{seed}:{worker_tag()}:{url}".encode()).hexdigest()[:8], 16)


def finalize(study, storage, out: Path, loaded, tokenizer, data_dir, args, space, protocol_json, objective,
             extra: dict) -> None:
    """Prune with the best trial, save the model and write best_config.json, trials.csv,
    pruning_report.json and convergence.png (idempotent: every finishing worker may run it)."""
    import optuna
    import torch
    import transformers

    from adapruner.eval.perplexity import perplexity
    from adapruner.pipeline import plan_pruning
    from adapruner.pruning.allocation import count_parameters
    from adapruner.pruning.save import save_pruned
    from adapruner.pruning.surgery import prune_model
    from adapruner.search import study as st
    from adapruner.search.plots import plot_convergence

    out.mkdir(parents=True, exist_ok=True)
    config, best = st.best_config(study)
    model = loaded.model
    dense_params = count_parameters(model)
    plan, _ = plan_pruning(model, tokenizer, config, args.ratio, data_dir)
    prune_model(model, plan)
    pruned_params = count_parameters(model)
    # The physically pruned model on the same validation windows: must reproduce the trial's value.
    check = {name: perplexity(model, w, batch_size=args.eval_batch_size, progress=False).ppl
             for name, w in objective.windows.items()}

    provenance = {
        "model": args.model, "ratio": args.ratio, "study": study.study_name, "sampler": args.sampler,
        "best_trial": best.number, "objective": best.value, "validation_ppl": best.user_attrs.get("ppl"),
        "space_hash": space.digest(), "seed": args.seed,
    }
    summary = st.study_summary(study)
    report = {
        "command": "search",
        "provenance": provenance,
        "config": config.to_json(),
        "space": space.to_json(),
        "protocol": protocol_json,
        "study": summary,
        "dense_validation_ppl": objective.evaluator.dense if objective.evaluator else None,
        "pruned_validation_ppl": check,
        "parameters": {"dense": dense_params, "pruned": pruned_params,
                       "removed_fraction": 1 - pruned_params / dense_params},
        "plan": plan.to_json(),
        "model_source": {"spec": loaded.spec, "path": loaded.path, **getattr(loaded, "info", {})},
        "runtime": {"device": args.device, "dtype": args.dtype, **extra},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "optuna": optuna.__version__},
    }
    save_pruned(model, tokenizer, out / "model", report, overwrite=True)
    st.write_json(out / "best_config.json", {"config": config.to_json(), "provenance": provenance})
    st.write_trials_csv(study, out / "trials.csv")
    st.write_json(out / "pruning_report.json", report)
    curves = st.convergence_curves(storage, args.model, args.ratio)
    plot_convergence(curves, out / "convergence.png", title=f"{args.model} at {args.ratio:.0%}")
    print(f"best trial {best.number}: objective {best.value:.3f} "
          f"({', '.join(f'{k} {v:.2f}' for k, v in (best.user_attrs.get('ppl') or {}).items())}); "
          f"wrote {out}/model, best_config.json, trials.csv, pruning_report.json, convergence.png")
