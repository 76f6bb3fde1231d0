"""Converters from the local zero-shot files to the fields lm-evaluation-harness prompts expect.

The harness's standard tasks read Hugging Face datasets (``aps/super_glue``, ``baber/piqa``,
``Rowan/hellaswag`` ...). Offline we have the original release files instead, some in odd
formats: PIQA keeps its labels in a separate ``.lst`` file, HellaSwag comes as a 6-line text
format, WinoGrande keeps labels in ``dev-labels.lst``, ARC/OpenBookQA nest the question (OpenBookQA is
read from its official jsonl; the TSV twin holds the same items). Each
converter below turns one such file into the row schema of the Hugging Face dataset the harness
prompt was written for, so the harness's own ``doc_to_text`` / ``doc_to_choice`` /
``doc_to_target`` apply unchanged. Converted rows are cached as JSONL under
``$ADAPRUNER_CACHE/zeroshot/<task>-<checksum>.jsonl``; the checksum covers the source files and
:data:`CONVERTER_VERSION`, so a changed file or converter never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapruner.core.io import atomic_file
from adapruner.errors import AdaprunerError

CONVERTER_VERSION = 2


@dataclass(frozen=True)
class ZeroShotSource:
    """Where one task's evaluation split lives under ``<data_dir>/zeroshot`` and how to read it.

    ``split`` is the split the harness evaluates (and LLM-Pruner reports): validation for BoolQ,
    PIQA, HellaSwag, WinoGrande; test for ARC and OpenBookQA.
    """

    task: str
    files: tuple[str, ...]
    split: str
    rows: int  # row count stated in the data README
    convert: Callable[..., list[dict]]


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AdaprunerError(f"{path} line {number} is not valid JSON ({exc.msg}); the file is truncated or "
                                     "damaged: restore it from the data set") from None
    return rows


def _read_labels(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _aligned(rows: list, labels: list, what: str) -> None:
    if len(rows) != len(labels):
        raise AdaprunerError(f"{what}: {len(rows)} items but {len(labels)} labels; the data files are out of step")


def _bool_label(value) -> int:
    """BoolQ labels are JSON booleans in SuperGLUE but the strings "true"/"false" in some copies."""
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false"):
            raise AdaprunerError(f"boolq: label {value!r} is neither true nor false")
        return int(value.strip().lower() == "true")
    return int(bool(value))


def convert_boolq(val: Path) -> list[dict]:
    """SuperGLUE BoolQ: keep question/passage, turn the label into 0 (no) / 1 (yes)."""
    return [{"question": r["question"], "passage": r["passage"], "idx": r.get("idx", i),
             "label": _bool_label(r["label"])} for i, r in enumerate(_read_jsonl(val))]


def convert_piqa(valid: Path, labels: Path) -> list[dict]:
    """PIQA: goal, sol1, sol2 from the jsonl and the label (0/1) from the aligned .lst file."""
    rows, labs = _read_jsonl(valid), _read_labels(labels)
    _aligned(rows, labs, "piqa")
    return [{"goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"], "label": int(lab)}
            for r, lab in zip(rows, labs)]


def convert_hellaswag(text: Path) -> list[dict]:
    """HellaSwag 6-line format -> the HF ``Rowan/hellaswag`` fields the harness preprocesses.

    Each item is ``activity_label: ctx``, the gold label, then 4 endings. The file has already
    merged ctx_a and ctx_b (without capitalising ctx_b), so the whole context goes to ``ctx_a``
    and ``ctx_b`` stays empty: the harness's ``process_docs`` then builds
    ``activity_label + ": " + ctx`` exactly as printed in the file (its trailing space is
    stripped by the harness's ``preprocess``).
    """
    with text.open(encoding="utf-8") as f:
        lines = [line.rstrip("\r\n") for line in f]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 6:
        raise AdaprunerError(f"{text}: {len(lines)} lines is not a multiple of 6; expected the 6-line HellaSwag format")
    rows = []
    for i in range(0, len(lines), 6):
        head, label, endings = lines[i], lines[i + 1], lines[i + 2:i + 6]
        activity, sep, ctx = head.partition(": ")
        if not sep:
            activity, ctx = "", head
        rows.append({"ind": i // 6, "activity_label": activity, "ctx_a": ctx, "ctx_b": "",
                     "ctx": ctx, "endings": endings, "label": str(int(label))})
    return rows


def convert_winogrande(dev: Path, labels: Path) -> list[dict]:
    """WinoGrande dev: sentence with ``_``, option1/2 and the answer ("1"/"2") from the labels file."""
    rows, labs = _read_jsonl(dev), _read_labels(labels)
    _aligned(rows, labs, "winogrande")
    return [{"sentence": r["sentence"], "option1": r["option1"], "option2": r["option2"], "answer": lab}
            for r, lab in zip(rows, labs)]


def convert_ai2(path: Path) -> list[dict]:
    """ARC / OpenBookQA jsonl (``question.stem``, ``question.choices``) -> the HF ai2_arc /
    openbookqa schema: ``question`` / ``question_stem`` string and ``choices = {text, label}``."""
    out = []
    for r in _read_jsonl(path):
        choices = r["question"]["choices"]
        stem = r["question"]["stem"]
        out.append({"id": r["id"], "question": stem, "question_stem": stem,
                    "choices": {"text": [c["text"] for c in choices], "label": [c["label"] for c in choices]},
                    "answerKey": r["answerKey"]})
    return out


SOURCES: dict[str, ZeroShotSource] = {
    s.task: s for s in (
        ZeroShotSource("boolq", ("boolq/val.jsonl",), "validation", 3270, convert_boolq),
        ZeroShotSource("piqa", ("piqa/valid.jsonl", "piqa/valid-labels.lst"), "validation", 1838, convert_piqa),
        ZeroShotSource("hellaswag", ("hellaswag/hellaswag_val_full.txt",), "validation", 10042, convert_hellaswag),
        ZeroShotSource("winogrande", ("winogrande/dev.jsonl", "winogrande/dev-labels.lst"), "validation", 1267,
                       convert_winogrande),
        ZeroShotSource("arc_easy", ("arc_easy/ARC-Easy-Test.jsonl",), "test", 2376, convert_ai2),
        ZeroShotSource("arc_challenge", ("arc_challenge/ARC-Challenge-Test.jsonl",), "test", 1172, convert_ai2),
        ZeroShotSource("openbookqa", ("openbookqa/test.jsonl",), "test", 500, convert_ai2),
        # The development splits, never reported: what a search may look at without touching the
        # sets the results are reported on (the zero-shot proxy of the objective study).
        ZeroShotSource("arc_easy_dev", ("arc_easy/ARC-Easy-Dev.jsonl",), "validation", 570, convert_ai2),
        ZeroShotSource("arc_challenge_dev", ("arc_challenge/ARC-Challenge-Dev.jsonl",), "validation", 299,
                       convert_ai2),
        ZeroShotSource("openbookqa_dev", ("openbookqa/dev.jsonl",), "validation", 500, convert_ai2),
    )
}
# The seven reported tasks (``--tasks all``) and the development tasks.
TASKS: tuple[str, ...] = ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
DEV_TASKS: tuple[str, ...] = ("arc_easy_dev", "arc_challenge_dev", "openbookqa_dev")


def base_task(task: str) -> str:
    """The reported task whose prompt and metric a development task uses (itself for a reported one)."""
    return task.removesuffix("_dev")


def cache_dir() -> Path:
    """``$ADAPRUNER_CACHE`` (default ``~/.cache/adapruner``)."""
    return Path(os.environ.get("ADAPRUNER_CACHE") or Path.home() / ".cache" / "adapruner")


def check_tasks(tasks: list[str]) -> list[str]:
    """Validate task names; an unknown one is an error that lists the valid names."""
    if not tasks:
        raise AdaprunerError(f"no zero-shot task given; choose from {', '.join(TASKS + DEV_TASKS)}")
    unknown = [t for t in tasks if t not in SOURCES]
    if unknown:
        raise AdaprunerError(f"unknown zero-shot task(s) {', '.join(unknown)}; valid tasks: "
                             f"{', '.join(TASKS + DEV_TASKS)}")
    return list(tasks)


def source_files(task: str, data_dir: Path) -> list[Path]:
    """The local files of ``task``; a missing one is an error naming it."""
    src = SOURCES[check_tasks([task])[0]]
    paths = [Path(data_dir) / "zeroshot" / f for f in src.files]
    for p in paths:
        if not p.is_file():
            raise AdaprunerError(f"zero-shot file {p} not found; pass --data-dir pointing at the shared data directory")
    return paths


def load_task_rows(task: str, data_dir: Path) -> list[dict]:
    """The converted rows of ``task`` (no caching)."""
    return SOURCES[task].convert(*source_files(task, data_dir))


def converted_jsonl(task: str, data_dir: Path, cache: Path | None = None) -> Path:
    """Path of the cached JSONL for ``task``, converting the local files on first use."""
    paths = source_files(task, data_dir)
    h = hashlib.sha256(f"{task}:v{CONVERTER_VERSION}".encode())
    for p in paths:
        h.update(p.read_bytes())
    out_dir = (cache or cache_dir()) / "zeroshot"
    out = out_dir / f"{task}-{h.hexdigest()[:16]}.jsonl"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = SOURCES[task].convert(*paths)
    with atomic_file(out) as tmp, tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return out
