"""The bad-input battery of the hardening issue, re-runnable: every command given wrong input.

Each case runs ``adapruner ARGS`` in this process (through ``adapruner.cli.main``) in a fresh
scratch directory (also the working directory), on a tiny random Llama checkpoint, with a
60-second alarm, and is classified:

- ``clean``: exit status 2 and the last stderr line is a one-line ``error: ...``, no traceback;
- ``traceback``: a Python traceback was printed or an exception escaped;
- ``hang``: still running after the alarm;
- ``partial``: it left files behind in the scratch directory (or in --out) that were not there;
- ``modified``: it changed a file that existed before;
- ``accepted``: it exited 0 on input it should refuse.

    python benchmarks/reliability/bad_input_battery.py --data-dir ../shared/data

Prints the counts and writes every case's outcome to ``benchmarks/results/bad_input_battery.json``.
Replayed trials are checked by the test suite (``tests/test_search_study.py``), not here.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def tiny_checkpoint(path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from tiny import tiny_model
    from tiny_tokenizer import char_tokenizer

    tiny_model("llama").save_pretrained(path)
    char_tokenizer(add_bos=True).save_pretrained(path)
    return path


def cases(tiny: Path, data: str) -> list[tuple[str, list[str], dict]]:
    """(name, argv, files to create first: relative path -> text, or bytes)."""
    d = ["--data-dir", data, "--device", "cpu"]
    prune = ["prune", "--model", str(tiny), "--metric", "l2", "--layers", "0:4", "--out", "out", *d]
    search = ["search", "--model", str(tiny), "--ratio", "0.2", "--trials", "1", "--eval-windows", "2",
              "--out", "run", *d]
    ft = ["finetune", "--model", str(tiny), "--data", f"{data}/alpaca/alpaca_first200.json", "--out", "ft",
          "--max-steps", "1", "--device", "cpu"]
    ev = ["eval", "--model", str(tiny), *d]
    trunc = {"broken/config.json": (tiny / "config.json").read_text(), "broken/model.safetensors": b"\x10\x00"}
    list_json = {"cfg.json": "[1, 2]"}
    return [
        # model loading
        ("eval: missing path", ["eval", "--model", "./nope", *d], {}),
        ("eval: unknown alias", ["eval", "--model", "smollm9", *d], {}),
        ("eval: hub id offline", ["eval", "--model", "someone/model-that-is-not-here", *d], {}),
        ("eval: directory without config", ["eval", "--model", "empty", *d], {"empty/x.txt": "x"}),
        ("eval: truncated safetensors", ["eval", "--model", "broken", *d], trunc),
        ("eval: empty safetensors", ["eval", "--model", "broken", *d],
         {**trunc, "broken/model.safetensors": b""}),
        ("eval: not a gguf", ["eval", "--model", "m.gguf", *d], {"m.gguf": b"GGUFjunk"}),
        # eval flags
        ("eval: --seq-len 1", [*ev, "--seq-len", "1"], {}),
        ("eval: --seq-len 100000", [*ev, "--seq-len", "100000"], {}),
        ("eval: --seq-len abc", [*ev, "--seq-len", "abc"], {}),
        ("eval: --tasks foo", [*ev, "--tasks", "foo"], {}),
        ("eval: --max-windows 0", [*ev, "--max-windows", "0"], {}),
        ("eval: --batch-size 0", [*ev, "--batch-size", "0"], {}),
        ("eval: --ppl missing file", [*ev, "--ppl", "missing.txt"], {}),
        ("eval: --ppl too short", [*ev, "--ppl", "short.txt", "--seq-len", "64"], {"short.txt": "hi\n"}),
        ("eval: --ppl bad jsonl", [*ev, "--ppl", "t.jsonl"], {"t.jsonl": '{"text": "a"}\n{"text": \n'}),
        ("eval: --ppl wrong field", [*ev, "--ppl", "t.jsonl"], {"t.jsonl": '{"body": "a b c"}\n'}),
        ("eval: --ppl not utf-8", [*ev, "--ppl", "t.txt"], {"t.txt": b"\xff\xfe\xfa" * 50}),
        ("eval: --out read-only", [*ev, "--out", "/proc/nope/e.json"], {}),
        ("eval: --out holds another model", [*ev, "--out", "e.json"], {"e.json": '{"model": "other", "model_id": "x"}'}),
        ("eval: missing data dir", ["eval", "--model", str(tiny), "--data-dir", "nodata", "--device", "cpu"], {}),
        ("eval: --device cuda without GPU", ["eval", "--model", str(tiny), *d[:2], "--device", "cuda"], {}),
        # prune budget and flags
        ("prune: --ratio 1.5", [*prune, "--ratio", "1.5"], {}),
        ("prune: --ratio 0", [*prune, "--ratio", "0"], {}),
        ("prune: --ratio -0.1", [*prune, "--ratio", "-0.1"], {}),
        ("prune: --ratio 0.95 unreachable", [*prune, "--ratio", "0.95"], {}),
        ("prune: no ratio", prune, {}),
        ("prune: ratio and target", [*prune, "--ratio", "0.2", "--target-params", "1M"], {}),
        ("prune: --target-params abc", [*prune, "--target-params", "abc"], {}),
        ("prune: --target-params above size", [*prune, "--target-params", "10T"], {}),
        ("prune: --metric foo", [*prune, "--ratio", "0.2", "--metric", "foo"], {}),
        ("prune: --mode foo", [*prune, "--ratio", "0.2", "--mode", "foo"], {}),
        ("prune: --update foo", [*prune, "--ratio", "0.2", "--update", "foo"], {}),
        ("prune: --metric-option unknown", [*prune, "--ratio", "0.2", "--metric-option", "nope=1"], {}),
        ("prune: --metric-option no =", [*prune, "--ratio", "0.2", "--metric-option", "nope"], {}),
        ("prune: knots not numbers", [*prune, "--ratio", "0.2", "--mode", "schedule", "--allocation-option",
                                      "knots=abc"], {}),
        ("prune: --layers 3:1", [*prune, "--ratio", "0.2", "--layers", "3:1"], {}),
        ("prune: --layers 0:99", [*prune, "--ratio", "0.2", "--layers", "0:99"], {}),
        ("prune: --round-to 0", [*prune, "--ratio", "0.2", "--round-to", "0"], {}),
        ("prune: --num-samples 0", [*prune, "--ratio", "0.2", "--metric", "element1", "--num-samples", "0"], {}),
        ("prune: --calib-seq-len 100000", [*prune, "--ratio", "0.2", "--metric", "element1", "--calib-seq-len",
                                           "100000"], {}),
        ("prune: --micro-batch 0", [*prune, "--ratio", "0.2", "--metric", "element1", "--micro-batch", "0"], {}),
        ("prune: --calib-data missing", [*prune, "--ratio", "0.2", "--metric", "element1", "--calib-data", "x.txt"], {}),
        ("prune: --calib-data too short", [*prune, "--ratio", "0.2", "--metric", "element1", "--calib-data", "s.txt"],
         {"s.txt": "tiny\n"}),
        ("prune: --config missing", [*prune, "--ratio", "0.2", "--config", "none.json"], {}),
        ("prune: --config JSON list", [*prune, "--ratio", "0.2", "--config", "cfg.json"], list_json),
        ("prune: --config corrupt", [*prune, "--ratio", "0.2", "--config", "cfg.json"], {"cfg.json": "{oops"}),
        ("prune: --out exists", [*prune, "--ratio", "0.2"], {"out/keep.txt": "mine"}),
        ("prune: --overwrite on a user's dir", [*prune, "--ratio", "0.2", "--overwrite"], {"out/keep.txt": "mine"}),
        ("prune: --out is a file", [*prune, "--ratio", "0.2"], {"out": "a file"}),
        ("prune: --out read-only", [*prune[:7], "--out", "/proc/nope/out", *d, "--ratio", "0.2"], {}),
        # search
        ("search: --trials 0", [*search[:6], "0", *search[7:]], {}),
        ("search: --space missing", [*search, "--space", "nope.json"], {}),
        ("search: --space alpha1 list", [*search, "--space", "s.json"], {"s.json": '{"alpha1": [0.5]}'}),
        ("search: --space allocation foo", [*search, "--space", "s.json"], {"s.json": '{"allocation": {"foo": 1}}'}),
        ("search: --space num_samples ten", [*search, "--space", "s.json"], {"s.json": '{"num_samples": "ten"}'}),
        ("search: --space JSON list", [*search, "--space", "s.json"], {"s.json": "[]"}),
        ("search: foreign sqlite study.db", search, {"run/study.db": "__sqlite__"}),
        ("search: scrambled study.db", search, {"run/study.db": b"SQLite format 3\x00" + b"\x13" * 5000}),
        ("search: bad --storage URL", [*search, "--storage", "nosuchdb://x"], {}),
        ("search: --eval-windows 0", [*search[:8], "0", *search[9:]], {}),
        ("search: --ratio 2", [*search[:4], "2", *search[5:]], {}),
        ("search: --calib-data missing", [*search, "--calib-data", "x.txt"], {}),
        # finetune
        ("finetune: --lr -1", [*ft, "--lr", "-1"], {}),
        ("finetune: --data missing", [*ft[:4], "nope.json", *ft[5:]], {}),
        ("finetune: --data rows lack keys", [*ft[:4], "bad.jsonl", *ft[5:]], {"bad.jsonl": '{"instruction": "a"}\n'}),
        ("finetune: --data not a list", [*ft[:4], "bad.json", *ft[5:]], {"bad.json": '{"a": 1}'}),
        ("finetune: --lora-r 0", [*ft, "--lora-r", "0"], {}),
        ("finetune: --bits 9", [*ft, "--method", "group", "--bits", "9"], {}),
        ("finetune: --epochs 0", [*ft, "--epochs", "0"], {}),
        ("finetune: --max-minutes 0", [*ft, "--max-minutes", "0"], {}),
        ("finetune: --batch-size not multiple", [*ft, "--batch-size", "6", "--micro-batch-size", "4"], {}),
        ("finetune: distill without teacher", ["finetune", "--model", str(tiny), "--method", "distill", "--out", "ft",
                                               *d], {}),
        ("finetune: distill teacher missing", ["finetune", "--model", str(tiny), "--method", "distill", "--teacher",
                                               "./nope", "--out", "ft", *d], {}),
        ("finetune: distill on a test split", ["finetune", "--model", str(tiny), "--method", "distill", "--teacher",
                                               str(tiny), "--data", f"{data}/wikitext2/wiki.test.raw", "--out", "ft",
                                               *d], {}),
        # stats
        ("stats: --context 100000", ["stats", "--model", str(tiny), "--context", "100000", "--device", "cpu"], {}),
        ("stats: --model2 truncated", ["stats", "--model", str(tiny), "--model2", "broken", "--device", "cpu"], trunc),
        ("stats: --repeats 0", ["stats", "--model", str(tiny), "--repeats", "0", "--device", "cpu"], {}),
        # export
        ("export: not a checkpoint", ["export", "--model", "empty", "--out", "x.gguf"], {"empty/x.txt": "x"}),
        ("export: no GGUF tokenizer", ["export", "--model", str(tiny), "--out", "x.gguf"], {}),
        ("export: --tokenizer-from missing", ["export", "--model", str(tiny), "--out", "x.gguf", "--tokenizer-from",
                                              "t.gguf"], {}),
        ("export: --out exists", ["export", "--model", str(tiny), "--out", "x.gguf"], {"x.gguf": "mine"}),
        ("export: --outtype q4", ["export", "--model", str(tiny), "--out", "x.gguf", "--outtype", "q4"], {}),
        # report
        ("report: missing run dir", ["report", "nope", "--out", "r.md"], {}),
        ("report: garbage trials.csv", ["report", "run", "--out", "r.md"], {"run/trials.csv": "\x00\x01garbage"}),
        ("report: corrupt pruning_report.json", ["report", "run", "--out", "r.md"], {"run/pruning_report.json": "{"}),
        # data
        ("data: unknown data set", ["data", "download", "--to", "dd", "--only", "wikitext3"], {}),
    ]


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_case(argv: list[str], files: dict, scratch: Path) -> dict:
    from adapruner.cli import main

    for rel, content in files.items():
        path = scratch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "__sqlite__":
            con = sqlite3.connect(path)
            con.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
            con.commit()
            con.close()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    before = _digests(scratch)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(scratch)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    rc, escaped = None, None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse usage errors
                rc = exc.code
    except Hang:
        escaped = "hang"
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is what we count
        escaped = f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
        os.chdir(cwd)
    after = _digests(scratch)
    text = err.getvalue() + out.getvalue()
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if escaped == "hang":
        outcome = "hang"
    elif escaped or "Traceback (most recent call last)" in text:
        outcome = "traceback"
    elif any(before.get(k) != v for k, v in after.items() if k in before):
        outcome = "modified"
    elif set(after) - set(before):
        outcome = "partial"
    elif rc == 0:
        outcome = "accepted"
    elif rc == 2 and lines and lines[-1].startswith(("error: ", "adapruner: error:", "usage:")) or \
            (rc == 2 and lines and ": error: " in lines[-1]):
        outcome = "clean"
    else:
        outcome = f"exit {rc}"
    return {"outcome": outcome, "exit": rc, "last_line": lines[-1][:300] if lines else "",
            "new_files": sorted(set(after) - set(before)), "escaped": escaped}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", default="benchmarks/results/bad_input_battery.json")
    args = p.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"  # the hub-id cases must fail fast, as on an offline machine
    data = str(Path(args.data_dir).resolve())
    results = {}
    with tempfile.TemporaryDirectory(prefix="battery-") as root:
        root = Path(root)
        tiny = tiny_checkpoint(root / "tiny")
        for i, (name, argv, files) in enumerate(cases(tiny, data)):
            scratch = root / f"case{i:03d}"
            scratch.mkdir()
            results[name] = {"argv": argv, **run_case(argv, files, scratch)}
            print(f"{results[name]['outcome']:>10}  {name}: {results[name]['last_line'][:110]}", flush=True)
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    summary = {"cases": len(results), "counts": counts}
    print(json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "cases": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
