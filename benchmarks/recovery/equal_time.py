"""Distillation vs LoRA recovery at the same wall-clock budget (issue: "recovery that recovers").

For each pruned SmolLM2-135M model (element1 at 20 % and 50 % by default; add a searched model's
run directory with ``--extra NAME=DIR``), both recovery methods get ``--minutes`` of wall time on
this machine, validation time included, measured on the same clock and the same WikiText-2
validation windows (``--eval-every`` steps):

- LoRA (LLM-Pruner's recipe, r=8) on the cleaned-Alpaca sample of the data directory;
- distillation from the dense model (KL at temperature 2, all weights) on the book texts.

Then the full WikiText-2 / PTB test perplexity of the untuned, LoRA and distilled models (and with
``--limit N`` the 7-task zero-shot average), a markdown table and a plot of validation PPL
against wall time. Resumable: every run directory in ``--work`` with its results is kept and
skipped on the next run; results go to ``benchmarks/results/recovery/``.

    python benchmarks/recovery/equal_time.py --data-dir ../shared/data --minutes 20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METHODS = ("lora", "distill")


def run_cli(args: list[str]) -> None:
    from adapruner.cli import main

    print("adapruner " + " ".join(args), file=sys.stderr, flush=True)
    if main(args) != 0:
        raise SystemExit(f"command failed: adapruner {' '.join(args)}")


def parser() -> argparse.ArgumentParser:
    """The benchmark's flags; their defaults are the recovery recipe other benchmarks reuse."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--work", default="/tmp/adapruner-bench/recovery")
    p.add_argument("--out", default="benchmarks/results/recovery")
    p.add_argument("--ratios", default="0.2,0.5")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=DIR",
                   help="another pruned run directory to recover, e.g. searched20=/tmp/.../full-space-r20-tpe-s0")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of each recovery run")
    p.add_argument("--eval-every", type=int, default=10)
    # Peak rates from 1.6-2.5-minute pilots on element1-20 (benchmarks/README.md). Both decay
    # linearly to zero at the end of the time budget; distillation's 1e-3, best in the pilots,
    # overshot in a full 8-minute run at a constant rate, hence 5e-4.
    p.add_argument("--lora-lr", default="1e-3")
    p.add_argument("--distill-lr", default="5e-4")
    p.add_argument("--distill-temperature", default="2",
                   help="KL temperature of distillation (1 was better in the second pilot round, benchmarks/README.md)")
    p.add_argument("--distill-lm-weight", default="0",
                   help="weight of the student's next-token loss on the text beside the KL (finetune --lm-weight)")
    p.add_argument("--distill-batch-size", default="8", help="windows per distillation step")
    p.add_argument("--distill-data", default=None, nargs="+",
                   help="distillation text (default: the book texts), e.g. DATA/alpaca/alpaca_cleaned_sample2000.json "
                        "with --distill-text-field output; several sources (a file or 'books') are pooled")
    p.add_argument("--distill-text-field", default="text")
    p.add_argument("--distill-freeze-embeddings", action="store_true",
                   help="distillation keeps the token embedding / output head fixed (finetune --freeze-embeddings)")
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16"],
                   help="both methods train under this precision (finetune --mixed-precision)")
    p.add_argument("--limit", type=int, default=None, help="zero-shot documents per task (default: no zero-shot)")
    p.add_argument("--zeroshot-models", default=None,
                   help="comma list of model names that get the zero-shot run (default: all, when --limit is set)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="score the first N windows of each test split (a full split takes ~20 min per model on 2 "
                        "CPU cores; default: all)")
    return p


def recipe(args: argparse.Namespace) -> tuple[list[str], dict[str, list[str]]]:
    """``adapruner finetune`` flags of the recovery recipe: the time budget and evaluation shared by
    both methods, and each method's own (``lora``, ``distill``)."""
    budget = ["--max-minutes", str(args.minutes), "--max-steps", "100000", "--eval-every", str(args.eval_every),
              "--val-windows", "16", "--seq-len", "128",
              # LLM-Pruner's 100 warm-up steps would leave LoRA below its peak rate for the whole budget
              "--warmup-steps", "10", "--mixed-precision", args.mixed_precision]
    flags = {
        "lora": ["--method", "lora", "--data", str(Path(args.data_dir) / "alpaca" / "alpaca_cleaned_sample2000.json"),
                 "--batch-size", "8", "--micro-batch-size", "4", "--lr", args.lora_lr, "--val-size", "32", "--cutoff", "128"],
        "distill": ["--method", "distill", "--teacher", "smollm2-135m", "--batch-size", args.distill_batch_size,
                    "--lr", args.distill_lr, "--temperature", args.distill_temperature,
                    # explicit, so a run's recorded flags mean the same whatever finetune's default is
                    "--lm-weight", args.distill_lm_weight,
                    *(["--data", *args.distill_data, "--text-field", args.distill_text_field] if args.distill_data else []),
                    *(["--freeze-embeddings"] if args.distill_freeze_embeddings else [])],
    }
    return budget, flags


def main() -> int:
    from adapruner.core.io import write_json, write_text
    from adapruner.core.versions import versions

    p = parser()
    args = p.parse_args()
    work, out = Path(args.work), Path(args.out)
    common = ["--device", "cpu", "--data-dir", args.data_dir]

    models = {}
    for ratio in [float(r) for r in args.ratios.split(",") if r]:
        name = f"element1-{round(ratio * 100)}"
        run = work / name
        if not (run / "model" / "config.json").is_file():
            run_cli(["prune", "--model", "smollm2-135m", "--ratio", str(ratio), "--metric", "element1", "--seed", "0",
                     "--out", str(run), "--overwrite", *common])
        models[name] = run
    for item in args.extra:
        name, _, path = item.partition("=")
        models[name] = Path(path)

    budget, flags = recipe(args)
    # Non-default distillation settings get their own run directories, so both results are kept.
    changed = {k for k in ("distill_temperature", "distill_batch_size", "distill_lm_weight")
               if getattr(args, k) != p.get_default(k)}
    distill_tag = "".join([f"-T{args.distill_temperature}" if "distill_temperature" in changed else "",
                           f"-b{args.distill_batch_size}" if "distill_batch_size" in changed else "",
                           f"-lm{args.distill_lm_weight}" if "distill_lm_weight" in changed else "",
                           "".join(f"-{Path(d).stem}" for d in args.distill_data or []) + (f"-{args.distill_text_field}"
                                                                            if args.distill_data else ""),
                           "-frozen-emb" if args.distill_freeze_embeddings else ""])
    # The benchmark flags that reproduce these distillation settings (the rendered README shows them).
    distill_flags = [*(f"--{k.replace('_', '-')}={getattr(args, k)}" for k in sorted(changed)),
                     *(["--distill-data " + " ".join(args.distill_data), f"--distill-text-field={args.distill_text_field}"]
                       if args.distill_data else []),
                     *(["--distill-freeze-embeddings"] if args.distill_freeze_embeddings else [])]
    rows = {}
    for name, run in models.items():
        variants = {"untuned": run}
        for method in METHODS:
            lr = args.lora_lr if method == "lora" else args.distill_lr
            amp = "" if args.mixed_precision == "no" else f"-{args.mixed_precision}"
            tag = distill_tag if method == "distill" else ""
            tuned = work / f"{name}-{method}-{args.minutes:g}min-lr{lr}{amp}{tag}"
            if not (tuned / "finetune_report.json").is_file():
                run_cli(["finetune", "--model", str(run), *flags[method], *budget, "--out", str(tuned), "--overwrite",
                         *common])
            variants[method] = tuned
        for label, directory in variants.items():
            result = directory / "eval_results.json"
            if not result.is_file():
                zeroshot = args.limit and (args.zeroshot_models is None or name in args.zeroshot_models.split(","))
                extra = ["--tasks", "all", "--limit", str(args.limit)] if zeroshot else []
                extra += ["--max-windows", str(args.max_windows)] if args.max_windows else []
                run_cli(["eval", "--model", str(directory), "--ppl", "wikitext2,ptb", *extra, *common, "--overwrite"])
            ev = json.loads(result.read_text())
            ppl = {r["dataset"]: r["ppl"] for r in ev["perplexity"]}
            row = {"model": name, "recovery": label, "wikitext2": ppl.get("wikitext2"), "ptb": ppl.get("ptb"),
                   "zeroshot_average": ((ev.get("zeroshot") or {}).get("average") or {}).get("value")}
            if label != "untuned":
                rep = json.loads((directory / "finetune_report.json").read_text())
                row.update(steps=rep["steps"], seconds=rep["seconds"], validation=rep.get("validation"))
            rows[f"{name} | {label}"] = row
    protocol = {"minutes": args.minutes, "lora_lr": args.lora_lr, "distill_lr": args.distill_lr,
                "mixed_precision": args.mixed_precision, "distill_temperature": args.distill_temperature,
                "distill_batch_size": args.distill_batch_size,
                "distill_lm_weight": args.distill_lm_weight, "distill_data": " ".join(args.distill_data) if args.distill_data else "books",
                "distill_text_field": args.distill_text_field,
                "distill_freeze_embeddings": args.distill_freeze_embeddings, "distill_flags": distill_flags, "seq_len": 128, "test_windows": args.max_windows or "all",
                "zeroshot_limit": args.limit, "zeroshot_models": args.zeroshot_models, "eval_every": args.eval_every, "val_windows": 16}
    write_json(out / "rows.json", {**protocol, "rows": rows, "versions": versions("peft")})

    windows = "full test" if not args.max_windows else f"first {args.max_windows} test windows"
    lines = [f"| model | recovery ({args.minutes:g} min) | steps | WikiText-2 | PTB | WT2 vs LoRA | zero-shot avg |",
             "|---|---|---|---|---|---|---|", ]
    for name in models:
        lora = rows[f"{name} | lora"]["wikitext2"]
        for label in ("untuned", *METHODS):
            r = rows[f"{name} | {label}"]
            zs = f"{r['zeroshot_average'] * 100:.2f}" if r.get("zeroshot_average") is not None else "-"
            lines.append(f"| {name} | {label} | {r.get('steps', '-')} | {r['wikitext2']:.2f} | {r['ptb']:.2f} | "
                         f"{r['wikitext2'] / lora:.2f}x | {zs} |")
    lines.append(f"\nPerplexity: seq 128, {windows}" + (f"; zero-shot: 7 tasks, limit {args.limit}." if args.limit else "."))
    write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, name in zip(axes[0], models):
        for method in METHODS:
            curve = rows[f"{name} | {method}"].get("validation") or []
            ax.plot([c["seconds"] / 60 for c in curve], [c["ppl"] for c in curve], marker=".", label=method)
        ax.set_title(f"{name}: validation PPL vs wall time")
        ax.set_xlabel("minutes")
        ax.set_ylabel("WikiText-2 validation PPL")
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 70, not 7x10^1
        ax.yaxis.set_major_formatter(plain)
        lo, hi = ax.get_ylim()
        # Within a decade every minor tick gets a label; over several, only 2x and 5x do (the
        # others would overlap).
        sparse = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:e}"[0] in "25" else "")
        ax.yaxis.set_minor_formatter(plain if hi / lo < 10 else sparse)
        ax.legend()
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "validation_vs_time.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
