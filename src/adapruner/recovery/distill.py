"""Knowledge distillation from the dense model: the recovery that Minitron, Sheared-LLaMA and
DarwinLM use, on plain text instead of instructions.

The student (the pruned model) is trained to match the teacher's (the dense model's) next-token
distribution on text windows of ``seq_len`` tokens:

    loss = T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T))  +  lm_weight * CE(student)
           + hidden_weight * mean_l ||h_s^l - h_t^l||^2 / ||h_t^l||^2

averaged over all predicted tokens (T = ``temperature``; the T^2 keeps gradient scales
comparable across temperatures, Hinton et al. 2015). The optional last term matches the output
of every decoder layer (the residual stream, which structured pruning leaves at full width, so
student and teacher share all layers), each normalised by the teacher's energy at that layer so
that deep layers with large activations do not drown the shallow ones. The teacher runs without gradients, in its
own dtype, on its own device, its logits computed on the fly. Full-parameter training by default
(a pruned 100M-1B model fits); ``lora_r > 0`` trains LoRA adapters instead (merged at the end).

Budget and safety for CPU users: ``max_steps`` and ``max_minutes`` (stop cleanly after the
current step and save), a validation perplexity every ``eval_every`` steps (WikiText-2
*validation* windows, never a test split), and a checkpoint every ``checkpoint_every`` steps
into ``checkpoint_dir`` (student weights in safetensors, optimiser state loaded with
``weights_only=True``, step, data order) from which the same command resumes after Ctrl-C or a
kill and ends with the same number of steps.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from adapruner.core.lm import TokenNLL
from adapruner.errors import AdaprunerError
from adapruner.recovery.kl import chunked_distillation_loss
from adapruner.recovery.training import check_mixed_precision, mixed_precision


@dataclass
class DistillConfig:
    """Settings of a distillation run (module docstring)."""

    # 1, not Hinton's 2: perplexity measures the unflattened distribution, and T=1 beat T=2 in
    # every pilot on SmolLM2 (benchmarks/README.md, recovery section)
    temperature: float = 1.0
    lm_weight: float = 0.0
    hidden_weight: float = 0.0
    seq_len: int = 128
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 10
    max_steps: int = 200
    max_minutes: float | None = None
    eval_every: int = 25
    val_windows: int = 16
    # A checkpoint (the student, AdamW's two moments, the curves) is ~1 GB for a pruned 135M
    # model and took 8-14 s on 2 CPU cores: every 25 steps it was 172 s of a 20-minute run, a
    # cost LoRA does not pay. By the clock it bounds both the overhead and the work a kill
    # loses; Ctrl-C saves one on the way out.
    checkpoint_minutes: float = 5.0
    checkpoint_every: int | None = None  # also every N steps (tests, very slow steps)
    lora_r: int = 0
    seed: int = 0
    mixed_precision: str = "no"  # "bf16": student and teacher forwards under torch.autocast(bfloat16)
    # The token embedding (tied to the output head in SmolLM2: a quarter of a pruned 135M model)
    # is left at full width by structured pruning; freezing it skips its weight gradient and
    # its AdamW update, the largest single share of a CPU step outside the layers.
    freeze_embeddings: bool = False

    def check(self) -> None:
        """One-line errors for settings that cannot train."""
        if not self.temperature > 0:
            raise AdaprunerError(f"--temperature must be positive (got {self.temperature})")
        if self.lm_weight < 0:
            raise AdaprunerError(f"--lm-weight must be >= 0 (got {self.lm_weight})")
        if not self.hidden_weight >= 0:
            raise AdaprunerError(f"--hidden-weight must be >= 0 (got {self.hidden_weight})")
        if self.seq_len < 2:
            raise AdaprunerError(f"--seq-len must be at least 2 (got {self.seq_len})")
        if self.batch_size < 1 or self.max_steps < 1:
            raise AdaprunerError("--batch-size and --max-steps must be at least 1")
        if not self.lr > 0:
            raise AdaprunerError(f"--lr must be a positive number (got {self.lr})")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise AdaprunerError(f"--max-minutes must be positive (got {self.max_minutes}); omit it for no time limit")
        if self.eval_every < 1 or (self.checkpoint_every is not None and self.checkpoint_every < 1) \
                or self.val_windows < 1:
            raise AdaprunerError("--eval-every, --checkpoint-every and --val-windows must be at least 1")
        if not self.checkpoint_minutes > 0:
            raise AdaprunerError(f"--checkpoint-minutes must be positive (got {self.checkpoint_minutes})")
        if self.lora_r < 0:
            raise AdaprunerError(f"--lora-r must be >= 0 (got {self.lora_r})")
        if self.warmup_steps < 0:
            raise AdaprunerError(f"--warmup-steps must be 0 or more (got {self.warmup_steps})")
        check_mixed_precision(self.mixed_precision)


def check_pair(student, teacher) -> None:
    """The teacher must speak the student's vocabulary (same output size and embedding rows)."""
    s, t = student.get_output_embeddings().out_features, teacher.get_output_embeddings().out_features
    if s != t:
        raise AdaprunerError(f"the teacher's vocabulary ({t} tokens) differs from the student's ({s}); distil from "
                             "the dense model the student was pruned from")


