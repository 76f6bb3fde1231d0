"""Where the data lives: ``--data-dir`` or ``$ADAPRUNER_DATA_DIR``.

The directory holds ``wikitext2/``, ``ptb/``, ``books/``, ``alpaca/`` and ``zeroshot/`` as laid out
in the offline copies (``../shared/data`` from a project checkout). Files missing from it are
fetched from the Hugging Face hub by the individual loaders when a network exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from adapruner.errors import AdaprunerError

DATA_ENV = "ADAPRUNER_DATA_DIR"


def resolve_data_dir(flag: str | os.PathLike | None) -> Path:
    """The data directory named by ``flag``, else by ``$ADAPRUNER_DATA_DIR``; it must exist."""
    value = str(flag) if flag else os.environ.get(DATA_ENV)
    if not value:
        raise AdaprunerError(f"no data directory given; pass --data-dir DIR or set {DATA_ENV} "
                             "(a project checkout has the offline data in ../shared/data)")
    path = Path(value).expanduser()
    origin = "--data-dir" if flag else f"${DATA_ENV}"
    if not path.exists():
        raise AdaprunerError(f"data directory {path} (from {origin}) does not exist; pass an existing --data-dir")
    if not path.is_dir():
        raise AdaprunerError(f"data directory {path} (from {origin}) is a file, not a directory")
    return path.resolve()


def data_file(data_dir: Path, relative: str) -> Path | None:
    """``data_dir / relative`` if it is a file, else None (the caller decides on a fallback)."""
    path = Path(data_dir) / relative
    return path if path.is_file() else None
