"""The user's own text: a local ``.txt`` or ``.jsonl`` / ``.json`` file, for perplexity
(``adapruner eval --ppl FILE``) and for calibration (``--calib-data FILE``), or for calibration a
Hugging Face hub dataset ``org/name`` (its ``train`` split, the string in ``field``) when a network
exists.

Rows: a ``.txt`` file gives one row per line with WikiText's row semantics (the line keeps its
newline, a blank line is ``""``); a ``.jsonl`` file one row per record (the string in
``field``, default ``text``), a ``.json`` file the same from a list of records. Perplexity then
follows the LLM-Pruner protocol of :mod:`adapruner.eval.perplexity` (rows joined with
``"\\n\\n"``, tokenized once, non-overlapping windows). Calibration windows are the same
non-overlapping windows, shuffled with the pool seed. The protocol records the file and its
sha256. A file too short for the requested windows is a one-line error saying how many windows
of ``seq_len`` tokens it gives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from adapruner.errors import AdaprunerError

SUFFIXES = (".txt", ".jsonl", ".json")
JOIN = "\n\n"


def is_text_file(name: str) -> bool:
    """Whether ``name`` names a user text file (by its suffix), as opposed to a built-in corpus."""
    return Path(name).suffix.lower() in SUFFIXES


def is_hub_dataset(name: str) -> bool:
    """Whether ``name`` reads as a hub dataset id ``org/name`` rather than a local file."""
    import re

    return (not Path(name).exists() and not is_text_file(name)
            and re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", name) is not None)


def is_user_text(name: str) -> bool:
    """A calibration source of the user's: a text file or a hub dataset."""
    return is_text_file(name) or is_hub_dataset(name)


def _load_hub_rows(name: str, field: str) -> list[str]:
    """The ``field`` strings of the hub dataset ``name``'s train split (tests replace this)."""
    import datasets

    ds = datasets.load_dataset(name, split="train")
    if field not in ds.column_names:
        raise AdaprunerError(f"hub dataset '{name}' has no column '{field}' (columns: {', '.join(ds.column_names)}); "
                             "pass --text-field")
    return [r for r in ds[field] if isinstance(r, str)]


def hub_rows(name: str, field: str = "text") -> list[str]:
    """Rows of a hub dataset; a one-line error without a network or when loading fails."""
    from adapruner.models.hub import hub_reachable

    if not hub_reachable():
        raise AdaprunerError(f"cannot load the hub dataset '{name}': the Hugging Face hub is not reachable (no "
                             "network?); pass a local .txt/.jsonl/.json file as --calib-data")
    try:
        rows = _load_hub_rows(name, field)
    except AdaprunerError:
        raise
    except Exception as exc:  # the datasets library raises many unrelated types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdaprunerError(f"could not load the hub dataset '{name}' ({first}); check the id or pass a local file") from None
    if not JOIN.join(rows).strip():
        raise AdaprunerError(f"hub dataset '{name}' holds no text in column '{field}'")
    return rows


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_rows(path: str | Path, field: str = "text") -> list[str]:
    """The rows of a user text file or hub dataset (module docstring); one-line errors name the file and line."""
    if is_hub_dataset(str(path)):
        return hub_rows(str(path), field)
    path = Path(path)
    if path.is_dir():
        raise AdaprunerError(f"{path} is a directory; pass one .txt, .jsonl or .json text file")
    if not path.is_file():
        raise AdaprunerError(f"text file {path} not found; check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise AdaprunerError(f"{path} is not a .txt, .jsonl or .json text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AdaprunerError(f"{path} is not UTF-8 text (byte {exc.start}); convert it to UTF-8") from None
    if suffix == ".txt":
        rows = [line if line.strip() else "" for line in text.splitlines(keepends=True)]
    else:
        records = []
        if suffix == ".jsonl":
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    records.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise AdaprunerError(f"{path} line {number} is not valid JSON ({exc.msg}); is the file "
                                         "truncated?") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise AdaprunerError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
            if not isinstance(data, list):
                raise AdaprunerError(f"{path} must hold a JSON list of records with a '{field}' string")
            records = list(enumerate(data, 1))
        rows = []
        for number, record in records:
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise AdaprunerError(f"{path} record {number} has no string field '{field}'; pass --text-field")
            rows.append(record[field])
    if not JOIN.join(rows).strip():
        raise AdaprunerError(f"{path} holds no text")
    return rows


def text_windows(tokenizer, path: str | Path, seq_len: int, field: str = "text", need: int = 1) -> torch.Tensor:
    """The non-overlapping windows ``[W, seq_len]`` of a user text file; at least ``need`` of them."""
    from adapruner.data.tokens import cut_windows, encode, leading_bos

    rows = read_rows(path, field)
    ids = encode(tokenizer, JOIN.join(rows))
    windows = cut_windows(ids, seq_len, leading_bos(tokenizer))
    if len(windows) < need:
        raise AdaprunerError(f"{path} gives {len(windows)} window(s) of {seq_len} tokens ({len(ids)} tokens in all) "
                             f"but {need} are needed; use more text or a shorter sequence length")
    return windows


def text_pool(tokenizer, path: str | Path, seq_len: int = 128, seed: int = 0, field: str = "text") -> torch.Tensor:
    """Calibration windows of a user text file, shuffled with ``seed`` (a pool like the books')."""
    windows = text_windows(tokenizer, path, seq_len, field)
    g = torch.Generator().manual_seed(int(seed))
    return windows[torch.randperm(len(windows), generator=g)]


def protocol(path: str | Path, field: str) -> dict:
    """What identifies a user text file in a report: its path, sha256 and field (a hub dataset: its id)."""
    if is_hub_dataset(str(path)):
        return {"hub_dataset": str(path), "split": "train", "field": field, "join": JOIN}
    path = Path(path)
    return {"file": str(path.resolve()), "sha256": sha256(path), "field": field if path.suffix != ".txt" else None,
            "rows": "one per line (.txt) or per record (.jsonl/.json)", "join": JOIN}
