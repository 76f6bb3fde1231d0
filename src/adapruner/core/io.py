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
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"
_STALE = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    """A hidden, unique name next to ``path`` (``.NAME.tmp-<pid>-<hex>``) for staging its content."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the staging siblings of ``path`` left by killed adapruner processes.

    Only names of our own pattern (``.NAME.tmp-<pid>-<8 hex>`` / ``.NAME.old-...``) whose process
    no longer exists are removed, never anything else. Returns what was removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for item in path.parent.iterdir():
        m = _STALE.match(item.name)
        if not m or m["name"] != path.name or int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        removed.append(item)
    return removed


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path`` (mode 0644).

    The parent directory is created. On an exception the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
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
    remove_stale_temporaries(path)
    tmp = temporary_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        install_directory(tmp, path, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def install_directory(staged: Path, path: Path, overwrite: bool = False) -> None:
    """Rename the finished directory ``staged`` to ``path`` (readable by all; an existing ``path`` is
    replaced only when ``overwrite``: moved aside first, deleted after the rename)."""
    for item in staged.rglob("*"):  # some writers (safetensors) create 0600 files
        if item.is_file():
            os.chmod(item, 0o644)
    os.chmod(staged, 0o755)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(path)
        old = temporary_sibling(path, "old")
        os.replace(path, old)
        os.replace(staged, path)
        # A replaced symlink goes as a link (its target is not ours to delete), a directory whole.
        if old.is_symlink() or old.is_file():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, path)


def check_writable(path: str | Path, flag: str = "--out") -> Path:
    """A one-line error, before any work, unless ``path`` can be created: its nearest existing
    ancestor must accept a probe file (read-only directories, full disks, permissions)."""
    import errno

    from adapruner.errors import EnvironmentFault

    path = Path(path)
    parent = path.parent if not path.is_dir() else path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    probe = parent / f".adapruner-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        raise EnvironmentFault(f"cannot write {flag} {path}: {reason} in {parent}; choose another {flag}") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return path


RESCUE_ENV = "ADAPRUNER_RESCUE_DIR"


def rescue(write, name: str) -> Path | None:
    """Keep a finished result whose final write failed: ``write(path)`` into the first fallback
    location that accepts it (``$ADAPRUNER_RESCUE_DIR``, the system temp directory, the cache),
    under a fresh ``adapruner-rescued-*`` folder. Returns the path written, or None."""
    import tempfile

    bases = [os.environ.get(RESCUE_ENV), tempfile.gettempdir(),
             os.path.join(os.environ.get("ADAPRUNER_CACHE") or os.path.expanduser("~/.cache/adapruner"), "rescued")]
    for base in filter(None, bases):
        folder = Path(base) / f"adapruner-rescued-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write(folder / name)
            return folder / name
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
    return None


def write_failed(what: str | Path, exc: OSError, rescued: Path | None):
    """The one-line error for a final write that failed, naming where the result was kept."""
    import errno

    from adapruner.errors import EnvironmentFault

    reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
    if rescued is not None:
        return EnvironmentFault(f"writing {what} failed ({reason}); the finished result is kept in {rescued}: move it "
                              "where you want it")
    return EnvironmentFault(f"writing {what} failed ({reason}) and no fallback location accepted the result; free space "
                          "and run again")


def write_json_or_rescue(path: str | Path, data) -> Path:
    """:func:`write_json`, keeping ``data`` in a fallback location (one-line error) when that fails."""
    try:
        return write_json(path, data)
    except OSError as exc:
        raise write_failed(path, exc, rescue(lambda p: write_json(p, data), Path(path).name)) from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # symlinks and hard links included
    except OSError:
        return False


def _own_report(path: Path) -> bool:
    """Whether ``path`` is a report an adapruner command wrote (eval / stats JSON, report markdown),
    which a later run of that command may replace; a model's own files never are."""
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text()).get("command") in ("eval", "stats")
        if path.suffix == ".md":
            return path.read_text().startswith("# adapruner report")
    except (OSError, ValueError, AttributeError):
        return False
    return False


def check_output(out: str | Path, inputs, flag: str = "--out", overwrite: bool | None = None,
                 may_lie_inside: bool = False) -> Path:
    """The output policy every command applies before any work: ``out`` is never one of the
    command's ``inputs`` (real paths, symlinks and hard links included), never contains one
    (replacing it would delete the input), and never lies inside an input directory (unless
    ``may_lie_inside``: a JSON report beside a model's files adds a file and replaces none). With
    ``overwrite`` given, an existing ``out`` is refused unless it is True. Returns ``out``."""
    from adapruner.errors import AdaprunerError

    out = Path(out)
    target = out.resolve()
    for raw in inputs:
        if raw is None or not Path(raw).exists():
            continue  # aliases and hub ids are not files the output could touch
        src = Path(raw).resolve()
        if target == src or _same_file(out, src):
            raise AdaprunerError(f"{flag} {out} is one of this command's inputs ({raw}); choose another {flag}")
        if src.is_relative_to(target):
            raise AdaprunerError(f"{flag} {out} contains this command's input {raw}; replacing it would delete "
                                 f"that input: choose another {flag}")
        if src.is_dir() and target.is_relative_to(src) and out.exists() and not _own_report(out):
            raise AdaprunerError(f"{flag} {out} is one of this command's inputs (a file of {raw}); choose another {flag}")
        if src.is_dir() and target.is_relative_to(src) and not may_lie_inside:
            raise AdaprunerError(f"{flag} {out} lies inside this command's input {raw}; write outside it")
    if overwrite is False and out.exists():
        raise AdaprunerError(f"{out} already exists; pass --overwrite to replace it or choose another {flag}")
    return out
