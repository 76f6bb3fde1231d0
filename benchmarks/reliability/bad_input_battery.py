"""The bad-input battery of the hardening issue, re-runnable: every command given wrong input.

Each case runs ``adapruner ARGS`` in this process (through ``adapruner.cli.main``) in a fresh
scratch directory (also the working directory), on a tiny random Llama checkpoint, with a
60-second alarm, and is classified:

- ``clean``: exit status 2 and the last stderr line is a one-line ``error: ...``, no traceback;
- ``traceback``: a Python traceback was printed or an exception escaped;
- ``hang``: still running after the alarm (or, for the hub behind a dead or silent proxy, after
  10 seconds);
- ``partial``: it left files behind in the scratch directory (or in --out) that were not there
  (except, after a refused write, what the run keeps to resume from: a streamed run's staging
  directory, a search's study);
- ``modified``: it changed a file that existed before;
- ``accepted``: it exited 0 on input it should refuse;
- ``no recovery``: after a disk fault, the same command once the fault is lifted did not succeed
  (every disk-fault case runs twice: with the fault, then without it in the same directory, where
  it must resume or start cleanly and exit 0);
- ``fault not reached``: a disk-fault case that succeeded because its output fitted under the
  limit (the case then tests nothing, and says so);
- ``skipped``: a fault this machine cannot stage (mounting a small or read-only tmpfs needs root).

Disk faults strike once the command's pre-flight probe of ``--out`` has passed, i.e. during the
work, whatever the size of the command's output: a file-size limit of half the command's largest
output file (RLIMIT_FSIZE: EFBIG, mid-write for a checkpoint shard), a disk that fills up (the
case's directory is a tmpfs; a filler file takes all but half of what the command would write:
ENOSPC, SQLite's "database or disk is full") and a read-only disk (the tmpfs remounted read-only
after the inputs are written: EROFS, met by the probe). The sizes come from a fault-free run of the
same command.

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
import time
from pathlib import Path


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def tiny_checkpoint(path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from tiny import tiny_model
    from tiny_tokenizer import char_tokenizer

    from test_export import tiny_tokenizer_gguf

    tiny_model("llama").save_pretrained(path)
    char_tokenizer(add_bos=True).save_pretrained(path)
    tiny_tokenizer_gguf(path.parent / "t.gguf")  # export's --tokenizer-from
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
        *more_cases(tiny, data),
    ]


def _checkpoint_files(tiny: Path, **changes) -> dict:
    """The tiny checkpoint's files under ``m/``, with some replaced (name -> content, None: left out)."""
    files = {f"m/{p.name}": p.read_bytes() for p in tiny.iterdir() if p.is_file()}
    for name, content in changes.items():
        key = f"m/{name.replace('__', '.')}"
        if content is None:
            files.pop(key, None)
        else:
            files[key] = content
    return files


def _safetensors(tiny: Path, edit) -> bytes:
    """The tiny checkpoint's weights with ``edit(header dict)`` applied to their header."""
    raw = (tiny / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n:]


