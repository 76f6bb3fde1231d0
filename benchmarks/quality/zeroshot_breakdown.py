"""What the 7-task zero-shot average is made of: per task, with and without BoolQ, against BoolQ's
constant answers.

BoolQ is a yes/no task whose first 500 validation questions are 63 % "yes": a model that always
answers "yes" scores 63.0 and one that always answers "no" 37.0, a spread of 26 points, 3.7
points of the 7-task average, larger than every difference between the SmolLM2 models this
project compares. Dense SmolLM2-135M itself scores 42.0 on it. This script reads recorded
``adapruner eval`` JSON files (nothing is re-run) and prints, for each model, the seven
accuracies, the 7-task average and the 6-task average without BoolQ (each with its standard
error), and BoolQ's two constant-answer baselines on the same documents.

    python benchmarks/quality/zeroshot_breakdown.py --data-dir ../shared/data

Results: ``benchmarks/results/zeroshot_breakdown/{table.md,rows.json}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench  # noqa: E402

R = "benchmarks/results/"
# Recorded evaluations at --limit 500 (float32 or bf16 as each file records), named as the tables name them.
DEFAULT_MODELS = (
    ("dense", R + "full_space/zeroshot_dense_limit500.json"),
    ("searched 20 % (full space, untuned)", R + "full_space/zeroshot_limit500.json"),
    ("searched 20 % + LoRA 20 min", R + "recovery/equal_time_20min_searched_wiki/zeroshot_limit500_lora.json"),
    ("searched 20 % + distillation 20 min (KL only)", R + "recovery/equal_time_20min_searched_wiki/zeroshot_limit500_distill.json"),
    ("searched 20 % + distillation 20 min (KL + 0.5 next-token, fused)",
     R + "recovery/searched_wiki_lm_fused/eval_distill.json"),
    ("searched 20 % + LoRA 20 min (rerun beside the next row)",
     R + "recovery/equal_time_20min_searched_wiki_lm_side_by_side/eval_lora.json"),
    ("searched 20 % + distillation 20 min (KL + 0.5 next-token, side by side)",
     R + "recovery/equal_time_20min_searched_wiki_lm_side_by_side/eval_distill.json"),
    ("element1-20, untuned", R + "recovery/equal_time_20min_wiki_lm/eval_untuned.json"),
    ("element1-20 + LoRA 20 min", R + "recovery/equal_time_20min_wiki_lm/eval_lora.json"),
    ("element1-20 + distillation 20 min", R + "recovery/equal_time_20min_wiki_lm/eval_distill.json"),
    ("element1-50, untuned", R + "recovery/equal_time_20min_wiki_lm_r50/eval_untuned.json"),
    ("element1-50 + LoRA 20 min", R + "recovery/equal_time_20min_wiki_lm_r50/eval_lora.json"),
    ("element1-50 + distillation 20 min", R + "recovery/equal_time_20min_wiki_lm_r50/eval_distill.json"),
)


def boolq_yes_share(data_dir: Path, limit: int | None) -> float:
    """Share of "yes" among the BoolQ documents the harness scored (its first ``limit``)."""
    from adapruner.data.zeroshot import convert_boolq

    labels = [r["label"] for r in convert_boolq(data_dir / "zeroshot" / "boolq" / "val.jsonl")][:limit]
    return sum(labels) / len(labels)


def main() -> int:
    from adapruner.core.io import write_json, write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=bench.DEFAULT_DATA)
    p.add_argument("--model", action="append", default=[], metavar="NAME=EVAL_JSON",
                   help="an `adapruner eval` output with zero-shot results (default: the recorded ones above)")
    p.add_argument("--out", default=str(bench.REPO / R / "zeroshot_breakdown"))
    args = p.parse_args()
    if any("=" not in m for m in args.model):
        raise SystemExit("--model takes NAME=EVAL_JSON")
    # The recorded files are named from the repository root; the user's from where they stand.
    models = ([(name, Path(path)) for name, path in (m.split("=", 1) for m in args.model)]
              or [(name, bench.REPO / path) for name, path in DEFAULT_MODELS])

    rows, limits = [], set()
    for name, path in models:
        if not path.is_file():
            if args.model:
                raise SystemExit(f"{path}: no such file (--model {name}=...)")
            print(f"skipped (not measured yet): {name}: {path}", file=sys.stderr)
            continue
        zs = (bench.read_json(path) or {}).get("zeroshot")
        if not zs:
            raise SystemExit(f"{path} holds no zero-shot results; evaluate with `adapruner eval --tasks all --limit N`")
        entry = {"zeroshot": zs}
        limits.add(zs["protocol"]["limit"])
        avg7, se7 = bench.zeroshot_average(entry)
        avg6, se6 = bench.zeroshot_average(entry, leave_out=("boolq",))
        rows.append({"model": name, "file": str(path.relative_to(bench.REPO) if path.is_relative_to(bench.REPO) else path),
                     "tasks": {t: round(100 * zs[t][zs[t]["average_metric"]], 2) for t in bench.ZEROSHOT_TASKS},
                     "avg7": round(avg7, 2), "se7": round(se7, 2), "avg6_without_boolq": round(avg6, 2),
                     "se6": round(se6, 2)})
    if not rows:
        raise SystemExit("no recorded evaluation found; pass --model NAME=EVAL_JSON")
    if len(limits) != 1:
        raise SystemExit(f"the evaluations use different --limit values ({sorted(limits, key=str)}); compare like with like")
    limit = limits.pop()
    yes = 100 * boolq_yes_share(Path(args.data_dir), limit)

    # Retention: a model's average as a share of the dense model's (the papers' "% of dense").
    dense = next((r for r in rows if r["model"] == "dense"), None)
    for r in rows:
        if dense is not None:
            r["retention7"] = round(100 * r["avg7"] / dense["avg7"], 1)
            r["retention6"] = round(100 * r["avg6_without_boolq"] / dense["avg6_without_boolq"], 1)
    head = ["model", "BoolQ", "PIQA", "HellaSw.", "WinoG.", "ARC-e", "ARC-c", "OBQA", "7-task avg ± se",
            "6 tasks, no BoolQ ± se", *(["% of dense (7 / 6 tasks)"] if dense is not None else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([r["model"], *(f"{r['tasks'][t]:.1f}" for t in bench.ZEROSHOT_TASKS),
                                        f"{r['avg7']:.2f} ± {r['se7']:.2f}",
                                        f"{r['avg6_without_boolq']:.2f} ± {r['se6']:.2f}",
                                        *([f"{r['retention7']:.1f} / {r['retention6']:.1f}"] if dense is not None
                                          else [])]) + " |")
    lines += ["", f"BoolQ, first {limit} validation documents: always \"yes\" scores {yes:.1f}, always \"no\" "
              f"{100 - yes:.1f} ({(100 - yes) / 7:.1f} to {yes / 7:.1f} points of a 7-task average)."]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "table.md", table)
    write_json(out / "rows.json", {"limit": limit, "boolq_yes_percent": round(yes, 2), "rows": rows,
                                   "command": "python benchmarks/quality/zeroshot_breakdown.py " + " ".join(sys.argv[1:])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
