"""One search trial of ours vs one LLM-Pruner-style trial, in one process, on the same data.

Ours (adapruner.search.objective): one batched forward/backward over the 10 calibration windows
(per-sample statistics folded in hooks, no .grad), scores, allocation, masks on the live model,
and evaluation that re-runs only the pruned layer range from cached hidden states.

LLM-Pruner style: deepcopy the model, 10 sequential forward/backward passes (one per sample,
.grad accumulated, per-sample squared gradients summed for the Fisher diagonal), element-wise
second-order scores, the same allocation, physical pruning of the copy, and a full forward
evaluation of every window.

Prints both trial times, their ratio, and our trial time relative to one evaluation forward pass
of the pruned model over the same windows.

    python benchmarks/search/trial_speed.py --model smollm2-135m --ratio 0.2 --eval-windows 16
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import optuna
import torch
import torch.nn.functional as F

from adapruner.config import MetricConfig, PruneConfig
from adapruner.data.books import calibration_pool
from adapruner.data.paths import resolve_data_dir
from adapruner.eval.perplexity import perplexity
from adapruner.models.load import load_model
from adapruner.core.adapters import adapter_for
from adapruner.allocation import allocate
from adapruner.pruning.surgery import prune_model
from adapruner.search.objective import Objective, ObjectiveProtocol, load_eval_windows
from adapruner.search.space import SearchSpace

RESULT = Path(__file__).resolve().parents[1] / "results" / "trial_speed.json"


def unit_sums(values: torch.Tensor, member) -> torch.Tensor:
    """Sum of ``values`` (shaped like the member's weight) over each unit's rows/columns."""
    span = values.narrow(member.axis, member.offset, member.count * member.width)
    if member.axis == 0:
        return span.reshape(member.count, -1).sum(1)
    return span.reshape(span.shape[0], member.count, member.width).sum((0, 2))


def llm_pruner_trial(model, calib: torch.Tensor, windows: dict, ratio: float, config: PruneConfig) -> dict:
    """Deepcopy, N sequential backward passes with .grad, element2 scores, surgery, full eval."""
    t0 = time.perf_counter()
    work = copy.deepcopy(model)
    work.train(False)
    adapter = adapter_for(work)
    layers = adapter.decoder_layers(work)
    fisher = {id(p): torch.zeros_like(p) for p in work.parameters()}
    work.zero_grad(set_to_none=True)
    for sample in calib:  # one backward per sample, as LLM-Pruner does for its Fisher term
        prev = {id(p): (p.grad.clone() if p.grad is not None else None) for p in work.parameters()}
        ids = sample.unsqueeze(0)
        logits = work(input_ids=ids, use_cache=False).logits
        loss = F.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
        loss.backward()
        for p in work.parameters():
            if p.grad is not None:
                g = p.grad - (prev[id(p)] if prev[id(p)] is not None else 0)
                fisher[id(p)] += g * g
    scores = {}
    for i, layer in enumerate(layers):
        shape = adapter.layer_shape(work, i)
        kinds = {"head": torch.zeros(shape.num_heads, dtype=torch.float64),
                 "kv": torch.zeros(shape.num_kv_heads, dtype=torch.float64),
                 "channel": torch.zeros(shape.intermediate_size, dtype=torch.float64)}
        for m in adapter.members(shape):
            lin = layer.get_submodule(m.path)
            w, g, f = lin.weight.detach(), lin.weight.grad / len(calib), fisher[id(lin.weight)]
            kinds[m.unit] += unit_sums((g * w - 0.5 * f * w * w).abs(), m).double()
        # A KV group also owns its query heads' rows/columns, as in our engine.
        group = shape.group_size
        kinds["kv"] += kinds["head"].reshape(shape.num_kv_heads, group).sum(1)
        scores[i] = kinds
    work.zero_grad(set_to_none=True)
    t1 = time.perf_counter()
    plan = allocate(work, scores, ratio, config.allocation)
    prune_model(work, plan)
    t2 = time.perf_counter()
    ppl = {name: perplexity(work, w, batch_size=8, progress=False).ppl for name, w in windows.items()}
    t3 = time.perf_counter()
    return {"seconds": t3 - t0, "score_s": t1 - t0, "prune_s": t2 - t1, "eval_s": t3 - t2, "ppl": ppl, "model": work}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--eval-windows", type=int, default=16, help="validation windows per dataset")
    ap.add_argument("--repeats", type=int, default=2, help="timed trials of each method, alternated (medians)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=str(RESULT), help="where the numbers go (default: %(default)s)")
    args = ap.parse_args()

    torch.manual_seed(0)
    data_dir = resolve_data_dir(args.data_dir)
    loaded = load_model(args.model, device=args.device)
    model, tok = loaded.model, loaded.tokenizer
    space = SearchSpace()
    pool = calibration_pool(tok, data_dir, seq_len=space.seq_len, seed=space.pool_seed)
    windows = load_eval_windows(tok, data_dir, ObjectiveProtocol(windows=args.eval_windows))
    objective = Objective(model, pool, windows, args.ratio, batch_size=8)
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    configs = [space.suggest(study.ask(), len(pool)) for _ in range(args.repeats + 1)]
    for c in configs:  # both methods use the same metric family: second-order element-wise
        c.metric = MetricConfig(name="element2")

    t = time.perf_counter()
    objective(configs[0])  # warm-up: builds the hidden-state cache once per search
    warmup_s = time.perf_counter() - t
    # Alternate the two methods so that load drift on a shared machine hits both alike.
    ours, theirs_runs, forwards = [], [], []
    for config in configs[1:]:
        ours.append(objective(config))
        run = llm_pruner_trial(model, pool[config.calibration.indices], windows, args.ratio, config)
        pruned = run.pop("model")
        t = time.perf_counter()
        for w in windows.values():
            perplexity(pruned, w, batch_size=8, progress=False)
        forwards.append(time.perf_counter() - t)
        del pruned
        theirs_runs.append(run)
    ours_s = statistics.median(r.seconds for r in ours)
    theirs = min(theirs_runs, key=lambda r: abs(r["seconds"] - statistics.median(x["seconds"] for x in theirs_runs)))
    theirs["seconds"] = statistics.median(x["seconds"] for x in theirs_runs)
    forward_s = statistics.median(forwards)
    calib = pool[configs[-1].calibration.indices]

    result = {
        "model": args.model, "ratio": args.ratio, "eval_windows_per_dataset": args.eval_windows,
        "calibration_samples": len(calib), "device": args.device, "threads": torch.get_num_threads(),
        "ours_trial_s_median": ours_s, "ours_breakdown": ours[-1].timings, "ours_first_trial_s": warmup_s,
        "llm_pruner_trial_s": theirs["seconds"],
        "llm_pruner_breakdown": {k: theirs[k] for k in ("score_s", "prune_s", "eval_s")},
        "pruned_eval_forward_s": forward_s,
        "speedup_vs_llm_pruner": theirs["seconds"] / ours_s,
        "ours_over_eval_forward": ours_s / forward_s,
        "same_ppl_check": {"ours": ours[-1].ppl, "llm_pruner_style": theirs_runs[-1]["ppl"]},
        "per_repeat_s": {"ours": [r.seconds for r in ours], "llm_pruner_style": [r["seconds"] for r in theirs_runs],
                         "eval_forward": forwards},
    }
    print(f"{'':34s}{'seconds':>10s}")
    print(f"{'our trial (median)':34s}{ours_s:10.2f}   {json.dumps({k: round(v, 2) for k, v in ours[-1].timings.items()})}")
    print(f"{'our first trial (builds cache)':34s}{warmup_s:10.2f}")
    print(f"{'LLM-Pruner-style trial (median)':34s}{theirs['seconds']:10.2f}   "
          f"{json.dumps({k: round(theirs[k], 2) for k in ('score_s', 'prune_s', 'eval_s')})}")
    print(f"{'pruned model, one eval forward':34s}{forward_s:10.2f}")
    print(f"LLM-Pruner-style / ours: {result['speedup_vs_llm_pruner']:.2f}x;  "
          f"ours / one eval forward of the pruned model: {result['ours_over_eval_forward']:.2f}x")
    print(f"validation PPL (same calibration, element2): ours {ours[-1].ppl}, "
          f"LLM-Pruner style {theirs_runs[-1]['ppl']}")
    result["command"] = ("python benchmarks/search/trial_speed.py --model {} --ratio {} --eval-windows {} --repeats {} "
                         "--data-dir DATA").format(args.model, args.ratio, args.eval_windows, args.repeats)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
