"""Would fewer reconstruction windows make a cheaper first pass of the search?

The full space's one-shot reconstruction re-fits each pruned layer on Gram matrices of 256
calibration windows, computed once per study (the Gram pass). A multi-fidelity search would find
its candidates with fewer windows and re-score the best at 256. This benchmark keeps the recorded
search's best configuration and scores it with its own calibration set and ``--draws`` random sets
(seeded), at each count of reconstruction windows: the objective, how the sets rank against the
full count (Spearman), the Gram pass's seconds (a count's first trial less its median trial) and a
trial's seconds.

    python benchmarks/search/reconstruction_fidelity.py --data-dir ../shared/data

Results: ``benchmarks/results/reconstruction_fidelity.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def main() -> int:
    import torch
    from scipy.stats import spearmanr

    from adapruner.config import PruneConfig
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.data.books import calibration_pool
    from adapruner.models.load import load_model
    from adapruner.search.objective import Objective, ObjectiveProtocol, load_eval_windows
    from adapruner.search.space import SearchSpace

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--draws", type=int, default=7, help="random calibration sets besides the found one")
    p.add_argument("--windows", default="64,128,256", help="comma-separated reconstruction window counts")
    p.add_argument("--out", default=str(RESULTS / "reconstruction_fidelity.json"))
    args = p.parse_args()
    counts = [int(n) for n in args.windows.split(",")]
    recorded = json.loads((RESULTS / "full_space" / "best_config.json").read_text())
    base = PruneConfig.from_json(recorded["config"])
    if base.update.name != "reconstruct":
        p.error("the recorded best configuration does not reconstruct; nothing to compare")
    loaded = load_model("smollm2-135m", device="cpu")
    pool = calibration_pool(loaded.tokenizer, args.data_dir)
    windows = load_eval_windows(loaded.tokenizer, args.data_dir, ObjectiveProtocol())
    objective = Objective(loaded.model, pool, windows, 0.2, element_factors=SearchSpace.load("full").element_factors())
    rng = random.Random(0)
    sets = [list(base.calibration.indices)] + [sorted(rng.sample(range(len(pool)), len(base.calibration.indices)))
                                               for _ in range(args.draws)]
    rows = {}
    t0 = time.perf_counter()
    for count in counts:
        values, seconds = [], []
        for indices in sets:
            config = PruneConfig.from_json(recorded["config"])
            config.update.options["windows"] = count
            config.calibration.indices = list(indices)
            start = time.perf_counter()
            values.append(objective(config).value)
            seconds.append(time.perf_counter() - start)
            print(f"{count} windows, set {len(values)}: {values[-1]:.2f} ({seconds[-1]:.1f} s)", flush=True)
        trial = statistics.median(seconds[1:])
        rows[str(count)] = {"values": values, "mean": statistics.mean(values), "trial_seconds": trial,
                            "gram_seconds": seconds[0] - trial}
    full = rows[str(max(counts))]["values"]
    for count in counts:
        r = rows[str(count)]
        r["spearman_with_full"] = float(spearmanr(r["values"], full).statistic)
        r["mean_shift"] = statistics.mean(v - f for v, f in zip(r["values"], full))
    write_json(Path(args.out), {
        "model": "smollm2-135m", "ratio": 0.2, "sets": len(sets), "counts": counts, "rows": rows,
        "configuration": {"metric": base.metric.name, "update": base.update.name},
        "command": "python benchmarks/search/reconstruction_fidelity.py --data-dir DATA"
                   + (f" --draws {args.draws}" if args.draws != 7 else ""),
        "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads(), "versions": versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
