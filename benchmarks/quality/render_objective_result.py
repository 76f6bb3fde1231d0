"""The result table of ``objective_result.py``: the searched model against dense, the baselines
and the perplexity-searched model, with paired differences and the retention of dense zero-shot.

Per ratio and stage (untuned, after distillation): each model's six-task mean (without BoolQ)
and 7-task mean (with BoolQ's first 500 examples) with their standard errors, their retention of
dense's, the searched model's paired difference against it on the same six-task examples (SE, z),
and full-test WikiText-2 / PTB perplexity.

    python benchmarks/quality/render_objective_result.py [--check]   # into docs/search.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import rendering  # noqa: E402
from render_objective_study import PAGE, load_outcomes  # noqa: E402  (the study's page holds this block too)
from render_objective_study import RESULTS as STUDY  # noqa: E402

RESULTS = HERE.parents[1] / "benchmarks" / "results" / "objective_result"
SCRIPT = "benchmarks/quality/render_objective_result.py"
COMMAND = "python benchmarks/quality/objective_result.py --data-dir ../shared/data --objective OBJ"


def outcomes(key: str, row: dict, results: Path) -> dict | None:
    """The six-task per-example outcomes of a row (the study's file when the row reuses it)."""
    path = STUDY / "zeroshot" / f"{row['study_row']}.json" if "study_row" in row \
        else results / "zeroshot" / f"{key.replace('/', '-')}.json"
    return load_outcomes(path) if path.is_file() else None


def seven_tasks(key: str, row: dict, results: Path) -> dict | None:
    """The 7-task mean (the six tasks and BoolQ) with its SE, once BoolQ is measured."""
    from adapruner.eval.significance import summarise

    six, boolq = outcomes(key, row, results), results / "boolq" / f"{key.replace('/', '-')}.json"
    return summarise({**six, **load_outcomes(boolq)})["mean"] if six is not None and boolq.is_file() else None


def table(rows: dict, results: Path, ratio_key: str, stage: str) -> list[str]:
    """One ratio's table at one stage; the searched model first, compared with every other."""
    from adapruner.eval.significance import compare

    suffix = "" if stage == "untuned" else "+distill"
    keys = [k for k, r in rows.items() if k.startswith(ratio_key + "/") and r["stage"] == stage]
    if stage != "untuned" and f"{ratio_key}/dense" in rows:
        keys = [f"{ratio_key}/dense"] + keys
    keys.sort(key=lambda k: _rank(rows[k]["model"]))  # stable: dense, searched, perplexity-searched, baselines
    searched = next((k for k in keys if rows[k]["model"].startswith("searched-") and rows[k]["model"] != "searched-ppl"),
                    next((k for k in keys if rows[k]["model"] == "searched-ppl"), None))
    dense_key = f"{ratio_key}/dense"
    dense = rows.get(dense_key, {})
    dense_seven = seven_tasks(dense_key, dense, results) if dense else None
    mine = outcomes(searched, rows[searched], results) if searched else None
    lines = ["| model | six tasks (SE) | 7 tasks (SE) | retention six / 7 | searched - model (SE, z) | "
             "WikiText-2 / PTB test |", "|---|---|---|---|---|---|"]
    for key in keys:
        r = rows[key]
        if "zeroshot" not in r:
            lines.append(f"| {r['model']}{suffix if r['model'] != 'dense' else ''} | pending | | | | |")
            continue
        six, theirs, seven = r["zeroshot"]["mean"], outcomes(key, r, results), seven_tasks(key, r, results)
        retention = "-"
        if "zeroshot" in dense:
            retention = f"{100 * six['value'] / dense['zeroshot']['mean']['value']:.1f} %" + (
                f" / {100 * seven['value'] / dense_seven['value']:.1f} %" if seven and dense_seven else "")
        diff = "-"
        if mine is not None and theirs is not None and key != searched:
            c = compare(mine, theirs)["mean"]
            diff = f"{100 * c['difference']:+.2f} ({100 * c['se']:.2f}, z {c['z']:.1f})"
        test = f"{r['test_ppl']['wikitext2']:.1f} / {r['test_ppl']['ptb']:.1f}" if "test_ppl" in r else "pending"
        seven_text = f"{100 * seven['value']:.2f} ({100 * seven['se']:.2f})" if seven else "pending"
        label = r["model"] + (suffix if r["model"] != "dense" else "")
        lines.append(f"| {label} | {100 * six['value']:.2f} ({100 * six['se']:.2f}) | {seven_text} | {retention} | "
                     f"{diff} | {test} |")
    return lines


def _rank(model: str) -> int:
    return 0 if model == "dense" else 2 if model == "searched-ppl" else 1 if model.startswith("searched-") else 3


def render(rows: dict, results: Path) -> str:
    """The whole block: one table per ratio and stage, or a pending line."""
    if not rows:
        return f"Measured by `{COMMAND}` once the study has chosen the objective (pending)."
    lines = [f"`{COMMAND}` (resumable; rows in `benchmarks/results/objective_result/rows.json`): the six tasks on the "
             "objective study's subsets, BoolQ's first 500 examples for the 7-task mean, full-test perplexity; "
             "retention is of dense's mean; the paired difference is on the same examples. The paper keeps 93.3 % "
             "of dense's 7-task mean untuned and 97 % after tuning (LLaMA-7B, 20 %)."]
    for ratio_key in sorted(dict.fromkeys(k.split("/")[0] for k in rows), key=lambda r: int(r.removeprefix("r"))):
        for stage in ("untuned", "distill"):
            if any(k.startswith(ratio_key + "/") and rows[k]["stage"] == stage for k in rows):
                title = f"{ratio_key.removeprefix('r')} %, " + ("untuned" if stage == "untuned" else
                                                                "after the 20-minute distillation")
                lines += ["", f"{title}:", "", *table(rows, results, ratio_key, stage)]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--check", action="store_true", help="exit 1 when docs/search.md is stale")
    args = p.parse_args()
    rows_path = args.results / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    page = rendering.with_block(PAGE.read_text(), "objective-result", SCRIPT, render(rows, args.results))
    return rendering.write_or_check({PAGE: page}, args.check, f"python {SCRIPT}")


if __name__ == "__main__":
    raise SystemExit(main())
