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


def costs(result: dict | None) -> str:
    """Where a full-space trial's time goes, from the quick start's study (docs/search.md)."""
    c = (result or {}).get("costs")
    if not c or not c.get("first_trial"):
        return "Measured by `python benchmarks/quickstart/run.py` (pending)."
    m, f = result["machine"], c["first_trial"]
    return (f"Where the quick start's search spent its time ({result['search']['trials']} trials of "
            f"`{result['command']}` on {m['cores']} CPU cores, {m['cpu']}; `benchmarks/results/quickstart/run.json`): "
            f"a trial's plan (the calibration pass, the scores, the allocation, the update's solves) took a median "
            f"**{c['median_plan_s']:.1f} s** and its masked evaluation **{c['median_eval_s']:.1f} s**; the first trial "
            f"also paid the one-off work, {f['plan_s']:.0f} s of plan (mostly the reconstruction's Gram pass) and "
            f"{f['cache_s']:.0f} s for the dense validation pass. The early-stop rule ended {c['stopped_early']} "
            f"trials" + (f" (at step {', '.join(map(str, c['stopped_at_steps']))})" if c["stopped_at_steps"] else "")
            + ".")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    result = json.loads(RESULT.read_text()) if RESULT.is_file() else None
    readme = rendering.REPO / "README.md"
    page = rendering.with_block(readme.read_text(), "quickstart", SCRIPT, block(result))
    search = rendering.REPO / "docs" / "search.md"
    costs_page = rendering.with_block(search.read_text(), "search-costs", SCRIPT, costs(result))
    return rendering.write_or_check({readme: page, search: costs_page}, args.check, f"python {SCRIPT}")


if __name__ == "__main__":
    sys.exit(main())
