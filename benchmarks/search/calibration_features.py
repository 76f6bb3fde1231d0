"""Does anything simple about a calibration window predict how good a set of them is?

TPE proposes each of a trial's ten pool indices on its own, and the pool is shuffled, so an index
carries nothing a sampler could learn from unless windows that are alike sit near each other. This
benchmark asks whether any cheap property of the windows explains the part of a trial's value that
its configuration does not:

1. the (set, value) pairs of every complete wanda-sp + reconstruct trial of the recorded 100-trial
   full-space searches at 20 % (``benchmarks/results/full_space*/trials.csv``);
2. per window of those sets: its book, and from one dense forward its mean next-token loss, the
   spread of that loss over its tokens, the mean entropy of the predictions and the share of its
   tokens that are distinct;
3. log value regressed on the configuration (allocation mode, the three knots, their squares and
   neighbouring products) with and without each set feature (the set's mean, minimum or maximum
   of a window feature; the share of each book), 10-fold cross-validated: a feature that predicts a
   set's value lowers the held-out error.

    python benchmarks/search/calibration_features.py --data-dir ../shared/data

Results: ``benchmarks/results/calibration_features.json``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
STUDIES = ("full_space", "full_space_default", "full_space_default_refine2")
FOLDS = 10


def trials(results: Path) -> list[dict]:
    """Complete wanda-sp + reconstruct trials of the recorded searches: value, set, knots, mode."""
    out = []
    for name in STUDIES:
        path = results / name / "trials.csv"
        if not path.is_file():
            continue
        for r in csv.DictReader(path.open()):
            if r["state"] != "COMPLETE" or (r["param_metric"], r["param_update"]) != ("wanda-sp", "reconstruct"):
                continue
            out.append({"study": name, "value": float(r["value"]), "indices": [int(i) for i in r["indices"].split()],
                        "uniform": r["param_allocation"] == "uniform",
                        "knots": [float(r.get(f"param_knot_{i}") or 1.0) for i in range(3)]})
    return out


@torch.no_grad()
def window_features(model, windows: torch.Tensor, batch: int = 16) -> np.ndarray:
    """``[windows, 4]``: mean next-token loss, its standard deviation over tokens, mean prediction
    entropy, share of distinct tokens."""
    out = np.zeros((len(windows), 4))
    for s in range(0, len(windows), batch):
        x = windows[s:s + batch]
        logits = model(input_ids=x, use_cache=False).logits[:, :-1].float()
        logp = logits.log_softmax(-1)
        nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)
        out[s:s + len(x), 0] = nll.mean(1).numpy()
        out[s:s + len(x), 1] = nll.std(1).numpy()
        out[s:s + len(x), 2] = (-(logp.exp() * logp).sum(-1)).mean(1).numpy()
        out[s:s + len(x), 3] = [len(set(row.tolist())) / len(row) for row in x]
    return out


def design(rows: list[dict], extra: list[np.ndarray]) -> np.ndarray:
    k = np.array([r["knots"] for r in rows])
    columns = [np.ones(len(rows)), np.array([r["uniform"] for r in rows], float), *k.T, *(k ** 2).T,
               k[:, 0] * k[:, 1], k[:, 1] * k[:, 2]]
    return np.column_stack(columns + extra)


def cv_rmse(x: np.ndarray, y: np.ndarray) -> float:
    """Held-out RMSE of least squares over ``FOLDS`` folds (one fixed shuffle)."""
    order, errors = np.random.default_rng(0).permutation(len(y)), []
    for f in range(FOLDS):
        test = order[f::FOLDS]
        train = np.setdiff1d(order, test)
        w = np.linalg.lstsq(x[train], y[train], rcond=None)[0]
        errors += list(y[test] - x[test] @ w)
    return float(np.sqrt(np.mean(np.square(errors))))


def main() -> int:
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.data.books import load_pool
    from adapruner.models.load import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", default=str(RESULTS / "calibration_features.json"))
    args = p.parse_args()
    rows = trials(RESULTS)
    if len(rows) < 3 * FOLDS:
        p.error("too few wanda-sp + reconstruct trials under benchmarks/results/full_space*/; run "
                "benchmarks/search/full_space.sh first")
    t0 = time.perf_counter()
    loaded = load_model(args.model, device="cpu")
    pool = load_pool(loaded.tokenizer, args.data_dir)
    used = sorted({i for r in rows for i in r["indices"]})
    features = np.full((len(pool.ids), 4), np.nan)
    features[used] = window_features(loaded.model, pool.ids[used])
    books = sorted({pool.sources[i][0] for i in used})

    y = np.log([r["value"] for r in rows])
    base = design(rows, [])
    residual = y - base @ np.linalg.lstsq(base, y, rcond=None)[0]
    candidates = {}
    for j, name in enumerate(("loss", "loss spread", "entropy", "distinct tokens")):
        for agg in ("mean", "min", "max"):
            candidates[f"{name} ({agg})"] = [np.array([getattr(np, agg)(features[r["indices"], j]) for r in rows])]
    shares = [np.array([np.mean([pool.sources[i][0] == b for i in r["indices"]]) for r in rows]) for b in books]
    candidates["book shares"] = shares[:-1]  # the shares sum to one: the last is the intercept's
    result = {"trials": len(rows), "windows": len(used), "studies": sorted({r["study"] for r in rows}),
              "value_sd_log": float(y.std()), "configuration_only": cv_rmse(base, y), "features": {}}
    for name, extra in candidates.items():
        corr = float(np.corrcoef(extra[0], residual)[0, 1]) if len(extra) == 1 else None
        result["features"][name] = {"cv_rmse": cv_rmse(design(rows, extra), y), "residual_correlation": corr}
    result.update({"model": args.model, "folds": FOLDS, "seconds": round(time.perf_counter() - t0, 1),
                   "threads": torch.get_num_threads(),
                   "command": "python benchmarks/search/calibration_features.py --data-dir DATA",
                   "versions": versions()})
    write_json(Path(args.out), result)
    print(f"configuration only: held-out RMSE {result['configuration_only']:.4f} (log value, sd {y.std():.4f})")
    for name, r in result["features"].items():
        print(f"  + {name}: {r['cv_rmse']:.4f}" + (f" (r = {r['residual_correlation']:+.2f})"
                                                   if r["residual_correlation"] is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
