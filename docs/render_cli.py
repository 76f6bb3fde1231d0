"""Render docs/cli.md, the command-line reference, from the parsers themselves.

    python docs/render_cli.py           # write
    python docs/render_cli.py --check   # exit 1 when docs/cli.md differs from what the parsers say now
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import rendering  # noqa: E402


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width: fix it for a stable page
    from adapruner.cli import COMMANDS, build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["# Command-line reference", "",
             "Every command's `--help`, as the installed version prints it (rendered by `docs/render_cli.py`).", "",
             "```text", parser.format_help().strip(), "```", ""]
    for name in COMMANDS:
        parts += [f"## adapruner {name}", "", "```text", subparsers.choices[name].format_help().strip(), "```", ""]
    return "\n".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    return rendering.write_or_check({REPO / "docs" / "cli.md": render()}, args.check, "python docs/render_cli.py")


if __name__ == "__main__":
    sys.exit(main())
