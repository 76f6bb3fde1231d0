"""``adapruner data download``: build a data directory like ``../shared/data`` from public sources.

A user without this project's offline copy gets the same layout from the Hugging Face hub (the
data sets the published protocols use) and, for the book texts, from NLTK's Gutenberg archive on
GitHub (the copy's origin, checked file by file against the sha256 values of its SOURCES.md).
Every file is written in the format the offline copy has, so every loader reads both alike, and
is *checked* before it is moved into place: read back with adapruner's own loader, its row count
must equal the data README's. Files already present and passing the check are kept (the command
resumes). Two files cannot be rebuilt exactly and say so: the cleaned-Alpaca sample is another
random 2000 rows (seed 0), and HellaSwag's 6-line text is rebuilt with klosax's preprocessing
from the hub rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapruner.core.io import atomic_file
from adapruner.errors import AdaprunerError

BOOKS_ZIP = ("https://raw.githubusercontent.com/nltk/nltk/c90be5e1b36a576057c8bef2ba948cafd28e863d/"
             "nltk_data/corpora/gutenberg.zip")
BOOKS_ZIP_SHA256 = "a21023d902540d221d1d5f73c4308deaf6950d96cf0b68e08388d2a944f5d1f2"
BOOKS = {  # SOURCES.md appendix
    "austen-emma.txt": "71b0923d75fcf2f1faa897b22da8de8e2476d7478a2b22388eb58a3420e00215",
    "austen-persuasion.txt": "cec097657cbfeb62aafe178973f514fa07ab66a5e28ea025ebd5d51ca870e40f",
    "austen-sense.txt": "57b169c7cfa502896dee25bd66616f61cc1d21084caf31f015176ee46fda9718",
    "chesterton-ball.txt": "c6b6d4e8c09a3f49a09f37f4e47663d4d6f048b62d86c70ccafdfd8f27059a58",
    "chesterton-brown.txt": "67027976205b4b30e367c704807f56c8ffac3e8ea6037d993e57ab1fe28447ec",
    "chesterton-thursday.txt": "8b431a2a8db84089cd6f83fa66610c3b12c04114609df6e90137c0c58f2c5493",
    "melville-moby_dick.txt": "dc2466ee3c2e6e2ea1f86233d142e4b5578fdc1d6f0ca657bee7572202a980c7",
}


def _load_dataset(path: str, name: str | None, split: str) -> list[dict]:
    """Rows of a hub data set split (the one place that touches the hub; tests replace it)."""
    import datasets

    return list(datasets.load_dataset(path, name, split=split))


def _fetch_url(url: str) -> bytes:
    """The bytes at ``url`` (tests replace it)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https URL
        return response.read()


def _lines(rows, blank: str = " \n") -> str:
    """WikiText rows (non-blank ones end with a newline, blank ones are "") as the raw file."""
    return "".join(r if r.strip() else blank for r in rows)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _hellaswag_clean(text: str) -> str:
    """klosax's ``extract_hellaswag.cpp``: drop [header]/[step]/[substeps], " [title]" -> ". ", no double spaces."""
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[(header|step|substeps)\]", "", text)
    return re.sub(r"  +", " ", text).strip()


def _ai2(row: dict) -> dict:
    stem = row.get("question_stem", row.get("question"))
    choices = [{"text": t, "label": lab} for t, lab in zip(row["choices"]["text"], row["choices"]["label"])]
    return {"id": row["id"], "question": {"stem": stem, "choices": choices}, "answerKey": row["answerKey"]}


@dataclass(frozen=True)
class Group:
    """Files of one data set: ``build()`` returns ``{relative path: text or bytes}``; ``check(directory)``
    returns ``{relative path: (rows read, rows expected)}`` with adapruner's own readers."""

    name: str
    build: Callable[[], dict[str, str | bytes]]
    check: Callable[[Path], dict[str, tuple[int, int]]]


def _build_wikitext2() -> dict[str, str]:
    test = [r["text"] for r in _load_dataset("wikitext", "wikitext-2-raw-v1", "test")]
    valid = [r["text"] for r in _load_dataset("wikitext", "wikitext-2-v1", "validation")]
    return {"wikitext2/wiki.test.raw": _lines(test), "wikitext2/wiki.valid.tokens": _lines(valid)}


