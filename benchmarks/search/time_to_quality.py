"""Time to quality of the search: best objective so far against wall time, per variant and seed.

Every run is the command a user types, ``adapruner search --model smollm2-135m --ratio 0.2``
(the full space, the default), timed from the process start: model loading and the study's
one-off work count. A run gets ``--minutes`` of wall time, then is stopped (SIGKILL: the study
keeps every finished trial) and its trials are read from its study. Variants differ in flags or in
the code they run (``--baseline COMMIT`` runs that commit from a git worktree, so today's search
and an earlier one run side by side in one benchmark). Runs interleave (variant A seed 0, variant
B seed 0, A seed 1, ...) so that drift of the machine over time skews no variant. Finished runs
are kept in ``--out`` and skipped, so the benchmark resumes.

Prints, per variant, the median over seeds of the minutes to reach 1.01x and 1.03x of the
reference objective (``--reference``, the recorded 100-trial full-space best, or the best any
run found if lower), the median best after ``--minutes`` and after the number of trials every run
finished (search quality per trial, whatever the machine's speed did); plots one median curve per
variant.

    python benchmarks/search/time_to_quality.py --data-dir ../shared/data --minutes 8 --seeds 0 1 2 \\
        --baseline 4b3268a --variant default= --variant "startup5=--startup-trials 5"
    python benchmarks/search/time_to_quality.py ... --variant "2x1=--workers 2"   # two workers, one core each
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = 142.85624425947572  # benchmarks/results/full_space/best_config.json (100 trials, 63 min)


def worktree(commit: str, work: Path) -> Path:
    """A checkout of ``commit`` (its ``src`` goes first on PYTHONPATH for that variant's runs)."""
    path = work / f"tree-{commit}"
    if not path.is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), commit], check=True,
                       capture_output=True)
    return path


def run_one(name: str, flags: list[str], src: Path | None, seed: int, minutes: float, work: Path,
            data_dir: str) -> dict:
    """One search of ``minutes`` wall time; its trials as ``(seconds since start, value)``.

    ``--workers N`` among the flags (this benchmark's, not the command's) runs N workers of the same
    command on one study (SQLite, the machine's cores split between them with OMP_NUM_THREADS)."""
    import optuna

    flags = list(flags)
    workers = 1
    if "--workers" in flags:
        at = flags.index("--workers")
        workers = int(flags[at + 1])
        del flags[at:at + 2]
    out = work / f"{name}-s{seed}"
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src / "src")
    cmd = [sys.executable, "-m", "adapruner.cli", "search", "--model", "smollm2-135m", "--ratio", "0.2",
           "--trials", "1000", "--seed", str(seed), "--out", str(out), "--data-dir", data_dir, *flags]
    commands = [cmd]
    if workers > 1:
        out.mkdir(parents=True)
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
        shared = ["--storage", f"sqlite:///{out / 'study.db'}"]
        commands = [[*cmd[:cmd.index("--out") + 1], str(out / f"worker{i}"), *cmd[cmd.index("--out") + 2:], *shared]
                    for i in range(workers)]
    start_wall = time.time()
    procs = []
    for i, command in enumerate(commands):
        log = open(work / f"{name}-s{seed}{f'-w{i}' if workers > 1 else ''}.log", "w")
        procs.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True), log))
    deadline = start_wall + 60 * minutes
    for proc, log in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    for proc, _ in procs:  # a worker that ended early leaves the others to the deadline, then all stop
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    points = sorted(((t.datetime_complete.timestamp() - start_wall, t.value)
                     for t in study.get_trials(deepcopy=False)
                     if t.value is not None and t.datetime_complete is not None and t.state.name == "COMPLETE"))
    stopped = sum(t.state.name == "PRUNED" for t in study.get_trials(deepcopy=False))
    subprocess.run(["rm", "-rf", str(out)], check=True)
    command = " ".join(commands[0][2:]) + (f" (one of {workers} workers, OMP_NUM_THREADS={env['OMP_NUM_THREADS']})"
                                           if workers > 1 else "")
    return {"variant": name, "seed": seed, "minutes": minutes, "command": command,
            "code": str(src) if src else "this checkout", "trials": [[round(t, 1), v] for t, v in points],
            "stopped_early": stopped}


def best_curve(trials: list) -> list[tuple[float, float]]:
    """``(minutes, best so far)`` at every improvement."""
    out, best = [], float("inf")
    for seconds, value in trials:
        if value < best:
            best = value
            out.append((seconds / 60, best))
    return out


def time_to(curve: list, target: float) -> float | None:
    """Minutes until the best so far is <= ``target`` (None: never within the run)."""
    return next((m for m, v in curve if v <= target), None)


