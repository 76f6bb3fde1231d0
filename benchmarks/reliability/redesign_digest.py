"""Weights digests and trial values that a refactor must not change.

    python benchmarks/reliability/redesign_digest.py --data-dir ../shared/data --out /tmp/before.json
    ... change the code ...
    python benchmarks/reliability/redesign_digest.py --data-dir ../shared/data --check /tmp/before.json

On SmolLM2-135M at 20 %, seed 0: the sha256 over every saved tensor (name, dtype, shape, bytes) of
``adapruner prune`` with every registered metric (its default update and allocation), with every
recipe, and with the recorded full-space and paper-space best configurations; the trial values and
the delivered weights of a short default (full-space) search, whose first trials are the recipes,
and of a short ``--space paper`` search. ``--only`` runs a subset (names as in the output).
Finished entries are kept in ``--out`` so an interrupted run resumes.
``benchmarks/results/redesign_digests.json`` holds the values on this project's 2-core AMD EPYC
machine (floating-point sums may differ in the last bit on another CPU: compare on one machine).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("random", "l1", "l2", "vector", "element1", "element2", "adapruner", "saap", "wanda-sp", "flap", "obs")
RECIPES = ("wanda-sp-reconstruct", "flap-bias", "element1")
CONFIGS = {"full-space-best": ROOT / "benchmarks/results/full_space/best_config.json",
           "paper-space-best": ROOT / "benchmarks/results/variants/smollm2-135m_r20_adapruner_full-tpe100_s0_notune-2ceecf.json"}
SEARCHES = {"search-full": ["--trials", "5"], "search-paper": ["--trials", "3", "--space", "paper"]}


def weights_digest(directory: Path) -> str:
    """sha256 over the tensors of every safetensors file in ``directory`` (independent of sharding)."""
    import torch
    from safetensors import safe_open

    h = hashlib.sha256()
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for name in sorted(f.keys()):
                t = f.get_tensor(name).contiguous()
                h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def config_file(path: Path, work: Path) -> Path:
    """A ``best_config.json``-shaped file for ``path`` (a benchmark result holds its search's under ``search``)."""
    data = json.loads(path.read_text())
    config = data["search"]["best_config"]["config"] if "search" in data else data["config"]
    out = work / f"{path.stem}.config.json"
    out.write_text(json.dumps({"config": config}))
    return out


def cases(work: Path) -> dict[str, list[str]]:
    """Every entry's command-line arguments (after ``adapruner``), by entry name."""
    base = ["--model", "smollm2-135m", "--ratio", "0.2", "--seed", "0"]
    out = {f"metric-{m}": ["prune", *base, "--metric", m] for m in METRICS}
    out |= {f"recipe-{r}": ["prune", *base, "--recipe", r] for r in RECIPES}
    for name, path in CONFIGS.items():
        out[name] = ["prune", "--model", "smollm2-135m", "--ratio", "0.2", "--config", str(config_file(path, work))]
    out |= {name: ["search", *base, *flags] for name, flags in SEARCHES.items()}
    return out


def run_case(name: str, argv: list[str], work: Path, data_dir: str) -> dict:
    """Run one entry and return its digest (and trial values for a search)."""
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "adapruner.cli", *argv, "--out", str(out), "--data-dir", data_dir],
                   check=True, stdout=subprocess.DEVNULL)
    entry = {"weights": weights_digest(out / "model")}
    if argv[0] == "search":
        with open(out / "trials.csv") as f:
            entry["trials"] = [f"{r['number']}:{r['state']}:{r['value']}" for r in csv.DictReader(f)]
    shutil.rmtree(out, ignore_errors=True)
    return entry


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--work", default="/tmp/adapruner-digest")
    p.add_argument("--out", help="JSON file of the digests (finished entries are kept: a rerun resumes)")
    p.add_argument("--check", help="a JSON file written by --out before the change: report every difference")
    p.add_argument("--only", nargs="*", help="entry names to run (default: all)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else work / "digests.json"
    done = json.loads(out.read_text()) if out.exists() else {}
    for name, argv in cases(work).items():
        if args.only and name not in args.only:
            continue
        if name not in done:
            done[name] = run_case(name, argv, work, args.data_dir)
            out.write_text(json.dumps(done, indent=1))
        print(f"{name}: {done[name]['weights']}" + (f"  trials {done[name]['trials']}" if "trials" in done[name] else ""),
              flush=True)
    if args.check:
        before = json.loads(Path(args.check).read_text())
        changed = [n for n in done if n in before and before[n] != done[n]]
        print("unchanged" if not changed else "CHANGED: " + ", ".join(changed))
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