def check_hidden_shapes(student: tuple[int, int], teacher: tuple[int, int]) -> None:
    """A hidden-state loss needs the layers to line up: the same (depth, residual width)."""
    if tuple(student) != tuple(teacher):
        raise AdaprunerError(f"--hidden-weight needs student and teacher with the same layers and hidden size (student "
                             f"{student[0]} x {student[1]}, teacher {teacher[0]} x {teacher[1]}); use --hidden-weight 0")


def check_hidden_pair(student, teacher) -> None:
    """:func:`check_hidden_shapes` of two loaded models."""
    check_hidden_shapes(*[(m.config.num_hidden_layers, m.config.hidden_size) for m in (student, teacher)])


def hidden_state_loss(student_hidden: tuple[torch.Tensor, ...], teacher_hidden: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean over decoder layers of ||h_s - h_t||^2 / ||h_t||^2 (``hidden_states[1:]`` of both)."""
    terms = []
    for hs, ht in zip(student_hidden[1:], teacher_hidden[1:]):
        ht = ht.float().to(hs.device)
        terms.append((hs.float() - ht).pow(2).mean() / ht.pow(2).mean().clamp_min(1e-12))
    return torch.stack(terms).mean()


@torch.no_grad()
def mean_kl(student, teacher, windows: torch.Tensor, batch_size: int = 8) -> float:
    """Mean per-token KL(teacher || student) at temperature 1 over ``windows``."""
    return validation_metrics(student, teacher, windows, batch_size)[1]


def validation_windows(tokenizer, data_dir: str | Path, seq_len: int, count: int) -> torch.Tensor:
    """The first ``count`` WikiText-2 *validation* windows of ``seq_len`` tokens: what every
    recovery method validates on, so the curves of LoRA and distillation compare."""
    from adapruner.data.corpora import JOIN, load_corpus
    from adapruner.eval.perplexity import corpus_windows

    return corpus_windows(tokenizer, load_corpus("wikitext2", "valid", data_dir), seq_len, JOIN["wikitext2"],
                          max_windows=count)


@torch.no_grad()
def validation_ppl(model, windows: torch.Tensor, batch_size: int = 8) -> float:
    """Perplexity of ``model`` on ``windows`` (eval mode, restored after)."""
    return validation_metrics(model, None, windows, batch_size)[0]


@torch.no_grad()
def validation_metrics(student, teacher, windows: torch.Tensor, batch_size: int = 8,
                       teacher_cache: list[torch.Tensor] | None = None) -> tuple[float, float | None]:
    """Perplexity of ``student`` on ``windows`` and, with a teacher, its mean per-token KL to it
    at temperature 1, from one student pass (validation time counts against a time budget, so
    it should not run the student twice). ``teacher_cache`` (from :func:`teacher_log_probs`)
    replaces the teacher's forward passes."""
    was = student.training
    student.eval()
    with_kl = teacher is not None or teacher_cache is not None
    nll, kl_sum = TokenNLL(), 0.0
    for i, batch in enumerate(windows.split(batch_size)):
        logits = student(input_ids=batch.to(_device(student)), use_cache=False).logits
        nll.add(logits, batch)
        if with_kl:
            t = (teacher_cache[i] if teacher_cache is not None
                 else teacher(input_ids=batch.to(_device(teacher)), use_cache=False).logits)
            kl_sum += chunked_distillation_loss(logits, t, batch, 1.0, 0.0)[1] * batch[:, 1:].numel()
    student.train(was)
    return nll.ppl(cap=700.0), (kl_sum / max(nll.tokens, 1) if with_kl else None)


# The teacher's validation log-probabilities are kept in float16 (log-softmax values, so the
# KL read from them is exact to ~1e-3) up to this size; above it they are recomputed each time.
TEACHER_CACHE_BYTES = 1 << 30


@torch.no_grad()
def teacher_log_probs(teacher, windows: torch.Tensor, batch_size: int = 8) -> list[torch.Tensor] | None:
    """The teacher's log-softmax on every validation batch, in float16 on the CPU, or None when
    that would exceed ``TEACHER_CACHE_BYTES``. The teacher never changes, so a distillation run
    that validates every few steps need not run it again each time: on 2 CPU cores the teacher's
    share of a validation was a third of its cost."""
    vocab = teacher.get_output_embeddings().out_features
    if windows.numel() * vocab * 2 > TEACHER_CACHE_BYTES:
        return None
    return [F.log_softmax(teacher(input_ids=b.to(_device(teacher)), use_cache=False).logits.float(), -1)
            .to("cpu", torch.float16) for b in windows.split(batch_size)]


def _device(model) -> torch.device:
    return model.get_input_embeddings().weight.device


def _state(config: DistillConfig) -> dict:
    """What a checkpoint must agree with to be resumed."""
    return {k: v for k, v in asdict(config).items()
            if k not in ("max_minutes", "eval_every", "checkpoint_every", "checkpoint_minutes", "mixed_precision")}


def _trainable(student, config: DistillConfig):
    """The student with what it trains set: LoRA adapters (``lora_r``), else every parameter but
    the embeddings when they are frozen."""
    if config.lora_r:
        from peft import LoraConfig, get_peft_model

        from adapruner.recovery.lora import target_modules

        return get_peft_model(student, LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r,
                                                  target_modules=target_modules(student), lora_dropout=0.0))
    for p in student.parameters():
        p.requires_grad_(True)
    if config.freeze_embeddings:
        for module in (student.get_input_embeddings(), student.get_output_embeddings()):
            for p in module.parameters():
                p.requires_grad_(False)
    return student