def more_cases(tiny: Path, data: str) -> list[tuple]:
    """The classes of the hardening issue, each with cases beyond its first examples: hostile and
    damaged files in every command that reads a model, outputs that are (or lie inside) inputs,
    numbers out of range, empty names, paths of the wrong kind, the zero-shot comparison, search
    objectives and streaming, and a disk that refuses writes (a file-size limit: EFBIG) in every
    writer."""
    d = ["--data-dir", data, "--device", "cpu"]
    config = json.loads((tiny / "config.json").read_text())
    wider = json.dumps({**config, "intermediate_size": config["intermediate_size"] + 8})
    no_type = json.dumps({k: v for k, v in config.items() if k != "model_type"})
    renamed = (tiny / "model.safetensors").read_bytes().replace(b"model.norm.weight", b"model.nrm_.weight", 1)

    def absurd(header):
        name = next(k for k in header if k != "__metadata__")
        header[name]["shape"] = [10**12, 10**12]

    pickle_only = {"m/config.json": (tiny / "config.json").read_text(),
                   "m/pytorch_model.bin": b"\x80\x04\x95" + b"cos\nsystem\n" + b"\x00" * 64}
    damaged = {
        "pickle-only weights": pickle_only,
        "config wider than the weights": _checkpoint_files(tiny, config__json=wider),
        "a weight's name damaged": _checkpoint_files(tiny, model__safetensors=renamed),
        "a header declaring an absurd shape": _checkpoint_files(tiny, model__safetensors=_safetensors(tiny, absurd)),
        "config.json not JSON": _checkpoint_files(tiny, config__json="{model_type: llama"),
        "config.json without model_type": _checkpoint_files(tiny, config__json=no_type),
        "tokenizer.json garbage": _checkpoint_files(tiny, tokenizer__json=b"\x00garbage{"),
        "safetensors header not JSON": _checkpoint_files(
            tiny, model__safetensors=(16).to_bytes(8, "little") + b"{not json at all" + b"\x00" * 64),
        "safetensors header longer than the file": _checkpoint_files(
            tiny, model__safetensors=(10**9).to_bytes(8, "little") + b"{}"),
        "no weights at all": _checkpoint_files(tiny, model__safetensors=None),
    }
    readers = {
        "eval": ["eval", "--model", "m", "--ppl", "wikitext2", "--max-windows", "1", "--out", "e.json", *d],
        "prune": ["prune", "--model", "m", "--ratio", "0.2", "--metric", "l2", "--out", "out", *d],
        "prune --stream": ["prune", "--model", "m", "--ratio", "0.2", "--metric", "l2", "--stream", "--out", "out", *d],
        "export": ["export", "--model", "m", "--out", "x.gguf"],
        "stats": ["stats", "--model", "m", "--device", "cpu", "--out", "s.json"],
        "finetune": ["finetune", "--model", "m", "--data", f"{data}/alpaca/alpaca_first200.json", "--out", "ft",
                     "--max-steps", "1", "--device", "cpu"],
    }
    out = [(f"{cmd}: {what}", argv, files) for what, files in damaged.items() for cmd, argv in readers.items()
           if not (what.startswith(("tokenizer", "safetensors header not", "no weights")) and cmd == "finetune")]
    out += [
        (f"{cmd}: a GGUF file bit-flipped", [*argv[:2], "m.gguf", *argv[3:]],
         {"m.gguf": b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 8}) for cmd, argv in readers.items()
    ]
    # Outputs that are, or lie inside, an input.
    inside = {
        "prune": ["prune", "--model", "m", "--ratio", "0.2", "--metric", "l2", *d, "--out"],
        "search": ["search", "--model", "m", "--ratio", "0.2", "--trials", "1", "--eval-windows", "2", *d, "--out"],
        "finetune": ["finetune", "--model", "m", "--data", f"{data}/alpaca/alpaca_first200.json", "--max-steps", "1",
                     "--device", "cpu", "--out"],
        "export": ["export", "--model", "m", "--out"],
        "eval": ["eval", "--model", "m", "--ppl", "wikitext2", "--max-windows", "1", *d, "--out"],
        "stats": ["stats", "--model", "m", "--device", "cpu", "--out"],
    }
    model = _checkpoint_files(tiny)
    for cmd, argv in inside.items():
        target = {"export": "m/model.safetensors", "eval": "m/config.json", "stats": "m/config.json"}.get(cmd, "m")
        out.append((f"{cmd}: --out is its own input", [*argv, target], model))
        if cmd in ("prune", "search", "finetune"):
            out.append((f"{cmd}: --out inside its input", [*argv, "m/sub"], model))
    out += [
        ("report: --out is an input's file", ["report", "run", "--out", "run/pruning_report.json"],
         {"run/pruning_report.json": '{"command": "prune"}'}),
        ("stats: --out exists", ["stats", "--model", str(tiny), "--device", "cpu", "--out", "s.json"],
         {"s.json": "mine"}),
        ("report: --out exists", ["report", "run", "--out", "r.md"], {"run/x.txt": "x", "r.md": "mine"}),
        ("finetune: --out holds a user's files", [*inside["finetune"][:3], str(tiny), *inside["finetune"][4:], "ft"],
         {"ft/keep.txt": "mine"}),
        ("search: --out holds a user's files", [*inside["search"][:3], str(tiny), *inside["search"][4:], "run"],
         {"run/keep.txt": "mine"}),
        ("prune: --out below a file", ["prune", "--model", str(tiny), "--ratio", "0.2", "--metric", "l2", *d, "--out",
                                       "afile/out"], {"afile": "a file"}),
        ("eval: --out below a file", ["eval", "--model", str(tiny), "--ppl", "wikitext2", *d, "--out", "afile/e.json"],
         {"afile": "a file"}),
    ]
    # Numbers out of range, empty names, paths of the wrong kind.
    prune = ["prune", "--model", str(tiny), "--metric", "l2", "--out", "out", *d]
    search = ["search", "--model", str(tiny), "--ratio", "0.2", "--trials", "1", "--eval-windows", "2", "--out", "run",
              *d]
    ft = ["finetune", "--model", str(tiny), "--data", f"{data}/alpaca/alpaca_first200.json", "--out", "ft",
          "--max-steps", "1", "--device", "cpu"]
    ev = ["eval", "--model", str(tiny), *d]
    numbers = [
        ("prune: --seed beyond 64 bits", [*prune, "--ratio", "0.2", "--seed", str(2**70)]),
        ("prune: --seed -1", [*prune, "--ratio", "0.2", "--seed", "-1"]),
        ("prune: --seed abc", [*prune, "--ratio", "0.2", "--seed", "abc"]),
        ("prune: --ratio nan", [*prune, "--ratio", "nan"]),
        ("prune: --ratio inf", [*prune, "--ratio", "inf"]),
        ("prune: --ratio 1e309", [*prune, "--ratio", "1e309"]),
        ("prune: --target-params -5", [*prune, "--target-params", "-5"]),
        ("prune: --target-params 0", [*prune, "--target-params", "0"]),
        ("prune: --max-memory abc", [*prune, "--ratio", "0.2", "--max-memory", "abc"]),
        ("prune: --max-memory 0", [*prune, "--ratio", "0.2", "--max-memory", "0"]),
        ("search: --max-minutes -1", [*search, "--max-minutes", "-1"]),
        ("search: --max-minutes nan", [*search, "--max-minutes", "nan"]),
        ("search: --trials -1", [*search[:5], "-1", *search[6:]]),
        ("search: --heartbeat 0", [*search, "--heartbeat", "0"]),
        ("search: --eval-batch-size 0", [*search, "--eval-batch-size", "0"]),
        ("search: --seed 2**70", [*search, "--seed", str(2**70)]),
        ("search: --micro-batch 0", [*search, "--micro-batch", "0"]),
        ("search: --max-memory abc", [*search, "--max-memory", "abc"]),
        ("finetune: --lr inf", [*ft, "--lr", "inf"]),
        ("finetune: --lr nan", [*ft, "--lr", "nan"]),
        ("finetune: --max-steps -1", [*ft, "--max-steps", "-1"]),
        ("finetune: --lora-alpha -1", [*ft, "--lora-alpha", "-1"]),
        ("eval: --seq-len 0", [*ev, "--seq-len", "0"]),
        ("eval: --seq-len 1e3", [*ev, "--seq-len", "1e3"]),
        ("eval: --limit 0", [*ev, "--tasks", "piqa", "--limit", "0"]),
        ("eval: --limit -3", [*ev, "--tasks", "piqa", "--limit", "-3"]),
        ("eval: --max-windows -1", [*ev, "--max-windows", "-1"]),
        ("stats: --context 0", ["stats", "--model", str(tiny), "--context", "0", "--device", "cpu"]),
        ("stats: --repeats -1", ["stats", "--model", str(tiny), "--repeats", "-1", "--device", "cpu"]),
        ("stats: --context abc", ["stats", "--model", str(tiny), "--context", "abc", "--device", "cpu"]),
    ]
    names = [
        ("search: empty --study", [*search, "--study", ""]),
        ("search: empty --sampler", [*search, "--sampler", ""]),
        ("search: empty --calib-data", [*search, "--calib-data", ""]),
        ("search: empty --space", [*search, "--space", ""]),
        ("search: empty --storage", [*search, "--storage", ""]),
        ("search: unknown --objective", [*search, "--objective", "bleu"]),
        ("search: kl top_k -1", [*search, "--objective", "kl", "--objective-option", "top_k=-1"]),
        ("search: kl top_k abc", [*search, "--objective", "kl", "--objective-option", "top_k=abc"]),
        ("search: objective option unknown", [*search, "--objective", "kl", "--objective-option", "k=5"]),
        ("search: objective option without =", [*search, "--objective-option", "top_k"]),
        ("search: --stream on a hub id", ["search", "--model", "someone/not-here", "--ratio", "0.2", "--trials", "1",
                                          "--out", "run", "--stream", *d]),
        ("prune: empty --metric", [*prune, "--ratio", "0.2", "--metric", ""]),
        ("prune: empty --calib-data", [*prune, "--ratio", "0.2", "--metric", "element1", "--calib-data", ""]),
        ("prune: empty --text-field", [*prune, "--ratio", "0.2", "--metric", "element1", "--calib-data", "t.jsonl",
                                       "--text-field", ""]),
        ("prune: empty --model", ["prune", "--model", "", "--ratio", "0.2", "--out", "out", *d]),
        ("prune: empty --out", ["prune", "--model", str(tiny), "--ratio", "0.2", "--out", "", *d]),
        ("eval: empty --tasks", [*ev, "--tasks", ""]),
        ("eval: empty --ppl", [*ev, "--ppl", ""]),
        ("eval: --tasks with an empty name", [*ev, "--tasks", "piqa,,boolq"]),
        ("eval: --stream with --tasks", [*ev, "--stream", "--tasks", "piqa"]),
        ("export: empty --out", ["export", "--model", str(tiny), "--out", ""]),
        ("finetune: empty --data", [*ft[:4], "", *ft[5:]]),
    ]
    kinds = [
        ("prune: --calib-data is a directory", [*prune, "--ratio", "0.2", "--metric", "element1", "--calib-data",
                                                "adir"], {"adir/x.txt": "x"}),
        ("prune: --config is a directory", [*prune, "--ratio", "0.2", "--config", "adir"], {"adir/x.txt": "x"}),
        ("search: --space is a directory", [*search, "--space", "adir"], {"adir/x.txt": "x"}),
        ("eval: --ppl is a directory", [*ev, "--ppl", "adir"], {"adir/x.txt": "x"}),
        ("finetune: --data is a directory", [*ft[:4], "adir", *ft[5:]], {"adir/x.txt": "x"}),
        ("finetune: --teacher is a file", ["finetune", "--model", str(tiny), "--method", "distill", "--teacher",
                                           "t.txt", "--out", "ft", *d], {"t.txt": "x"}),
        ("export: --tokenizer-from is a directory", ["export", "--model", str(tiny), "--out", "x.gguf",
                                                     "--tokenizer-from", "adir"], {"adir/x.txt": "x"}),
        ("report: a run is a file", ["report", "run.txt", "--out", "r.md"], {"run.txt": "x"}),
        ("eval: --model is a text file", ["eval", "--model", "m.txt", *d], {"m.txt": "x"}),
        ("prune: --data-dir is a file", ["prune", "--model", str(tiny), "--ratio", "0.2", "--metric", "element1",
                                         "--out", "out", "--data-dir", "f.txt", "--device", "cpu"], {"f.txt": "x"}),
    ]
    zs = {"model": "a", "zeroshot": {"average": {"tasks": ["piqa"]},
                                     "piqa": {"correct": [1, 0, 1], "doc_ids": [0, 1, 2]}}}
    zs_other = {"model": "b", "zeroshot": {"average": {"tasks": ["piqa"]},
                                           "piqa": {"correct": [1, 0], "doc_ids": [0, 1]}}}
    compare = [
        ("compare: A missing", ["compare", "a.json", "b.json"], {"b.json": json.dumps(zs)}),
        ("compare: A not JSON", ["compare", "a.json", "b.json"], {"a.json": "{", "b.json": json.dumps(zs)}),
        ("compare: A without zero-shot", ["compare", "a.json", "b.json"],
         {"a.json": '{"perplexity": []}', "b.json": json.dumps(zs)}),
        ("compare: A from an older adapruner", ["compare", "a.json", "b.json"],
         {"a.json": json.dumps({"zeroshot": {"average": {"tasks": ["piqa"]}, "piqa": {"acc": 0.5}}}),
          "b.json": json.dumps(zs)}),
        ("compare: different --limit", ["compare", "a.json", "b.json"],
         {"a.json": json.dumps(zs), "b.json": json.dumps(zs_other)}),
        ("compare: no common task", ["compare", "a.json", "b.json"],
         {"a.json": json.dumps(zs), "b.json": json.dumps({"zeroshot": {"average": {"tasks": ["boolq"]},
                                                                       "boolq": {"correct": [1]}}})}),
        ("compare: A is a directory", ["compare", "adir", "b.json"], {"adir/x": "x", "b.json": json.dumps(zs)}),
        ("compare: --out read-only", ["compare", "a.json", "a.json", "--out", "/proc/nope/c.json"],
         {"a.json": json.dumps(zs)}),
    ]
    out += [(name, argv, {}) for name, argv in numbers + names] + kinds + compare
    # A disk that refuses a write during every writer's work (see the module's docstring). What a
    # run keeps on purpose to resume from (a streamed run's staging directory, a study) may stay.
    writers = [
        ("prune", [*prune, "--ratio", "0.2"]),
        ("prune --stream", [*prune, "--ratio", "0.2", "--stream"], (".out.partial/",)),
        ("search", search, ("run/study.db",)),
        ("finetune", ft),
        ("export", ["export", "--model", str(tiny), "--out", "x.gguf", "--tokenizer-from",
                    str(tiny.parent / "t.gguf")]),
        ("eval", [*ev, "--ppl", "wikitext2", "--max-windows", "1", "--out", "e.json"]),
        ("stats", ["stats", "--model", str(tiny), "--device", "cpu", "--out", "s.json", "--repeats", "1"]),
    ]
    # The hub behind a proxy that is dead (refuses connections) or silent (accepts and never
    # answers): the probe must give up in seconds, not after the client's ~50 s of retries.
    for proxy, label in ((DEAD_PROXY, "a dead proxy"), (SILENT_PROXY, "a silent proxy")):
        out += [(f"{cmd}: hub id behind {label}", argv, {},
                 {"env": {"HTTPS_PROXY": proxy, "HF_HUB_OFFLINE": None}, "max_seconds": 10})
                for cmd, argv in (("eval", ["eval", "--model", "someone/model-that-is-not-here", *d]),
                                  ("prune", ["prune", "--model", "someone/model-that-is-not-here", "--ratio", "0.2",
                                             "--out", "out", *d]))]
    for fault, label in (({"fsize": "half"}, "the disk refuses a write (EFBIG)"),
                         ({"tmpfs": "64m", "fill": "half"}, "the disk is full (ENOSPC)"),
                         ({"tmpfs": "64m", "readonly": True}, "the disk is read-only (EROFS)")):
        out += [(f"{cmd}: {label}", argv, {}, {**fault, "resumable": keep[0] if keep else ()})
                for cmd, argv, *keep in writers]
    return out


