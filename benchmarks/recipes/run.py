"""The recipes that need no search, measured side by side: the table that chooses ``prune``'s default.

One ``adapruner prune`` per recipe and ratio (20 % and 50 %, SmolLM2-135M-Instruct, the 10 book
windows of ``--seed 0``, every other setting at its default), each evaluated on three text
domains: WikiText-2 and PTB test (the papers' protocol) and the responses of the Alpaca
instruction data, a domain that neither calibration (books) nor any search objective sees.
A recipe is generic: a metric, a weight update and an allocation mode, never calibration
indices, knots or other values found by an earlier search. Rows are cached in
``benchmarks/results/variants/`` like the paper tables' (a rerun skips finished work).

    python benchmarks/recipes/run.py --eval-dtype float32 --max-windows 128   # ~40 min on 2 cores
    python benchmarks/recipes/render.py          # the table in benchmarks/results/recipes.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench  # noqa: E402
from bench import Variant  # noqa: E402

# The product's recipes (``prune --recipe NAME``), then candidates that are not recipes (yet).
RECIPES = ("recipe-wanda-sp-reconstruct", "recipe-flap-bias", "recipe-element1", "wanda-sp-bc", "wanda-sp-rec1",
           "flap-rec")
RATIOS = (0.2, 0.5)
# For comparison: the full-space search's model at 20 % (rebuilt from its best_config.json).
SEARCHED = Variant(method="searched-full", ratio=0.2)
DOMAINS = ("wikitext2", "ptb", "alpaca")


def build_parser():
    p = bench.script_parser(__doc__)
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--ratios", default=",".join(str(r) for r in RATIOS))
    return p


def plan(args) -> list[tuple[Variant, tuple[str, ...]]]:
    """The dense reference, then every recipe at every ratio (lower ratio first: cheaper and the
    default's main use)."""
    jobs = [(Variant(model=args.model), DOMAINS)]
    for ratio in (float(r) for r in args.ratios.split(",")):
        jobs += [(Variant(model=args.model, method=m, ratio=ratio), DOMAINS) for m in args.recipes.split(",") if m]
    return jobs + [(SEARCHED, DOMAINS)]


def main() -> int:
    return bench.main_eval_jobs(build_parser(), plan, "recipes")


if __name__ == "__main__":
    sys.exit(main())
