"""Every importance metric side by side: SmolLM2 pruned by 20 %, WikiText-2 / PTB test perplexity.

All metrics use the same calibration samples (the default PruneConfig: 10 book windows of 128
tokens), the default uniform allocation (layers [4, 28) of 30, heads and channels) and the same
evaluation windows (seq 128; the first ``--max-windows`` windows of each test split, since the full
splits take too long on a CPU). The pruning is applied with masks (no weight copies), so the
model is scored and evaluated in one process. ``scoring s`` is the wall time of
``compute_scores`` for the metrics without gradients; the gradient metrics share one
``collect_statistics`` pass (as in the search), so theirs is that pass's time plus their own
``scores_from_statistics`` time.

    python benchmarks/quality/metrics_table.py --max-windows 40
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch


def main() -> None:
    from adapruner.config import MetricConfig, PruneConfig
    from adapruner.data.corpora import load_corpus
    from adapruner.core.versions import versions
    from adapruner.eval.perplexity import corpus_windows, perplexity
    from adapruner.importance import (METRICS, collect_statistics, compute_scores, needs_calibration,
                                      needs_gradients, scores_from_statistics)
    from adapruner.models.load import load_model
    from adapruner.data.calibration import calibration_samples
    from adapruner.allocation import allocate, count_parameters, removed_parameters
    from adapruner.pruning.masks import apply_masks

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--max-windows", type=int, default=40)
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--data-dir", default=os.environ.get("ADAPRUNER_DATA_DIR")
                        or str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    parser.add_argument("--json", help="also write the rows and protocol here")
    args = parser.parse_args()

    torch.manual_seed(0)
    lm = load_model(args.model, device="cpu", dtype="float32")
    model, tok = lm.model, lm.tokenizer
    config = PruneConfig()
    # The AdaPruner blend at the scale-aligned point (importance/taylor.py): I_el scaled to I_vec's
    # magnitude, Fisher terms scaled to their first-order terms.
    blend = dict(alpha1=0.5, alpha2=0.5, align_el=1e-2, second_order_vec=1.0, second_order_el=1e2)
    calib = calibration_samples(tok, config.calibration, args.data_dir)
    windows = {name: corpus_windows(tok, load_corpus(name, "test", args.data_dir), 128, max_windows=args.max_windows)
               for name in ("wikitext2", "ptb")}

    def evaluate() -> dict[str, float]:
        return {name: perplexity(model, w, batch_size=8, progress=False).ppl for name, w in windows.items()}

    rows = [{"metric": "dense", "removed": 0.0, "scoring_s": 0.0, **evaluate()}]
    print(f"dense: {rows[0]}", flush=True)
    total = count_parameters(model)
    stats, stats_seconds = None, 0.0
    for name in args.metrics.split(","):
        metric = MetricConfig(name=name, **(blend if name in ("adapruner", "saap") else {}))
        start = time.perf_counter()
        if needs_gradients(name):
            if stats is None:  # one gradient pass serves every gradient metric (the search does the same)
                stats = collect_statistics(model, calib, progress=False)
                stats_seconds = time.perf_counter() - start
                start = time.perf_counter()
            scores = scores_from_statistics(stats, metric)
            seconds = stats_seconds + time.perf_counter() - start
        else:
            scores = compute_scores(model, metric, calib if needs_calibration(name) else None, progress=False)
            seconds = time.perf_counter() - start
        plan = allocate(model, scores, args.ratio, config.allocation)
        with apply_masks(model, plan):
            row = {"metric": name, "removed": removed_parameters(model, plan) / total, "scoring_s": seconds, **evaluate()}
        rows.append(row)
        print(row, flush=True)

    print(f"\n{args.model}, {args.ratio:.0%} of parameters removed (uniform, layers [4, 28)), "
          f"calibration 10 x 128 book tokens, PPL on the first {args.max_windows} windows of 128 tokens")
    print("| metric | removed | WikiText-2 PPL | PTB PPL | scoring s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['metric']} | {r['removed']:.1%} | {r['wikitext2']:.2f} | {r['ptb']:.2f} | {r['scoring_s']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rows": rows, "protocol": {"model": args.model, "ratio": args.ratio, "max_windows": args.max_windows,
                                       "seq_len": 128, "calibration": asdict(config.calibration),
                                       "allocation": asdict(config.allocation), "blend": blend,
                                       "versions": versions(), "threads": torch.get_num_threads()}}, indent=2))


if __name__ == "__main__":
    main()