def summarise(runs: list[dict], reference: float, minutes: float) -> dict:
    """Median minutes to 1.01x / 1.03x of the reference and median final best, per variant."""
    found = min([v for r in runs for _, v in r["trials"]], default=float("inf"))
    out = {"reference": min(reference, found),
           "reference_source": "the best any run found" if found < reference
           else "the recorded 100-trial full-space best"}
    reference = out["reference"]
    # Trials every run finished: the best after that many is search quality per trial, apart from
    # how fast the machine ran each run (its speed drifts between runs).
    out["common_trials"] = min((len(r["trials"]) for r in runs), default=0)
    for name in dict.fromkeys(r["variant"] for r in runs):
        mine = [best_curve(r["trials"]) for r in runs if r["variant"] == name]
        row = {"runs": len(mine), "final_best": [c[-1][1] if c else None for c in mine]}
        for factor in (1.01, 1.03):
            times = [time_to(c, factor * reference) for c in mine]
            # A run that never reached the target counts as taking longer than the budget.
            row[f"minutes_to_{factor}x"] = times
            row[f"median_minutes_to_{factor}x"] = statistics.median([t if t is not None else float("inf")
                                                                      for t in times])
        row["median_final_best"] = statistics.median([b for b in row["final_best"] if b is not None])
        half = [next((v for m, v in reversed(c) if m <= minutes / 2), float("inf")) for c in mine]
        row["median_best_at_half_time"] = statistics.median(half)
        row["median_best_after_common_trials"] = statistics.median(
            min((v for _, v in r["trials"][:out["common_trials"]]), default=float("inf"))
            for r in runs if r["variant"] == name)
        row["median_trials"] = statistics.median(len(r["trials"]) for r in runs if r["variant"] == name)
        row["median_stopped_early"] = statistics.median(r.get("stopped_early", 0) for r in runs if r["variant"] == name)
        out[name] = row
    return out


def plot(runs: list[dict], summary: dict, path: Path, minutes: float) -> None:
    """One line per run (thin) and per variant's median (thick) of best-so-far against minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [minutes * i / 200 for i in range(201)]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, name in enumerate(n for n in summary if isinstance(summary[n], dict) and "runs" in summary[n]):
        color = f"C{k}"
        values = []
        for r in (r for r in runs if r["variant"] == name):
            curve = best_curve(r["trials"])
            at = [next((v for m, v in reversed(curve) if m <= g), float("nan")) for g in grid]
            values.append(at)
            ax.plot(grid, at, color=color, alpha=0.3, lw=0.8)
        med = [statistics.median(col) if all(x == x for x in col) else float("nan") for col in zip(*values)]
        ax.plot(grid, med, color=color, lw=2.2, label=f"{name} (median of {len(values)})")
    ref = summary["reference"]
    for factor, style in ((1.01, "--"), (1.03, ":")):
        ax.axhline(factor * ref, color="gray", ls=style, lw=0.8, label=f"{factor}x reference ({factor * ref:.1f})")
    ax.set_xlabel("minutes since the command started (2 CPU cores)")
    ax.set_ylabel("best objective so far (mean val PPL)")
    ax.set_ylim(ref * 0.98, ref * 1.35)
    ax.legend(fontsize=8)
    ax.set_title("SmolLM2-135M, 20 %, full space: time to quality")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--minutes", type=float, default=8.0, help="wall time of each run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--baseline", help="a commit whose search runs as the variant 'baseline'")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="a variant of this checkout with extra search flags, e.g. 'mv=--sampler tpe-mv', or "
                        "'2x1=--workers 2' (two workers on one study, the cores split) (default: 'default=' only)")
    p.add_argument("--reference", type=float, default=REFERENCE)
    p.add_argument("--work", default="/tmp/adapruner-ttq")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/time_to_quality"))
    args = p.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    variants: list[tuple[str, list[str], Path | None]] = []
    if args.baseline:
        variants.append(("baseline", [], worktree(args.baseline, work)))
    for spec in args.variant or ["default="]:
        name, _, flags = spec.partition("=")
        variants.append((name, flags.split(), None))
    runs_file = out / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else []
    done = {(r["variant"], r["seed"]) for r in runs}
    for seed in args.seeds:
        for name, flags, src in variants:
            if (name, seed) in done:
                continue
            print(f"{name} seed {seed}: {args.minutes:g} min ...", flush=True)
            run = run_one(name, flags, src, seed, args.minutes, work, args.data_dir)
            if args.baseline and name == "baseline":
                run["code"] = f"commit {args.baseline}"
            runs.append(run)
            runs_file.write_text(json.dumps(runs, indent=1))
            curve = best_curve(run["trials"])
            print(f"  {len(run['trials'])} trials, best {curve[-1][1] if curve else float('nan'):.2f}", flush=True)
    summary = summarise(runs, args.reference, args.minutes)
    summary["protocol"] = {"model": "smollm2-135m", "ratio": 0.2, "space": "full (the default)",
                           "minutes_per_run": args.minutes, "seeds": args.seeds,
                           "command": "python benchmarks/search/time_to_quality.py " + " ".join(sys.argv[1:]),
                           "cpu": os.cpu_count()}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(runs, summary, out / "time_to_quality.png", args.minutes)
    print(json.dumps({k: {m: v for m, v in s.items() if m.startswith("median")} if isinstance(s, dict) else s
                      for k, s in summary.items() if k not in ("protocol",)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
