"""Shared machinery of the paper-table benchmarks: variants, cached rows, product commands.

A *variant* is one model the tables talk about: the dense model, a model pruned with one metric
(``adapruner prune``), a searched model (``adapruner search``), optionally recovered with LoRA
(``adapruner finetune``). Every variant has one JSON record in ``benchmarks/results/variants/``
named by its settings; the record holds the exact commands that built it, the build's wall time
and device, a digest of the saved weights, and one entry per *evaluation* (WikiText-2 PPL, PTB
PPL, zero-shot accuracy), keyed by its protocol. A rerun skips every finished build and
evaluation, so the expensive rows are computed once and survive across runs; the model
directories themselves live in a scratch directory outside the repository
(``$ADAPRUNER_BENCH_DIR``, default ``/tmp/adapruner-bench``) and are rebuilt from the recorded
commands when missing (the weights digest tells whether the rebuild is identical; if not, the
old evaluations are kept aside as ``stale_evals`` and recomputed).

All numbers come from the product's own commands run as subprocesses, so they are what a user
of ``adapruner`` gets; the command line of each step is stored next to its result.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_SCRATCH = Path(os.environ.get("ADAPRUNER_BENCH_DIR", "/tmp/adapruner-bench"))
DEFAULT_DATA = os.environ.get("ADAPRUNER_DATA_DIR") or str(REPO.parent / "shared" / "data")
DEFAULT_MODEL = "smollm2-135m"

# The paper's comparison (Table 1/4): magnitude, random, LLM-Pruner's three Taylor metrics,
# the two activation baselines, SAAP, and AdaPruner searched; cheapest and most important first.
BASELINES = ("l2", "random", "element1", "vector", "element2", "wanda-sp", "flap", "saap")
GRADIENT_BASELINES = ("vector", "element1", "element2")  # random calibration: run over 5 seeds
ZEROSHOT_TASKS = ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")

# Rows that are a metric plus prune flags (named so that their slugs differ from the plain metric's):
# generic recipes that need no search (no calibration indices, knots or other searched values).
METHOD_FLAGS = {
    "flap-bc": ["--metric", "flap", "--bias-compensation"],
    "wanda-sp-bc": ["--metric", "wanda-sp", "--update", "bias"],
    "wanda-sp-rec": ["--metric", "wanda-sp", "--update", "reconstruct"],
    "wanda-sp-rec1": ["--metric", "wanda-sp", "--update", "reconstruct", "--update-option", "mode=oneshot"],
    "wanda-sp-rec-global": ["--metric", "wanda-sp", "--update", "reconstruct", "--mode", "global"],
    "flap-rec": ["--metric", "flap", "--update", "reconstruct"],
    "element1-rec": ["--metric", "element1", "--update", "reconstruct"],
    # The product's recipes, as a user runs them (``prune --recipe NAME``).
    **{f"recipe-{name}": ["--recipe", name] for name in ("wanda-sp-reconstruct", "flap-bias", "element1")},
    # The full-space search's delivered model, rebuilt exactly from its configuration.
    "searched-full": ["--config", str(RESULTS / "full_space" / "best_config.json")],
}
METHOD_LABELS = {
    "flap-bc": "flap + bias compensation",
    "wanda-sp-bc": "wanda-sp + bias compensation",
    "wanda-sp-rec": "wanda-sp + reconstruction",
    "wanda-sp-rec1": "wanda-sp + one-shot reconstruction",
    "wanda-sp-rec-global": "wanda-sp + reconstruction, global allocation",
    "flap-rec": "flap + reconstruction",
    "element1-rec": "element1 + reconstruction",
    "searched-full": "adapruner search, full space, 100 trials",
    "recipe-wanda-sp-reconstruct": "wanda-sp + reconstruction",
    "recipe-flap-bias": "flap + bias compensation",
    "recipe-element1": "element1 (the paper's baseline)",
}
# A text domain that neither calibration (books) nor the search objective (WikiText-2, PTB) sees:
# the responses of the Stanford Alpaca instruction data.
DOMAIN_FILES = {"alpaca": ("alpaca/alpaca_data_first1805.json", "output")}

# Search ablations (paper Table 2 and 8) -> flags of ``adapruner search``.
ABLATIONS = {
    "full": [],
    "nodata": ["--no-data-search"],
    "first": ["--fixed-metric", "first"],
    "second": ["--fixed-metric", "second"],
    "sequential": ["--sequential"],
    "subspaces": ["--data-space", "subspaces"],
    "score": ["--data-space", "score"],
}


# -- settings --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """How a searched variant's study runs (``adapruner search`` flags)."""

    trials: int = 100
    sampler: str = "tpe"
    eval_windows: int = 16
    seed: int = 0
    ablation: str = "full"

    def flags(self) -> list[str]:
        """The ``adapruner search`` flags of this study."""
        return ["--trials", str(self.trials), "--sampler", self.sampler, "--eval-windows", str(self.eval_windows),
                "--seed", str(self.seed), "--space", "paper", *ABLATIONS[self.ablation]]


