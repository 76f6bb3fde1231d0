"""Every metric x every weight update at one ratio: perplexity, scoring time and update time.

SmolLM2-135M, 20 % of all parameters removed (uniform allocation unless ``--mode``), the default
10 calibration windows for the importance metrics, the weight updates with their own settings
(``--recon-windows`` for least-squares reconstruction). Each row is planned through
``adapruner.planning.plan_pruning`` and applied with masks (which apply the updates too), so one
process scores every row on the same evaluation windows (the first ``--max-windows`` windows of
the WikiText-2 and PTB test splits, seq 128). Resumable: finished rows are kept in
``--out``/rows.json and skipped.

    python benchmarks/quality/updates_table.py --data-dir ../shared/data --max-windows 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROW_METRICS = ("random", "l2", "element1", "element2", "vector", "saap", "wanda-sp", "flap", "obs", "adapruner")


def parse_update(text: str) -> tuple[str, dict]:
    """``name`` or ``name:key=value,key=value`` -> (name, options)."""
    name, _, rest = text.partition(":")
    options = {}
    for part in filter(None, rest.split(",")):
        k, _, v = part.partition("=")
        options[k] = json.loads(v) if v[:1].isdigit() or v in ("true", "false") else v
    return name, options


def main() -> int:
    import torch

    from adapruner.config import AllocationConfig, MetricConfig, PruneConfig, UpdateConfig
    from adapruner.core.io import write_json
    from adapruner.core.params import count_parameters
    from adapruner.core.versions import versions
    from adapruner.data.books import calibration_pool
    from adapruner.data.calibration import calibration_indices
    from adapruner.data.corpora import JOIN, load_corpus
    from adapruner.eval.perplexity import corpus_windows, perplexity
    from adapruner.models.load import load_model
    from adapruner.importance import metric_statistics
    from adapruner.planning import plan_pruning, update_samples
    from adapruner.allocation import removed_parameters
    from adapruner.pruning.masks import apply_masks

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--max-windows", type=int, default=64)
    p.add_argument("--metrics", default=",".join(ROW_METRICS))
    p.add_argument("--updates", default="none,bias,reconstruct:mode=sequential,windows=128",
                   help="comma-separated list of NAME[:k=v,...] separated by ';' when options are given")
    p.add_argument("--mode", default="uniform")
    p.add_argument("--out", default="benchmarks/results/updates")
    args = p.parse_args()
    updates = [parse_update(u) for u in (args.updates.split(";") if ";" in args.updates else args.updates.split(","))]

    out = Path(args.out)
    rows_path = out / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    loaded = load_model(args.model, device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    dense = count_parameters(model)
    windows = {name: corpus_windows(tok, load_corpus(name, "test", args.data_dir), 128, JOIN[name],
                                    max_windows=args.max_windows) for name in ("wikitext2", "ptb")}
    pool = calibration_pool(tok, args.data_dir)
    if "dense" not in rows:
        rows["dense"] = {n: perplexity(model, w, progress=False).ppl for n, w in windows.items()}
        write_json(rows_path, rows)
    print(f"dense: {rows['dense']}", flush=True)
    for metric in args.metrics.split(","):
        for name, options in updates:
            key = f"{metric} | {name}{':' + json.dumps(options, sort_keys=True) if options else ''}"
            if key in rows:
                print(f"{key}: done {rows[key]}", flush=True)
                continue
            config = PruneConfig(metric=MetricConfig(name=metric), allocation=AllocationConfig(mode=args.mode),
                                 update=UpdateConfig(name=name, options=options))
            config.calibration.indices = calibration_indices(len(pool), config.calibration)
            calib = pool[config.calibration.indices]
            # Scoring (the metric's statistics and scores) and the update timed apart, each run once.
            t0 = time.perf_counter()
            stats = metric_statistics(model, config.metric, calib, progress=False)
            scoring_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            result = plan_pruning(model, calib, config, args.ratio, stats=stats, progress=False,
                                  update_calib=update_samples(pool, config))
            update_s = time.perf_counter() - t1  # allocation (milliseconds) + the update
            removed = removed_parameters(model, result.plan)
            with apply_masks(model, result.plan):
                ppl = {n: perplexity(model, w, progress=False).ppl for n, w in windows.items()}
            rows[key] = {**ppl, "scoring_s": round(scoring_s, 2), "update_s": round(update_s, 2),
                         "removed_fraction": removed / dense}
            write_json(rows_path, rows)
            print(f"{key}: {rows[key]}", flush=True)
    write_json(out / "protocol.json", {"model": args.model, "ratio": args.ratio, "mode": args.mode,
                                      "max_windows": args.max_windows, "seq_len": 128, "splits": "test",
                                      "calibration": "10 book windows, seed 0 (PruneConfig default)",
                                      "threads": torch.get_num_threads(), "versions": versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
