"""``adapruner data download --to DIR``: the evaluation and calibration data directory from public sources.

Builds the layout of the project's offline copy (WikiText-2, PTB, book texts, Alpaca, the seven
zero-shot sets) from the Hugging Face hub and NLTK's Gutenberg archive; every file is checked
(rows as in the data README, sha256 for the books) before it is moved into place, and files that
are already there and pass the check are kept. Pass the directory as --data-dir or
$ADAPRUNER_DATA_DIR afterwards.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``data`` and its sub-command ``download``."""
    from adapruner.data.download import GROUPS

    p = subparsers.add_parser("data", help="download the evaluation and calibration data",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    d = sub.add_parser("download", help="build a data directory from the hub (checked file by file)")
    d.add_argument("--to", required=True, help="the data directory to fill (created if missing)")
    d.add_argument("--only", default=None,
                   help=f"comma-separated data sets (default all): {', '.join(GROUPS)}")
    return p


def run(args: argparse.Namespace) -> int:
    """Download, check and print what is in place."""
    from adapruner.data.download import download

    groups = [g.strip() for g in args.only.split(",") if g.strip()] if args.only else None
    results = download(args.to, groups)
    for name, files in results.items():
        print(f"{name}: " + ", ".join(f"{rel.split('/')[-1]} {got} rows" if want != 1 else f"{rel.split('/')[-1]} ok"
                                      for rel, (got, want) in files.items()))
    print(f"data directory ready: {args.to} (use --data-dir {args.to} or export ADAPRUNER_DATA_DIR={args.to})")
    return 0
