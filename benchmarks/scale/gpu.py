"""The Llama-3.1-8B shape pruned at 20 % on a GPU, streamed: peak device memory and time.

Runs where the repository is copied to a lent GPU machine without the data directory or the
bundled model: the checkpoint is generated there (``shapes.py``, byte-level tokenizer), the
calibration text is the repository's own README, and the result is a JSON line (also written to
``$OUT/scale_gpu.json`` when ``OUT`` is set) with the card's name. ``gpu.sh`` is the one command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))


def main() -> int:
    import torch

    from shapes import build

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--metric", default="element1")
    p.add_argument("--work", type=Path, default=Path("/tmp/adapruner-gpu"))
    args = p.parse_args()
    from adapruner.config import PruneConfig
    from adapruner.streaming.model import open_streamed
    from adapruner.streaming.prune import prune_streamed

    t = time.perf_counter()
    model_dir = build("llama-3.1-8b", args.layers, args.work / "shapes")
    built_s = time.perf_counter() - t
    sm = open_streamed(str(model_dir), device="cuda")
    ids = sm.tokenizer((REPO / "README.md").read_text())["input_ids"]
    calib = torch.tensor(ids[: 10 * 128]).reshape(10, 128)
    config = PruneConfig.from_json({"metric": {"name": args.metric}})
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    result = prune_streamed(sm, config, 0.2, calib, None, args.work / "out", save_dtype=torch.bfloat16)
    row = {"card": torch.cuda.get_device_name(), "layers": args.layers, "metric": args.metric,
           "prune_s": round(time.perf_counter() - t, 1), "build_s": round(built_s, 1),
           "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
           "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3), "timings": result.timings}
    print(json.dumps(row))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "scale_gpu.json").write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
