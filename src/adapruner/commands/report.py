"""``adapruner report RUN_DIR...``: one markdown report with plots from one or more run directories.

Reads whatever each directory holds (pruning_report.json, trials.csv, finetune_report.json,
eval and stats JSON, also inside a ``model/`` sub-directory) and writes ``--out`` (report.md)
with tables (size, perplexity, zero-shot accuracy, recovery, deployment statistics) and plots
(per-layer kept widths, PPL and accuracy per run, search convergence) in ``<stem>_plots/``.
Put the dense model's run first: deltas are relative to the first directory.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``report`` and its flags."""
    p = subparsers.add_parser("report", help="markdown report with plots from run directories",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by adapruner commands")
    p.add_argument("--out", default="report.md", help="markdown file to write (default report.md)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def run(args: argparse.Namespace) -> int:
    """Collect the runs and write the report."""
    from adapruner.report import write_report

    from pathlib import Path

    from adapruner.core.io import check_output, check_writable

    out = Path(args.out) / "report.md" if Path(args.out).is_dir() else Path(args.out)
    check_output(out, args.runs, overwrite=args.overwrite, may_lie_inside=True)
    check_output(out.parent / f"{out.stem}_plots", args.runs, may_lie_inside=True)
    check_writable(args.out)
    out = write_report(args.runs, args.out)
    print(f"wrote {out}")
    return 0
