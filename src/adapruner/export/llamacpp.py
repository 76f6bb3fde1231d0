"""Running an exported GGUF in llama.cpp (through llama-cpp-python): NLL, greedy decoding, speed.

Used by the export tests (does llama.cpp compute what transformers computes, on the same token
ids?) and by ``benchmarks/deployment/llamacpp_speed.py``. Token ids go in directly, so tokenization is not
part of any comparison. ``llama-cpp-python`` is an optional dependency (``pip install
adapruner[llamacpp]``; it builds llama.cpp from source).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapruner.errors import AdaprunerError


@contextlib.contextmanager
def open_gguf(path: str | Path, n_ctx: int = 512, threads: int | None = None, all_logits: bool = True,
              f32_cache: bool = False) -> Iterator:
    """A ``llama_cpp.Llama`` over ``path``, closed on exit; ``all_logits`` keeps the logits of every
    position (for NLL), off for speed measurements (llama.cpp then computes the output layer for
    the last position only). ``f32_cache`` keeps the KV cache in f32 instead of llama.cpp's default
    f16 (for exact comparisons with transformers; the default is what users run)."""
    try:
        import llama_cpp
    except ImportError:
        raise AdaprunerError("running a GGUF needs llama-cpp-python: pip install 'adapruner[llamacpp]'") from None
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", 0) or os.cpu_count() or 1)
    try:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_threads=threads,
                              n_threads_batch=threads, logits_all=all_logits, verbose=False,
                              **({"type_k": 0, "type_v": 0} if f32_cache else {}))  # 0 = GGML_TYPE_F32
    except ValueError as exc:
        raise AdaprunerError(f"llama.cpp cannot load {path} ({exc})") from None
    try:
        yield llm
    finally:
        llm.close()  # explicitly: llama-cpp-python's __del__ fails at interpreter exit


def logits(llm, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits ``[len(ids), vocab]`` for the token ids (from a fresh context)."""
    llm.reset()
    llm.eval(ids)
    return np.asarray(llm.scores[: len(ids)], dtype=np.float64)


def mean_nll(llm, windows: list[list[int]]) -> float:
    """Mean next-token NLL (nats) over all predicted positions of ``windows``."""
    total, count = 0.0, 0
    for ids in windows:
        z = logits(llm, ids)[:-1]
        z = z - z.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        total -= float(logp[np.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    return total / count


def greedy(llm, ids: list[int], n_new: int) -> list[int]:
    """The ``n_new`` greedy continuation tokens of ``ids`` (argmax of llama.cpp's logits)."""
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n_new):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out


@dataclass(frozen=True)
class Speed:
    """llama.cpp throughput: prefill (prompt tokens/s) and decode (generated tokens/s), medians."""

    prefill_tokens_per_s: float
    decode_tokens_per_s: float


def measure_speed(llm, prompt: list[int], n_decode: int, repeats: int = 3) -> Speed:
    """Median prefill and decode throughput over ``repeats`` runs of ``prompt`` + ``n_decode`` tokens."""
    prefill, decode = [], []
    for _ in range(repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        prefill.append(len(prompt) / (time.perf_counter() - start))
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        start = time.perf_counter()
        for _ in range(n_decode):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        decode.append(n_decode / (time.perf_counter() - start))
    return Speed(float(np.median(prefill)), float(np.median(decode)))
