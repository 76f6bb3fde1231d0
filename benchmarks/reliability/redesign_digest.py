"""Weights digest and trial values of a prune and a short search: the redesign's "behaviour
unchanged" check. Run before and after a refactor and compare the printed lines.

    python benchmarks/reliability/redesign_digest.py --data-dir ../shared/data --work /tmp/digest

Prints the sha256 over every tensor (name, dtype, shape, bytes, in name order) of the saved
``model.safetensors`` of ``adapruner prune --model smollm2-135m --ratio 0.2 --metric element1
--seed 0`` and of a 3-trial ``adapruner search --seed 0``, plus the search's trial values.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path


def weights_digest(directory: Path) -> str:
    """sha256 over the tensors of every safetensors file in ``directory`` (order-independent of files)."""
    from safetensors import safe_open

    h = hashlib.sha256()
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for name in sorted(f.keys()):
                t = f.get_tensor(name).contiguous()
                h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--work", default="/tmp/adapruner-digest")
    p.add_argument("--trials", type=int, default=3)
    args = p.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cli = [sys.executable, "-m", "adapruner.cli"]
    subprocess.run(cli + ["prune", "--model", "smollm2-135m", "--ratio", "0.2", "--metric", "element1", "--seed", "0",
                          "--out", str(work / "prune"), "--data-dir", args.data_dir], check=True)
    prune_dir = work / "prune" / "model" if (work / "prune" / "model").is_dir() else work / "prune"
    print(f"prune element1 seed 0: weights {weights_digest(prune_dir)}")
    subprocess.run(cli + ["prune", "--model", "smollm2-135m", "--ratio", "0.2", "--metric", "flap", "--seed", "0",
                          "--bias-compensation", "--mode", "global", "--out", str(work / "flap"),
                          "--data-dir", args.data_dir], check=True)
    flap_dir = work / "flap" / "model" if (work / "flap" / "model").is_dir() else work / "flap"
    print(f"prune flap + bias compensation, global, seed 0: weights {weights_digest(flap_dir)}")
    subprocess.run(cli + ["search", "--model", "smollm2-135m", "--ratio", "0.2", "--trials", str(args.trials),
                          "--seed", "0", "--out", str(work / "search"), "--data-dir", args.data_dir], check=True)
    with open(work / "search" / "trials.csv") as f:
        values = [(r["number"], r["state"], r["value"]) for r in csv.DictReader(f)]
    print(f"search {args.trials} trials seed 0: weights {weights_digest(work / 'search' / 'model')}")
    print("trial values: " + ", ".join(f"{n}:{s}:{v}" for n, s, v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
