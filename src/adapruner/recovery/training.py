"""The training loop shared by LoRA and group-wise recovery: plain AdamW over the trainable
parameters, gradient accumulation, linear warm-up then linear decay, token-weighted loss.

Defaults follow LLM-Pruner's post-training (batch 64 = 16 micro-batches of 4, lr 1e-4, 2 epochs,
cutoff 256 tokens, up to 100 warm-up steps). On CPU pass ``max_steps`` / smaller batches. The
loss of a batch is the mean over all its trained tokens (not a mean of micro-batch means), so
gradient accumulation gives the same update as one large batch.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass

import torch

from adapruner.core.lm import TokenNLL, next_token_nll
from adapruner.data.alpaca import collate
from adapruner.errors import AdaprunerError


@dataclass
class TrainConfig:
    """Optimisation settings of a recovery run (see module docstring for their origin)."""

    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 64
    micro_batch_size: int = 4
    lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    cutoff: int = 256
    train_on_inputs: bool = False
    val_size: int = 2000
    seed: int = 0
    max_minutes: float | None = None  # stop after the step that crosses this wall-clock budget
    mixed_precision: str = "no"  # "bf16": forward and backward under torch.autocast(bfloat16)

    def check(self) -> None:
        """Reject settings that cannot train."""
        if self.batch_size < 1 or self.micro_batch_size < 1:
            raise AdaprunerError("--batch-size and --micro-batch-size must be at least 1")
        if self.batch_size % self.micro_batch_size:
            raise AdaprunerError(f"--batch-size {self.batch_size} must be a multiple of --micro-batch-size "
                                 f"{self.micro_batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise AdaprunerError(f"--max-steps must be at least 1 (got {self.max_steps})")
        if self.epochs <= 0:
            raise AdaprunerError(f"--epochs must be positive (got {self.epochs})")
        if not self.lr > 0 or self.lr != self.lr:
            raise AdaprunerError(f"--lr must be a positive number (got {self.lr})")
        if self.cutoff < 2:
            raise AdaprunerError(f"--cutoff must be at least 2 tokens (got {self.cutoff})")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise AdaprunerError(f"--max-minutes must be positive (got {self.max_minutes}); omit it for no time limit")
        if self.val_size < 1:
            raise AdaprunerError(f"--val-size must be at least 1 (got {self.val_size})")
        if self.warmup_steps < 0:
            raise AdaprunerError(f"--warmup-steps must be 0 or more (got {self.warmup_steps})")
        check_mixed_precision(self.mixed_precision)

    def to_json(self) -> dict:
        """A JSON-serialisable dict."""
        return asdict(self)


MIXED_PRECISION = ("no", "bf16")


def check_mixed_precision(mode: str) -> None:
    """One-line error for an unknown --mixed-precision value."""
    if mode not in MIXED_PRECISION:
        raise AdaprunerError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)} (got {mode!r})")


def mixed_precision(device: torch.device | str, mode: str):
    """The context of a training forward pass: ``torch.autocast`` in bfloat16 for "bf16" (weights,
    gradients and optimiser state stay float32; CPUs with AMX or AVX512-BF16 and GPUs run the
    matmuls much faster), nothing for "no"."""
    if mode == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def lr_factor(step: int, warmup: int, total_steps: int, elapsed_s: float, max_minutes: float | None) -> float:
    """The learning-rate multiplier of step ``step``: linear warm-up over ``warmup`` steps, then
    linear decay to zero at whichever budget ends first, the steps or the wall clock.

    Decaying on the clock when ``--max-minutes`` binds is what makes a time-budgeted run end
    annealed (Li et al. 2020, "Budgeted training"): a rate held at its peak until the budget cuts
    the run off leaves the weights where the last noisy steps put them; at the peak rate
    distillation's validation perplexity rose again after ~3 minutes on a CPU.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    if max_minutes is not None:
        progress = max(progress, elapsed_s / (60 * max_minutes))
    return max(0.0, 1.0 - progress)


@contextlib.contextmanager
def interrupt_between_steps():
    """Turn the first Ctrl-C inside the block into a flag a training loop reads between steps.

    Yields a one-element list that becomes ``[True]`` on Ctrl-C; the loop then saves its
    checkpoint and raises KeyboardInterrupt itself, so the checkpoint never holds a half-applied
    optimiser step. A second Ctrl-C interrupts at once. Outside the main thread (where signal
    handlers cannot be set) Ctrl-C behaves as usual.
    """
    import signal
    import threading

    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def on_sigint(signum, frame):
        flag[0] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def budget_postfix(elapsed_s: float, max_minutes: float | None) -> dict:
    """The progress bar's note of the wall-clock budget left (its step ETA is meaningless when a
    --max-minutes budget, not --max-steps, ends the run)."""
    if max_minutes is None:
        return {}
    left = max(0.0, 60 * max_minutes - elapsed_s)
    return {"budget_left": f"{left / 60:.1f}min"}


