"""What one recovery step costs, and where the time goes: distillation vs LoRA, float32 vs bfloat16.

Side by side in one process, on one pruned SmolLM2-135M model, interleaved rounds, medians:

- the teacher's forward alone (what a cache of its logits would save per step);
- a distillation step (teacher forward, student forward + backward, AdamW) in float32, with the
  teacher in bfloat16, and under ``torch.autocast(bfloat16)`` for student and teacher;
- a LoRA step (r 8, the same batch of 8 windows of 128 tokens as the LM loss) in float32 and
  under autocast;
- the step of the 20-minute table (batch 4, T 1, autocast, ``--freeze-embeddings``);
- the loss alone (forward + backward from the logits) and the autocast step with the chunked,
  gradient-fused KL in use (``adapruner.recovery.kl``) against the ``kl_div`` over two
  float32 log-softmaxes that it replaced, and LoRA's cross-entropy from the same logits;
- the same two with the next-token loss at weight 0.5 (``--lm-weight 0.5``), its cross-entropy
  fused into the chunked pass against autograd over a float32 log-softmax (the earlier form).

``--only A,B`` times the cases whose name holds A or B (e.g. ``--only "loss,T 1"``).

CPUs with AMX / AVX512-BF16 run bfloat16 matmuls much faster than float32; others do not, so the
ratios hold for the machine that printed them only.

    python benchmarks/recovery/step_cost.py --model RUN_DIR/model --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a pruned model directory")
    p.add_argument("--teacher", default="smollm2-135m")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="", help="time only the cases whose name contains one of these comma-separated parts")
    p.add_argument("--out", default="benchmarks/results/recovery/step_cost.json")
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    from adapruner.core.io import write_json
    from adapruner.core.lm import next_token_nll
    from adapruner.core.versions import versions
    from adapruner.models.load import load_model
    from adapruner.recovery.distill import text_windows_from_books
    from adapruner.recovery.kl import chunked_distillation_loss, chunked_kl
    from adapruner.recovery.lora import LoraSettings, add_lora

    torch.manual_seed(0)
    student = load_model(args.model, device="cpu", dtype="float32").model
    teacher = load_model(args.teacher, device="cpu", dtype="float32")
    tok, teacher = teacher.tokenizer, teacher.model
    teacher_bf16 = load_model(args.teacher, device="cpu", dtype="bfloat16").model
    for m in (teacher, teacher_bf16):
        m.eval().requires_grad_(False)
    ids = text_windows_from_books(tok, Path(args.data_dir), 128)[:8]
    params = [q for q in student.parameters()]
    for q in params:
        q.requires_grad_(True)
    optim = torch.optim.AdamW(params, lr=1e-6)

    def autocast(on: bool):
        return torch.autocast("cpu", dtype=torch.bfloat16) if on else nullcontext()

    def teacher_forward(t=teacher, amp=False):
        with torch.no_grad(), autocast(amp):
            return t(input_ids=ids, use_cache=False).logits

    def kl_div_loss(s_logits, t_logits, temperature):
        # The earlier loss: autograd through two float32 log-softmaxes and kl_div.
        s = s_logits[:, :-1].float() / temperature
        t = t_logits[:, :-1].float() / temperature
        return temperature**2 * F.kl_div(F.log_softmax(s, -1).reshape(-1, s.shape[-1]),
                                         F.log_softmax(t, -1).reshape(-1, t.shape[-1]),
                                         log_target=True, reduction="batchmean")

    def chunked_loss(s_logits, t_logits, temperature):
        return chunked_distillation_loss(s_logits, t_logits, ids[:len(s_logits)], temperature, 0.0)[0]

    def lm_loss_autograd(s_logits, t_logits, temperature):
        # KL + 0.5 x next-token loss in its earlier form: the cross-entropy through autograd over a
        # float32 log-softmax of the whole batch x positions x vocab
        return (chunked_kl(s_logits, t_logits, temperature, positions=s_logits.shape[1] - 1)
                + 0.5 * next_token_nll(s_logits, ids[:len(s_logits)], reduction="mean"))

    def lm_loss_fused(s_logits, t_logits, temperature):
        return chunked_distillation_loss(s_logits, t_logits, ids[:len(s_logits)], temperature, 0.5)[0]

    fixed_logits = {}

    def loss_only(loss_fn):
        # Forward + backward of the loss from fixed bf16 logits (the autocast step's dtype).
        if not fixed_logits:
            with torch.no_grad(), autocast(True):
                fixed_logits["t"] = teacher(input_ids=ids, use_cache=False).logits
                fixed_logits["s"] = student(input_ids=ids, use_cache=False).logits
        s_logits = fixed_logits["s"].detach().requires_grad_(True)
        loss_fn(s_logits, fixed_logits["t"], 1.0).backward()

    def distill_step(t=teacher, amp=False, loss_fn=None, temperature=2.0):
        t_logits = teacher_forward(t, amp)
        with autocast(amp):
            s_logits = student(input_ids=ids, use_cache=False).logits
        loss = (loss_fn or chunked_loss)(s_logits, t_logits, temperature)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    frozen_optim = []

    def frozen_step(loss_fn):
        # The equal-time table's distillation step: batch 4, T 1, autocast, embeddings frozen.
        tied = {id(q) for m in (student.get_input_embeddings(), student.get_output_embeddings()) for q in m.parameters()}
        rest = [q for q in params if id(q) not in tied]
        if not frozen_optim:
            frozen_optim.append(torch.optim.AdamW(rest, lr=1e-6))
        for q in params:
            q.requires_grad_(id(q) not in tied)
        with torch.no_grad(), autocast(True):
            t_logits = teacher(input_ids=ids[:4], use_cache=False).logits
        with autocast(True):
            s_logits = student(input_ids=ids[:4], use_cache=False).logits
        loss = (loss_fn or chunked_loss)(s_logits, t_logits, 1.0)
        frozen_optim[0].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rest, 1.0)
        frozen_optim[0].step()
        for q in params:
            q.requires_grad_(True)

    lora_model = None

    def lora_step(amp=False):
        nonlocal lora_model
        if lora_model is None:
            import copy

            lora_model = add_lora(copy.deepcopy(student), LoraSettings(8, 16, 0.05))
        lp = [q for q in lora_model.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(lp, lr=1e-6)
        with autocast(amp):
            logits = lora_model(input_ids=ids, use_cache=False).logits
        loss = next_token_nll(logits.float(), ids, reduction="mean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    cases = {
        "teacher forward float32": lambda: teacher_forward(),
        "teacher forward bfloat16 weights": lambda: teacher_forward(teacher_bf16),
        "distill step float32": lambda: distill_step(),
        "distill step, teacher bfloat16": lambda: distill_step(teacher_bf16),
        "distill step, autocast bfloat16": lambda: distill_step(amp=True),
        "lora step float32": lambda: lora_step(),
        "lora step, autocast bfloat16": lambda: lora_step(amp=True),
        "loss only, kl_div (earlier form)": lambda: loss_only(kl_div_loss),
        "loss only, chunked KL": lambda: loss_only(chunked_loss),
        "loss only, cross-entropy (LoRA's)": lambda: loss_only(lambda s, t, temperature: next_token_nll(s, ids, "mean")),
        "distill step, autocast bfloat16, T 1, kl_div (earlier form)":
            lambda: distill_step(amp=True, loss_fn=kl_div_loss, temperature=1.0),
        "distill step, autocast bfloat16, T 1, chunked KL": lambda: distill_step(amp=True, temperature=1.0),
        "table step (batch 4, frozen embeddings), kl_div (earlier form)": lambda: frozen_step(kl_div_loss),
        "table step (batch 4, frozen embeddings), chunked KL": lambda: frozen_step(None),
        "loss only, KL + 0.5 CE, CE by autograd (the earlier form)": lambda: loss_only(lm_loss_autograd),
        "loss only, KL + 0.5 CE fused": lambda: loss_only(lm_loss_fused),
        "table step, KL + 0.5 CE, CE by autograd (the earlier form)": lambda: frozen_step(lm_loss_autograd),
        "table step, KL + 0.5 CE fused": lambda: frozen_step(lm_loss_fused),
    }
    cases = {k: v for k, v in cases.items() if any(part in k for part in args.only.split(","))}
    for fn in cases.values():  # warm-up: oneDNN kernels, allocator
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    base_name = "distill step float32" if "distill step float32" in med else next(iter(med))
    base = med[base_name]
    print(f"| case (batch 8 x 128 tokens, {torch.get_num_threads()} threads) | median s | vs {base_name} |")
    print("|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} | {v / base:.2f}x |")
    write_json(Path(args.out), {"median_seconds": med, "seconds": times, "threads": torch.get_num_threads(),
                                "model": args.model, "teacher": args.teacher, "versions": versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
