"""Render the README's quick-start figures from ``benchmarks/results/quickstart/run.json``.

    python benchmarks/quickstart/render.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rendering  # noqa: E402

RESULT = rendering.REPO / "benchmarks" / "results" / "quickstart" / "run.json"
SCRIPT = "benchmarks/quickstart/render.py"


def block(result: dict | None) -> str:
    if not result or "test_ppl" not in result:
        return "The quick start's time and result are measured by `python benchmarks/quickstart/run.py` (pending)."
    s, m, ppl = result["search"], result["machine"], result["test_ppl"]
    expected = f" (it printed ~{s['expected_min']} min before trial 1)" if s.get("expected_min") is not None else ""
    return (f"Measured from a fresh clone and venv on {m['cores']} CPU cores ({m['cpu']}), nothing else running: "
            f"command 1 took **{s['wall_s'] / 60:.1f} minutes**{expected} for {s['trials']} trials "
            f"(median {s['median_trial_s']:.0f} s), and its model scores **WikiText-2 {ppl['wikitext2']:.1f}** / "
            f"PTB {ppl['ptb']:.1f} on the full test splits (`benchmarks/quickstart/run.py`). A GPU makes trials "
            "several times faster; more trials find better models (the 100-trial row above).")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    result = json.loads(RESULT.read_text()) if RESULT.is_file() else None
    readme = rendering.REPO / "README.md"
    page = rendering.with_block(readme.read_text(), "quickstart", SCRIPT, block(result))
    return rendering.write_or_check({readme: page}, args.check, f"python {SCRIPT}")


if __name__ == "__main__":
    sys.exit(main())
