"""The model searched with a chosen objective against dense, the baselines and the
perplexity-searched model, at 20 % and 50 %, untuned and after the 20-minute distillation.

Every model gets the objective study's zero-shot protocol (the six tasks without BoolQ on the
same leading subsets, per-example outcomes kept, so every comparison is paired on the same
examples), BoolQ on its first ``BOOLQ_COUNT`` examples (for the 7-task retention beside the
paper's), and full-test WikiText-2 / PTB perplexity; every pruned model then gets the equal-time
table's distillation recipe (``benchmarks/recovery/equal_time.py``, 20 minutes) and the same
evaluations again. The models at each ratio:

- ``searched-OBJ``: ``adapruner search --space full --objective OBJ`` as a user runs it (the
  recipes first, the default early stop, ``--trials`` trials, seed 0), its delivered model;
- ``searched-ppl``: the same search scored by validation perplexity (the paper's objective). At
  20 % it is the recorded 100-trial full-space search's best, which the objective study holds;
- ``element1``, ``wanda-sp``, ``flap-bias``: the baselines with their defaults; and ``dense``.

At 20 % the objective study's rows of the models it holds (dense, element1, wanda-sp, flap-bias
and the recorded search's best) are reused: the same models on the same examples. Resumable step
by step; one row per model in ``benchmarks/results/objective_result/rows.json``, and each search's
``best_config.json``, ``trials.csv`` and ``convergence.png`` in ``search-rNN-OBJ/`` beside it:

    python benchmarks/quality/objective_result.py --data-dir ../shared/data --objective kl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "benchmarks" / "results" / "objective_result"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "benchmarks" / "recovery"))
import equal_time  # noqa: E402
import objective_study as study  # noqa: E402

BASELINES = ("element1", "wanda-sp", "flap-bias")
# The recorded full-space search's best trial, as the objective study rebuilt it.
RECORDED_BEST = "trial-r01-n077"
BOOLQ_COUNT = 500


def models(ratio: float, objective: str) -> list[str]:
    """The model names compared at ``ratio`` (``dense`` first, the searched model second)."""
    searched = [f"searched-{objective}"] + (["searched-ppl"] if objective != "ppl" else [])
    return ["dense", *searched, *BASELINES]


def study_name(name: str, ratio: float) -> str | None:
    """The objective study's row that is this model, if the study holds it (20 % only)."""
    if name == "dense":
        return "dense"
    if ratio != study.RATIO:
        return None
    return RECORDED_BEST if name == "searched-ppl" else name if name in BASELINES else None


def build(name: str, ratio: float, work: Path, config: dict | str | None, search_flags: list[str],
          trials: int, common: list[str]) -> str:
    """The model directory of ``name`` at ``ratio``: pruned with ``config`` (a baseline, or the
    study's configuration of a model it holds) or searched, into ``work`` when missing."""
    if name == "dense":
        return study.MODEL
    if config is None:
        run = work / "search"
        if not (run / "model" / "config.json").is_file():
            study.adapruner("search", "--model", study.MODEL, "--ratio", str(ratio), "--space", "full",
                            "--objective", name.removeprefix("searched-"), "--trials", str(trials), "--seed", "0",
                            *search_flags, "--out", str(run), *common)
        return str(run / "model")
    run = work / "run"
    if not (run / "model" / "config.json").is_file():
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.json").write_text(json.dumps(config))
        study.adapruner("prune", "--model", study.MODEL, "--ratio", str(ratio), "--config", str(work / "config.json"),
                        "--out", str(run), "--overwrite", *common)
    return str(run)


def recover(model: str, work: Path, data_dir: Path) -> str:
    """``model`` after the equal-time table's distillation recipe (20 minutes on this machine)."""
    tuned = work / "distill"
    if not (tuned / "finetune_report.json").is_file():
        args = equal_time.parser().parse_args(["--data-dir", str(data_dir)])
        budget, flags = equal_time.recipe(args)
        study.adapruner("finetune", "--model", model, *flags["distill"], *budget, "--out", str(tuned), "--overwrite",
                        "--device", "cpu", "--data-dir", str(data_dir))
    return str(tuned)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--objective", required=True, choices=["ppl", "kl", "mix"],
                   help="the objective the searched model is found with (the study's choice)")
    p.add_argument("--ratios", default="0.2,0.5")
    p.add_argument("--trials", type=int, default=100, help="the searches' budget (the recorded search's: 100)")
    p.add_argument("--scratch", type=Path, default=Path(os.environ.get("ADAPRUNER_BENCH_DIR", "/tmp/adapruner-bench")))
    p.add_argument("--search-flags", default="", help="further flags of the searches, e.g. '--finalists 5'")
    p.add_argument("--no-recovery", action="store_true", help="untuned models only")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    data_dir = Path(args.data_dir).resolve()
    common = ["--device", "cpu", "--data-dir", str(data_dir)]
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    rows_path = results / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    study_rows = json.loads((study.RESULTS / "rows.json").read_text()) if (study.RESULTS / "rows.json").is_file() else {}

    stages = ("untuned",) if args.no_recovery else ("untuned", "distill")
    for stage in stages:
        for ratio in [float(r) for r in args.ratios.split(",") if r]:
            for name in models(ratio, args.objective):
                if stage == "distill" and name == "dense":
                    continue
                key = f"r{round(ratio * 100)}/{name}" + ("" if stage == "untuned" else "+distill")
                row = rows.get(key, {"ratio": ratio, "model": name, "stage": stage})
                reused = study_name(name, ratio)
                if reused and reused not in study_rows:
                    reused = None  # not in the study yet: evaluated here
                if reused and stage == "untuned":
                    # The study's outcomes of the same model on the same examples; BoolQ is added here.
                    row.update({s: study_rows[reused][s] for s in ("zeroshot", "test_ppl") if s in study_rows[reused]},
                               study_row=reused)
                work = args.scratch / "objective_result" / f"r{round(ratio * 100)}" / name
                file_name = key.replace("/", "-")
                steps = {
                    "zeroshot": lambda: study._study_zeroshot(model, work / stage, file_name, results, "zeroshot",
                                                              dict(study.STUDY_COUNTS), common),
                    "boolq": lambda: study._study_zeroshot(model, work / stage, file_name, results, "boolq",
                                                           {"boolq": BOOLQ_COUNT}, common),
                    "test_ppl": lambda: study._test_ppl(model, work / stage, common),
                }
                if all(step in row for step in steps):
                    rows[key] = row
                    continue
                config = study_rows[reused]["config"] if reused else study.BASELINES.get(name)
                model = build(name, ratio, work, config, args.search_flags.split(), args.trials, common)
                if config is None and name != "dense":  # a search: keep what it chose and how it got there
                    kept = results / f"search-r{round(ratio * 100)}-{name.removeprefix('searched-')}"
                    kept.mkdir(parents=True, exist_ok=True)
                    for f in ("best_config.json", "trials.csv", "convergence.png"):
                        shutil.copyfile(work / "search" / f, kept / f)
                if stage == "distill":
                    model = recover(model, work, data_dir)
                for step, run in steps.items():
                    if step in row:
                        continue
                    print(f"== {key}: {step}", flush=True)
                    t = time.perf_counter()
                    row[step] = run()
                    row.setdefault("seconds", {})[step] = round(time.perf_counter() - t, 1)
                    rows[key] = row
                    tmp = rows_path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
                    os.replace(tmp, rows_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
