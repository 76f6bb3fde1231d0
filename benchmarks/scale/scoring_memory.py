"""Peak memory of importance scoring: our hook-folded statistics vs a naive ``.grad`` scorer.

Both compute the same element-wise second-order scores (Eq. 4: |g W - 1/2 F W^2|, F = sum over
samples of squared per-sample gradients) on the same calibration samples of the same model:

* ours: :func:`adapruner.importance.collect_statistics`, one batched forward/backward, parameters
  frozen, per-sample gradients built and folded per unit inside the hooks;
* naive (LLM-Pruner style): all parameters require grad, N separate backward passes each adding
  ``grad**2`` into an ``acc_grad`` copy per parameter, then one batched backward for the mean
  gradient in ``.grad``, then the scores from ``.grad`` and ``acc_grad``.

Each scorer runs in its own subprocess (so neither inherits the other's allocator state). Peak
memory is the process's peak resident set size during scoring only: after the model and data are
loaded the kernel's peak counter is reset (``/proc/self/clear_refs``), and VmHWM is read when
scoring ends; ``baseline`` is the resident size just before scoring. glibc's mmap threshold is
fixed (``MALLOC_MMAP_THRESHOLD_``) so that freed tensors leave the resident set at once. All runs happen in one
invocation and the ratios are printed side by side. Ours runs once with all samples in one
forward/backward (the product's default) and once per ``--micro-batches`` size (``adapruner prune
--micro-batch M``: the statistics are sums over samples, so the scores are the same while the
activations of only M samples are alive at once):

    python benchmarks/scale/scoring_memory.py                      # SmolLM2-135M, 10 x 128 tokens
    python benchmarks/scale/scoring_memory.py --samples 4 --seq-len 64 --micro-batches 2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


MMAP_THRESHOLD = 1 << 20  # bytes


def _status(field: str) -> float:
    """A memory field of /proc/self/status in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def naive_scores(model, calib: torch.Tensor) -> dict[tuple[int, str], torch.Tensor]:
    """Element2 per member from parameter .grad and an acc_grad copy (LLM-Pruner's way)."""
    from adapruner.importance.folding import fold
    from adapruner.importance.statistics import pruneable_linears

    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    n = calib.shape[0]
    for j in range(n):
        ids = calib[j:j + 1]
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        for p in params:
            sq = p.grad * p.grad
            if hasattr(p, "acc_grad"):
                p.acc_grad += sq
            else:
                p.acc_grad = sq
        model.zero_grad()
    # Mean gradient of the mean per-sample loss (equal lengths: the batch's token-mean loss).
    model(input_ids=calib, labels=calib, use_cache=False).loss.backward()
    out = {}
    with torch.no_grad():
        for i, linears in pruneable_linears(model).items():
            for lin, members in linears.values():
                w = lin.weight
                score = (lin.weight.grad * w - 0.5 * lin.weight.acc_grad * w * w).abs()
                for m in members:
                    out[(i, m.name)] = fold(score, m)
    for p in params:
        del p.acc_grad
        p.grad = None
        p.requires_grad_(False)
    return out


def our_scores(model, calib: torch.Tensor, micro_batch: int | None = None) -> dict[tuple[int, str], torch.Tensor]:
    """Element2 per member from the batched, hook-folded statistics."""
    from adapruner.importance import collect_statistics

    stats = collect_statistics(model, calib, micro_batch=micro_batch, element_factors=(1.0,), progress=False)
    return {(i, name): ms.el2[0] for i, ls in stats.layers.items() for name, ms in ls.members.items()}


def worker(args) -> None:
    from adapruner.config import PruneConfig
    from adapruner.models.load import load_model
    from adapruner.data.calibration import calibration_samples

    torch.manual_seed(0)
    lm = load_model(args.model, device="cpu", dtype="float32")
    config = PruneConfig()
    config.calibration.num_samples, config.calibration.seq_len = args.samples, args.seq_len
    calib = calibration_samples(lm.tokenizer, config.calibration, args.data_dir)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    gc.collect()
    reset = _reset_peak()
    baseline = _status("VmRSS")
    start = time.perf_counter()
    if args.worker == "ours":
        scores = our_scores(lm.model, calib, args.micro_batch)
    else:
        scores = naive_scores(lm.model, calib)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    save_file({f"{i}.{name}": v.contiguous().cpu() for (i, name), v in scores.items()}, args.scores_out)
    print(json.dumps({"scorer": args.worker, "baseline_mib": baseline, "peak_mib": peak,
                      "scoring_mib": peak - baseline, "seconds": seconds, "peak_reset": reset}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--data-dir", default=os.environ.get("ADAPRUNER_DATA_DIR")
                        or str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    parser.add_argument("--micro-batches", default="2",
                        help="comma-separated micro-batch sizes to run ours with as well ('' for none)")
    parser.add_argument("--worker", choices=["ours", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--micro-batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scores-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import tempfile

    results, scores = {}, {}
    # A fixed mmap threshold makes glibc return every freed tensor to the OS at once, so RSS
    # follows the live tensors instead of heap fragmentation (with the default dynamic threshold
    # the same run can differ by hundreds of MiB).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("ours", "ours", None)] + [(f"ours mb{m}", "ours", int(m)) for m in args.micro_batches.split(",") if m]
        for name, worker_kind, micro in runs + [("naive", "naive", None)]:
            out = Path(tmp) / f"{name.replace(' ', '_')}.safetensors"
            cmd = [sys.executable, __file__, "--worker", worker_kind, "--scores-out", str(out), "--model", args.model,
                   "--samples", str(args.samples), "--seq-len", str(args.seq_len), "--data-dir", args.data_dir]
            if micro:
                cmd += ["--micro-batch", str(micro)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.exit(f"{name} scorer failed:\n{proc.stderr[-3000:]}")
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            scores[name] = load_file(out)
    n = results["naive"]
    print(f"model {args.model}, {args.samples} x {args.seq_len} calibration tokens, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU threads, MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}")
    print(f"{'':28s}{'naive':>10s}" + "".join(f"{name:>12s}{'ratio':>8s}" for name, _, _ in runs))
    for key, label in (("scoring_mib", "peak RSS during scoring MiB"), ("peak_mib", "peak RSS of process MiB"),
                       ("seconds", "scoring time s")):
        print(f"{label:28s}{n[key]:10.1f}"
              + "".join(f"{results[name][key]:12.1f}{results[name][key] / n[key]:7.2f}x" for name, _, _ in runs))
    print("baseline RSS (model + data) MiB: " + ", ".join(f"{k} {r['baseline_mib']:.1f}" for k, r in results.items())
          + f"; peak counter reset: {all(r['peak_reset'] for r in results.values())}")
    for name, _, _ in runs:
        diffs = [float((scores[name][k] - v).norm() / v.norm()) for k, v in scores["naive"].items()]
        print(f"element2 scores, {name} vs naive: max relative difference per member {max(diffs):.2e}")


if __name__ == "__main__":
    main()
