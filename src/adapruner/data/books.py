"""The calibration pool: book prose cut into windows of exactly ``seq_len`` tokens.

AdaPruner searches for its calibration samples among windows of BookCorpus; BookCorpus is not
redistributable, so the pool is built from the public-domain novels in ``<data>/books/*.txt``:

1. Each file is decoded (UTF-8, else Windows-1252, which some Gutenberg files use), CRLF is
   normalised, and a Project Gutenberg header/footer is cut: everything up to the line holding
   ``*** START OF`` and from the line holding ``*** END OF`` on.
2. The text is split into paragraphs at blank lines; hard line wraps inside a paragraph become
   single spaces. A paragraph is one candidate window (like a BookCorpus row in LLM-Pruner).
3. Paragraphs are tokenized without special tokens; those with fewer text tokens than a window
   holds are dropped; the rest are truncated to their first tokens, with the tokenizer's BOS
   convention (:mod:`adapruner.data.tokens`): ``[BOS] + seq_len - 1`` tokens or ``seq_len``.
4. The windows are shuffled with ``torch.Generator().manual_seed(seed)``.

Pool index ``i`` therefore names the same text for the same files, tokenizer, ``seq_len`` and
``seed``. Pools are cached in memory and on disk under ``$ADAPRUNER_CACHE/pools`` (safetensors),
keyed by the files' SHA-256, a hash of the tokenizer and the parameters, because the search
asks for the pool on every trial.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from adapruner.core.io import atomic_file, write_text
from adapruner.data.tokens import leading_bos, text_tokens_per_window
from adapruner.errors import AdaprunerError

POOL_VERSION = 1  # bump when the windowing changes, so stale disk caches are not reused
_START = re.compile(r"^.*\*\*\* ?START OF.*$", re.MULTILINE)
_END = re.compile(r"^.*\*\*\* ?END OF.*$", re.MULTILINE)


@dataclass
class Pool:
    """Calibration windows ``ids [P, seq_len]`` and, per window, ``(file, paragraph index)``."""

    ids: torch.Tensor
    sources: list[tuple[str, int]]
    info: dict


_MEMORY: dict[str, Pool] = {}


def strip_gutenberg(text: str) -> str:
    """``text`` without CRLF and without a Project Gutenberg header and footer (if present)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = _START.search(text)
    if start:
        text = text[start.end():]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs of ``text`` with internal whitespace collapsed."""
    out = (" ".join(p.split()) for p in re.split(r"\n[ \t]*\n", text))
    return [p for p in out if p]


def read_book(path: Path) -> str:
    """A book file's text (UTF-8, falling back to Windows-1252), Gutenberg boilerplate removed."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return strip_gutenberg(text)


def book_files(data_dir: str | Path) -> list[Path]:
    """The ``books/*.txt`` files of ``data_dir``, sorted; a one-line error if there are none."""
    folder = Path(data_dir) / "books"
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        raise AdaprunerError(f"no calibration text: {folder} has no *.txt files; point --data-dir at the offline data")
    for f in files:
        if f.stat().st_size == 0:
            raise AdaprunerError(f"book file {f} is empty; remove it or restore it from the offline data")
    return files


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's full definition (vocabulary, merges, normalisation)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        blob = backend.to_str()
    else:
        blob = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pool_key(files: list[Path], tokenizer, seq_len: int, seed: int, bos: int | None) -> tuple[str, dict]:
    checksums = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    info = {"files": checksums, "tokenizer": tokenizer_fingerprint(tokenizer), "seq_len": seq_len,
            "seed": seed, "bos": bos, "version": POOL_VERSION}
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:20], info


_ENCODED: dict[str, tuple[list[tuple[str, int]], torch.Tensor, torch.Tensor]] = {}


def _encode_books(files: list[Path], tokenizer, checksums: dict, fingerprint: str):
    """Every paragraph of every book as ``(sources, flat ids, offsets)``, memoised in memory so
    that pools for other seeds or lengths reuse one tokenization."""
    key = hashlib.sha256(json.dumps([checksums, fingerprint]).encode()).hexdigest()
    if key not in _ENCODED:
        sources, chunks = [], []
        for f in files:
            paras = paragraphs(read_book(f))
            if not paras:
                raise AdaprunerError(f"book file {f} holds no text outside its Gutenberg header/footer; remove it")
            encoded = tokenizer(paras, add_special_tokens=False, verbose=False).input_ids
            sources += [(f.name, j) for j in range(len(paras))]
            chunks += [torch.tensor(ids, dtype=torch.long) for ids in encoded]
        lengths = torch.tensor([len(c) for c in chunks], dtype=torch.long)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        _ENCODED[key] = (sources, torch.cat(chunks), offsets)
    return _ENCODED[key]