def _check_corpus(name: str, splits: dict[str, int]) -> Callable[[Path], dict]:
    from adapruner.data.corpora import FILES, load_corpus

    def check(directory: Path) -> dict:
        return {FILES[(name, s)][0]: (len(load_corpus(name, s, directory)), n) for s, n in splits.items()}

    return check


def _build_ptb() -> dict[str, str]:
    return {f"ptb/ptb.{ours}.txt": "".join(f" {r['sentence'].strip()} \n"
                                           for r in _load_dataset("ptb_text_only", "penn_treebank", hub))
            for ours, hub in (("train", "train"), ("valid", "validation"), ("test", "test"))}


def _build_books() -> dict[str, bytes]:
    data = _fetch_url(BOOKS_ZIP)
    if hashlib.sha256(data).hexdigest() != BOOKS_ZIP_SHA256:
        raise AdaprunerError(f"{BOOKS_ZIP} does not have the expected sha256; not using it")
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {Path(m).name: m for m in z.namelist()}
        for name, digest in BOOKS.items():
            if name not in members:
                raise AdaprunerError(f"{BOOKS_ZIP} has no {name}")
            raw = z.read(members[name])
            if hashlib.sha256(raw).hexdigest() != digest:
                raise AdaprunerError(f"{name} in {BOOKS_ZIP} does not have the expected sha256")
            out[f"books/{name}"] = raw  # bytes: kept exactly (moby_dick has CRLF line ends)
    return out


def _check_books(directory: Path) -> dict:
    return {f"books/{n}": (int(hashlib.sha256((directory / "books" / n).read_bytes()).hexdigest() == d), 1)
            for n, d in BOOKS.items()}


def _build_alpaca() -> dict[str, str]:
    fields = ("instruction", "input", "output")
    original = [{k: r[k] for k in fields} for r in _load_dataset("tatsu-lab/alpaca", None, "train")[:1805]]
    cleaned = [{k: r[k] for k in fields} for r in _load_dataset("yahma/alpaca-cleaned", None, "train")]
    sample = random.Random(0).sample(cleaned, 2000)
    return {"alpaca/alpaca_data_first1805.json": json.dumps(original, indent=4, ensure_ascii=False) + "\n",
            "alpaca/alpaca_first200.json": json.dumps(original[:200], indent=4, ensure_ascii=False) + "\n",
            "alpaca/alpaca_cleaned_sample2000.json": json.dumps(sample, indent=4, ensure_ascii=False) + "\n"}


def _check_alpaca(directory: Path) -> dict:
    sizes = {"alpaca_data_first1805.json": 1805, "alpaca_first200.json": 200, "alpaca_cleaned_sample2000.json": 2000}
    return {f"alpaca/{n}": (len(json.loads((directory / "alpaca" / n).read_text(encoding="utf-8"))), k)
            for n, k in sizes.items()}


def _build_zeroshot() -> dict[str, str]:
    z = "zeroshot/"
    out = {}
    boolq = _load_dataset("super_glue", "boolq", "validation")
    out[z + "boolq/val.jsonl"] = _jsonl([{"question": r["question"], "passage": r["passage"], "idx": r["idx"],
                                          "label": bool(int(r["label"]))} for r in boolq])
    piqa = _load_dataset("baber/piqa", None, "validation")
    out[z + "piqa/valid.jsonl"] = _jsonl([{"goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"]} for r in piqa])
    out[z + "piqa/valid-labels.lst"] = "".join(f"{int(r['label'])}\n" for r in piqa)
    hs = _load_dataset("Rowan/hellaswag", None, "validation")
    out[z + "hellaswag/hellaswag_val_full.txt"] = "".join(
        f"{r['activity_label']}: {_hellaswag_clean(r['ctx'])}\n{int(r['label'])}\n"
        + "".join(_hellaswag_clean(e) + "\n" for e in r["endings"]) for r in hs)
    wg = _load_dataset("allenai/winogrande", "winogrande_xl", "validation")
    out[z + "winogrande/dev.jsonl"] = _jsonl([{"sentence": r["sentence"], "option1": r["option1"],
                                               "option2": r["option2"]} for r in wg])
    out[z + "winogrande/dev-labels.lst"] = "".join(f"{r['answer']}\n" for r in wg)
    for task, config, folder, prefix in (("arc_easy", "ARC-Easy", "arc_easy", "ARC-Easy"),
                                         ("arc_challenge", "ARC-Challenge", "arc_challenge", "ARC-Challenge")):
        for split, suffix in (("test", "Test"), ("validation", "Dev")):
            rows = _load_dataset("allenai/ai2_arc", config, split)
            out[f"{z}{folder}/{prefix}-{suffix}.jsonl"] = _jsonl([_ai2(r) for r in rows])
    for split, name in (("test", "test"), ("validation", "dev")):
        out[f"{z}openbookqa/{name}.jsonl"] = _jsonl([_ai2(r) for r in _load_dataset("allenai/openbookqa", "main", split)])
    return out