@dataclass(frozen=True)
class Tune:
    """CPU-sized LoRA recovery (``adapruner finetune`` flags; LLM-Pruner's recipe scaled down).

    LLM-Pruner tunes 2 epochs over 50k Alpaca rows; a 2-core CPU does ~9 s per step of 16
    examples here, so the tables use 20 steps (320 rows of the 2000-row sample, ~3 min per model):
    enough to show the direction and size of early recovery, not its end point.
    """

    method: str = "lora"
    data: str = "alpaca/alpaca_cleaned_sample2000.json"
    epochs: int = 1
    max_steps: int | None = 20
    batch_size: int = 16
    micro_batch_size: int = 4
    lr: float = 3e-4
    cutoff: int = 256
    val_size: int = 32
    seed: int = 0

    def flags(self, data_dir: str) -> list[str]:
        """The ``adapruner finetune`` flags of this recipe."""
        f = ["--data", str(Path(data_dir) / self.data), "--method", self.method, "--epochs", str(self.epochs),
             "--batch-size", str(self.batch_size), "--micro-batch-size", str(self.micro_batch_size),
             "--lr", str(self.lr), "--cutoff", str(self.cutoff), "--val-size", str(self.val_size),
             "--seed", str(self.seed)]
        return f + (["--max-steps", str(self.max_steps)] if self.max_steps else [])


@dataclass(frozen=True)
class Variant:
    """One model of the tables: dense, pruned with ``method`` at ``ratio``, searched, tuned."""

    model: str = DEFAULT_MODEL
    method: str = "dense"  # "dense", a metric of adapruner.importance.METRICS, or "adapruner" (searched)
    ratio: float = 0.0
    seed: int = 0  # calibration / random-metric seed of ``adapruner prune``
    search: Search | None = None
    tune: Tune | None = None

    def settings(self) -> dict:
        """Everything that decides the model's weights (the record's key)."""
        return {"model": self.model, "method": self.method, "ratio": self.ratio, "seed": self.seed,
                "search": asdict(self.search) if self.search else None,
                "tune": asdict(self.tune) if self.tune else None}

    def slug(self) -> str:
        """Readable file name, with a digest of all settings so no two variants collide."""
        digest = hashlib.sha1(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:6]
        name = self.model.rstrip("/").split("/")[-1].replace(".", "_")
        if self.method == "dense":
            parts = [name, "dense"]
        else:
            parts = [name, f"r{round(self.ratio * 100):02d}", self.method]
            if self.search:
                parts += [f"{self.search.ablation}-{self.search.sampler}{self.search.trials}", f"s{self.search.seed}"]
            else:
                parts.append(f"s{self.seed}")
        parts.append("tuned" if self.tune else "notune")
        return "_".join(parts) + "-" + digest

    def base(self) -> "Variant":
        """The same variant before recovery fine-tuning."""
        return replace(self, tune=None)

    def label(self) -> str:
        """Short human label for tables."""
        if self.method == "dense":
            return "dense"
        if self.search:
            s = self.search
            name = "adapruner" if s.ablation == "full" else f"adapruner w/o {ABLATION_LABELS[s.ablation]}"
            notes = [s.sampler] if s.sampler != "tpe" else []
            notes += [f"{s.trials} trials"] if s.trials != Search.trials else []
            return name + (f" ({', '.join(notes)})" if notes else "")
        if self.method == "adapruner":  # the Eq. 5 blend without a search: the default coefficients
            return "adapruner (default α, no search)"
        return METHOD_LABELS.get(self.method, self.method)


