"""Paper Table 10 analogue: greedy generations of the same prompts from dense, element1, AdaPruner.

The prompts are ``adapruner.eval.stats.SAMPLE_PROMPTS`` (the first is the paper's "The universe is
the entirety of space, time, matter, and energy that exists"); each pruned 20 % model (Table 1
variants, without recovery) is run by ``adapruner stats --model DENSE --model2 PRUNED`` with
timing reduced to one repeat, and the greedy continuations (``--max-new-tokens``) of both models
are stored.

    python benchmarks/paper/table10.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import bench  # noqa: E402
from bench import Search, Variant  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = bench.pruned_models_parser(__doc__)
    p.add_argument("--max-new-tokens", type=int, default=64)
    return p


def plan(args) -> list[Variant]:
    out = []
    for m in (m for m in args.methods.split(",") if m):
        search = bench.smoke_search(Search(trials=args.trials), args.smoke) if m == "adapruner" else None
        out.append(Variant(model=args.model, method=m, ratio=args.ratio, search=search))
    return out


def flags(args) -> list[str]:
    return ["--repeats", "1", "--warmup", "0", "--decode-steps", "1", "--context", "8",
            "--max-new-tokens", str(8 if args.smoke else args.max_new_tokens), "--seed", "0"]


def main() -> int:
    return bench.main_stats_rows(build_parser(), plan, "table10", flags)


if __name__ == "__main__":
    sys.exit(main())
