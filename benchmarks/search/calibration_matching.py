"""Can good calibration windows be chosen without trials? A set whose activations look like the
evaluation data's, against random sets and the set a search found.

A full-space trial's value moves by 4-6 points with its ten calibration windows, and a search's
found set keeps its lead on held-out validation text (``calibration_noise.py``): the windows
matter. Activation-based metrics (wanda-sp, FLAP) read one thing from them, the input norm of
every column of the output projections. This benchmark picks windows so that those norms match
the validation windows' own, in one forward pass and no trial:

1. one forward of the dense model over ``--candidates`` random pool windows and over the
   objective's validation windows, keeping per window the sum of squared inputs of every column
   of every output projection (o_proj, down_proj);
2. greedily, ``k`` windows (the configuration's count), each time the one that brings the set's
   per-column RMS profile closest to the validation windows' (log scale, each projection's
   profile centred, mean squared difference over columns and projections);
3. the recorded full-space search's best configuration with that set, scored by the objective
   and on the held-out validation windows; the random sets and the found set of
   ``calibration_noise_heldout.json`` beside it.

    python benchmarks/search/calibration_matching.py --data-dir ../shared/data

Results: ``benchmarks/results/calibration_matching.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def column_energy(model, windows: torch.Tensor, batch: int = 16) -> tuple[torch.Tensor, list[int]]:
    """Per window, the sum over its tokens of every output projection column's squared input,
    concatenated over projections: ``[windows, columns]`` (float64), and each projection's column count."""
    from adapruner.core.adapters import adapter_for
    from adapruner.updates.reconstruct import output_paths

    layers = adapter_for(model).decoder_layers(model)
    modules = [layer.get_submodule(path) for i, layer in enumerate(layers) for path in output_paths(model, i)]
    sizes = [m.in_features for m in modules]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    # Written in place: small tensors kept between the forward's large temporaries fragment the
    # heap (the resident memory grew by ~0.7 GB per batch when each batch's sums were kept).
    energy = torch.zeros(len(windows), sum(sizes), dtype=torch.float64)
    rows = slice(0, 0)

    def hook(index):
        def pre(_module, args):
            norm = torch.linalg.vector_norm(args[0], dim=1).double()
            energy[rows, offsets[index]:offsets[index] + sizes[index]] = norm.square()
        return pre

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        with torch.no_grad():
            for start in range(0, len(windows), batch):
                rows = slice(start, min(start + batch, len(windows)))
                model(input_ids=windows[rows], use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return energy, sizes


def profile(energy: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Log RMS of every column, each projection's block centred (its scale does not matter to a
    ranking inside it). ``energy`` is ``[..., columns]``."""
    log = 0.5 * torch.log(energy + 1e-12)
    blocks = log.split(sizes, dim=-1)
    return torch.cat([b - b.mean(dim=-1, keepdim=True) for b in blocks], dim=-1)


def match(candidates: torch.Tensor, target: torch.Tensor, sizes: list[int], k: int) -> list[int]:
    """Greedy: ``k`` candidate rows whose summed energy's profile is closest to ``target``'s."""
    goal = profile(target.sum(dim=0), sizes)
    chosen: list[int] = []
    total = torch.zeros_like(candidates[0])
    for _ in range(k):
        trial = profile(total + candidates, sizes)
        distance = (trial - goal).pow(2).mean(dim=1)
        if chosen:
            distance[chosen] = float("inf")
        best = int(distance.argmin())
        chosen.append(best)
        total = total + candidates[best]
    return chosen


def main() -> int:
    from adapruner.config import PruneConfig
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.data.books import calibration_pool
    from adapruner.models.load import load_model
    from adapruner.search.objective import Objective, ObjectiveProtocol, load_eval_windows
    from adapruner.search.space import SearchSpace
    from calibration_noise import SEARCHES, heldout_windows

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--candidates", type=int, default=512, help="random pool windows the set is chosen from")
    p.add_argument("--heldout", type=int, default=128, help="held-out validation windows per dataset")
    p.add_argument("--out", default=str(RESULTS / "calibration_matching.json"))
    args = p.parse_args()

    recorded = json.loads((RESULTS / SEARCHES["recorded"] / "best_config.json").read_text())
    config = PruneConfig.from_json(recorded["config"])
    k = len(config.calibration.indices)
    loaded = load_model(args.model, device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    pool = calibration_pool(tok, args.data_dir)
    protocol = ObjectiveProtocol()
    windows = load_eval_windows(tok, args.data_dir, protocol)

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    candidates = sorted(torch.randperm(len(pool), generator=g)[: args.candidates].tolist())
    energy, sizes = column_energy(model, pool[candidates])
    target, _ = column_energy(model, torch.cat(list(windows.values())))
    chosen = sorted(candidates[i] for i in match(energy, target, sizes, k))
    select_s = time.perf_counter() - t0

    factors = SearchSpace.load("full").element_factors()
    objective = Objective(model, pool, windows, args.ratio, element_factors=factors)
    held = Objective(model, pool, heldout_windows(tok, args.data_dir, protocol, args.heldout), args.ratio,
                     element_factors=factors)
    held.update_cache = objective.update_cache  # the dense Grams do not depend on the windows scored
    config.calibration.indices = chosen
    result = {"model": args.model, "ratio": args.ratio, "configuration": "recorded", "windows": k,
              "candidates": args.candidates, "heldout_windows": args.heldout, "indices": chosen,
              "objective": objective(config).value, "heldout": held(config).value,
              "selection_seconds": round(select_s, 1),
              "command": f"python benchmarks/search/calibration_matching.py --data-dir DATA --candidates {args.candidates}",
              "threads": torch.get_num_threads(), "versions": versions("optuna")}
    print(f"matched set {chosen}: objective {result['objective']:.2f}, held out {result['heldout']:.2f} "
          f"(chosen in {select_s:.0f} s)", flush=True)
    write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
