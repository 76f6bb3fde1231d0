"""Cutting token streams into fixed-length windows, following the tokenizer's BOS convention.

Some tokenizers (Llama, Gemma) prepend BOS to every encoded text, and their models expect it:
without BOS, Gemma's perplexity is meaningless (176 instead of 23). Others (SmolLM2, GPT-2,
Qwen) add nothing. We ask the tokenizer itself: if ``tokenizer("x").input_ids`` starts with its
BOS id, every window we build is ``[BOS] + (seq_len - 1)`` text tokens; otherwise it is
``seq_len`` text tokens. Text is always encoded without special tokens, once, and then cut.
"""

from __future__ import annotations

import torch

from adapruner.errors import AdaprunerError


def leading_bos(tokenizer) -> int | None:
    """The BOS id the tokenizer prepends to every text, or None when it prepends nothing."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    ids = tokenizer("x").input_ids
    return int(bos) if len(ids) > 0 and ids[0] == bos else None


def encode(tokenizer, text: str) -> list[int]:
    """``text`` as token ids without special tokens (and without the too-long-text warning)."""
    return list(tokenizer(text, add_special_tokens=False, verbose=False).input_ids)


def text_tokens_per_window(seq_len: int, bos: int | None) -> int:
    """How many text tokens one window of ``seq_len`` holds (one fewer when BOS leads)."""
    if seq_len < 2:
        raise AdaprunerError(f"--seq-len must be at least 2 (got {seq_len}): a window needs a token to predict")
    return seq_len - 1 if bos is not None else seq_len


def cut_windows(ids: list[int] | torch.Tensor, seq_len: int, bos: int | None = None) -> torch.Tensor:
    """Non-overlapping windows ``[W, seq_len]`` of ``ids``; the incomplete tail is dropped.

    With ``bos`` each window is ``[bos] + seq_len - 1`` consecutive ids, else ``seq_len`` ids.
    """
    step = text_tokens_per_window(seq_len, bos)
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = ids.numel() // step
    body = ids[: n * step].view(n, step)
    if bos is None:
        return body.clone()
    return torch.cat([torch.full((n, 1), bos, dtype=torch.long), body], dim=1)
