"""Where a study lives: Optuna RDB storage (SQLite by default, PostgreSQL for several workers).

Opening a storage is a one-line error when it cannot be used (not a database, a corrupt file, a
missing driver, an unreachable server); a corrupt SQLite file is reported and left untouched.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import optuna

from adapruner.errors import AdaprunerError


def default_storage(out_dir: str | Path) -> str:
    """The SQLite URL of a search's default storage: ``DIR/study.db``."""
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def check_sqlite_study_file(path: Path) -> None:
    """Refuse, without writing to it, a file that is not an SQLite database, is damaged, or is
    another program's database (tables, but no Optuna schema): Optuna would add its tables.

    The file is opened read-write (never created) because a process killed mid-write leaves a
    hot journal that SQLite must roll back before anything can be read; a read-only connection
    then reports "attempt to write a readonly database" for a perfectly sound study. The
    rollback restores the last committed state, which is what any SQLite client would do.
    """
    import sqlite3

    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise AdaprunerError(f"{path} is not an SQLite database (corrupt?); move it away or pass another --out/--storage")
    try:
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=60)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise AdaprunerError(f"{path} is a damaged SQLite database ({exc}); move it away or pass another "
                             "--out/--storage") from None
    if tables and "studies" not in tables:
        raise AdaprunerError(f"{path} is another program's SQLite database (tables {', '.join(sorted(tables)[:4])}), "
                             "not an Optuna study; it was left untouched: pass another --out/--storage")


def open_storage(url: str, heartbeat: int = 10) -> optuna.storages.RDBStorage:
    """Connect to an Optuna RDB storage, as a one-line error when it cannot be used.

    A corrupt SQLite file is reported and left untouched (the storage is only read until the
    schema is found valid).
    """
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if path.exists() and path.stat().st_size:
            check_sqlite_study_file(path)
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        url = _postgres_driver(url)
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    elif "://" not in url:
        raise AdaprunerError(f"--storage '{url}' is not a database URL; use sqlite:///FILE or postgresql://USER@HOST/DB")
    for attempt in range(5):
        try:
            with quiet_experimental():
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                                                  grace_period=3 * heartbeat)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            # Workers started together on a fresh database race to create the schema; the loser
            # sees a duplicate-key error and simply finds the tables on its next try.
            racing = ("duplicate key", "already exists", "UNIQUE constraint failed")
            if any(r in first for r in racing) and attempt < 4:
                time.sleep(0.5 + attempt)
                continue
            raise AdaprunerError(f"cannot use study storage {redact(url)}: {first}") from None
    raise AssertionError("unreachable")


def _postgres_driver(url: str) -> str:
    """Pick an installed PostgreSQL driver for a plain ``postgresql://`` URL.

    SQLAlchemy 2.1 maps plain URLs to psycopg 3, while our ``postgres`` extra installs psycopg2.
    """
    import importlib.util

    if not url.startswith("postgresql://"):
        return url  # the user named a driver
    if importlib.util.find_spec("psycopg") is not None:
        return url
    if importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    raise AdaprunerError("PostgreSQL storage needs a driver: pip install 'adapruner[postgres]' (psycopg2-binary)")


def redact(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}" if ":" in cred else url
    return url


def existing_study(storage, name: str) -> optuna.Study | None:
    """The study ``name`` if the storage holds it."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


@contextlib.contextmanager
def quiet_experimental():
    """Silence Optuna's ExperimentalWarning: heartbeats have been "experimental" since 2.9 but are
    the documented way to fail the trials of dead workers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
