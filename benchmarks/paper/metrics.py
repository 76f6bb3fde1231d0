"""Every importance metric at 20 %: WikiText-2 / PTB test perplexity and scoring time.

One row per ``adapruner prune --metric M`` for every metric the product has (random, l1, l2,
vector, element1, element2, adapruner with its default coefficients, saap, wanda-sp, flap, and
flap with FLAP's bias compensation), all
with the same 10 calibration windows (book pool, --seed 0) and the default uniform allocation.
The scoring time is the prune report's ``plan_s`` (calibration batch, statistics pass, scores
and allocation; model loading and surgery excluded). Rows shared with Table 1 (same settings)
are the same cached records, so nothing is computed twice.

    python benchmarks/paper/metrics.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import bench  # noqa: E402
from bench import Variant  # noqa: E402

# The product's metrics in the order of the README's metric section.
METRICS = ("random", "l1", "l2", "vector", "element1", "element2", "adapruner", "saap", "wanda-sp", "flap", "flap-bc")


def build_parser():
    p = bench.script_parser(__doc__)
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--metrics", default=",".join(METRICS))
    return p


def plan(args) -> list[tuple[Variant, tuple[str, ...]]]:
    """The dense reference and one pruned row per metric, perplexity columns only."""
    ppl = ("wikitext2", "ptb")
    return [(Variant(model=args.model), ppl)] + [
        (Variant(model=args.model, method=m, ratio=args.ratio), ppl) for m in args.metrics.split(",") if m]


def main() -> int:
    return bench.main_eval_jobs(build_parser(), plan, "metrics")


if __name__ == "__main__":
    sys.exit(main())
