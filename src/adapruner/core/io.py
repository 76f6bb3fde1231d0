"""Atomic writes: a file or directory appears complete under its final name, or not at all.

Everything adapruner writes (checkpoints, reports, CSV tables, plots, caches) goes through these
helpers: the content is written to a hidden temporary sibling (``.NAME.tmp-<pid>-<random>``) and
renamed into place, so an interrupted run never leaves a half-written output behind and a
concurrent reader sees either the old or the new version.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    """A hidden, unique name next to ``path`` (``.NAME.tmp-<pid>-<hex>``) for staging its content."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path`` (mode 0644).

    The parent directory is created. On an exception the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON (non-JSON values via ``str``) to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path``.

    An existing ``path`` is replaced only when ``overwrite`` (the old one is moved aside first and
    deleted after the rename, so there is no moment without a complete directory). On an
    exception the temporary directory is deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        for item in tmp.rglob("*"):  # some writers (safetensors) create 0600 files
            if item.is_file():
                os.chmod(item, 0o644)
        os.chmod(tmp, 0o755)
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            old = temporary_sibling(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