def _check_zeroshot(directory: Path) -> dict:
    from adapruner.data.zeroshot import SOURCES, source_files

    return {f"zeroshot/{s.files[0]}": (len(s.convert(*source_files(task, directory))), s.rows)
            for task, s in SOURCES.items()}


GROUPS: dict[str, Group] = {g.name: g for g in (
    Group("wikitext2", _build_wikitext2, _check_corpus("wikitext2", {"test": 4358, "valid": 3760})),
    Group("ptb", _build_ptb, _check_corpus("ptb", {"train": 42068, "valid": 3370, "test": 3761})),
    Group("books", _build_books, _check_books),
    Group("alpaca", _build_alpaca, _check_alpaca),
    Group("zeroshot", _build_zeroshot, _check_zeroshot),
)}


def _passes(group: Group, directory: Path) -> dict | None:
    """The group's check results if every file is there with the expected rows, else None."""
    try:
        result = group.check(directory)
    except (OSError, ValueError, KeyError, AdaprunerError):
        return None
    return result if all(got == want for got, want in result.values()) else None


def download(to: str | Path, groups: list[str] | None = None, progress: bool = True) -> dict[str, dict]:
    """Fetch the data sets ``groups`` (default all of :data:`GROUPS`) into the directory ``to``.

    Each group is built in a staging directory inside ``to``, checked (rows per file as in the
    data README, sha256 for the books), and only then moved into place, file by file and
    atomically; a group already present and passing its check is skipped. Returns the check
    results per group. Without a network it fails with one line before writing anything.
    """
    import shutil
    import tempfile

    from adapruner.models.hub import hub_reachable

    names = groups or list(GROUPS)
    unknown = [g for g in names if g not in GROUPS]
    if unknown:
        raise AdaprunerError(f"unknown data set(s) {unknown}; choose from {', '.join(GROUPS)}")
    to = Path(to)
    present = {g: _passes(GROUPS[g], to) for g in names}  # each check reads every file of its group once
    todo = [g for g in names if present[g] is None]
    results = {g: r for g, r in present.items() if r is not None}
    if todo and not hub_reachable():
        raise AdaprunerError(f"cannot download {', '.join(todo)}: the Hugging Face hub is not reachable (no network?); "
                             "copy an existing data directory instead and pass it as --data-dir")
    for name in todo:
        if progress:
            print(f"downloading {name} ...", flush=True)
        to.mkdir(parents=True, exist_ok=True)
        try:
            files = GROUPS[name].build()
        except AdaprunerError:
            raise
        except Exception as exc:  # the datasets library and urllib raise many unrelated types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AdaprunerError(f"downloading {name} failed: {first}") from None
        with tempfile.TemporaryDirectory(dir=to, prefix=".download-") as stage:
            stage = Path(stage)
            for rel, content in files.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                data = content if isinstance(content, bytes) else content.encode("utf-8")
                (stage / rel).write_bytes(data)
            checked = GROUPS[name].check(stage)
            bad = {rel: v for rel, v in checked.items() if v[0] != v[1]}
            if bad:
                raise AdaprunerError(f"{name}: downloaded files do not match the data README "
                                     f"({', '.join(f'{r}: {a} rows, expected {b}' for r, (a, b) in bad.items())}); "
                                     "nothing was written")
            for rel in files:
                with atomic_file(to / rel) as tmp:
                    shutil.copyfile(stage / rel, tmp)
        results[name] = checked
    return results
