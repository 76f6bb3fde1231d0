"""``adapruner search``: find calibration data and metric coefficients with Bayesian optimisation.

Runs (or continues) an Optuna study whose trials prune the model (reversibly) and score it on small
validation subsets (:mod:`adapruner.search.objective`); when the budget of ``--trials`` finished
trials is spent, prunes the model physically with the best configuration and writes into
``--out``: ``model/``, ``best_config.json`` (for ``adapruner prune --config``), ``trials.csv``,
``pruning_report.json`` and ``convergence.png``. Re-running the same command continues the
study; several workers share one study through ``--storage postgresql://...``.
"""

from __future__ import annotations

import argparse

from adapruner import catalogue
from adapruner.commands.common import (add_budget_args, add_data_arg, add_memory_args, add_model_arg, add_runtime_args,
                                       finite_float, key_value, nonempty, positive_int)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``search`` and its flags."""
    p = subparsers.add_parser("search", help="AdaPruner search: Bayesian optimisation of calibration data and metric",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    add_budget_args(p)
    p.add_argument("--trials", type=int, required=True,
                   help="budget: the study ends with exactly this many finished (complete or pruned) trials")
    p.add_argument("--max-minutes", type=finite_float, default=None,
                   help="stop starting trials after this many minutes and deliver the best so far; the same "
                        "command later continues the study up to --trials")
    p.add_argument("--out", required=True, help="output directory (also holds study.db unless --storage is given)")
    p.add_argument("--sampler", default="tpe", choices=catalogue.SAMPLERS,
                   help="TPE (the paper's), tpe-mv (TPE over each group of parameters jointly: Optuna's "
                        "multivariate=True, group=True) or random (the baseline)")
    p.add_argument("--storage", default=None, type=nonempty, help="Optuna RDB URL (default: sqlite:///OUT/study.db); "
                   "postgresql://... lets several workers share one study")
    p.add_argument("--study", default=None, help="study name (default: adapruner-SAMPLER)")
    p.add_argument("--space", default="full", type=nonempty,
                   help="search space: 'full' (default: the calibration data with every metric, weight update and "
                        "allocation mode), 'paper' (the AdaPruner paper's: calibration data + Eq. 5 coefficients), "
                        "or a JSON/YAML file with the keys of adapruner.search.space.SearchSpace")
    p.add_argument("--no-starting-points", dest="starting_points", action="store_false",
                   help="do not begin a new study with the recipes that need no search (prune's default first); "
                        "they are tried only in spaces that can express them")
    objectives = catalogue.offered("objective")
    p.add_argument("--objective", default="ppl", choices=list(objectives),
                   help="what a trial is scored by on the validation windows: "
                        f"{'; '.join(f'{k}: {v}' for k, v in objectives.items())} (default ppl)")
    p.add_argument("--objective-option", dest="objective_options", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="a setting of the objective, e.g. top_k=0 for kl; repeatable")
    p.add_argument("--finalists", type=int, default=0, metavar="K",
                   help="re-score the K best trials on a zero-shot proxy (development splits of ARC-Easy, "
                        "ARC-Challenge and OpenBookQA, never the reported ones) and deliver the most accurate "
                        "(default 0: the best by the objective; ~1 min per 100 examples per finalist on a 135M "
                        "model on 2 CPU cores)")
    p.add_argument("--finalist-examples", type=positive_int, default=200, metavar="N",
                   help="examples per development task of that proxy (default 200)")
    p.add_argument("--startup-trials", type=int, default=10, metavar="N",
                   help="finished trials (the recipes included) TPE draws at random before it models the study "
                        "(default 10, Optuna's)")
    p.add_argument("--refine-every", type=int, default=0, metavar="K",
                   help="make every K-th trial after the start-up a refinement of the best trial so far: its "
                        "categorical choices (metric, update, allocation) kept, its numeric parameters "
                        "(calibration windows, knots, coefficients) proposed anew (default 0: off)")
    p.add_argument("--neighbour-every", type=int, default=0, metavar="K",
                   help="make every K-th trial after the start-up a neighbour of the best trial so far: all of it "
                        "kept but one or two calibration windows, swapped for random ones (default 0: off)")
    p.add_argument("--eval-windows", type=int, default=16,
                   help="validation windows per dataset (WikiText-2, PTB) of the objective (default 16)")
    p.add_argument("--eval-batch-size", type=int, default=8, help="windows per forward in the objective")
    p.add_argument("--trial-precision", default="model", choices=["model", "bfloat16"],
                   help="what each trial's validation forward runs in: the model's precision (default) or bfloat16 "
                        "(a float32 model's products autocast: ~1.6x faster forwards on CPUs with bfloat16 "
                        "instructions, values within 0.5 %%); the 3 best trials are then re-scored as loaded and "
                        "the best of those delivered")
    rules = ["halving", "percentile", "median", "none"]
    p.add_argument("--early-stop", dest="early_stop", default=None, choices=rules,
                   help="early stop of hopeless trials on the running objective (Optuna's pruner): halving (halfway "
                        "through the evaluation, below the median of the finished trials; the default in a space "
                        "that starts from recipes), percentile (the worst quarter after 3/4 of it; the paper's "
                        "space's default), median or none")
    p.add_argument("--pruner", dest="early_stop", choices=rules, help=argparse.SUPPRESS)
    p.add_argument("--heartbeat", type=int, default=10,
                   help="seconds between trial heartbeats; a trial silent for 3x this is failed and re-run")
    p.add_argument("--calib-data", default=None, type=nonempty, metavar="FILE|ORG/NAME",
                   help="calibrate on your own text: a .txt, .jsonl or .json file, or a hub dataset org/name (its "
                        "train split; needs a network) (default: the book texts)")
    p.add_argument("--text-field", default="text", type=nonempty, help="the text field of a .jsonl/.json file or hub dataset --calib-data")
    ab = p.add_argument_group("ablations (paper Tables 2 and 8)")
    ab.add_argument("--no-data-search", action="store_true", help="random calibration data drawn from --seed")
    ab.add_argument("--fixed-metric", choices=["first", "second"], default=None,
                    help="no metric search: LLM-Pruner element1 (first) or element2 (second order)")
    ab.add_argument("--sequential", action="store_true",
                    help="search the data first (half the budget), then the metric with the best data")
    ab.add_argument("--data-space", choices=["joint", "subspaces", "score"], default=None,
                    help="joint (default), 10 disjoint subspaces, or the top windows scored one by one")
    m = add_memory_args(p, "run every trial one decoder layer at a time, reading weights from the checkpoint's "
                           "shards (memory bounded by one layer; trials are not stopped early)")
    m.add_argument("--micro-batch", type=int, default=None,
                   help="calibration windows per forward/backward of a streamed trial (default: all at once)")
    add_data_arg(p)
    add_runtime_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run or continue the search (:func:`adapruner.api.search`), then report what it delivered."""
    from adapruner.api import search
    from adapruner.search.space import SearchSpace, space_from_args

    base = SearchSpace.load(args.space)
    if args.calib_data:
        base = SearchSpace.from_dict({**base.to_json(), "source": args.calib_data, "field": args.text_field})
    space = space_from_args(base, args.no_data_search, args.fixed_metric, args.sequential, args.data_space)
    result = search(args.model, args.ratio, trials=args.trials, out=args.out, space=space,
                    target_params=args.target_params, ratio_of=args.ratio_of, sampler=args.sampler,
                    storage=args.storage, study=args.study, eval_windows=args.eval_windows,
                    eval_batch_size=args.eval_batch_size, early_stop=args.early_stop, heartbeat=args.heartbeat,
                    starting_points=args.starting_points, max_minutes=args.max_minutes, data_dir=args.data_dir, device=args.device,
                    dtype=args.dtype, seed=args.seed, trust_remote_code=args.trust_remote_code, stream=args.stream,
                    max_memory=args.max_memory, micro_batch=args.micro_batch, objective=args.objective,
                    objective_options=dict(args.objective_options), finalists=args.finalists,
                    finalist_examples=args.finalist_examples, startup_trials=args.startup_trials,
                    refine_every=args.refine_every, neighbour_every=args.neighbour_every,
                    trial_precision=args.trial_precision)
    ppl = ", ".join(f"{k} {v:.2f}" for k, v in result.validation_ppl.items())
    print(f"best trial {result.best_trial}: objective {result.objective:.3f} ({ppl}); "
          f"wrote {result.out}/{', '.join(result.files)}")
    plain = result.report.get("checkpoint_flavour") == "plain"
    print(f"{result.out}/model is {'a plain transformers checkpoint' if plain else 'an adapruner_pruned checkpoint: load it after import adapruner, or with trust_remote_code=True'} (see its README.md)")
    return 0
