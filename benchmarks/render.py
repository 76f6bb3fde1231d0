"""Render every generated page and table from the results files, or check that none is stale.

One command for all of them: the paper tables (``benchmarks/README.md``), the recipes table
(``benchmarks/results/recipes/``, ``docs/results.md``), the scale tables
(``benchmarks/scale/README.md``, ``docs/streaming.md``), the quick start's figures (``README.md``),
the search's speed, the objective study and its result (``docs/search.md``), the bad-input battery (``docs/pruning.md``) and the command-line reference
(``docs/cli.md``).

    python benchmarks/render.py           # write
    python benchmarks/render.py --check   # CI: exit 1 when any page differs from what its results render to
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RENDERERS = ("benchmarks/paper/render.py", "benchmarks/recipes/render.py", "benchmarks/scale/render.py",
             "benchmarks/quickstart/render.py", "benchmarks/search/render.py", "benchmarks/reliability/render.py",
             "benchmarks/quality/render_objective_study.py", "benchmarks/quality/render_objective_result.py",
             "docs/render_cli.py")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    failed = [r for r in RENDERERS
              if subprocess.run([sys.executable, str(REPO / r), *(["--check"] if args.check else [])]).returncode]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