PROBE = 4096  # what check_writable writes before any work
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
SILENT_PROXY = "http://127.0.0.1:{silent_port}"  # a socket that accepts and never answers (main)


@contextlib.contextmanager
def environment(env: dict | None):
    """``os.environ`` with ``env`` applied (None removes a variable), restored afterwards.
    huggingface_hub reads HF_HUB_OFFLINE once, at import: its constant follows too."""
    from huggingface_hub import constants

    saved = {k: os.environ.get(k) for k in env or {}}
    offline = constants.HF_HUB_OFFLINE
    if "HF_HUB_OFFLINE" in (env or {}):
        constants.HF_HUB_OFFLINE = env["HF_HUB_OFFLINE"] not in (None, "", "0")
    for k, v in (env or {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = offline
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def writer_sizes(argv: list[str], scratch: Path) -> tuple[int, int]:
    """The largest file and the total bytes a fault-free run of ``argv`` writes."""
    r = run_case(argv, {}, scratch, None)
    if r["exit"] != 0:
        raise RuntimeError(f"the fault-free run of {argv[0]} failed: {r['last_line']}")
    sizes = [(scratch / f).stat().st_size for f in r["new_files"]]
    return max(sizes), sum(sizes)


def resolve(fault: dict, sizes: tuple[int, int]) -> dict:
    """A fault's limits from the writer's sizes: half its largest file (EFBIG), half its total
    left free (ENOSPC)."""
    largest, total = sizes
    out = dict(fault)
    if fault.get("fsize") == "half":
        out["fsize"] = max(1, largest // 2)
    if fault.get("fill") == "half":
        out["fill"] = total // 2
    return out


FILLER = ".battery-filler"


@contextlib.contextmanager
def after_probe(fault: dict | None, scratch: Path):
    """Strike ``fault`` when the command removes its pre-flight probe file (the first
    ``.adapruner-probe-*`` it unlinks): lower the file-size limit, or fill the disk."""
    import resource

    if not fault or not ({"fsize", "fill"} & set(fault)):
        yield
        return
    unlink, struck = os.unlink, []

    def strike():
        if "fsize" in fault:  # writes past the limit fail with EFBIG instead of killing the process
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fault["fsize"], resource.RLIM_INFINITY))
        if "fill" in fault:
            fill(scratch / FILLER, fault["fill"])

    def patched(path, *a, **k):
        unlink(path, *a, **k)
        if not struck and Path(path).name.startswith(".adapruner-probe-"):
            struck.append(True)
            strike()

    os.unlink = patched
    try:
        yield
    finally:
        os.unlink = unlink
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        if os.path.exists(scratch / FILLER):
            unlink(scratch / FILLER)


def fill(path: Path, leave: int) -> None:
    """Write ``path`` until the disk is full, then give back ``leave`` bytes (whole pages)."""
    import errno

    chunk = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        size = f.tell()
        f.truncate(max(0, size - leave // PROBE * PROBE))


def _mount(scratch: Path, *options: str) -> bool:
    """Mount (or remount) a tmpfs on ``scratch``; False where this machine does not allow it."""
    import subprocess

    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(scratch)],
                          capture_output=True)
    return proc.returncode == 0


def _umount(scratch: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(scratch)], capture_output=True)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_case(argv: list[str], files: dict, scratch: Path, fault: dict | None = None) -> dict:
    import resource

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
    if fault and fault.get("readonly") and not _mount(scratch, "remount", "ro"):
        return {"outcome": "skipped", "exit": None, "last_line": "cannot remount read-only here", "new_files": [],
                "escaped": None}
    before = _digests(scratch)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(scratch)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    rc, escaped = None, None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), after_probe(fault, scratch), \
                environment((fault or {}).get("env")):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse usage errors
                rc = exc.code
    except Hang:
        escaped = "hang"
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is what we count
        escaped = f"{type(exc).__name__}: {exc}"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.alarm(0)
        os.chdir(cwd)
    after = _digests(scratch)
    text = err.getvalue() + out.getvalue()
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    seconds = time.perf_counter() - start
    if escaped == "hang" or seconds > (fault or {}).get("max_seconds", float("inf")):
        outcome = "hang"
    elif escaped or "Traceback (most recent call last)" in text:
        outcome = "traceback"
    elif any(before.get(k) != v for k, v in after.items() if k in before):
        outcome = "modified"
    elif {f for f in set(after) - set(before) if not f.startswith(tuple((fault or {}).get("resumable", ())))}:
        outcome = "partial"
    elif rc == 0:
        outcome = "accepted"
    elif rc in (2, 3) and lines and (lines[-1].startswith(("error: ", "adapruner: error:", "usage:"))
                                     or ": error: " in lines[-1]):
        outcome = "clean"  # 2: bad input, 3: the environment failed (a refused write)
    else:
        outcome = f"exit {rc}"
    return {"outcome": outcome, "exit": rc, "last_line": lines[-1][:300] if lines else "",
            "new_files": sorted(set(after) - set(before)), "escaped": escaped, "seconds": round(seconds, 2)}


