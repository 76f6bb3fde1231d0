"""Peak memory and wall time of ``adapruner prune`` at 20 %, streamed and in memory, from 135M to 8B
shapes (and the 70B's layer shape): resumable, one row per run in ``benchmarks/results/scale/runs.json``.

    python benchmarks/scale/run.py --data-dir ../shared/data [--only llama-3.1-8b] [--methods element1]

Each run is a child process; its peak resident set comes from the kernel (``wait4``'s
``ru_maxrss``, what ``/usr/bin/time -f %M`` prints), its time from the wall clock, the
predictions from the run's own report (``execution.predicted``). A finished row is skipped on the
next run; rows are committed as they land. Checkpoints come from ``shapes.py`` (random weights
of the real configurations, bfloat16 on disk) and are deleted after their runs when
``--cleanup`` is given (an 8B shape is 16 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scale"
sys.path.insert(0, str(HERE.parent))
from bench import weights_digest  # noqa: E402

METHODS = {
    "element1": ["--metric", "element1"],
    "wanda-sp+reconstruct-oneshot": ["--metric", "wanda-sp", "--update", "reconstruct", "--update-option",
                                     "windows=32", "--update-option", "mode=oneshot"],
    "wanda-sp+reconstruct-sequential": ["--metric", "wanda-sp", "--update", "reconstruct", "--update-option",
                                        "windows=32"],
    "flap+bias": ["--metric", "flap", "--bias-compensation"],
}

E1, WR1, WRS, FB = METHODS
BOTH = ("in-memory", "streamed")
# A streamed run killed with SIGKILL once this many layers' scores are on disk, then started again
# with the same command: it must resume there and write the uninterrupted run's weights.
RESUMED = "streamed, killed and resumed"
KILL_AT_SCORED_LAYERS = 16
# (shape, decoder layers or None for the model's own, method, path), in the order they run: the
# figures the README states first. "smollm2-135m-real" is the bundled pretrained model itself.
PLAN = [
    *[("smollm2-135m-real", None, m, q) for m in (E1, WRS, WR1, FB) for q in BOTH],
    *[("llama-3.1-8b", n, E1, "streamed") for n in (4, 8)],
    ("llama-3.1-70b", 2, E1, "streamed"),
    ("llama-3.1-8b", 32, WR1, "streamed"),
    ("llama-3.1-8b", 32, E1, "streamed"),
    ("llama-3.1-8b", 32, E1, RESUMED),
    ("llama-3.1-8b", 16, E1, "streamed"),
    *[("llama-3.2-1b", None, m, q) for m in (E1, WR1) for q in BOTH],
    ("llama-3.1-8b", 4, E1, "in-memory"),
    ("llama-3.1-8b", 32, WRS, "streamed"),
    ("llama-3.1-8b", 32, FB, "streamed"),
    ("llama-3.1-70b", 2, WR1, "streamed"),
    *[("qwen2.5-0.5b", None, m, q) for m in (E1, WR1) for q in BOTH],
    *[("llama-3.2-3b", None, m, "streamed") for m in (E1, WR1)],
]


SMOLLM2 = "smollm2-135m"


def load_check(model: Path, env: dict) -> dict:
    """Load a pruned checkpoint with transformers' ``from_pretrained`` (bfloat16) and run one token."""
    code = ("import sys, torch, adapruner, transformers as T; "
            "m = T.AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16); "
            "print(m(torch.tensor([[1, 2, 3]])).logits.shape)")
    status, seconds, peak, tail = measure([sys.executable, "-c", code, str(model)], env)
    return {"exit": status, "wall_s": round(seconds, 1), "peak_rss_gib": round(peak / 2**30, 3),
            "output": tail.strip().splitlines()[-1] if tail.strip() else ""}


