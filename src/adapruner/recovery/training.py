"""Supervised fine-tuning of LoRA and group-wise recovery on instruction examples: a step of
micro-batches with gradient accumulation and a token-weighted loss, run by the one training loop
(:mod:`adapruner.recovery.loop`: AdamW, linear warm-up then linear decay, budgets, validation).

Defaults follow LLM-Pruner's post-training (batch 64 = 16 micro-batches of 4, lr 1e-4, 2 epochs,
cutoff 256 tokens, up to 100 warm-up steps). On CPU pass ``max_steps`` / smaller batches. The
loss of a batch is the mean over all its trained tokens (not a mean of micro-batch means), so
gradient accumulation gives the same update as one large batch.
"""

from __future__ import annotations

import contextlib
import math
import random
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


def _logits(model, batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of a collated batch and its labels (-100 where no loss is taken), on ``device``."""
    batch = {k: v.to(device) for k, v in batch.items()}
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"]


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
        nll.add(*_logits(model, collate(examples[i:i + micro_batch_size], pad_id), device))
    model.train(was)
    return nll.mean


def train(model, train_examples: list[dict], config: TrainConfig, pad_id: int,
          progress: bool = True, validate=None, eval_every: int | None = None) -> dict:
    """Train the parameters of ``model`` that require grad with :func:`adapruner.recovery.loop.run`;
    return the loss history and timing.

    A step is ``batch_size`` examples (reshuffled every epoch), run as micro-batches whose
    gradients accumulate into the mean over all the step's trained tokens. With ``validate``
    (model -> validation perplexity) and ``eval_every``, the history also holds a validation
    curve ``[{step, seconds, ppl}]`` at step 0, every ``eval_every`` steps and at the end, timed
    on the same wall clock as distillation's (validation time included), so the two recovery
    methods' curves compare at equal time.
    """
    from adapruner.recovery.loop import Method, Schedule, run

    config.check()
    device = next(model.parameters()).device
    per_epoch = math.ceil(len(train_examples) / config.batch_size)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * per_epoch))
    warmup = min(config.warmup_steps, max(1, total_steps // 10))
    batches = EpochBatches(len(train_examples), config.batch_size, config.seed)

    def step(s: int) -> tuple[float, dict]:
        batch = [train_examples[i] for i in batches.at(s)]
        micro = [collate(batch[i:i + config.micro_batch_size], pad_id)
                 for i in range(0, len(batch), config.micro_batch_size)]
        n_tokens = sum(int((m["labels"][:, 1:] != -100).sum()) for m in micro)
        total = 0.0
        for m in micro:
            with mixed_precision(device, config.mixed_precision):
                loss = next_token_nll(*_logits(model, m, device))
            (loss / max(n_tokens, 1)).backward()
            total += float(loss.detach())
        return total / max(n_tokens, 1), {}

    method = Method(model=model, step=step,
                    validate=(lambda: {"ppl": float(validate(model))}) if validate is not None else None)
    record = run(method, Schedule(steps=total_steps, warmup=warmup, lr=config.lr, weight_decay=config.weight_decay,
                                  max_minutes=config.max_minutes, eval_every=eval_every, desc="fine-tuning"),
                 progress)
    done = record["steps"]
    return {"steps": done, "planned_steps": total_steps, "stopped_on_time_budget": record["stopped_on_time_budget"],
            "warmup_steps": warmup, "examples_seen": done * config.batch_size,
            "epochs_done": done * config.batch_size / len(train_examples),
            "train_loss": record["train_loss"], "seconds": record["seconds"],
            **({"validation": record["validation"]} if record["validation"] else {})}


class EpochBatches:
    """The example indices of every step: ``batch_size`` at a time from a permutation of all
    examples, a new permutation (from one seeded stream) each time one runs out. A function of
    the step, so a resumed run sees the batches the uninterrupted run would have seen."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._restart()

    def _restart(self) -> None:
        self.rng, self.order, self.next_step = random.Random(self.seed), [], 0

    def at(self, step: int) -> list[int]:
        """The indices of step ``step``."""
        if step < self.next_step:
            self._restart()
        while True:
            batch = []
            while len(batch) < self.batch_size:
                if not self.order:  # a new epoch: reshuffle
                    self.order = list(range(self.n))
                    self.rng.shuffle(self.order)
                batch.append(self.order.pop())
            self.next_step += 1
            if self.next_step > step:
                return batch
