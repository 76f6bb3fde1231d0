"""Which training text distils best: short distillation pilots on one pruned model, one per text
mix, each then scored on many WikiText-2 *validation* windows.

A distillation run validates on 16 windows (its curve must stay cheap inside a time budget);
between two text mixes that is too noisy to rank them: the runs' own final 16-window
perplexities were 64.9, 64.6 and 62.1, while 128 windows put the same three models at 58.4,
55.2 and 52.8. So every pilot here trains with the equal-time table's flags for ``--minutes``
and is then scored, with the untuned model and the teacher, on the first ``--val-windows``
windows of the WikiText-2 validation split (never a test split).

Resumable: a pilot whose run directory in ``--work`` holds its report is not trained again.

    python benchmarks/recovery/text_pilots.py --data-dir ../shared/data --model RUN/element1-20 \\
        --work /tmp/text-pilots --out benchmarks/results/recovery/pilots_text
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from equal_time import run_cli

# name -> the --data sources (paths relative to the data directory, or 'books'). Alpaca is the
# cleaned sample's responses (--text-field output); PTB is its *train* split.
MIXES = {
    "books": ["books"],  # finetune --method distill's default text
    "books+alpaca": ["books", "alpaca/alpaca_cleaned_sample2000.json"],
    "ptb-train": ["ptb/ptb.train.txt"],
    "books+alpaca+ptb-train": ["books", "alpaca/alpaca_cleaned_sample2000.json", "ptb/ptb.train.txt"],
    "alpaca+ptb-train": ["alpaca/alpaca_cleaned_sample2000.json", "ptb/ptb.train.txt"],
    # both Alpaca files: the first 1805 rows of the original and a random 2000 of the cleaned set
    "books+alpaca2+ptb-train": ["books", "alpaca/alpaca_cleaned_sample2000.json", "alpaca/alpaca_data_first1805.json",
                                "ptb/ptb.train.txt"],
    # 'wiki' is the --wiki file: Wikipedia articles outside the data directory, held out against
    # WikiText-2's test and validation splits (benchmarks/recovery/wiki_text.py)
    "wiki": ["wiki"],
    "books+alpaca+ptb-train+wiki": ["books", "alpaca/alpaca_cleaned_sample2000.json", "ptb/ptb.train.txt", "wiki"],
}


SEQ_LEN = 128  # the table's windows, for training and for the validation score alike


def pilot_flags(minutes: float, lm_weight: float = 0.0) -> list[str]:
    """The equal-time table's distillation flags (benchmarks/README.md), for ``minutes``, with the
    plain next-token loss at ``lm_weight`` (always given, so the flags outlive a change of
    finetune's default)."""
    return ["--method", "distill", "--teacher", "smollm2-135m", "--text-field", "output", "--temperature", "1",
            "--lm-weight", f"{lm_weight:g}", "--batch-size", "4", "--lr", "5e-4",
            "--warmup-steps", "10", "--max-minutes", str(minutes),
            "--max-steps", "100000", "--eval-every", "20", "--val-windows", "16", "--seq-len", str(SEQ_LEN),
            "--mixed-precision", "bf16", "--freeze-embeddings"]


def main() -> int:
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.models.load import load_model
    from adapruner.recovery.distill import validation_ppl, validation_windows

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", required=True, help="the pruned run directory every pilot starts from")
    p.add_argument("--work", default="/tmp/adapruner-bench/text-pilots")
    p.add_argument("--out", default="benchmarks/results/recovery/pilots_text")
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--val-windows", type=int, default=128)
    p.add_argument("--wiki", help="the text file a 'wiki' mix trains on (benchmarks/recovery/wiki_text.py writes it)")
    p.add_argument("--lm-weight", type=float, default=0.0,
                   help="add the student's next-token loss on the text at this weight (run directories NAME-lmW)")
    p.add_argument("--mixes", default=",".join(list(MIXES)[1:4]), help=f"comma list of {', '.join(MIXES)}")
    args = p.parse_args()
    data, work, out = Path(args.data_dir), Path(args.work), Path(args.out)
    names = [m for m in args.mixes.split(",") if m]
    unknown = [m for m in names if m not in MIXES]
    if unknown:
        raise SystemExit(f"unknown mix {', '.join(unknown)}; choose from {', '.join(MIXES)}")
    if any("wiki" in MIXES[m] for m in names) and not (args.wiki and Path(args.wiki).is_file()):
        raise SystemExit("a 'wiki' mix needs --wiki FILE, the text benchmarks/recovery/wiki_text.py writes")

    def source(name: str) -> str:
        return name if name == "books" else args.wiki if name == "wiki" else str(data / name)

    suffix = f"-lm{args.lm_weight:g}" if args.lm_weight else ""
    runs = {name: work / (name + suffix) for name in names}
    for name in names:
        run = runs[name]
        if not (run / "finetune_report.json").is_file():
            sources = [source(s) for s in MIXES[name]]
            run_cli(["finetune", "--model", args.model, *pilot_flags(args.minutes, args.lm_weight), "--data", *sources,
                     "--out", str(run), "--overwrite", "--data-dir", str(data), "--device", "cpu"])

    scored, windows = {}, None
    for name, path in [("untuned", args.model), *[(n, str(runs[n])) for n in names], ("teacher", "smollm2-135m")]:
        loaded = load_model(path, device="cpu")
        if windows is None:
            windows = validation_windows(loaded.tokenizer, data, SEQ_LEN, args.val_windows)
        row = {"val_ppl": validation_ppl(loaded.model, windows)}
        if name in MIXES:
            report = json.loads((runs[name] / "finetune_report.json").read_text())
            row.update(data=MIXES[name], steps=report["steps"], seconds=report["seconds"],
                       train_windows=report["train_windows"], val16_ppl=report["val_ppl_after"])
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / f"{name}{suffix}.json", report)
        scored[name] = row
        print(f"{name:24s} {row['val_ppl']:8.2f}", flush=True)
        del loaded

    write_json(out / f"pilots{suffix.replace('-', '_')}.json",
               {"model": args.model, "minutes": args.minutes, "val_windows": len(windows),
                "flags": pilot_flags(args.minutes, args.lm_weight), "rows": scored, "versions": versions("peft")})
    print("\n| text | steps | training windows | val PPL, 16 windows (the run's) | "
          f"val PPL, {len(windows)} windows |\n|---|---|---|---|---|")
    for name, row in scored.items():
        print(f"| {name} | {row.get('steps', '-')} | {row.get('train_windows', '-')} | "
              f"{row['val16_ppl']:.2f} | {row['val_ppl']:.2f} |" if "steps" in row
              else f"| {name} | - | - | - | {row['val_ppl']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