def _build(files: list[Path], tokenizer, info: dict, seq_len: int, seed: int, bos: int | None):
    sources, flat, offsets = _encode_books(files, tokenizer, info["files"], info["tokenizer"])
    need = text_tokens_per_window(seq_len, bos)
    keep = ((offsets[1:] - offsets[:-1]) >= need).nonzero().flatten()
    if len(keep) == 0:
        raise AdaprunerError(f"no book paragraph has {need} tokens or more; use a shorter --seq-len "
                             f"(default 128) for calibration")
    ids = flat[offsets[keep].unsqueeze(1) + torch.arange(need)]
    if bos is not None:
        ids = torch.cat([torch.full((len(ids), 1), bos, dtype=torch.long), ids], dim=1)
    order = torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))
    return ids[order], [sources[i] for i in keep[order].tolist()], len(sources)


def _cache_dir() -> Path:
    from adapruner.models.gguf_cache import cache_root

    return cache_root() / "pools"


def _load_disk(key: str) -> Pool | None:
    from safetensors.torch import load_file

    path = _cache_dir() / f"{key}.safetensors"
    meta = _cache_dir() / f"{key}.json"
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        ids = load_file(path)["ids"]
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is rebuilt
    return Pool(ids=ids, sources=[tuple(s) for s in info.pop("sources")], info=info)


def _save_disk(key: str, pool: Pool) -> None:
    from safetensors.torch import save_file

    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Data first, metadata last: a reader that sees the metadata sees complete data.
        with atomic_file(folder / f"{key}.safetensors") as tmp:
            save_file({"ids": pool.ids.contiguous()}, str(tmp))
        write_text(folder / f"{key}.json", json.dumps({**pool.info, "sources": pool.sources}))
    except OSError:
        pass  # the cache is an optimisation; a read-only cache directory must not fail the run


def load_pool(tokenizer, data_dir: str | Path, seq_len: int = 128, seed: int = 0) -> Pool:
    """The calibration :class:`Pool` (windows, their sources and a protocol record); cached."""
    files = book_files(data_dir)
    bos = leading_bos(tokenizer)
    text_tokens_per_window(seq_len, bos)  # validates seq_len
    key, info = _pool_key(files, tokenizer, seq_len, seed, bos)
    if key in _MEMORY:
        return _MEMORY[key]
    pool = _load_disk(key)
    if pool is None:
        ids, sources, n_paragraphs = _build(files, tokenizer, info, seq_len, seed, bos)
        info = {**info, "n_paragraphs": n_paragraphs, "n_windows": len(sources),
                "bos_handling": "[BOS] + seq_len-1 tokens" if bos is not None else "seq_len tokens, no BOS",
                "windowing": "one paragraph per window, first tokens, paragraphs too short dropped"}
        pool = Pool(ids=ids, sources=sources, info=info)
        _save_disk(key, pool)
    _MEMORY[key] = pool
    return pool


def calibration_pool(tokenizer, data_dir: str | Path, seq_len: int = 128, seed: int = 0) -> torch.Tensor:
    """The calibration windows ``LongTensor[P, seq_len]`` from the book texts, shuffled by ``seed``.

    Every window holds exactly ``seq_len`` tokens of one paragraph (after a leading BOS when the
    tokenizer prepends one); see the module docstring for the full procedure. Deterministic for
    given files, tokenizer, ``seq_len`` and ``seed``, and cached, so repeated calls are cheap.
    """
    return load_pool(tokenizer, data_dir, seq_len, seed).ids


def held_back_windows(tokenizer, data_dir: str | Path, seq_len: int = 128) -> torch.Tensor:
    """Book windows that no calibration set can hold: the *second* window of every paragraph
    long enough for two (a pool window is a paragraph's first tokens only), in book and paragraph
    order, ``LongTensor[W, seq_len]`` with the tokenizer's BOS convention. The same prose as the
    calibration pool, never its tokens: a held-out measure of the calibration domain."""
    files = book_files(data_dir)
    bos = leading_bos(tokenizer)
    need = text_tokens_per_window(seq_len, bos)
    _, info = _pool_key(files, tokenizer, seq_len, 0, bos)
    _, flat, offsets = _encode_books(files, tokenizer, info["files"], info["tokenizer"])
    keep = ((offsets[1:] - offsets[:-1]) >= 2 * need).nonzero().flatten()
    if len(keep) == 0:
        raise AdaprunerError(f"no book paragraph has {2 * need} tokens or more to hold back; use a shorter --seq-len")
    ids = flat[offsets[keep].unsqueeze(1) + need + torch.arange(need)]
    if bos is not None:
        ids = torch.cat([torch.full((len(ids), 1), bos, dtype=torch.long), ids], dim=1)
    return ids
