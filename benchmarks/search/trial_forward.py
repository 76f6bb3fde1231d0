"""A search trial's validation forward on swapped-in pruned modules against the same under masks.

Masks (``apply_masks``) zero the removed structures' inputs, so a masked forward still runs every
dense product; ``swap_pruned`` puts the layers' physically pruned attention and MLP modules in
their place for the trial and back afterwards. This benchmark plans each configuration once on one
loaded model (the search's pool and validation windows: 16 windows of 128 tokens per dataset),
then evaluates the plan alternately (masks, swap, masks, ...) so that drifting load skews neither,
and prints the median seconds of each (building and removing the swap included), their ratio and
the largest relative difference of the objective.

    python benchmarks/search/trial_forward.py --data-dir ../shared/data --repeats 5

Results: ``benchmarks/results/trial_forward.json`` (rendered into docs/search.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Without an update, with a least-squares re-fit (replacement weights), with bias compensation.
RECIPES = ("wanda-sp", "wanda-sp-reconstruct", "flap-bias")


def main() -> int:
    import torch

    from adapruner.config import MetricConfig, PruneConfig
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.data.books import calibration_pool
    from adapruner.models.load import load_model
    from adapruner.pruning.masks import apply_masks
    from adapruner.pruning.surgery import swap_pruned
    from adapruner.recipes import get_recipe
    from adapruner.search.objective import Objective, ObjectiveProtocol, load_eval_windows

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--ratios", default="0.2,0.5", help="comma-separated pruning ratios")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--repeats", type=int, default=5, help="evaluations of each plan with each forward")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "trial_forward.json"))
    args = p.parse_args()

    loaded = load_model(args.model, device="cpu")
    pool = calibration_pool(loaded.tokenizer, args.data_dir)
    windows = load_eval_windows(loaded.tokenizer, args.data_dir, ObjectiveProtocol())
    forwards = {"masks": apply_masks, "swap": swap_pruned}
    rows = []
    t_start = time.perf_counter()
    for ratio in (float(r) for r in args.ratios.split(",")):
        objective = Objective(loaded.model, pool, windows, ratio)
        for name in RECIPES:
            config = get_recipe(name).config() if name != "wanda-sp" else PruneConfig(metric=MetricConfig("wanda-sp"))
            config.calibration.indices = list(range(10))  # a search trial's set size, fixed for the comparison
            plan = objective.plan(config)
            evaluator = objective.evaluator_for(plan)
            seconds = {f: [] for f in forwards}
            values = {}
            for _ in range(args.repeats):
                for forward, apply in forwards.items():
                    t0 = time.perf_counter()
                    with apply(loaded.model, plan):
                        parts, _ = evaluator.evaluate()
                    seconds[forward].append(time.perf_counter() - t0)
                    values[forward] = sum(parts.values()) / len(parts)
            med = {f: statistics.median(v) for f, v in seconds.items()}
            row = {"ratio": ratio, "configuration": name, "masks_s": med["masks"], "swap_s": med["swap"],
                   "speedup": med["masks"] / med["swap"], "objective_masks": values["masks"],
                   "objective_swap": values["swap"],
                   "relative_difference": abs(values["swap"] - values["masks"]) / values["masks"]}
            rows.append(row)
            print(f"{ratio:.0%} {name}: masks {med['masks']:.2f} s, swap {med['swap']:.2f} s "
                  f"({row['speedup']:.2f}x), objective {values['masks']:.4f} / {values['swap']:.4f}", flush=True)
    write_json(Path(args.out), {
        "model": args.model, "rows": rows, "repeats": args.repeats, "threads": torch.get_num_threads(),
        "command": "python benchmarks/search/trial_forward.py --data-dir DATA"
                   + (f" --repeats {args.repeats}" if args.repeats != 5 else "")
                   + (f" --ratios {args.ratios}" if args.ratios != "0.2,0.5" else ""),
        "seconds": round(time.perf_counter() - t_start, 1), "versions": versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