def recover(argv: list[str], scratch: Path, fault: dict) -> dict:
    """The same command in the same directory once the disk fault is lifted: it must succeed."""
    if "tmpfs" in fault:
        _mount(scratch, "remount", "rw", "size=1g")
    r = run_case(argv, {}, scratch, None)
    return {"exit": r["exit"], "last_line": r["last_line"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", default="benchmarks/results/bad_input_battery.json")
    p.add_argument("--only", default=None, help="run only the cases whose name contains this (a look, not a result)")
    args = p.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"  # the hub-id cases must fail fast, as on an offline machine
    import socket

    silent = socket.socket()  # listens (the kernel completes connections) and never reads or answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    global SILENT_PROXY
    SILENT_PROXY = SILENT_PROXY.format(silent_port=silent.getsockname()[1])
    data = str(Path(args.data_dir).resolve())
    results = {}
    with tempfile.TemporaryDirectory(prefix="battery-") as root:
        root = Path(root)
        tiny = tiny_checkpoint(root / "tiny")
        sizes: dict[tuple, tuple[int, int]] = {}
        for i, (name, argv, files, *fault) in enumerate(cases(tiny, data)):
            if args.only and args.only not in name:
                continue
            scratch = root / f"case{i:03d}"
            scratch.mkdir()
            fault = fault[0] if fault else None
            if fault and "half" in fault.values():
                if tuple(argv) not in sizes:
                    (root / f"sizes{i:03d}").mkdir()
                    sizes[tuple(argv)] = writer_sizes(argv, root / f"sizes{i:03d}")
                fault = resolve(fault, sizes[tuple(argv)])
            if fault and "tmpfs" in fault and not _mount(scratch, f"size={fault['tmpfs']}"):
                results[name] = {"argv": argv, "outcome": "skipped", "last_line": "mounting a tmpfs needs root"}
            else:
                results[name] = {"argv": argv, **run_case(argv, files, scratch, fault)}
                if fault:
                    results[name]["fault"] = {k: v for k, v in fault.items() if k != "resumable"}
                if fault and results[name]["outcome"] == "accepted":
                    results[name]["outcome"] = "fault not reached"
                if fault and {"fsize", "fill", "tmpfs"} & set(fault) and results[name]["outcome"] == "clean":
                    results[name]["recovery"] = recover(argv, scratch, fault)
                    if results[name]["recovery"]["exit"] != 0:
                        results[name]["outcome"] = "no recovery"
            if fault and "tmpfs" in fault:
                _umount(scratch)
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