def distill(student, teacher, train_windows: torch.Tensor, val_windows: torch.Tensor, config: DistillConfig,
            checkpoint_dir: str | Path | None = None, progress: bool = True) -> tuple[object, dict]:
    """Train ``student`` to match ``teacher`` on ``train_windows`` with the one training loop
    (:mod:`adapruner.recovery.loop`); return ``(student, report)``.

    The report holds the loss curve, the validation curve (step, seconds, perplexity, KL), the
    settings, how many windows were seen and whether the run stopped on the time budget. The
    student comes back in eval mode (LoRA adapters merged).
    """
    from adapruner.recovery.loop import Method, Schedule, run

    config.check()
    check_pair(student, teacher)
    if config.hidden_weight:
        check_hidden_pair(student, teacher)
    if len(train_windows) < config.batch_size:
        raise AdaprunerError(f"{len(train_windows)} training windows of {config.seq_len} tokens, fewer than one batch "
                             f"of {config.batch_size}; use more text or a smaller --batch-size / --seq-len")
    torch.manual_seed(config.seed)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = _trainable(student, config)
    # The data order is a pure function of the seed and the step, so a resumed run sees the
    # windows the uninterrupted run would have seen.
    order = list(range(len(train_windows)))
    random.Random(config.seed).shuffle(order)
    hidden = config.hidden_weight > 0

    def step(s: int) -> tuple[float, dict]:
        n = config.batch_size
        ids = train_windows[[order[(s * n + j) % len(order)] for j in range(n)]]
        with torch.no_grad(), mixed_precision(_device(teacher), config.mixed_precision):
            t_out = teacher(input_ids=ids.to(_device(teacher)), use_cache=False, output_hidden_states=hidden)
        with mixed_precision(_device(student), config.mixed_precision):
            s_out = student(input_ids=ids.to(_device(student)), use_cache=False, output_hidden_states=hidden)
        loss, kl = chunked_distillation_loss(s_out.logits, t_out.logits, ids, config.temperature, config.lm_weight)
        figures = {"kl": kl}
        if hidden:
            h_loss = hidden_state_loss(s_out.hidden_states, t_out.hidden_states)
            loss = loss + config.hidden_weight * h_loss
            figures["hidden"] = float(h_loss.detach())
        del t_out, s_out
        loss.backward()
        return float(loss.detach()), figures

    teacher_cache = teacher_log_probs(teacher, val_windows, config.batch_size)

    def validate() -> dict:
        ppl, kl = validation_metrics(student, teacher, val_windows, config.batch_size, teacher_cache)
        return {"ppl": ppl, "kl": kl}

    # A digest stable across processes (Python's hash() of bytes is salted per process), so a
    # resumed run in a new process recognises its data.
    digest = hashlib.sha256(train_windows.numpy().tobytes()).hexdigest()[:16]
    schedule = Schedule(steps=config.max_steps, warmup=min(config.warmup_steps, max(1, config.max_steps // 10)),
                        lr=config.lr, weight_decay=config.weight_decay, max_minutes=config.max_minutes, clip_norm=1.0,
                        eval_every=config.eval_every, checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
                        checkpoint_every=config.checkpoint_every, checkpoint_minutes=config.checkpoint_minutes,
                        fingerprint={"config": _state(config), "windows": digest}, desc="distilling")
    record = run(Method(model=student, step=step, validate=validate), schedule, progress)
    if config.lora_r:
        student = student.merge_and_unload()
    for p in student.parameters():
        p.requires_grad_(False)
    student.eval()
    steps, validation = record["steps"], record["validation"]
    report = {"method": "distill", "settings": asdict(config), "steps": steps,
              "resumed_at_step": record["resumed_at_step"], "stopped_on_time_budget": record["stopped_on_time_budget"],
              "windows_seen": steps * config.batch_size,
              # Which training windows the student saw (indices into the training windows, in
              # their order of the text): the pruning's calibration text may be among them.
              "seen_windows": sorted(set(order[:min(steps * config.batch_size, len(order))])),
              "window_order": f"random.Random({config.seed}).shuffle over the training windows, cycled",
              "train_windows": len(train_windows), "train_loss": record["train_loss"], "validation": validation,
              "val_ppl_before": validation[0]["ppl"], "val_ppl_after": validation[-1]["ppl"],
              "seconds": record["seconds"]}
    return student, report


def text_windows_from_books(tokenizer, data_dir: str | Path, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows of all the book texts (joined by paragraph), the default training text."""
    from adapruner.data.books import book_files, paragraphs, read_book
    from adapruner.data.tokens import cut_windows, encode, leading_bos

    text = "\n\n".join(p for f in book_files(data_dir) for p in paragraphs(read_book(f)))
    return cut_windows(encode(tokenizer, text), seq_len, leading_bos(tokenizer))
