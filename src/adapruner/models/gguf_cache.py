"""GGUF files, converted once into an ordinary safetensors checkpoint in a cache directory.

Dequantising a GGUF through transformers takes ~15 s even for a 135M model, and the resulting
model refuses ``save_pretrained`` until its GGUF quantizer is cleared. We therefore convert each
GGUF file once into ``$ADAPRUNER_CACHE/<key>/`` (safetensors + config + tokenizer; default cache
``~/.cache/adapruner``) and load that directory afterwards. The conversion writes to a temporary
directory and renames it at the end, under a file lock, so an interrupted or concurrent
conversion never leaves a half-written cache entry.

The cache key is the alias name plus its package version, or, for a bare GGUF file, its stem
plus a fingerprint of its size, first and last 8 MiB (hashing all of a 40 GB file on every load
would cost more than it saves; a changed file changes its size or its ends in practice).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import time
from pathlib import Path

from adapruner.core.io import atomic_directory
from adapruner.errors import AdaprunerError, EnvironmentFault

CACHE_ENV = "ADAPRUNER_CACHE"
_FINGERPRINT_BYTES = 8 << 20
_DONE = "adapruner_gguf.json"  # written last; its presence marks a complete entry


def cache_root() -> Path:
    """``$ADAPRUNER_CACHE``, else ``$XDG_CACHE_HOME/adapruner``, else ``~/.cache/adapruner``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "adapruner"


def file_fingerprint(path: Path) -> str:
    """A short hex digest of a file's size and its first and last 8 MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            f.seek(max(size - _FINGERPRINT_BYTES, _FINGERPRINT_BYTES))
            h.update(f.read())
    return h.hexdigest()[:16]


def cache_key(gguf: Path | None, alias: str | None = None, version: str | None = None) -> str:
    """The cache directory name for ``gguf`` (see the module docstring)."""
    if alias:
        return f"{alias}-{version}" if version else alias
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", gguf.stem)
    return f"{stem}-{file_fingerprint(gguf)}"


def is_converted(directory: Path) -> bool:
    """Whether ``directory`` holds a complete conversion."""
    return (directory / _DONE).is_file() and (directory / "config.json").is_file()


def cache_source(directory: Path) -> Path | None:
    """The GGUF file a complete cache entry ``directory`` was converted from, if it still exists."""
    if not is_converted(directory):
        return None
    try:
        source = Path(json.loads((directory / _DONE).read_text())["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source if source.is_file() else None


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive advisory lock on ``path`` (a no-op where fcntl is unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent conversions are merely wasteful, never corrupting
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise ``gguf`` to float32 and save model + tokenizer as a checkpoint in ``out_dir``.

    Writes to ``out_dir.tmp-*`` and renames at the end. The saved model is a plain
    transformers checkpoint: the GGUF quantizer is cleared so that it serialises.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapruner.models.tokenizer import fix_special_tokens

    start = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (ValueError, KeyError, OSError, RuntimeError, struct.error, EOFError, IndexError) as exc:
        # struct.error / EOFError / IndexError: a truncated or damaged file (interrupted download)
        raise AdaprunerError(
            f"cannot read GGUF file {gguf}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
            "is it a complete GGUF of a supported architecture?"
        ) from exc
    # A GGUF-loaded model is flagged as quantized and refuses to save; its weights are already
    # dequantised floats, so dropping the flag makes it an ordinary checkpoint.
    model.hf_quantizer = None
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    fix_special_tokens(tokenizer, model.config)

    # A stale, incomplete entry is replaced (complete ones are never converted again).
    with atomic_directory(out_dir, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"source": str(gguf), "fingerprint": file_fingerprint(gguf), "dtype": "float32",
                "convert_seconds": round(time.perf_counter() - start, 2)}
        (tmp / _DONE).write_text(json.dumps(info, indent=2) + "\n")


def ensure_converted(gguf: Path, alias: str | None = None, version: str | None = None) -> tuple[Path, bool]:
    """The cached checkpoint directory of ``gguf``, converting it first if needed.

    Returns ``(directory, converted_now)``. Safe to call from several processes at once: the
    first converts, the others wait on a lock and then reuse its result.
    """
    root = cache_root()
    out_dir = root / cache_key(gguf, alias, version)
    if is_converted(out_dir):
        return out_dir, False
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFault(f"cannot create the cache directory {root} ({exc.strerror}); "
                             f"set {CACHE_ENV} to a writable directory") from exc
    lock = root / f"{out_dir.name}.lock"
    try:
        with _lock(lock):
            if is_converted(out_dir):
                return out_dir, False
            convert_gguf(gguf, out_dir)
    except AdaprunerError:
        # A file that cannot be converted leaves no empty lock file behind.
        if not is_converted(out_dir):
            lock.unlink(missing_ok=True)
        raise
    return out_dir, True
