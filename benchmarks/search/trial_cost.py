"""One trial of the full search space (``--space full``) vs one trial of the paper's space, side by side.

Both objectives run on the same loaded model, calibration pool and validation windows (16 per
dataset, seq 128, as ``adapruner search`` does). Trials alternate (paper, full, paper, full, ...)
so load drifting over time skews neither. Configurations come from each space with a random
sampler (every metric, update and allocation mode of the full space gets drawn). The one-off cost
of the full space, the dense Gram matrices of one-shot reconstruction that a study computes once
and caches, is timed apart. Prints median seconds per trial and their ratio.

    python benchmarks/search/trial_cost.py --data-dir ../shared/data --trials 12
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main() -> int:
    import optuna
    import torch

    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.data.books import calibration_pool
    from adapruner.models.load import load_model
    from adapruner.search.objective import Objective, ObjectiveProtocol, load_eval_windows
    from adapruner.search.space import SearchSpace

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--trials", type=int, default=12, help="trials of each space")
    p.add_argument("--out", default="benchmarks/results/trial_cost.json")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    loaded = load_model(args.model, device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    pool = calibration_pool(tok, args.data_dir)
    windows = load_eval_windows(tok, args.data_dir, ObjectiveProtocol())
    spaces = {"paper": SearchSpace.load("paper"), "full": SearchSpace.load("full")}
    objectives = {k: Objective(model, pool, windows, args.ratio, element_factors=s.element_factors())
                  for k, s in spaces.items()}
    studies = {k: optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i)) for i, k in enumerate(spaces)}

    # The full space's one-off: dense Grams of the reconstruction windows (cached for the study).
    full = spaces["full"]
    probe = full.suggest(studies["full"].ask(), len(pool))
    probe.update.name, probe.update.options = "reconstruct", dict(full.options["update"]["reconstruct"])
    t0 = time.perf_counter()
    objectives["full"](probe)  # fills the study's Gram cache, as the first reconstruct trial of a search does
    setup_s = time.perf_counter() - t0

    times: dict[str, list] = {k: [] for k in spaces}
    kinds: list[dict] = []
    for _ in range(args.trials):
        for name, space in spaces.items():
            config = space.suggest(studies[name].ask(), len(pool))
            t = time.perf_counter()
            result = objectives[name](config)
            dt = time.perf_counter() - t
            times[name].append(dt)
            if name == "full":
                kinds.append({"metric": config.metric.name, "update": config.update.name,
                              "allocation": config.allocation.mode, "seconds": round(dt, 2),
                              "objective": round(result.value, 2)})
            print(f"{name}: {dt:.1f} s  objective {result.value:.1f}  "
                  f"{config.metric.name}/{config.update.name}/{config.allocation.mode}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"median_trial_s": med, "ratio_full_over_paper": med["full"] / med["paper"],
              "mean_trial_s": {k: statistics.mean(v) for k, v in times.items()},
              "first_reconstruct_trial_s": round(setup_s, 1), "trials": args.trials, "full_trials": kinds,
              "threads": torch.get_num_threads(), "versions": versions("optuna")}
    write_json(Path(args.out), result)
    print(json.dumps({k: result[k] for k in ("median_trial_s", "ratio_full_over_paper", "first_reconstruct_trial_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
