"""Paper Fig. 4 analogue: TPE vs random search convergence (best objective vs trial), 2+ seeds each.

Each study is one ``adapruner search --sampler tpe|random --seed S`` at 20 % with the same
budget; TPE with seed 0 is the same study as Table 1's AdaPruner row (never run twice). The
objective is the paper's Eq. 6 (mean WikiText-2/PTB validation perplexity of the masked, not
fine-tuned model); trials stopped early by the pruner have no value and do not move the curve.
TPE's first 10 trials are its random start-up; Optuna draws them with a RandomSampler seeded
like the study, so with the same seed they equal the random sampler's first 10 (seed 1 here).
The seed-0 studies do not share them: they were interrupted and resumed across machines, and a
resumed sampler restarts its generator from the seed. After the start-up TPE's model takes over.
The trial table of every study is stored in its variant record; ``render.py`` draws the best-so-far
curves (benchmarks/results/fig4_convergence.png).

    python benchmarks/paper/fig4.py --seeds 0,1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import bench  # noqa: E402
from bench import Search, Variant  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = bench.script_parser(__doc__)
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--trials", type=int, default=Search.trials)
    p.add_argument("--seeds", default="0,1", help="search seeds per sampler")
    p.add_argument("--samplers", default="tpe,random")
    return p


def plan(args) -> list[tuple[Variant, tuple[str, ...]]]:
    """One study per (sampler, seed); no evaluation beyond the search itself."""
    seeds = [int(s) for s in args.seeds.split(",") if s]
    return [(Variant(model=args.model, method="adapruner", ratio=args.ratio,
                     search=bench.smoke_search(Search(trials=args.trials, sampler=sampler, seed=seed), args.smoke)), ())
            for seed in seeds for sampler in args.samplers.split(",")]


def main() -> int:
    args = build_parser().parse_args()
    ctx = bench.context_from_args(args)
    from tqdm import tqdm

    failures = []
    jobs = plan(args)
    todo = [v for v, _ in jobs if not (bench.read_json(ctx.record_path(v)) or {}).get("search")]
    print(f"fig4: {len(jobs)} studies, {len(todo)} to run (results in {ctx.results})", flush=True)
    for v in tqdm(todo, desc="fig4", unit="study", disable=ctx.dry_run):
        try:
            bench.ensure_built(ctx, v)
        except (RuntimeError, OSError) as e:
            print(f"FAILED {v.slug()}: {e}", flush=True)
            failures.append(v.slug())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
