"""``adapruner prune``: prune a model to a target ratio and save a smaller checkpoint.

Scores every head, KV group and MLP channel with ``--metric`` (or the metric of a search's
``--config best_config.json``; flags override the file), allocates ``--ratio`` of all parameters
for removal, removes them physically and writes the run directory ``--out``: the checkpoint in
``OUT/model`` (safetensors weights, tokenizer, ``config.json`` with per-layer widths, a model
card) and ``OUT/pruning_report.json`` (config, ratio asked/achieved, parameters, widths, seed,
timings, versions), the layout ``search`` writes too. ``--model OUT`` of any command reads the
model in it; ``AutoModelForCausalLM.from_pretrained("OUT/model")`` loads it (after ``import
adapruner`` when layers differ in width, or with ``trust_remote_code=True`` without it).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from adapruner import catalogue
from adapruner.commands.common import (add_budget_args, add_data_arg, add_memory_args, add_model_arg, add_runtime_args,
                                       finite_float, key_value, nonempty)
from adapruner.config import AGGREGATIONS, PruneConfig
from adapruner.recipes import DEFAULT_RECIPE, RECIPES, get_recipe
from adapruner.errors import AdaprunerError


def _layer_range(text: str) -> list[int]:
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST:LAST (e.g. 4:28), got '{text}'") from None
    return [a, b]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``prune`` and its flags."""
    p = subparsers.add_parser("prune", help="prune a model to a target ratio and save it",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    add_budget_args(p)
    p.add_argument("--out", required=True, help="run directory to write: the checkpoint in OUT/model, pruning_report.json beside it")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists and adapruner wrote it")
    p.add_argument("--force-overwrite", action="store_true",
                   help="replace --out even if it is not an adapruner output (deletes it)")
    p.add_argument("--config", default=None, help="a PruneConfig JSON (e.g. a search's best_config.json)")
    p.add_argument("--recipe", default=None, choices=list(RECIPES),
                   help="a recipe that needs no search: " + "; ".join(f"{r.name}: {r.help}" for r in RECIPES.values())
                        + f" (default {DEFAULT_RECIPE} unless --config or --metric is given)")
    m = p.add_argument_group("importance metric (override --config)")
    m.add_argument("--metric", default=None, help=f"one of: {', '.join(catalogue.offered('metric'))}")
    m.add_argument("--metric-option", dest="metric_options", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="a setting of the metric's own (see its Metric.options); repeatable")
    m.add_argument("--alpha1", type=finite_float, default=None, help="weight of the vector-wise term (adapruner)")
    m.add_argument("--alpha2", type=finite_float, default=None, help="weight of the element-wise term (adapruner)")
    m.add_argument("--align-vec", type=finite_float, default=None, help="alignment factor of the vector-wise term")
    m.add_argument("--align-el", type=finite_float, default=None, help="alignment factor of the element-wise term")
    m.add_argument("--second-order-vec", type=finite_float, default=None,
                   help="factor on the Fisher term inside the vector-wise score (importance/taylor.py)")
    m.add_argument("--second-order-el", type=finite_float, default=None,
                   help="factor on the Fisher term inside the element-wise score (default 100)")
    m.add_argument("--aggregation", default=None, choices=AGGREGATIONS, help="how members' scores combine")
    u = p.add_argument_group("weight update (override --config)")
    u.add_argument("--update", default=None, help=f"what changes in the kept weights; {catalogue.describe('update')}")
    u.add_argument("--update-option", dest="update_options", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="a setting of the update (see its WeightUpdate.options); repeatable")
    u.add_argument("--bias-compensation", dest="update", action="store_const", const="bias",
                   help="the same as --update bias (FLAP's bias compensation)")
    c = p.add_argument_group("calibration (override --config)")
    c.add_argument("--calib-data", default=None, type=nonempty, metavar="FILE|ORG/NAME",
                   help="calibrate on your own text: a .txt, .jsonl or .json file, or a hub dataset org/name (its "
                        "train split; needs a network) (default: the data directory's book texts)")
    c.add_argument("--text-field", default=None,
                   help="the text field of a .jsonl/.json file or hub dataset --calib-data (default text)")
    c.add_argument("--num-samples", type=int, default=None, help="calibration windows (default 10)")
    c.add_argument("--calib-seq-len", type=int, default=None, help="tokens per calibration window (default 128)")
    c.add_argument("--micro-batch", type=int, default=None,
                   help="calibration samples per forward/backward (default: all at once); smaller uses less "
                        "memory and gives the same scores")
    a = p.add_argument_group("allocation (override --config)")
    a.add_argument("--layers", type=_layer_range, default=None,
                   help="decoder layers FIRST:LAST (last excluded) that may be pruned (default: skip the first "
                        "L/8 and last L/16, i.e. 4 and 2 of 32 like the paper)")
    a.add_argument("--mode", default=None, help=f"allocation mode; {catalogue.describe('allocation')} (default uniform)")
    a.add_argument("--attention", default=None, choices=list(catalogue.ATTENTION_MODES),
                   help="query heads inside KV groups (default), whole KV groups, or no attention pruning")
    a.add_argument("--round-to", type=int, default=None, help="kept MLP channels rounded to a multiple (default 8)")
    a.add_argument("--allocation-option", dest="allocation_options", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="a setting of the mode, e.g. knots=[0.5,1,2] for schedule, "
                                             "strength=1 for saap; repeatable")
    s = add_memory_args(p, "prune one decoder layer at a time, reading weights from the checkpoint's shards "
                           "(memory bounded by one layer; resumes after a kill)")
    s.add_argument("--save-dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="dtype of the saved weights (default: --dtype); bfloat16 halves a float32 run's checkpoint")
    s.add_argument("--dry-run", action="store_true",
                   help="print the predicted peak memory and time of both paths and the one chosen, then stop")
    s.add_argument("--predictions-json", action="store_true", help=argparse.SUPPRESS)  # with --dry-run: benchmarks
    add_data_arg(p)
    add_runtime_args(p)
    # None = "not given", so a --config's seed is kept unless --seed is passed.
    p.set_defaults(seed=None)
    return p


def _options(from_file: dict, file_name: str, flag_name: str | None, flags: list[tuple[str, object]]) -> dict:
    """The options of a metric / update / allocation mode: the file's (kept only while the flag
    names the same one) overridden by the ``--*-option`` flags."""
    kept = from_file if flag_name is None or flag_name == file_name else {}
    return {**kept, **dict(flags)}


def recipe_name(args: argparse.Namespace) -> str | None:
    """The recipe a run starts from: ``--recipe``, else the default one when neither ``--config``
    nor ``--metric`` says otherwise (``--metric`` alone keeps every other setting at its default)."""
    if args.recipe:
        return args.recipe
    return DEFAULT_RECIPE if not args.config and args.metric is None else None


def build_config(args: argparse.Namespace) -> PruneConfig:
    """The run's :class:`PruneConfig`: ``--config`` (or defaults) with every given flag applied."""
    if args.config and args.recipe:
        raise AdaprunerError("--config and --recipe both say what to prune with; pass one of them")
    config = PruneConfig.load(args.config) if args.config else PruneConfig()
    recipe = recipe_name(args)
    if recipe:
        config = get_recipe(recipe).config(config)
    metric = {k: v for k, v in {"name": args.metric, "alpha1": args.alpha1, "alpha2": args.alpha2,
                                "align_vec": args.align_vec, "align_el": args.align_el,
                                "second_order_vec": args.second_order_vec,
                                "second_order_el": args.second_order_el,
                                "aggregation": args.aggregation}.items() if v is not None}
    # A flag that switches to another metric / update / allocation mode drops the options the
    # file gave the old one (a schedule's knots mean nothing to ``--mode uniform``).
    metric["options"] = _options(config.metric.options, config.metric.name, args.metric, args.metric_options)
    update = {k: v for k, v in {"name": args.update}.items() if v is not None}
    update["options"] = _options(config.update.options, config.update.name, args.update, args.update_options)
    calibration = {k: v for k, v in {"num_samples": args.num_samples, "seq_len": args.calib_seq_len,
                                     "source": args.calib_data, "field": args.text_field}.items() if v is not None}
    allocation = {k: v for k, v in {"layers": args.layers, "mode": args.mode, "attention": args.attention,
                                    "round_to": args.round_to}.items() if v is not None}
    allocation["options"] = _options(config.allocation.options, config.allocation.mode, args.mode,
                                     args.allocation_options)
    if args.seed is not None or not args.config:
        seed = args.seed or 0
        calibration["seed"] = seed
        if hasattr(config.metric, "seed"):
            metric["seed"] = seed
    if calibration.keys() & {"num_samples", "seq_len", "seed", "source", "field"}:
        # Explicit sampling flags mean a fresh random draw, not the file's searched indices.
        calibration["indices"] = None
    return PruneConfig(metric=replace(config.metric, **metric),
                       calibration=replace(config.calibration, **calibration),
                       allocation=replace(config.allocation, **allocation),
                       update=replace(config.update, **update))


def run(args: argparse.Namespace) -> int:
    """Prune, save and print a one-screen summary (the pipeline is :func:`adapruner.api.prune`)."""
    from adapruner import api

    config = build_config(args)
    if args.dry_run:
        return _dry_run(args, config)
    result = api.prune(args.model, args.ratio, out=args.out, config=config, target_params=args.target_params,
                       ratio_of=args.ratio_of, data_dir=args.data_dir, device=args.device, dtype=args.dtype,
                       stream=args.stream, max_memory=args.max_memory, micro_batch=args.micro_batch,
                       save_dtype=args.save_dtype, overwrite=args.overwrite, force_overwrite=args.force_overwrite,
                       trust_remote_code=args.trust_remote_code, report_extra={"recipe": recipe_name(args)})
    _print_summary(args, config, result)
    return 0


def _dry_run(args: argparse.Namespace, config: PruneConfig) -> int:
    """Print the predicted peak memory and time of both paths and the one chosen, load nothing."""
    from adapruner.api import calibration_data_dir, check_budget
    from adapruner.pruning.save import check_output_dir
    from adapruner.streaming.memory import choose_path

    check_output_dir(args.out, args.overwrite, args.force_overwrite)
    check_budget(args.ratio, args.target_params)
    calibration_data_dir(config, args.data_dir)
    choice = choose_path(args.model, config, args.stream, args.max_memory, args.device, args.dtype,
                         args.micro_batch, args.trust_remote_code)
    print(choice.summary())
    if args.predictions_json:
        print(json.dumps(choice.to_json()))
    return 0


def _print_summary(args: argparse.Namespace, config: PruneConfig, result) -> None:
    from adapruner.pruning.model_card import width_ranges
    from adapruner.pruning.save import MODEL_DIR

    report, path = result.report, result.out
    share = report["budget"]["removed_fraction"]
    pruned = sorted(result.plan.layers)
    print(f"pruned {args.model} with metric '{config.metric.name}', update '{config.update.name}' "
          f"({config.allocation.mode}, attention {config.allocation.attention}, layers {pruned[0]}..{pruned[-1]})")
    print(f"parameters: {report['parameters_before']:,} -> {report['parameters_after']:,}; removed "
          f"{share['total']:.2%} of all (asked {report['ratio_requested']:.2%}), {share['non_embedding']:.2%} of the "
          f"non-embedding ones, {share['in_layers']:.2%} of the pruned layers'")
    for line in width_ranges(result.widths):
        print(f"  {line}")
    flavour = json.loads((path / "pruning_report.json").read_text())["checkpoint"]["flavour"]
    how = "plain transformers checkpoint" if flavour == "plain" else "needs import adapruner or trust_remote_code=True to load"
    print(f"saved to {path}: the model in {path / MODEL_DIR} ({how}; see its README.md), the report in "
          f"{path / 'pruning_report.json'}")
