"""``adapruner finetune``: recover a pruned model with LoRA, SAAP-style group-wise tuning or
distillation from the dense model.

lora / group train on instruction data in Alpaca format (JSON list or JSONL of {instruction,
input, output}, or a Hugging Face dataset name such as yahma/alpaca-cleaned when a network
exists) and merge the adapter. Their defaults are LLM-Pruner's: r=8, alpha=16, dropout 0.05,
lr 1e-4, 2 epochs, cutoff 256, batch 64 in micro-batches of 4; on a CPU use --max-steps and
smaller batches. distill trains the pruned model (all its weights, or a LoRA adapter with
--distill-lora) to match the dense --teacher's next-token distribution on plain text windows of
--seq-len tokens (the data directory's book texts by default).

Every method writes the run directory ``--out`` like ``prune`` does: the model in ``OUT/model``
(it loads exactly like the input) and, beside it, ``pruning_report.json`` and
``finetune_report.json`` (loss and validation curves, the data and the full protocol). Budgets:
--max-steps, --max-minutes (stops cleanly and saves); a killed distillation resumes from its
checkpoint with the same command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adapruner.commands.common import (add_data_arg, add_model_arg, add_runtime_args, finite_float, positive_int,
                                       seed_everything)
from adapruner.core.versions import versions
from adapruner.errors import AdaprunerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``finetune`` and its flags."""
    p = subparsers.add_parser("finetune", help="recovery: LoRA, group-wise tuning or distillation from the dense model",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    p.add_argument("--data", default=None, nargs="+", metavar="DATA",
                   help="lora/group: Alpaca-format JSON/JSONL file or HF dataset name (required); distill: plain "
                        "text, one or more .txt/.jsonl/.json files or 'books' (the data directory's book texts, "
                        "the default), their windows pooled")
    p.add_argument("--method", default="lora", choices=["lora", "group", "distill"],
                   help="lora (LLM-Pruner), group (SAAP-style group-quantised adapter, see recovery/group.py) or "
                        "distill (match the dense --teacher's next-token distribution on plain text)")
    p.add_argument("--out", required=True, help="run directory to write: the model in OUT/model, the reports beside it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=finite_float, default=2.0, help="passes over the training rows (default 2)")
    t.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimiser steps (CPU runs; distill default 200)")
    t.add_argument("--batch-size", type=int, default=None,
                   help="examples (windows for distill) per optimiser step (default 64; distill 8)")
    t.add_argument("--micro-batch-size", type=int, default=4, help="examples per forward (gradient accumulation)")
    t.add_argument("--lr", type=finite_float, default=None, help="peak learning rate of AdamW (default 1e-4; distill 5e-5)")
    t.add_argument("--warmup-steps", type=int, default=None,
                   help="linear learning-rate warm-up steps (default 100, LLM-Pruner's; distill 10); with a "
                        "--max-minutes budget on a CPU a run may take fewer steps than that")
    t.add_argument("--cutoff", type=int, default=256, help="maximum tokens per example")
    t.add_argument("--mixed-precision", default="no", choices=["no", "bf16"],
                   help="bf16: train under torch.autocast(bfloat16), weights and optimiser in float32 (faster on "
                        "GPUs and on CPUs with AMX / AVX512-BF16; see benchmarks/recovery/step_cost.py)")
    t.add_argument("--max-minutes", type=finite_float, default=None,
                   help="wall-clock budget: stop cleanly after the step that crosses it and save (every method)")
    t.add_argument("--val-size", type=int, default=2000,
                   help="held-out rows for the validation loss (capped at 10%% of the data)")
    t.add_argument("--train-on-inputs", action="store_true", help="also train on the prompt tokens")
    a = p.add_argument_group("adapter")
    a.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    a.add_argument("--lora-alpha", type=positive_int, default=16, help="LoRA scaling alpha (default 16)")
    a.add_argument("--lora-dropout", type=finite_float, default=0.05, help="LoRA dropout (default 0.05)")
    a.add_argument("--bits", type=int, default=4, help="group method: weight bits")
    a.add_argument("--group-size", type=int, default=32, help="group method: input columns per group")
    d = p.add_argument_group("distillation (--method distill)")
    d.add_argument("--teacher", default=None, help="the dense model the student was pruned from (alias, directory, ...)")
    d.add_argument("--teacher-device", default=None, help="where the teacher runs (default: --device)")
    d.add_argument("--teacher-dtype", default=None, help="the teacher's dtype (default: --dtype)")
    d.add_argument("--temperature", type=finite_float, default=1.0,
                   help="softmax temperature of the KL (default 1; 2 was worse in the pilots, benchmarks/README.md)")
    d.add_argument("--lm-weight", type=finite_float, default=0.0, help="weight of the plain next-token loss (default 0)")
    d.add_argument("--hidden-weight", type=finite_float, default=0.0,
                   help="weight of a loss matching every decoder layer's output to the teacher's (normalised "
                        "squared error; default 0: logits only)")
    d.add_argument("--seq-len", type=int, default=128, help="tokens per training window (default 128)")
    d.add_argument("--text-field", default="text", help="the text field of a .jsonl/.json --data")
    d.add_argument("--eval-every", type=int, default=None,
                   help="validation perplexity (WikiText-2 validation windows) every N steps, a curve over wall time "
                        "in the report (distill default 25; lora: off unless given)")
    d.add_argument("--val-windows", type=int, default=16, help="WikiText-2 validation windows (default 16)")
    d.add_argument("--checkpoint-minutes", type=finite_float, default=5.0,
                   help="minutes between checkpoints (default 5; Ctrl-C also saves one); the same command resumes "
                        "from the last one")
    d.add_argument("--checkpoint-every", type=int, default=None,
                   help="also save a checkpoint every N steps (default: by the clock only)")
    d.add_argument("--freeze-embeddings", action="store_true",
                   help="full-parameter distillation: keep the token embedding and output head fixed (faster "
                        "steps; they are not pruned)")
    d.add_argument("--distill-lora", action="store_true", help="train LoRA adapters (--lora-r) instead of all weights")
    add_data_arg(p)
    add_runtime_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Load, tune, merge, save."""

    from adapruner.data.alpaca import load_alpaca
    from adapruner.models.load import load_model
    from adapruner.recovery.training import TrainConfig

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise AdaprunerError(f"output directory {out} already exists; pass --overwrite or choose another --out")
    from adapruner.core.io import check_output
    from adapruner.pruning.save import check_output_dir

    check_output(out, [args.model, args.teacher, *(args.data or [])])
    check_output_dir(out, args.overwrite)
    if args.lora_r < 1:
        raise AdaprunerError(f"--lora-r must be at least 1 (got {args.lora_r})")
    if not 0.0 <= args.lora_dropout < 1.0:
        raise AdaprunerError(f"--lora-dropout must be in [0, 1) (got {args.lora_dropout})")
    if not 2 <= args.bits <= 8:
        raise AdaprunerError(f"--bits must be an integer from 2 to 8 (got {args.bits})")
    if args.group_size < 1:
        raise AdaprunerError(f"--group-size must be at least 1 (got {args.group_size})")
    if args.method == "distill":
        return run_distill(args, out)
    if not args.data:
        raise AdaprunerError(f"--method {args.method} needs --data (an Alpaca-format JSON/JSONL file)")
    if len(args.data) > 1:
        raise AdaprunerError(f"--method {args.method} trains on one --data file (got {len(args.data)}); merge them "
                             "into one Alpaca-format file")
    args.data = args.data[0]
    config = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size or 64,
                         micro_batch_size=args.micro_batch_size, lr=args.lr if args.lr is not None else 1e-4, cutoff=args.cutoff,
                         train_on_inputs=args.train_on_inputs, val_size=args.val_size, seed=args.seed,
                         max_minutes=args.max_minutes,
                         warmup_steps=args.warmup_steps if args.warmup_steps is not None else 100,
                         mixed_precision=args.mixed_precision)
    config.check()
    rows = load_alpaca(args.data)  # validate the data before spending time on the model
    if len(rows) < 2:
        raise AdaprunerError(f"{args.data} has {len(rows)} row(s); need at least 2 (train + validation)")
    seed_everything(args.seed)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    model, tokenizer = loaded.model, loaded.tokenizer
    if args.method == "lora":
        from adapruner.recovery.lora import LoraSettings, finetune_lora

        validate = _validation_ppl(args, tokenizer) if args.eval_every else None
        model, report = finetune_lora(model, tokenizer, rows, config,
                                      LoraSettings(args.lora_r, args.lora_alpha, args.lora_dropout),
                                      validate=validate, eval_every=args.eval_every)
    else:
        from adapruner.recovery.group import GroupSettings, finetune_group

        model, report = finetune_group(model, tokenizer, rows, config,
                                       GroupSettings(args.bits, args.group_size, args.lora_r, args.lora_alpha,
                                                     args.lora_dropout))
    report.update({
        "command": "finetune", "model": args.model, "model_path": loaded.path, "data": str(args.data),
        "n_rows": len(rows), "seed": args.seed, "device": str(next(model.parameters()).device), "dtype": args.dtype,
        "versions": versions("peft"),
    })
    final = _save(model, loaded, out, report, args.overwrite, leave_out=("train_loss",))
    print(f"{args.method}: validation loss {report['val_loss_before']:.4f} -> {report['val_loss_after']:.4f} "
          f"in {report['steps']} steps ({report['seconds']:.0f} s); wrote {final}")
    return 0


def run_distill(args: argparse.Namespace, out: Path) -> int:
    """``--method distill``: check everything, load student and teacher, distil, save like the input."""
    from adapruner.models.load import load_model
    from adapruner.recovery.distill import distill

    if not args.teacher:
        raise AdaprunerError("--method distill needs --teacher (the dense model the student was pruned from)")
    config = _distill_config(args)
    sources = args.data or ["books"]
    data_dir = _check_distill_inputs(args, config, sources)
    seed_everything(args.seed)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    teacher = load_model(args.teacher, device=args.teacher_device or args.device, dtype=args.teacher_dtype or args.dtype,
                         trust_remote_code=args.trust_remote_code)
    windows, val, source = _distill_windows(loaded.tokenizer, sources, data_dir, config, args.text_field)
    checkpoint = out.parent / f".{out.name}.distill-checkpoint"
    student, report = distill(loaded.model, teacher.model, windows, val, config, checkpoint_dir=checkpoint)
    report.update({"command": "finetune", "model": args.model, "model_path": loaded.path, "teacher": args.teacher,
                   "teacher_path": teacher.path, **source, "seed": args.seed, "dtype": args.dtype,
                   "device": str(next(student.parameters()).device), "versions": versions("peft")})
    final = _save(student, loaded, out, report, args.overwrite, leave_out=("train_loss", "validation"))
    import shutil

    shutil.rmtree(checkpoint, ignore_errors=True)
    budget = " (time budget reached)" if report["stopped_on_time_budget"] else ""
    print(f"distill: validation PPL {report['val_ppl_before']:.2f} -> {report['val_ppl_after']:.2f} in "
          f"{report['steps']} steps{budget} ({report['seconds']:.0f} s); wrote {final}")
    return 0


def _distill_config(args: argparse.Namespace):
    """The :class:`~adapruner.recovery.distill.DistillConfig` of the flags (checked)."""
    from adapruner.recovery.distill import DistillConfig

    config = DistillConfig(temperature=args.temperature, lm_weight=args.lm_weight, hidden_weight=args.hidden_weight,
                           seq_len=args.seq_len,
                           batch_size=args.batch_size or 8, lr=args.lr if args.lr is not None else 5e-5,
                           max_steps=args.max_steps or 200, max_minutes=args.max_minutes, eval_every=args.eval_every or 25,
                           val_windows=args.val_windows, checkpoint_every=args.checkpoint_every,
                           checkpoint_minutes=args.checkpoint_minutes,
                           lora_r=args.lora_r if args.distill_lora else 0, seed=args.seed,
                           warmup_steps=args.warmup_steps if args.warmup_steps is not None else 10,
                           mixed_precision=args.mixed_precision, freeze_embeddings=args.freeze_embeddings)
    config.check()
    return config


def _check_distill_inputs(args: argparse.Namespace, config, sources: list[str]) -> Path | None:
    """Every check that needs no model: the text sources, the data directory, the teacher's path
    and its vocabulary and depth against the student's; returns the data directory (None when
    neither the books nor the validation windows need one)."""
    from adapruner.data import user_text
    from adapruner.data.paths import resolve_data_dir
    from adapruner.models.load import peek_config, resolve_spec
    from adapruner.recovery.distill import check_hidden_shapes

    for src in sources:
        if src == "books":
            continue
        if not user_text.is_text_file(src):
            raise AdaprunerError(f"--data {src}: distillation reads plain text, a .txt, .jsonl or .json file, or "
                                 "'books' (the data directory's book texts)")
        user_text.read_rows(src, args.text_field)  # a bad file fails before any model loads
        _refuse_test_split(Path(src))
    data_dir = None
    try:
        data_dir = resolve_data_dir(args.data_dir)
    except AdaprunerError:
        if "books" in sources:
            raise
    resolve_spec(args.teacher)  # a missing teacher fails before the student loads
    configs = [peek_config(spec) or {} for spec in (args.model, args.teacher)]
    vocab = [c.get("vocab_size") for c in configs]
    if None not in vocab and vocab[0] != vocab[1]:
        raise AdaprunerError(f"the teacher's vocabulary ({vocab[1]} tokens) differs from the student's ({vocab[0]}); "
                             "distil from the dense model the student was pruned from")
    shape = [(c.get("num_hidden_layers"), c.get("hidden_size")) for c in configs]
    if config.hidden_weight and None not in (*shape[0], *shape[1]):
        check_hidden_shapes(*shape)  # before any model loads
    return data_dir


def _distill_windows(tok, sources: list[str], data_dir: Path | None, config, text_field: str):
    """``(training windows, validation windows, their description for the report)``: each source
    cut into its own windows and pooled (the run shuffles them); validation on WikiText-2's
    validation split, or, without a data directory, on the last windows of the text, held out."""
    import torch

    from adapruner.data import user_text
    from adapruner.recovery.distill import text_windows_from_books, validation_windows

    parts, described = [], []
    for src in sources:
        if src == "books":
            parts.append(text_windows_from_books(tok, data_dir, config.seq_len))
            described.append({"data": "books", "data_dir": str(data_dir), "windows": len(parts[-1])})
        else:
            parts.append(user_text.text_windows(tok, src, config.seq_len, text_field, need=1))
            described.append({"data": user_text.protocol(src, text_field), "windows": len(parts[-1])})
    windows = torch.cat(parts)
    if len(windows) < config.batch_size + 1:
        raise AdaprunerError(f"--data gives {len(windows)} window(s) of {config.seq_len} tokens but {config.batch_size + 1} "
                             "are needed; use more text or a smaller --batch-size / --seq-len")
    source = described[0] if len(described) == 1 else {"data": described}
    if data_dir is not None:
        val = validation_windows(tok, data_dir, config.seq_len, config.val_windows)
        source["validation_data"] = f"first {len(val)} windows of WikiText-2 validation"
    else:
        val, windows = windows[-config.val_windows:], windows[:-config.val_windows]
        source["validation_data"] = f"the last {len(val)} windows of --data, held out of training"
    return windows, val, source


def _save(model, loaded, out: Path, report: dict, overwrite: bool, leave_out: tuple[str, ...]) -> Path:
    """Save the tuned model like its input: its pruning report (when it has one) extended with the
    ``finetune`` summary (the report less ``leave_out``), and ``finetune_report.json``."""
    from adapruner.pruning.save import save_run

    previous = Path(loaded.path) / "pruning_report.json"
    pruning = json.loads(previous.read_text()) if previous.is_file() else {}
    pruning = {**pruning, "finetune": {k: v for k, v in report.items() if k not in leave_out}}
    return save_run(model, loaded.tokenizer, out, pruning, overwrite=overwrite, extra={"finetune_report.json": report})


def _validation_ppl(args: argparse.Namespace, tokenizer):
    """model -> perplexity on the first --val-windows WikiText-2 validation windows of --seq-len
    tokens (the windows distillation validates on, so the two methods' curves compare)."""
    from adapruner.data.paths import resolve_data_dir
    from adapruner.recovery.distill import validation_ppl, validation_windows

    if args.eval_every < 1:
        raise AdaprunerError(f"--eval-every must be at least 1 (got {args.eval_every})")
    windows = validation_windows(tokenizer, resolve_data_dir(args.data_dir), args.seq_len, args.val_windows)
    return lambda model: validation_ppl(model, windows)


def _refuse_test_split(path: Path) -> None:
    """Distilling on an evaluation test split would make every later test number meaningless."""
    if path.name in ("wiki.test.raw", "wiki.test.tokens", "ptb.test.txt"):
        raise AdaprunerError(f"{path} is an evaluation test split; never train on it (use the book texts or your "
                             "own text)")
