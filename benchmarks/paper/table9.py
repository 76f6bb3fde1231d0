"""Paper Table 9 analogue: parameters, MACs, peak memory, prefill latency and decode tokens/s.

``adapruner stats --model DENSE --model2 PRUNED`` loads both models into one process and
interleaves their timed repeats, so the dense/pruned ratios come from the same conditions (batch 1,
a 64-token prompt as in the paper, median of --repeats runs after warm-up). One row per pruned
20 % model (default: AdaPruner searched, and LLM-Pruner element1); the pruned models are the
Table 1 variants (built when missing).

    python benchmarks/paper/table9.py
    python benchmarks/paper/table9.py --methods element1 --repeats 30
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
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--decode-steps", type=int, default=32)
    return p


def pruned_variant(args, method: str) -> Variant:
    search = bench.smoke_search(Search(trials=args.trials), args.smoke) if method == "adapruner" else None
    return Variant(model=args.model, method=method, ratio=args.ratio, search=search)


def flags(args) -> list[str]:
    return ["--repeats", str(2 if args.smoke else args.repeats), "--warmup", str(args.warmup),
            "--context", str(args.context), "--decode-steps", str(args.decode_steps), "--no-samples", "--seed", "0"]


def plan(args) -> list[Variant]:
    return [pruned_variant(args, m) for m in args.methods.split(",") if m]


def main() -> int:
    return bench.main_stats_rows(build_parser(), plan, "table9", flags)


if __name__ == "__main__":
    sys.exit(main())
