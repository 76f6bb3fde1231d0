"""``adapruner finetune``: recover a pruned model with LoRA or SAAP-style group-wise tuning.

Trains on instruction data in Alpaca format (JSON list or JSONL of {instruction, input, output},
or a Hugging Face dataset name such as yahma/alpaca-cleaned when a network exists), merges the
adapter and writes ``--out`` in the same format as a pruned model (it loads exactly like the
input directory) plus ``finetune_report.json`` (validation loss before/after, loss curve, the
full protocol). Defaults are LLM-Pruner's: r=8, alpha=16, dropout 0.05, lr 1e-4, 2 epochs,
cutoff 256, batch 64 in micro-batches of 4; on a CPU use --max-steps and smaller batches.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adapruner.commands.common import add_model_arg, add_runtime_args, seed_everything
from adapruner.core.io import write_json
from adapruner.core.versions import versions
from adapruner.errors import AdaprunerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``finetune`` and its flags."""
    p = subparsers.add_parser("finetune", help="recovery fine-tuning (LoRA or group-wise) and merge",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    p.add_argument("--data", required=True, help="Alpaca-format JSON/JSONL file or HF dataset name")
    p.add_argument("--method", default="lora", choices=["lora", "group"],
                   help="lora (LLM-Pruner) or group (SAAP-style group-quantised adapter, see recovery/group.py)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, default=2.0, help="passes over the training rows (default 2)")
    t.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps (CPU runs)")
    t.add_argument("--batch-size", type=int, default=64, help="examples per optimiser step")
    t.add_argument("--micro-batch-size", type=int, default=4, help="examples per forward (gradient accumulation)")
    t.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of AdamW (default 1e-4)")
    t.add_argument("--cutoff", type=int, default=256, help="maximum tokens per example")
    t.add_argument("--val-size", type=int, default=2000,
                   help="held-out rows for the validation loss (capped at 10%% of the data)")
    t.add_argument("--train-on-inputs", action="store_true", help="also train on the prompt tokens")
    a = p.add_argument_group("adapter")
    a.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    a.add_argument("--lora-alpha", type=int, default=16, help="LoRA scaling alpha (default 16)")
    a.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    a.add_argument("--bits", type=int, default=4, help="group method: weight bits")
    a.add_argument("--group-size", type=int, default=32, help="group method: input columns per group")
    add_runtime_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Load, tune, merge, save."""

    from adapruner.data.alpaca import load_alpaca
    from adapruner.models.load import load_model
    from adapruner.pruning.save import save_pruned
    from adapruner.recovery.training import TrainConfig

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise AdaprunerError(f"output directory {out} already exists; pass --overwrite or choose another --out")
    from adapruner.pruning.save import check_output_dir

    check_output_dir(out, args.overwrite)
    if args.lora_r < 1:
        raise AdaprunerError(f"--lora-r must be at least 1 (got {args.lora_r})")
    if not 0.0 <= args.lora_dropout < 1.0:
        raise AdaprunerError(f"--lora-dropout must be in [0, 1) (got {args.lora_dropout})")
    if not 2 <= args.bits <= 8:
        raise AdaprunerError(f"--bits must be an integer from 2 to 8 (got {args.bits})")
    if args.group_size < 1:
        raise AdaprunerError(f"--group-size must be at least 1 (got {args.group_size})")
    config = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                         micro_batch_size=args.micro_batch_size, lr=args.lr, cutoff=args.cutoff,
                         train_on_inputs=args.train_on_inputs, val_size=args.val_size, seed=args.seed)
    config.check()
    rows = load_alpaca(args.data)  # validate the data before spending time on the model
    if len(rows) < 2:
        raise AdaprunerError(f"{args.data} has {len(rows)} row(s); need at least 2 (train + validation)")
    seed_everything(args.seed)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    model, tokenizer = loaded.model, loaded.tokenizer
    if args.method == "lora":
        from adapruner.recovery.lora import LoraSettings, finetune_lora

        model, report = finetune_lora(model, tokenizer, rows, config,
                                      LoraSettings(args.lora_r, args.lora_alpha, args.lora_dropout))
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
    previous = Path(loaded.path) / "pruning_report.json"
    pruning = json.loads(previous.read_text()) if previous.is_file() else {}
    pruning = {**pruning, "finetune": {k: v for k, v in report.items() if k != "train_loss"}}
    final = save_pruned(model, tokenizer, out, pruning, overwrite=args.overwrite)
    write_json(Path(final) / "finetune_report.json", report)
    print(f"{args.method}: validation loss {report['val_loss_before']:.4f} -> {report['val_loss_after']:.4f} "
          f"in {report['steps']} steps ({report['seconds']:.0f} s); wrote {final}")
    return 0