ABLATION_LABELS = {"nodata": "D (random data)", "first": "I (fixed 1st order)", "second": "I (fixed 2nd order)",
                   "sequential": "unified (sequential)", "subspaces": "joint D (10 subspaces)",
                   "score": "joint D (score D)"}


@dataclass(frozen=True)
class EvalProtocol:
    """How a variant is evaluated: PPL window length and cap, zero-shot document limit, and the
    dtype the weights are cast to for evaluation.

    bfloat16 is the default because on this project's CPU (AMX) it evaluates ~3.5x faster than
    float32 and moves perplexity by < 0.1 % (dense SmolLM2, 128 windows: WikiText-2 53.921 vs
    53.924, PTB 96.880 vs 96.825); pruning and scoring always run in float32.
    """

    seq_len: int = 128
    max_windows: int | None = None  # None = the full test split
    limit: int = 200  # zero-shot documents per task (stderr of the 7-task average < 1.5 points)
    dtype: str = "bfloat16"

    def tag(self, kind: str) -> str:
        """Key of one evaluation in a variant record (float32 keeps the historical untagged key)."""
        suffix = "" if self.dtype == "float32" else f"-{DTYPE_TAGS[self.dtype]}"
        if kind in ("wikitext2", "ptb", *DOMAIN_FILES):
            return f"{kind}-s{self.seq_len}-" + ("full" if self.max_windows is None else f"w{self.max_windows}") + suffix
        if kind == "zeroshot":
            return f"zeroshot-l{self.limit}" + suffix
        raise ValueError(f"unknown evaluation {kind}")


DTYPE_TAGS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class Context:
    """Where and how a benchmark script runs (from the common flags)."""

    results: Path = RESULTS
    scratch: Path = DEFAULT_SCRATCH
    data_dir: str = DEFAULT_DATA
    device: str = "auto"
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    dry_run: bool = False

    def record_path(self, v: Variant) -> Path:
        return self.results / "variants" / f"{v.slug()}.json"

    def workdir(self, v: Variant) -> Path:
        return self.scratch / v.slug()

    def run_dir(self, v: Variant) -> Path:
        """Where the command that builds ``v`` writes (``adapruner search`` / ``prune`` / ``finetune --out``)."""
        if v.search and not v.tune:
            search, rebuilt = self.workdir(v) / "search", self.workdir(v) / "search-config"
            # A finished study's model may be rebuilt by ``prune --config`` next to the study.
            return rebuilt if (rebuilt / "model").is_dir() and not (search / "model").is_dir() else search
        return self.workdir(v) / "run"

    def model_dir(self, v: Variant) -> Path:
        return self.run_dir(v) / "model"


