"""The one training loop of every recovery method (LoRA, group tuning, distillation).

A method supplies what is its own: the parameters it trains and, for each optimiser step, its
loss (it runs its forward and backward passes, micro-batches included, and returns the step's
loss and any figures to record). The loop owns everything else, once: AdamW, linear warm-up then
linear decay to zero at whichever budget ends first (steps or the clock, :func:`lr_factor`),
gradient clipping, the wall-clock budget, a validation curve over wall time, checkpoints and
resume, Ctrl-C between steps, the progress bar and the history the report is made of.

A checkpoint holds the trained parameters (safetensors), the optimiser and schedule state (read
back with ``weights_only=True``), the step and the history, and a ``fingerprint`` of what the run
depends on (settings, data): a resumed run continues only a run of the same fingerprint. The
data order must be a function of the step (the methods' batches are), so a resumed run ends at
the weights the uninterrupted run ends at.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adapruner.core.io import atomic_directory
from adapruner.errors import AdaprunerError


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
    """Turn the first Ctrl-C inside the block into a flag the loop reads between steps.

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


@dataclass
class Method:
    """What a recovery method gives the loop: the ``model`` being trained (its parameters that
    require grad are trained), ``step(s)``, which runs step ``s``'s forward and backward passes
    and returns ``(loss, figures to record)``, and optionally ``validate()``, which returns the
    validation figures (``{"ppl": ...}``) of the model as it is."""

    model: torch.nn.Module
    step: Callable[[int], tuple[float, dict]]
    validate: Callable[[], dict] | None = None


@dataclass
class Schedule:
    """The loop's settings: ``steps`` (planned), ``warmup``, ``lr``, ``weight_decay``,
    ``max_minutes`` (wall-clock budget of the whole run, resumed parts included), ``clip_norm``
    (None: no clipping), ``eval_every`` (validation every N steps, plus at the start and the end),
    checkpoints into ``checkpoint_dir`` every ``checkpoint_every`` steps and every
    ``checkpoint_minutes`` (and on Ctrl-C), and the ``fingerprint`` a resumed run must match."""

    steps: int
    warmup: int
    lr: float
    weight_decay: float = 0.0
    max_minutes: float | None = None
    clip_norm: float | None = None
    eval_every: int | None = None
    checkpoint_dir: Path | None = None
    checkpoint_every: int | None = None
    checkpoint_minutes: float = 5.0
    fingerprint: dict = field(default_factory=dict)
    desc: str = "training"


def trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters the loop trains, by name."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(directory: Path, model, optim, sched, step: int, history: dict, fingerprint: dict) -> None:
    """Write the checkpoint of step ``step`` (all at once: staged, then renamed)."""
    from safetensors.torch import save_file

    with atomic_directory(directory, overwrite=True) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in trainable(model).items()},
                  str(tmp / "trained.safetensors"))
        torch.save({"optim": optim.state_dict(), "sched": sched.state_dict()}, tmp / "optim.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "fingerprint": fingerprint, "history": history},
                                                   default=str))


def load_checkpoint(directory: Path, model, optim, sched, fingerprint: dict) -> tuple[int, dict]:
    """Restore a checkpoint of a run with the same ``fingerprint``; returns ``(step, history)``."""
    from safetensors.torch import load_file

    info = json.loads((directory / "state.json").read_text())
    if info.get("fingerprint") != json.loads(json.dumps(fingerprint, default=str)):
        raise AdaprunerError(f"the checkpoint in {directory} was made with other settings or data; delete it or "
                             "run with the same flags")
    weights, params = load_file(str(directory / "trained.safetensors")), trainable(model)
    if weights.keys() != params.keys() or any(weights[k].shape != params[k].shape for k in params):
        raise AdaprunerError(f"the checkpoint in {directory} does not fit this model; delete it")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name])
    saved = torch.load(directory / "optim.pt", weights_only=True)
    optim.load_state_dict(saved["optim"])
    sched.load_state_dict(saved["sched"])
    return info["step"], info["history"]