def export_check(model: Path, gguf: Path, env: dict) -> dict:
    """``adapruner export`` of a pruned checkpoint to GGUF (q8_0: the 8B's f16 file would not fit
    beside its checkpoints on the scratch disk), then llama.cpp loads it and scores three tokens."""
    cmd = [sys.executable, "-m", "adapruner.cli", "export", "--model", str(model), "--out", str(gguf),
           "--outtype", "q8_0", "--overwrite"]
    status, seconds, peak, tail = measure(cmd, env)
    row = {"exit": status, "wall_s": round(seconds, 1), "peak_rss_gib": round(peak / 2**30, 3),
           "command": "adapruner export --model OUT/model --out OUT.gguf --outtype q8_0"}
    if status != 0:
        return {**row, "tail": tail[-3000:]}
    row["gguf_gib"] = round(gguf.stat().st_size / 2**30, 2)
    code = ("import sys, llama_cpp; m = llama_cpp.Llama(sys.argv[1], n_ctx=16, logits_all=True, verbose=False); "
            "m.eval([1, 2, 3]); print('llama.cpp ran', m.n_tokens, 'tokens,', m.n_vocab(), 'logits each')")
    status, seconds, peak, tail = measure([sys.executable, "-c", code, str(gguf)], env)
    row["llama_cpp"] = {"exit": status, "wall_s": round(seconds, 1), "peak_rss_gib": round(peak / 2**30, 3),
                        "output": tail.strip().splitlines()[-1] if tail.strip() else ""}
    gguf.unlink(missing_ok=True)
    return row


def killed_and_resumed(cmd: list[str], out: Path, env: dict) -> dict:
    """Start ``cmd``, SIGKILL it once :data:`KILL_AT_SCORED_LAYERS` layers' scores are staged,
    then run it again to the end: the second run's time, peak and its resume lines."""
    import signal

    staged = out.parent / f".{out.name}.partial" / "work" / "scores"
    shutil.rmtree(staged.parents[1], ignore_errors=True)
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while child.poll() is None and len(list(staged.glob("layer-*.safetensors"))) < KILL_AT_SCORED_LAYERS:
        time.sleep(2)
    killed_after = time.perf_counter() - start
    if child.poll() is not None:
        return {"exit": 1, "tail": f"the run ended (exit {child.returncode}) before it could be killed"}
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    scored = len(list(staged.glob("layer-*.safetensors")))
    code, seconds, peak, tail = measure(cmd, env)
    return {"exit": code, "killed_after_s": round(killed_after, 1), "scored_layers_when_killed": scored,
            "wall_s": round(seconds, 1), "peak_rss_gib": round(peak / 2**30, 3),
            "resume_log": [ln.strip() for ln in tail.replace("\r", "\n").splitlines() if "resuming" in ln],
            "tail": tail[-600:]}


def refresh_predictions(data: dict, env: dict) -> None:
    """Each finished row's predictions as the current code makes them: its own command with
    ``--dry-run`` (config only, no weight read), the predicted lines parsed from the report-free output."""
    for name, row in [*data["runs"].items(), *data.get("upper_bounds", {}).items()]:
        if row.get("exit") != 0:
            continue
        model = SMOLLM2 if row["shape"] == "smollm2-135m-real" else str(shape_dir(row["shape"], row["layers"], env))
        cmd = row["command"].split()[1:]
        cmd[cmd.index("--model") + 1] = model
        out = subprocess.run([sys.executable, "-m", "adapruner.cli", *cmd, "--dry-run", "--predictions-json"],
                             env=env, capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("{")), None)
        if out.returncode != 0 or line is None:
            print(f"{name}: no prediction ({out.stderr.strip().splitlines()[-1:]})")
            continue
        row["predicted"] = json.loads(line)["predicted"]
        print(f"{name}: {row['predicted']['in_memory']['peak_gib']} / {row['predicted']['streamed']['peak_gib']} GiB")


def key(shape: str, layers: int | None, method: str, path: str) -> str:
    return f"{shape}/{layers or 'all'}/{method}/{path}"


def measure(cmd: list[str], env: dict) -> tuple[int, float, int, str]:
    """Exit status, wall seconds, peak RSS in bytes and the whole output of a child process.

    The peak is ``/usr/bin/time -f %M``'s: a process forked from this one would start with this
    process's resident pages counted in its high-water mark, so a small process starts it.
    """
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name, *cmd], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - start
        kib = int(rss.read().split()[-1])
    return proc.returncode, seconds, kib * 1024, proc.stdout


