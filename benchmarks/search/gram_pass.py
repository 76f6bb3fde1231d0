"""The one-shot reconstruction's Gram pass, a search's largest one-off (the first trial pays it):
three ways side by side in one process, interleaved, on SmolLM2-135M and the windows a search uses.

- ``all layers, full products``: Grams of every decoder layer's output projections with
  ``x.T @ x`` (what the pass did before it was limited to the plan's layers);
- ``layer range, full products``: only the layers a plan covers (the default range), the forward
  stopping after the last of them;
- ``layer range, blocked products``: the same with :func:`~adapruner.importance.statistics.gram_product`
  (the products on and above the diagonal, mirrored), today's pass.

Checks that the three give the same matrices for the layers they share (bit for bit), prints each
one's median seconds and the ratios, and writes ``benchmarks/results/gram_pass.json``.

    python benchmarks/search/gram_pass.py --data-dir ../shared/data   # ~13 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    import torch

    from adapruner.allocation import resolve_layer_range
    from adapruner.core.adapters import adapter_for
    from adapruner.core.io import write_json
    from adapruner.data.books import calibration_pool
    from adapruner.importance import statistics as stats_module
    from adapruner.models.load import load_model
    from adapruner.updates.reconstruct import dense_grams, output_paths

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--windows", type=int, default=256, help="the full space's reconstruction windows")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gram_pass.json")
    args = p.parse_args()

    loaded = load_model(args.model, device="cpu")
    model = loaded.model
    windows = calibration_pool(loaded.tokenizer, args.data_dir)[: args.windows]
    count = len(adapter_for(model).decoder_layers(model))
    first, last = resolve_layer_range(count, None)

    def paths(layers):
        return {i: output_paths(model, i) for i in layers}

    full_product = lambda x: x.T @ x  # noqa: E731
    ways = {
        "all layers, full products": (paths(range(count)), full_product),
        "layer range, full products": (paths(range(first, last)), full_product),
        "layer range, blocked products": (paths(range(first, last)), stats_module.gram_product),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    results = {}
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, (layer_paths, product) in ways.items():
                with mock.patch.object(stats_module, "gram_product", product):
                    t = time.perf_counter()
                    results[name] = dense_grams(model, windows, layer_paths)
                    seconds[name].append(time.perf_counter() - t)
    reference = results["all layers, full products"]
    identical = all(torch.equal(g.h, reference[key].h) for name in ways for key, g in results[name].items())
    median = {name: statistics.median(v) for name, v in seconds.items()}
    base = median["all layers, full products"]
    out = {"model": args.model, "windows": args.windows, "seq_len": int(windows.shape[1]), "layers": count,
           "layer_range": [first, last], "repeats": args.repeats, "threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "identical": identical,
           "seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
           "median_seconds": {k: round(v, 2) for k, v in median.items()},
           "faster_than_all_layers": {k: round(base / v, 2) for k, v in median.items()},
           "command": "python benchmarks/search/gram_pass.py " + " ".join(sys.argv[1:])}
    write_json(args.out, out)
    print(json.dumps(out, indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