def run(method: Method, schedule: Schedule, progress: bool = True) -> dict:
    """Train ``method`` under ``schedule``; returns the run's record: ``steps``, ``resumed_at_step``,
    ``stopped_on_time_budget``, ``train_loss`` (per step: loss, the method's figures, lr, seconds),
    ``validation`` (step, seconds, the method's validation figures) and ``seconds``."""
    from tqdm.auto import tqdm

    params = list(trainable(method.model).values())
    if not params:
        raise AdaprunerError("nothing to train: the model has no trainable parameters")
    start, offset = time.perf_counter(), 0.0

    def elapsed() -> float:  # wall time of the whole run, earlier processes of a resumed run included
        return offset + time.perf_counter() - start

    optim = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: lr_factor(s, schedule.warmup, schedule.steps, elapsed(), schedule.max_minutes))
    step, history = 0, {"train": [], "validation": []}
    checkpoint = Path(schedule.checkpoint_dir) if schedule.checkpoint_dir else None
    if checkpoint is not None and (checkpoint / "state.json").is_file():
        step, history = load_checkpoint(checkpoint, method.model, optim, sched, schedule.fingerprint)
    resumed_at = step
    # --max-minutes is the budget of the whole run: a resumed run spends what is left of it.
    offset = max([r.get("seconds", 0.0) for r in history["train"][-1:]]
                 + [v["seconds"] for v in history["validation"][-1:]] + [0.0])

    def validate(s: int) -> None:
        if method.validate is None or not schedule.eval_every:
            return
        # The clock is read before validating: the time at which the model reached this state.
        seconds = round(elapsed(), 1)
        history["validation"].append({"step": s, "seconds": seconds, **method.validate()})
        method.model.train()

    last_checkpoint = elapsed()

    def save(s: int) -> None:
        nonlocal last_checkpoint
        save_checkpoint(checkpoint, method.model, optim, sched, s, history, schedule.fingerprint)
        last_checkpoint = elapsed()

    def checkpoint_due(s: int) -> bool:
        if schedule.checkpoint_every is not None and s % schedule.checkpoint_every == 0:
            return True
        return elapsed() - last_checkpoint >= 60 * schedule.checkpoint_minutes

    if step == 0:
        validate(0)
    method.model.train()
    stopped_on_time = False
    bar = tqdm(total=schedule.steps, initial=step, desc=schedule.desc, unit="step", disable=not progress)
    with interrupt_between_steps() as interrupted:
        while step < schedule.steps:
            if interrupted[0]:
                if checkpoint is not None:
                    save(step)
                bar.close()
                raise KeyboardInterrupt
            if schedule.max_minutes is not None and elapsed() > 60 * schedule.max_minutes:
                stopped_on_time = True
                break
            optim.zero_grad(set_to_none=True)
            loss, figures = method.step(step)
            if schedule.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, schedule.clip_norm)
            lr_used = optim.param_groups[0]["lr"]
            optim.step()
            sched.step()
            step += 1
            history["train"].append({"step": step, "loss": loss, **figures, "lr": lr_used,
                                     "seconds": round(elapsed(), 1)})
            bar.update(1)
            shown = {"val": f"{history['validation'][-1]['ppl']:.1f}"} if history["validation"] else {}
            bar.set_postfix(loss=f"{loss:.3f}", **shown, **budget_postfix(elapsed(), schedule.max_minutes))
            if schedule.eval_every and step % schedule.eval_every == 0:
                validate(step)
            if checkpoint is not None and step < schedule.steps and checkpoint_due(step):
                save(step)
    bar.close()
    if history["validation"] and history["validation"][-1]["step"] != step:
        validate(step)
    method.model.eval()
    return {"steps": step, "resumed_at_step": resumed_at, "stopped_on_time_budget": stopped_on_time,
            "train_loss": history["train"], "validation": history["validation"], "seconds": round(elapsed(), 1)}