def shape_dir(shape: str, layers: int | None, env: dict) -> Path:
    """The shape's checkpoint, built by a child process (this one stays small, see :func:`measure`)."""
    cmd = [sys.executable, str(HERE / "shapes.py"), "--shape", shape, *(["--layers", str(layers)] if layers else [])]
    return Path(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def load() -> dict:
    path = RESULTS / "runs.json"
    return json.loads(path.read_text()) if path.is_file() else {"machine": {}, "runs": {}}


def save(data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS / "runs.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, RESULTS / "runs.json")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--scratch", type=Path, default=Path(os.environ.get("ADAPRUNER_BENCH_DIR", "/tmp/adapruner-bench")))
    p.add_argument("--only", nargs="*", default=None, help="shapes to run (default: all of PLAN)")
    p.add_argument("--layers", nargs="*", type=int, default=None, help="only these depths")
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--paths", nargs="*", default=None, choices=["in-memory", "streamed"])
    p.add_argument("--cleanup", action="store_true", help="delete the shapes' checkpoints at the end")
    p.add_argument("--refresh-predictions", action="store_true",
                   help="re-predict every finished row with the current code (prune --dry-run, same command) and stop")
    p.add_argument("--load-check", action="store_true",
                   help="load the pruned 8B checkpoint with from_pretrained in a child process (peak RSS, time)")
    p.add_argument("--export-check", action="store_true",
                   help="export the pruned 8B checkpoint to GGUF (q8_0) and run it in llama.cpp (peak RSS, time)")
    args = p.parse_args()
    data = load()
    data["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "python": platform.python_version()}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if args.refresh_predictions:
        refresh_predictions(data, env)
        save(data)
        return 0
    models: dict[tuple, Path] = {}
    for shape, layers, method, path in PLAN:
        if args.only and shape not in args.only or args.layers and (layers or 0) not in args.layers:
            continue
        if args.methods and method not in args.methods or args.paths and path not in args.paths:
            continue
        if data["runs"].get(key(shape, layers, method, path), {}).get("exit") == 0:
            continue
        if (shape, layers) not in models:
            models[(shape, layers)] = Path(SMOLLM2) if shape == "smollm2-135m-real" else shape_dir(shape, layers, env)
        model = models[(shape, layers)]
        out = args.scratch / "scale" / f"{shape}-{layers or 'all'}-{method}-{path}".replace(", ", "-").replace(" ", "-")
        cmd = [sys.executable, "-m", "adapruner.cli", "prune", "--model", str(model), "--ratio", "0.2",
               "--device", "cpu", "--out", str(out), "--overwrite", "--data-dir", args.data_dir,
               "--save-dtype", "bfloat16", "--no-stream" if path == "in-memory" else "--stream", *METHODS[method]]
        print(f"== {key(shape, layers, method, path)}", flush=True)
        row = {"shape": shape, "layers": layers, "method": method, "path": path,
               "command": " ".join(["adapruner", *cmd[3:]]).replace(
                   str(model), str(model) if shape == "smollm2-135m-real" else f"SHAPES/{model.name}")}
        if path == RESUMED:
            row.update(killed_and_resumed(cmd, out, env))
        else:
            code, seconds, peak, tail = measure(cmd, env)
            row.update(exit=code, wall_s=round(seconds, 1), peak_rss_gib=round(peak / 2**30, 3), tail=tail[-3000:])
        report = out / "pruning_report.json"
        if row["exit"] == 0 and report.is_file():
            del row["tail"]
            rep = json.loads(report.read_text())
            row.update(parameters_before=rep["parameters_before"], parameters_after=rep["parameters_after"],
                       predicted=rep["execution"]["predicted"], timings=rep["timings"],
                       weights_sha256=weights_digest(out / "model"))
            if path == RESUMED:
                uninterrupted = data["runs"].get(key(shape, layers, method, "streamed"), {}).get("weights_sha256")
                row["same_weights_as_uninterrupted"] = uninterrupted == row["weights_sha256"] if uninterrupted else None
            big = shape.startswith("llama-3.1-8b") and layers == 32 and path == "streamed"
            if big and args.load_check:
                row["loads"] = load_check(out / "model", env)
            if big and args.export_check:
                row["export"] = export_check(out / "model", args.scratch / "scale" / "export.gguf", env)
        print(json.dumps(row), flush=True)
        data["runs"][key(shape, layers, method, path)] = row
        save(data)
        shutil.rmtree(out, ignore_errors=True)
    if args.cleanup:
        for (shape, _), model in models.items():
            if shape != "smollm2-135m-real":
                shutil.rmtree(model, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
