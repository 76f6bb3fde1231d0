"""``adapruner eval``: perplexity (WikiText-2, PTB) and zero-shot accuracy of a model.

Perplexity follows LLM-Pruner: rows joined with "\\n\\n", tokenized once, non-overlapping windows
of --seq-len tokens (128 by default; pass e.g. --seq-len 128,2048 for both), PPL = exp(mean
token NLL) over the whole split (test by default); with a BOS-prepending tokenizer each window
starts with BOS. --max-windows caps the windows per dataset for quick runs. --tasks adds
zero-shot accuracy through lm-evaluation-harness on local files (--limit caps documents).

Prints a table and writes everything, with the protocol and versions, to --out as JSON (written
to a temporary file and renamed). The default --out is named after the model, so evaluating
another model never replaces it: ``eval_results.json`` beside the model of a run directory
(``OUT/eval_results.json`` for ``OUT/model``) or inside a plain checkpoint directory, and
``eval_<alias or file stem>.json`` in the current directory for aliases, .gguf files and hub ids.
An existing --out that holds another model's results is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adapruner.commands.common import add_data_arg, add_model_arg, add_runtime_args, nonempty, positive_int
from adapruner.core import io
from adapruner.errors import AdaprunerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``eval`` and its flags."""
    p = subparsers.add_parser("eval", help="perplexity and zero-shot accuracy of a model",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    add_data_arg(p)
    p.add_argument("--ppl", default=None, type=nonempty,
                   help="comma-separated corpora: wikitext2,ptb and/or your own .txt/.jsonl/.json files (default: "
                        "wikitext2,ptb, unless only --tasks is given; 'none' to skip)")
    p.add_argument("--text-field", default="text", help="the text field of .jsonl/.json --ppl files (default text)")
    p.add_argument("--split", default="test", choices=["test", "valid"], help="corpus split (default test)")
    p.add_argument("--seq-len", default="128", help="window length(s) in tokens, comma-separated (default 128)")
    p.add_argument("--max-windows", type=int, default=None, help="score only the first N windows per corpus")
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per forward pass (default max(1, 1024 // seq_len)); zero-shot batch (default 8)")
    p.add_argument("--tasks", default=None, type=nonempty,
                   help="comma-separated zero-shot tasks (boolq,piqa,hellaswag,winogrande,arc_easy,"
                        "arc_challenge,openbookqa) or 'all' (those seven); the development splits "
                        "arc_easy_dev, arc_challenge_dev, openbookqa_dev are never part of 'all'")
    p.add_argument("--limit", type=positive_int, default=None, help="zero-shot: only the first N documents per task")
    p.add_argument("--out", default=None,
                   help="JSON output file (default: named after the model, see above; a directory gets "
                        "eval_results.json inside)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out that holds another model's results")
    p.add_argument("--stream", action="store_true",
                   help="perplexity one decoder layer at a time, weights read from the checkpoint's shards (for "
                        "models larger than memory; the same numbers; not for --tasks)")
    add_runtime_args(p)
    return p


def _parse_list(value: str | None, flag: str = "the list") -> list[str]:
    """The comma-separated names of ``value``; an empty one (``a,,b``) is refused, not dropped."""
    names = [v.strip() for v in (value or "").split(",")] if value else []
    if any(not n for n in names):
        raise AdaprunerError(f"{flag} has an empty name in '{value}'; separate the names by single commas")
    return names


def _parse_seq_lens(value: str) -> list[int]:
    try:
        lens = [int(v) for v in _parse_list(value, "--seq-len")]
    except ValueError:
        raise AdaprunerError(f"--seq-len must be integers separated by commas (got '{value}')") from None
    if not lens:
        raise AdaprunerError("--seq-len is empty; pass e.g. --seq-len 128")
    return lens


def _corpora(args) -> list[str]:
    from adapruner.data.corpora import CORPORA

    if args.ppl is None:
        return [] if args.tasks else list(CORPORA)
    from adapruner.data.user_text import is_text_file, read_rows

    names = [] if args.ppl.strip().lower() == "none" else _parse_list(args.ppl, "--ppl")
    unknown = [n for n in names if n not in CORPORA and not is_text_file(n)]
    if unknown:
        raise AdaprunerError(f"unknown --ppl corpus {', '.join(unknown)}; choose from {', '.join(CORPORA)} or pass "
                             ".txt/.jsonl/.json files")
    for n in names:
        if is_text_file(n):
            read_rows(n, args.text_field)  # a missing or broken file fails before the model loads
    return names


def _tasks(args) -> list[str]:
    if not args.tasks:
        return []
    if args.tasks.strip().lower() == "all":
        from adapruner.data.zeroshot import TASKS

        return list(TASKS)
    return _parse_list(args.tasks, "--tasks")


def model_identity(spec: str) -> str:
    """What names the evaluated model in a result file: the resolved directory, or the alias / file / hub id."""
    from adapruner.models.load import resolve_spec

    kind, value = resolve_spec(spec)
    return str(Path(value).resolve()) if kind in ("directory", "gguf") else f"{kind}:{value}"


def default_output(spec: str) -> Path:
    """The default --out of ``spec``: next to (or inside) a model directory, else named after the model."""
    from adapruner.models.load import resolve_spec

    kind, value = resolve_spec(spec)
    if kind == "directory":
        model = Path(value)
        run = model.parent
        beside = model.name == "model" and (run / "pruning_report.json").is_file()
        return (run if beside else model) / "eval_results.json"
    name = Path(value).stem if kind == "gguf" else value.replace("/", "--")
    return Path(f"eval_{name}.json")


def output_path(out: str | None, spec: str, overwrite: bool) -> Path:
    """The file to write, refusing one that records another model's results unless ``overwrite``."""
    import json

    path = Path(out) if out else default_output(spec)
    if path.is_dir():
        path = path / "eval_results.json"
    if path.is_file() and not overwrite:
        try:
            previous = json.loads(path.read_text())
            recorded = previous.get("model_id") or previous.get("model")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != model_identity(spec):
            raise AdaprunerError(f"{path} already holds {'results of ' + str(recorded) if recorded else 'another file'}; "
                                 "pass --overwrite or choose another --out")
    return path


def format_table(rows: list[dict]) -> str:
    """The perplexity results as a small text table."""
    head = f"{'dataset':<10} {'split':<6} {'seq_len':>7} {'windows':>8} {'tokens':>9} {'PPL':>10} {'time':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        name = r["dataset"] if len(r["dataset"]) <= 10 else "..." + r["dataset"][-7:]
        lines.append(f"{name:<10} {r['split'] or 'file':<6} {r['seq_len']:>7} {r['n_windows']:>8} {r['n_tokens']:>9} "
                     f"{r['ppl']:>10.3f} {r['seconds']:>7.1f}s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Evaluate perplexity and zero-shot tasks (:func:`adapruner.api.evaluate`), print the table, write JSON."""
    from adapruner.api import evaluate
    from adapruner.eval.zeroshot import zeroshot_resume_file

    corpora, tasks = _corpora(args), _tasks(args)
    seq_lens = _parse_seq_lens(args.seq_len)
    if not corpora and not tasks:
        raise AdaprunerError("nothing to evaluate: give --ppl wikitext2,ptb and/or --tasks")
    out_path = io.check_writable(output_path(args.out, args.model, args.overwrite))
    io.check_output(out_path, [args.model], may_lie_inside=True)
    result = evaluate(args.model, ppl=corpora, tasks=tasks, split=args.split, seq_len=seq_lens,
                      max_windows=args.max_windows, batch_size=args.batch_size, limit=args.limit,
                      text_field=args.text_field, data_dir=args.data_dir, device=args.device, dtype=args.dtype,
                      seed=args.seed, stream=args.stream, trust_remote_code=args.trust_remote_code,
                      resume_to=out_path)
    report = {**result.report, "model_id": model_identity(args.model)}
    if report["perplexity"]:
        print(format_table(report["perplexity"]))
    if tasks:
        _print_zeroshot(report["zeroshot"], tasks)
    io.write_json_or_rescue(out_path, report)
    zeroshot_resume_file(out_path).unlink(missing_ok=True)
    print(f"wrote {out_path}")
    return 0


def _print_zeroshot(zs: dict, tasks: list[str]) -> None:
    """Each task's summary metric with its standard error, then the means (in points)."""
    print(f"{'task':<24} {'metric':<8} {'value':>7} {'± se':>6} {'n':>6}")
    for t in tasks:
        r = zs[t]
        metric = r["average_metric"]
        print(f"{t:<24} {metric:<8} {100 * r[metric]:>7.2f} {100 * (r.get(metric + '_stderr') or 0):>6.2f} "
              f"{r['n']:>6}")
    summary = zs["summary"]
    for name, label in (("mean", f"mean of {len(tasks)}"), ("mean_without_boolq", "mean without boolq"),
                        ("chance_normalised_mean", "chance-normalised mean")):
        if name in summary:
            e = summary[name]
            print(f"{label:<24} {'':<8} {100 * e['value']:>7.2f} {100 * e['se']:>6.2f}")