# -- small utilities -------------------------------------------------------------------------------
def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_json(path: Path) -> dict | None:
    """The JSON in ``path``, or None when it does not exist."""
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and a rename (a crash never leaves half a record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def weights_digest(model_dir: Path) -> str:
    """sha256 over the safetensors files of a saved model (identity of a rebuilt variant)."""
    h = hashlib.sha256()
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()


def device_description(device: str) -> str:
    """What a step ran on, in words (GPU name, or CPU model and core count)."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or "cpu"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"cpu: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def source_revision() -> str:
    """The git commit of the product code that ran (``+dirty`` when src/ has uncommitted edits)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def adapruner_exe() -> list[str]:
    """How to call the product's CLI (the installed console script, else ``python -c``)."""
    exe = shutil.which("adapruner")
    return [exe] if exe else [sys.executable, "-c", "import sys; from adapruner.cli import main; sys.exit(main())"]


def run_command(args: list[str], dry_run: bool = False) -> dict:
    """Run ``adapruner ARGS`` with inherited output (its own progress bars show) and return the
    step record: exact command, start/end, wall time, device and host load."""
    command = "adapruner " + " ".join(shlex.quote(a) for a in args)
    if dry_run:
        print(f"[dry-run] {command}", flush=True)
        return {"command": command, "dry_run": True}
    print(f"\n$ {command}", flush=True)
    started, load0, source = now(), os.getloadavg()[0], source_revision()
    t = time.perf_counter()
    proc = subprocess.run(adapruner_exe() + args, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"command failed with exit status {proc.returncode}: {command}")
    return {"command": command, "started": started, "finished": now(), "wall_s": round(wall, 1),
            "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)], "source": source}


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock (two benchmark processes never build or evaluate the same variant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- records ---------------------------------------------------------------------------------------
def load_record(ctx: Context, v: Variant) -> dict:
    """The variant's record (a fresh skeleton when none exists)."""
    rec = read_json(ctx.record_path(v))
    if rec is None:
        rec = {"slug": v.slug(), "label": v.label(), "settings": v.settings(), "build": None, "evals": {}}
    return rec


def save_record(ctx: Context, v: Variant, rec: dict) -> None:
    if not ctx.dry_run:
        write_json(ctx.record_path(v), rec)


def model_spec(ctx: Context, v: Variant) -> str:
    """What ``--model`` to pass for this variant."""
    return v.model if v.method == "dense" else str(ctx.model_dir(v))


def _common(ctx: Context) -> list[str]:
    return ["--device", ctx.device, "--data-dir", ctx.data_dir]


def _trial_rows(csv_path: Path) -> list[dict]:
    import csv

    keep = ("number", "state", "value", "seconds", "phase", "ppl_wikitext2", "ppl_ptb")
    rows = []
    with csv_path.open() as f:
        for r in csv.DictReader(f):
            row = {k: r.get(k) for k in keep if k in r}
            for k in ("number",):
                row[k] = int(row[k])
            for k in ("value", "seconds", "ppl_wikitext2", "ppl_ptb"):
                if row.get(k) not in (None, ""):
                    row[k] = float(row[k])
                else:
                    row[k] = None
            rows.append(row)
    return rows


def _build_steps(ctx: Context, v: Variant, rec: dict) -> list[dict]:
    """Run the commands that (re)create the variant's model directory; return their step records."""
    work, out = ctx.workdir(v), ctx.run_dir(v)
    work.mkdir(parents=True, exist_ok=True)
    if v.tune:
        base = v.base()
        ensure_built(ctx, base)
        step = run_command(["finetune", "--model", str(ctx.model_dir(base)), "--out", str(out), "--overwrite",
                            "--device", ctx.device, *v.tune.flags(ctx.data_dir)], ctx.dry_run)
        return [{"name": "finetune", **step}]
    if v.search:
        best = (rec.get("search") or {}).get("best_config")
        if best is not None:
            # The study already finished: re-applying its configuration is exact and takes a minute.
            cfg = work / "best_config.json"
            write_json(cfg, best)
            step = run_command(["prune", "--model", v.model, "--ratio", str(v.ratio), "--config", str(cfg),
                                "--out", str(work / "search-config"), "--overwrite", *_common(ctx)], ctx.dry_run)
            return [{"name": "prune --config best_config.json", **step}]
        step = run_command(["search", "--model", v.model, "--ratio", str(v.ratio), "--out", str(work / "search"),
                            *v.search.flags(), *_common(ctx)], ctx.dry_run)
        return [{"name": "search", **step}]
    flags = METHOD_FLAGS.get(v.method, ["--metric", v.method])
    # A --config carries its own calibration windows: --seed would draw new ones.
    seed = [] if "--config" in flags else ["--seed", str(v.seed)]
    step = run_command(["prune", "--model", v.model, "--ratio", str(v.ratio), *flags, *seed, "--out", str(out),
                        "--overwrite", *_common(ctx)], ctx.dry_run)
    return [{"name": "prune", **step}]


def _summarise_build(ctx: Context, v: Variant, rec: dict) -> dict:
    """Parameters, achieved ratio, configuration and (for searches/tuning) their reports."""
    out = ctx.model_dir(v)
    report = read_json(out / "pruning_report.json") or {}
    summary: dict = {}
    if isinstance(report.get("parameters"), dict):  # written by adapruner search
        p = report["parameters"]
        summary.update(parameters=p["pruned"], parameters_dense=p["dense"], ratio_achieved=p["removed_fraction"],
                       config=report.get("config"), versions=report.get("versions"))
    elif "parameters_before" in report:  # adapruner prune (and finetune, which keeps the prune report)
        summary.update(parameters=report["parameters_after"], parameters_dense=report["parameters_before"],
                       ratio_achieved=report["ratio_achieved"], config=report.get("config"),
                       versions=report.get("versions"), timings=report.get("timings"))
    if v.search and (ctx.workdir(v) / "search" / "best_config.json").is_file():
        sdir = ctx.workdir(v) / "search"
        rec["search"] = {
            "best_config": read_json(sdir / "best_config.json"),
            "report": {k: report.get(k) for k in ("provenance", "protocol", "study", "dense_validation_ppl",
                                                  "pruned_validation_ppl", "space", "runtime")},
            "trials": _trial_rows(sdir / "trials.csv"),
        }
    ft = read_json(out / "finetune_report.json")
    if ft:
        summary["finetune"] = {k: ft.get(k) for k in ("method", "lora", "trainable_parameters", "train", "n_train",
                                                       "n_val", "val_loss_before", "val_loss_after", "steps",
                                                       "examples_seen", "epochs_done", "seconds", "loss_on",
                                                       "versions") if k in ft}
        summary["finetune"]["train_loss"] = ft.get("train_loss")
    return summary


def ensure_built(ctx: Context, v: Variant) -> Path | str:
    """Make sure the variant's model exists in the scratch dir (building it when needed) and its
    record describes it; return the ``--model`` spec to evaluate it."""
    if v.method == "dense":
        return v.model
    out = ctx.model_dir(v)
    with locked(ctx.scratch / ".locks" / f"{v.slug()}.lock"):
        rec = load_record(ctx, v)
        marker = ctx.workdir(v) / "weights.sha256"
        if (out / "config.json").is_file() and marker.is_file() and rec.get("build") \
                and marker.read_text().strip() == rec["build"].get("weights_sha256"):
            return str(out)
        steps = _build_steps(ctx, v, rec)
        if ctx.dry_run:
            return str(out)
        digest = weights_digest(out)
        marker.write_text(digest + "\n")
        old = (rec.get("build") or {}).get("weights_sha256")
        if old and old != digest and rec.get("evals"):
            print(f"warning: rebuilt {v.slug()} differs from the recorded weights; its evaluations are redone",
                  flush=True)
            rec.setdefault("stale_evals", []).append({"weights_sha256": old, "evals": rec["evals"]})
            rec["evals"] = {}
        history = (rec.get("build") or {}).get("history", [])
        if rec.get("build"):
            history.append({k: rec["build"][k] for k in ("steps", "weights_sha256", "device") if k in rec["build"]})
        rec["build"] = {"steps": steps, "device": device_description(ctx.device), "weights_sha256": digest,
                        "model_dir": str(out), **_summarise_build(ctx, v, rec), "history": history}
        save_record(ctx, v, rec)
    return str(out)


def evaluate(ctx: Context, v: Variant, kind: str) -> dict | None:
    """One evaluation (``wikitext2``, ``ptb`` or ``zeroshot``) of a variant, from the cache or by
    running ``adapruner eval``; returns its entry in the variant record."""
    tag = ctx.protocol.tag(kind)
    rec = load_record(ctx, v)
    if tag in rec.get("evals", {}):
        return rec["evals"][tag]
    spec = ensure_built(ctx, v)
    with locked(ctx.scratch / ".locks" / f"{v.slug()}.lock"):
        rec = load_record(ctx, v)
        if tag in rec.get("evals", {}):
            return rec["evals"][tag]
        out = ctx.workdir(v) / f"eval-{tag}.json"
        p = ctx.protocol
        if kind == "zeroshot":
            args = ["--ppl", "none", "--tasks", ",".join(ZEROSHOT_TASKS), "--limit", str(p.limit)]
        else:
            args = ["--ppl", kind, "--seq-len", str(p.seq_len)]
            if kind in DOMAIN_FILES:
                file, text_field = DOMAIN_FILES[kind]
                args = ["--ppl", str(Path(ctx.data_dir) / file), "--text-field", text_field, "--seq-len", str(p.seq_len)]
            if p.max_windows is not None:
                args += ["--max-windows", str(p.max_windows)]
        step = run_command(["eval", "--model", str(spec), *args, "--dtype", p.dtype, "--out", str(out), "--seed", "0",
                            *_common(ctx)], ctx.dry_run)
        if ctx.dry_run:
            return None
        result = read_json(out)
        entry = {**step, "device": device_description(ctx.device), "protocol": asdict(p),
                 "versions": result.get("versions"), "parameters": result.get("parameters")}
        if kind == "zeroshot":
            entry["zeroshot"] = result["zeroshot"]
            entry["zeroshot_seconds"] = result.get("zeroshot_seconds")
        else:
            entry["perplexity"] = result["perplexity"][0]
        rec.setdefault("evals", {})[tag] = entry
        if rec.get("build") is None and v.method == "dense":
            rec["build"] = {"parameters": result.get("parameters"), "device": None, "steps": []}
        save_record(ctx, v, rec)
        return entry


# -- reading results back (render and tests) -------------------------------------------------------
def zeroshot_average(entry: dict, leave_out: tuple[str, ...] = ()) -> tuple[float, float]:
    """The average accuracy of the evaluated tasks (7 by default) less ``leave_out``, and its
    standard error (tasks independent), in points."""
    zs = entry["zeroshot"]
    tasks = [t for t in zs["average"]["tasks"] if t not in leave_out]
    accs = [zs[t][zs[t]["average_metric"]] for t in tasks]
    errs = [zs[t].get(zs[t]["average_metric"] + "_stderr") or 0.0 for t in tasks]
    se = (sum(e * e for e in errs) ** 0.5) / len(tasks)
    return 100 * sum(accs) / len(accs), 100 * se


def done(ctx: Context, v: Variant, kinds: tuple[str, ...]) -> bool:
    """Whether every evaluation of ``kinds`` of the variant is recorded."""
    rec = read_json(ctx.record_path(v)) or {}
    return all(ctx.protocol.tag(k) in rec.get("evals", {}) for k in kinds)


# -- command-line plumbing shared by the table scripts --------------------------------------------
def script_parser(doc: str) -> argparse.ArgumentParser:
    """A table script's parser: its docstring as description and epilog, plus the common flags."""
    head, _, rest = doc.partition("\n\n")
    p = argparse.ArgumentParser(description=head, epilog=rest or None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    return p


def pruned_models_parser(doc: str) -> argparse.ArgumentParser:
    """Parser of the scripts that compare the dense model with pruned ones (Tables 9 and 10)."""
    p = script_parser(doc)
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--methods", default="element1,adapruner")
    p.add_argument("--trials", type=int, default=Search.trials, help="budget of the AdaPruner search")
    return p


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Flags every table script takes."""
    p.add_argument("--model", default=DEFAULT_MODEL, help="model spec (default smollm2-135m)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--results", default=None, help=f"results directory (default {RESULTS.relative_to(REPO)})")
    p.add_argument("--scratch", default=str(DEFAULT_SCRATCH), help="model directories (outside the repo)")
    p.add_argument("--max-windows", type=int, default=None, help="PPL windows per corpus (default: full test split)")
    p.add_argument("--limit", type=int, default=200, help="zero-shot documents per task (default 200)")
    p.add_argument("--eval-dtype", default=EvalProtocol.dtype, choices=sorted(DTYPE_TAGS),
                   help="dtype the weights are cast to for evaluation (default bfloat16; pruning stays float32)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and commands, run nothing")
    p.add_argument("--smoke", action="store_true",
                   help="tiny settings for checking the script (4 PPL windows, --limit 2, 3 trials, 2 tuning "
                        "steps), results under the scratch dir")


def context_from_args(args: argparse.Namespace) -> Context:
    """The :class:`Context` of a script's parsed flags (``--smoke`` shrinks everything)."""
    scratch = Path(args.scratch).resolve()
    results = Path(args.results).resolve() if args.results else (scratch / "smoke-results" if args.smoke else RESULTS)
    protocol = EvalProtocol(max_windows=4 if args.smoke else args.max_windows, limit=2 if args.smoke else args.limit,
                            dtype=args.eval_dtype)
    return Context(results=results, scratch=scratch, data_dir=str(Path(args.data_dir).resolve()),
                   device=args.device, protocol=protocol, dry_run=args.dry_run)


def smoke_search(s: Search, smoke: bool) -> Search:
    return replace(s, trials=3, eval_windows=2) if smoke else s


def smoke_tune(t: Tune, smoke: bool) -> Tune:
    return replace(t, max_steps=2, batch_size=4, micro_batch_size=2, val_size=8) if smoke else t


def run_jobs(ctx: Context, jobs: list[tuple[Variant, tuple[str, ...]]], desc: str) -> list[str]:
    """Build and evaluate ``(variant, kinds)`` jobs in order with an overall progress bar; a failing
    job is reported and skipped (the next run retries it). Returns the failures."""
    from tqdm import tqdm

    pending = [(v, k) for v, kinds in jobs for k in kinds if not done(ctx, v, (k,))]
    print(f"{desc}: {sum(len(k) for _, k in jobs)} evaluations planned, {len(pending)} to run "
          f"(results in {ctx.results})", flush=True)
    failures = []
    for v, kind in tqdm(pending, desc=desc, unit="eval", disable=ctx.dry_run):
        try:
            evaluate(ctx, v, kind)
        except Exception as e:  # noqa: BLE001 -- report, go on; the next run retries this job
            print(f"FAILED {v.slug()} {kind}: {e}", flush=True)
            failures.append(f"{v.slug()} {kind}: {e}")
    return failures


def main_eval_jobs(parser: argparse.ArgumentParser, plan, desc: str) -> int:
    """A table script's ``main``: parse flags, run ``plan(args)``'s evaluation jobs, exit 1 on failures."""
    args = parser.parse_args()
    failures = run_jobs(context_from_args(args), plan(args), desc)
    for f in failures:
        print("failed:", f)
    return 1 if failures else 0


def main_stats_rows(parser: argparse.ArgumentParser, plan, table: str, flags) -> int:
    """A statistics script's ``main``: one ``stats_row`` (dense vs pruned) per variant of ``plan(args)``."""
    args = parser.parse_args()
    ctx = context_from_args(args)
    failures = 0
    for v in plan(args):
        try:
            stats_row(ctx, table, Variant(model=args.model), v, flags(args))
        except (RuntimeError, OSError) as e:
            print(f"FAILED {v.slug()}: {e}", flush=True)
            failures += 1
    return 1 if failures else 0


def stats_row(ctx: Context, table: str, dense: Variant, pruned: Variant, flags: list[str]) -> dict | None:
    """``adapruner stats --model DENSE --model2 PRUNED FLAGS`` (both models in one process, timed
    interleaved), cached as ``results/TABLE/<pruned slug>.json``."""
    path = ctx.results / table / f"{pruned.slug()}.json"
    cached = read_json(path)
    key = " ".join(flags)
    if cached and cached.get("flags") == key:
        return cached
    spec = ensure_built(ctx, pruned)
    out = ctx.workdir(pruned) / f"{table}-stats.json"
    step = run_command(["stats", "--model", dense.model, "--model2", str(spec), "--out", str(out),
                        "--device", ctx.device, *flags], ctx.dry_run)
    if ctx.dry_run:
        return None
    result = read_json(out)
    for r in result["models"].values():
        r.pop("prefill_latency_all_s", None)
    row = {"table": table, "dense": dense.settings(), "pruned": pruned.settings(), "pruned_slug": pruned.slug(),
           "label": pruned.label(), "flags": key, **step, "device": device_description(ctx.device),
           "result": result}
    write_json(path, row)
    return row


def recorded_trials(path: Path, model: str, data_dir: Path):
    """The COMPLETE trials of a recorded search's ``trials.csv`` (sorted by number), each with its
    parameters typed back from the CSV, and the full space with its calibration pool's size, so
    that ``space.suggest(optuna.trial.FixedTrial(params), pool_size)`` rebuilds a trial's config."""
    import csv

    from adapruner.config import CalibrationConfig
    from adapruner.data.calibration import source_pool
    from adapruner.models.load import load_model
    from adapruner.search.space import SearchSpace

    def typed(text: str):
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return text

    rows = [r for r in csv.DictReader(Path(path).open()) if r["state"] == "COMPLETE" and r.get("param_metric")]
    rows.sort(key=lambda r: int(r["number"]))
    for r in rows:
        r["params"] = {k[len("param_"):]: typed(v) for k, v in r.items() if k.startswith("param_") and v != ""}
    space = SearchSpace.load("full")
    tokenizer = load_model(model, device="cpu").tokenizer
    pool = source_pool(tokenizer, CalibrationConfig(source=space.source, field=space.field, seq_len=space.seq_len,
                                                    pool_seed=space.pool_seed), data_dir)
    return rows, space, len(pool)