def _token_loss(model, batch: dict, device) -> tuple[torch.Tensor, int]:
    """Summed next-token NLL over labelled tokens, and their number."""
    batch = {k: v.to(device) for k, v in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = next_token_nll(logits, batch["labels"])
    return loss, int((batch["labels"][:, 1:] != -100).sum())


@torch.no_grad()
def validation_loss(model, examples: list[dict], pad_id: int, micro_batch_size: int = 4,
                    progress: bool = False) -> float:
    """Mean NLL per trained token over ``examples`` (model put in eval mode, restored after)."""
    from tqdm import tqdm

    was = model.training
    model.eval()
    device = next(model.parameters()).device
    nll = TokenNLL()
    for i in tqdm(range(0, len(examples), micro_batch_size), desc="validation loss", disable=not progress,
                  leave=False):
        batch = {k: v.to(device) for k, v in collate(examples[i:i + micro_batch_size], pad_id).items()}
        nll.add(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"])
    model.train(was)
    return nll.mean


def train(model, train_examples: list[dict], config: TrainConfig, pad_id: int,
          progress: bool = True, validate=None, eval_every: int | None = None) -> dict:
    """Train the parameters of ``model`` that require grad; return the loss history and timing.

    With ``validate`` (model -> validation perplexity) and ``eval_every``, the history also holds
    a validation curve ``[{step, seconds, ppl}]`` at step 0, every ``eval_every`` steps and at the
    end, timed on the same wall clock as distillation's (validation time included), so the two
    recovery methods' curves compare at equal time.
    """
    from tqdm import tqdm

    config.check()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise AdaprunerError("nothing to train: the model has no trainable parameters")
    device = params[0].device
    per_epoch = math.ceil(len(train_examples) / config.batch_size)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * per_epoch))
    warmup = min(config.warmup_steps, max(1, total_steps // 10))
    start, start_clock = time.time(), time.perf_counter()
    optim = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: lr_factor(s, warmup, total_steps, time.perf_counter() - start_clock, config.max_minutes))
    rng = random.Random(config.seed)
    order: list[int] = []
    history = []
    model.train()
    bar = tqdm(range(total_steps), desc="fine-tuning", disable=not progress)
    done = 0
    curve = []

    def checkpoint_validation(step: int) -> None:
        if validate is not None and eval_every:
            curve.append({"step": step, "seconds": round(time.time() - start, 1), "ppl": float(validate(model))})
            model.train()

    checkpoint_validation(0)
    for step in bar:
        if config.max_minutes is not None and time.time() - start > 60 * config.max_minutes:
            break
        batch = []
        while len(batch) < config.batch_size:
            if not order:  # a new epoch: reshuffle
                order = list(range(len(train_examples)))
                rng.shuffle(order)
            batch.append(train_examples[order.pop()])
        micro = [collate(batch[i:i + config.micro_batch_size], pad_id)
                 for i in range(0, len(batch), config.micro_batch_size)]
        n_tokens = sum(int((m["labels"][:, 1:] != -100).sum()) for m in micro)
        optim.zero_grad(set_to_none=True)
        step_loss = 0.0
        for m in micro:
            with mixed_precision(device, config.mixed_precision):
                loss, _ = _token_loss(model, m, device)
            (loss / max(n_tokens, 1)).backward()
            step_loss += float(loss.detach())
        lr_used = optim.param_groups[0]["lr"]
        optim.step()
        sched.step()
        history.append({"step": step + 1, "loss": step_loss / max(n_tokens, 1), "lr": lr_used})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}",
                        **budget_postfix(time.perf_counter() - start_clock, config.max_minutes))
        done = step + 1
        if eval_every and done % eval_every == 0:
            checkpoint_validation(done)
    if curve and curve[-1]["step"] != done:
        checkpoint_validation(done)
    model.eval()
    return {"steps": done, "planned_steps": total_steps, "stopped_on_time_budget": done < total_steps,
            "warmup_steps": warmup, "examples_seen": done * config.batch_size,
            "epochs_done": done * config.batch_size / len(train_examples),
            "train_loss": history, "seconds": round(time.time() - start, 1),
            **({"validation": curve} if curve else {})}
