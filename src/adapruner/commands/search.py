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

from adapruner.commands.common import (add_budget_args, add_data_arg, add_model_arg, add_runtime_args, budget_asked,
                                       check_budget_args, seed_everything)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``search`` and its flags."""
    p = subparsers.add_parser("search", help="AdaPruner search: Bayesian optimisation of calibration data and metric",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    add_budget_args(p)
    p.add_argument("--trials", type=int, required=True,
                   help="budget: the study ends with exactly this many finished (complete or pruned) trials")
    p.add_argument("--out", required=True, help="output directory (also holds study.db unless --storage is given)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random"], help="TPE (paper) or random (baseline)")
    p.add_argument("--storage", default=None, help="Optuna RDB URL (default: sqlite:///OUT/study.db); "
                   "postgresql://... lets several workers share one study")
    p.add_argument("--study", default=None, help="study name (default: adapruner-SAMPLER)")
    p.add_argument("--space", default="full",
                   help="search space: 'full' (default: the calibration data with every metric, weight update and "
                        "allocation mode), 'paper' (the AdaPruner paper's: calibration data + Eq. 5 coefficients), "
                        "or a JSON/YAML file with the keys of adapruner.search.space.SearchSpace")
    p.add_argument("--no-starting-points", dest="starting_points", action="store_false",
                   help="do not begin a new study with the recipes that need no search (prune's default first); "
                        "they are tried only in spaces that can express them")
    p.add_argument("--eval-windows", type=int, default=16,
                   help="validation windows per dataset (WikiText-2, PTB) of the objective (default 16)")
    p.add_argument("--eval-batch-size", type=int, default=8, help="windows per forward in the objective")
    p.add_argument("--early-stop", dest="early_stop", default="percentile", choices=["percentile", "median", "none"],
                   help="early stop of hopeless trials on the running objective after each batch (Optuna's pruner)")
    p.add_argument("--pruner", dest="early_stop", choices=["percentile", "median", "none"], help=argparse.SUPPRESS)
    p.add_argument("--heartbeat", type=int, default=10,
                   help="seconds between trial heartbeats; a trial silent for 3x this is failed and re-run")
    p.add_argument("--calib-data", default=None, metavar="FILE|ORG/NAME",
                   help="calibrate on your own text: a .txt, .jsonl or .json file, or a hub dataset org/name (its "
                        "train split; needs a network) (default: the book texts)")
    p.add_argument("--text-field", default="text", help="the text field of a .jsonl/.json file or hub dataset --calib-data")
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
    from adapruner.data.paths import resolve_data_dir
    from adapruner.models.load import load_model
    from adapruner.search.run import SearchRequest, check_request, run_search
    from adapruner.search.space import SearchSpace, space_from_args

    base = SearchSpace.load(args.space)
    if args.calib_data:
        base = SearchSpace.from_dict({**base.to_json(), "source": args.calib_data, "field": args.text_field})
    space = space_from_args(base, args.no_data_search, args.fixed_metric, args.sequential, args.data_space)
    target_params = check_budget_args(args)
    paper_ratio = args.ratio_of == "total" and target_params is None

    def request_for(ratio: float) -> SearchRequest:
        return SearchRequest(ratio=ratio, trials=args.trials, out=args.out, space=space, sampler=args.sampler,
                             early_stop=args.early_stop, storage=args.storage, study=args.study,
                             eval_windows=args.eval_windows, eval_batch_size=args.eval_batch_size,
                             heartbeat=args.heartbeat, seed=args.seed, device=args.device, dtype=args.dtype,
                             budget=budget_asked(args, target_params), starting_points=args.starting_points)

    if paper_ratio:
        request = request_for(args.ratio)
        check_request(request, args.model)  # refuse a mismatched study before spending time on loading
    data_dir = resolve_data_dir(args.data_dir)
    seed_everything(args.seed)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    if not paper_ratio:  # the budget in the user's terms needs the model's parameter counts
        from adapruner.allocation import resolve_layer_range
        from adapruner.core.adapters import adapter_for
        from adapruner.core.params import total_ratio

        n_layers = len(adapter_for(loaded.model).decoder_layers(loaded.model))
        layers = list(range(*resolve_layer_range(n_layers, space.allocation.get("layers"))))
        request = request_for(total_ratio(loaded.model, layers, args.ratio, args.ratio_of, target_params))
        check_request(request, args.model)
    result = run_search(loaded, request, data_dir)
    ppl = ", ".join(f"{k} {v:.2f}" for k, v in result.validation_ppl.items())
    print(f"best trial {result.best_trial}: objective {result.objective:.3f} ({ppl}); "
          f"wrote {result.out}/{', '.join(result.files)}")
    plain = result.report.get("checkpoint_flavour") == "plain"
    print(f"{result.out}/model is {'a plain transformers checkpoint' if plain else 'an adapruner_pruned checkpoint: load it after import adapruner, or with trust_remote_code=True'} (see its README.md)")
    return 0
