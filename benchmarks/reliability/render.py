"""Render the bad-input battery's outcome into ``docs/pruning.md`` from its results file
(``benchmarks/results/bad_input_battery.json``).

    python benchmarks/reliability/render.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rendering  # noqa: E402

RESULT = rendering.REPO / "benchmarks" / "results" / "bad_input_battery.json"
PAGE = rendering.REPO / "docs" / "pruning.md"
SCRIPT = "benchmarks/reliability/render.py"
OUTCOMES = ("clean", "traceback", "hang", "partial", "modified", "accepted", "no recovery")


def block(data: dict) -> str:
    counts = data["summary"]["counts"]
    others = {k: v for k, v in counts.items() if k not in OUTCOMES}
    cells = [f"{counts.get(k, 0)} {k}" for k in OUTCOMES] + [f"{v} {k}" for k, v in others.items()]
    cases = data["cases"]
    disk = [c for c in cases.values() if {"fsize", "fill", "tmpfs"} & set(c.get("fault") or {})]
    recovered = sum(1 for c in disk if (c.get("recovery") or {}).get("exit") == 0)
    proxy = [c["seconds"] for name, c in cases.items() if "proxy" in name and "seconds" in c]
    return (f"`python benchmarks/reliability/bad_input_battery.py --data-dir ../shared/data` runs "
            f"{data['summary']['cases']} bad inputs and faults over every command (damaged and hostile files in "
            "every reader, outputs that are or lie inside inputs, numbers out of range, empty names, paths of the "
            "wrong kind, a hub id behind a dead or a silent proxy, and in every writer a disk that refuses a write "
            "during the work: a file-size limit mid-write (EFBIG), a disk that fills up (ENOSPC), a read-only disk "
            "(EROFS)) and classifies each outcome; last run: "
            f"{', '.join(cells)}. After each of the {len(disk)} disk faults the same command, once the fault is "
            f"lifted, succeeded in the same directory in {recovered} (resuming where the run keeps its work)"
            + (f"; behind a dead or silent proxy a hub id is refused in at most {max(proxy):.1f} s" if proxy else "")
            + ".")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    page = rendering.with_block(PAGE.read_text(), "battery", SCRIPT, block(json.loads(RESULT.read_text())))
    return rendering.write_or_check({PAGE: page}, args.check, f"python {SCRIPT}")


if __name__ == "__main__":
    sys.exit(main())
