"""Paper Table 2 (and Table 8) analogue: the search ablations at 20 %, same trial budget each.

Rows (``adapruner search`` flags): the full joint search (shared with Table 1's AdaPruner row),
w/o data search (``--no-data-search``: random calibration windows, metric searched), w/o metric
search with fixed first-order (``--fixed-metric first``, LLM-Pruner element1, data searched) or
second-order Taylor (``--fixed-metric second``), and sequential instead of joint optimisation
(``--sequential``: half the budget on the data, half on the metric). ``--table8`` adds the
calibration-space variants of Table 8 (10 subspaces, score D). Every row has the same budget of
``--trials`` finished trials and the same evaluation columns as Table 1 (WikiText-2, PTB, seven
zero-shot tasks); the README also lists each study's best validation objective.

    python benchmarks/paper/table2.py                 # resumable
    python benchmarks/paper/table2.py --table8 --evals wikitext2,ptb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import bench  # noqa: E402
from bench import Search, Variant  # noqa: E402

TABLE2 = ("full", "nodata", "first", "second", "sequential")
TABLE8 = ("subspaces", "score")


def build_parser() -> argparse.ArgumentParser:
    p = bench.script_parser(__doc__)
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--trials", type=int, default=Search.trials, help="budget of every study (same for all rows)")
    p.add_argument("--ablations", default=",".join(TABLE2), help="rows: " + ", ".join(bench.ABLATIONS))
    p.add_argument("--table8", action="store_true", help="also the Table 8 calibration-space rows")
    p.add_argument("--evals", default="wikitext2,ptb,zeroshot")
    return p


def plan(args) -> list[tuple[Variant, tuple[str, ...]]]:
    """One job per ablation, in the order of the paper's table."""
    names = [a for a in args.ablations.split(",") if a] + (list(TABLE8) if args.table8 else [])
    evals = tuple(e for e in args.evals.split(",") if e)
    return [(Variant(model=args.model, method="adapruner", ratio=args.ratio,
                     search=bench.smoke_search(Search(trials=args.trials, ablation=a), args.smoke)), evals)
            for a in names]


def main() -> int:
    return bench.main_eval_jobs(build_parser(), plan, "table2")


if __name__ == "__main__":
    sys.exit(main())
