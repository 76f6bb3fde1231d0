"""Paper Table 1 / 4 (and 6, 7) analogue: every method at 20 % and 50 %, without and with recovery.

Rows: dense, magnitude (l2), random, vector, element1, element2, wanda-sp, flap, saap (each
``adapruner prune --metric M``, 10 random book windows drawn with --seed 0 where the metric needs
calibration) and AdaPruner (``adapruner search`` with the TPE budget of --trials, the pruned model
being the search's best). "Tuned" rows add ``adapruner finetune`` (CPU-sized LoRA: 20 steps of 16
cleaned-Alpaca rows, see bench.Tune). Columns: WikiText-2 and PTB test perplexity (seq 128, the
full test splits unless --max-windows), the seven zero-shot accuracies and their average
(``--limit`` documents per task, the same for every row), parameters. The gradient baselines
with random calibration (vector, element1, element2) are also pruned with calibration seeds
1..4 for the perplexity columns (mean +- std over 5 seeds in the README).

Rows run cheapest and most important first; each evaluation is cached in
benchmarks/results/variants/ and never recomputed:

    python benchmarks/paper/table1.py                       # everything, resumable
    python benchmarks/paper/table1.py --ratios 0.2 --tune no --methods dense,l2,element1
    python benchmarks/paper/table1.py --smoke --model /path/to/tiny   # check the script quickly
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import bench  # noqa: E402
from bench import BASELINES, GRADIENT_BASELINES, Search, Tune, Variant  # noqa: E402

METHODS = ("dense",) + BASELINES + ("adapruner",)
EVALS = ("wikitext2", "ptb", "zeroshot")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_common_args(p)
    p.add_argument("--ratios", default="0.2,0.5", help="pruning ratios (fraction of all parameters)")
    p.add_argument("--methods", default=",".join(METHODS), help="rows (dense, metric names, adapruner)")
    p.add_argument("--tune", default="both", choices=["no", "yes", "both"], help="without/with recovery")
    p.add_argument("--evals", default=",".join(EVALS), help="columns: wikitext2,ptb,zeroshot")
    p.add_argument("--seeds", type=int, default=5, help="calibration seeds of the gradient baselines (PPL only)")
    p.add_argument("--trials", type=int, default=Search.trials, help="AdaPruner search budget")
    return p


def variant(args, method: str, ratio: float, seed: int = 0, tuned: bool = False) -> Variant:
    """The Table 1 variant of ``method`` at ``ratio``."""
    if method == "dense":
        return Variant(model=args.model)
    search = bench.smoke_search(Search(trials=args.trials), args.smoke) if method == "adapruner" else None
    tune = bench.smoke_tune(Tune(), args.smoke) if tuned else None
    return Variant(model=args.model, method=method, ratio=ratio, seed=seed, search=search, tune=tune)


def plan(args) -> list[tuple[Variant, tuple[str, ...]]]:
    """Jobs in priority order: dense; untuned rows at every ratio; then per ratio the tuned rows
    followed by the extra calibration seeds (PPL only) -- so the 20 % table completes before the
    optional 50 % tuned rows start."""
    ratios = [float(r) for r in args.ratios.split(",") if r]
    methods = [m for m in args.methods.split(",") if m]
    evals = tuple(e for e in args.evals.split(",") if e)
    tunes = {"no": [False], "yes": [True], "both": [False, True]}[args.tune]
    ppl = tuple(e for e in evals if e != "zeroshot")
    pruned = [m for m in methods if m != "dense"]
    jobs = []
    if "dense" in methods:
        jobs.append((variant(args, "dense", 0.0), evals))
    if False in tunes:
        for ratio in ratios:
            jobs += [(variant(args, m, ratio), evals) for m in pruned]
    for ratio in ratios:
        if True in tunes:
            jobs += [(variant(args, m, ratio, tuned=True), evals) for m in pruned]
        if ppl and False in tunes:
            for m in (m for m in GRADIENT_BASELINES if m in methods):
                jobs += [(variant(args, m, ratio, seed=s), ppl) for s in range(1, args.seeds)]
    return jobs


def main() -> int:
    return bench.main_eval_jobs(build_parser(), plan, "table1")


if __name__ == "__main__":
    sys.exit(main())
