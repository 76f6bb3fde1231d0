"""A gradient-free search trial with the statistics planner vs with a full gradient pass, side by side.

A search trial collects what its configuration needs (adapruner.importance.needs): a wanda-sp or
FLAP trial runs one forward over its calibration windows. Without the planner every trial ran the
forward/backward pass of the gradient metrics and folded every second-order factor. Both
objectives run on one loaded model with the same pool and validation windows (16 per dataset,
seq 128, as ``adapruner search`` does); every trial draws a new calibration set (as the joint data
search does), and trials alternate (planner, full pass, planner, ...) so load drifting over time
skews neither. Prints median seconds per trial for each metric and their ratio, and writes them.

    python benchmarks/search/gradient_free_trial.py --data-dir ../shared/data --trials 6
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path


def main() -> int:
    import torch

    from adapruner.config import PruneConfig
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.data.books import calibration_pool
    from adapruner.importance import ELEMENT_FACTORS
    from adapruner.importance.needs import StatisticsNeeds
    from adapruner.importance.statistics import collect
    from adapruner.models.load import load_model
    from adapruner.search.objective import Objective, ObjectiveProtocol, load_eval_windows

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--trials", type=int, default=6, help="trials of each metric with each objective")
    p.add_argument("--out", default="benchmarks/results/gradient_free_trial.json")
    args = p.parse_args()

    loaded = load_model(args.model, device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    pool = calibration_pool(tok, args.data_dir)
    windows = load_eval_windows(tok, args.data_dir, ObjectiveProtocol())
    everything = StatisticsNeeds(samples=True, gradients=True, element_factors=ELEMENT_FACTORS)
    objectives = {
        "planner": Objective(model, pool, windows, args.ratio),
        # what every trial collected before the planner: the backward pass and every factor
        "full pass": Objective(model, pool, windows, args.ratio,
                               statistics_fn=lambda m, calib, needs: collect(m, calib, needs | everything,
                                                                             progress=False)),
    }
    rng = random.Random(0)
    times = {(metric, name): [] for metric in ("wanda-sp", "flap") for name in objectives}
    values = {}
    for t in range(args.trials):
        for metric, update in (("wanda-sp", "none"), ("flap", "bias")):
            config = PruneConfig()
            config.metric.name, config.update.name = metric, update
            config.calibration = replace(config.calibration, indices=sorted(rng.sample(range(len(pool)), 10)))
            for name, objective in objectives.items():
                start = time.perf_counter()
                result = objective(config)
                times[(metric, name)].append(time.perf_counter() - start)
                values.setdefault((metric, t), []).append(result.value)
                print(f"{metric} trial {t} {name}: {times[(metric, name)][-1]:.1f} s  objective {result.value:.3f}",
                      flush=True)
    same = all(v[0] == v[1] for v in values.values())
    med = {f"{m} / {n}": round(statistics.median(v), 2) for (m, n), v in times.items()}
    ratio = {m: round(statistics.median(times[(m, "full pass")]) / statistics.median(times[(m, "planner")]), 2)
             for m in ("wanda-sp", "flap")}
    result = {"median_trial_s": med, "speedup_planner_over_full_pass": ratio, "same_objective_values": same,
              "trials": args.trials, "model": args.model, "ratio": args.ratio, "threads": torch.get_num_threads(),
              "command": "python benchmarks/search/gradient_free_trial.py " + " ".join(sys.argv[1:]),
              "versions": versions()}
    write_json(Path(args.out), result)
    print(json.dumps({k: result[k] for k in ("median_trial_s", "speedup_planner_over_full_pass",
                                              "same_objective_values")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
