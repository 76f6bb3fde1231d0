"""Perplexity with the LLM-Pruner protocol.

The rows of a corpus are joined (``"\\n\\n"``, see :mod:`adapruner.data.corpora`), the text is
tokenized once without special tokens and cut into non-overlapping windows of ``seq_len`` tokens
(the incomplete tail is dropped). If the tokenizer prepends BOS to a text, every window is
``[BOS] + seq_len - 1`` text tokens instead, so that models that expect BOS (Llama, Gemma) see it
in every window; LLM-Pruner has BOS only in its first window. Every window is scored on all of
its ``seq_len - 1`` next-token predictions, and

    PPL = exp( sum of token NLLs over all windows / number of predicted tokens ).

Windows are scored in batches under ``torch.inference_mode`` with the log-softmax in float32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from adapruner.core.adapters import text_config
from adapruner.core.lm import TokenNLL
from adapruner.core.versions import versions
from adapruner.data.tokens import cut_windows, encode, leading_bos, text_tokens_per_window
from adapruner.errors import AdaprunerError


@dataclass
class PerplexityResult:
    """``ppl = exp(mean_nll)`` over ``n_tokens`` predicted tokens in ``n_windows`` windows."""

    ppl: float
    mean_nll: float
    n_windows: int
    n_tokens: int

    def to_json(self) -> dict:
        """A JSON-serialisable dict."""
        return asdict(self)


def max_context(model) -> int | None:
    """The longest sequence the model's position embeddings cover (None if it does not say)."""
    value = getattr(text_config(model), "max_position_embeddings", None)
    return int(value) if value else None


def check_seq_len(model, seq_len: int) -> None:
    """A one-line error unless ``2 <= seq_len <= max_position_embeddings``."""
    if seq_len < 2:
        raise AdaprunerError(f"--seq-len must be at least 2 (got {seq_len}): a window needs a token to predict")
    limit = max_context(model)
    if limit is not None and seq_len > limit:
        raise AdaprunerError(f"--seq-len {seq_len} exceeds the model's context of {limit} tokens; use --seq-len <= {limit}")


def corpus_windows(tokenizer, rows: list[str], seq_len: int, join: str = "\n\n",
                   max_windows: int | None = None) -> torch.Tensor:
    """The evaluation windows ``LongTensor[W, seq_len]`` of ``rows`` (see the module docstring).

    ``max_windows`` keeps the first windows only (and tokenizes only as much text as they need),
    for quick runs.
    """
    if not join.join(rows).strip():
        raise AdaprunerError("the evaluation text is empty; check the data file")
    if max_windows is not None and max_windows < 1:
        raise AdaprunerError(f"--max-windows must be at least 1 (got {max_windows})")
    bos = leading_bos(tokenizer)
    step = text_tokens_per_window(seq_len, bos)
    if max_windows is None:
        ids = encode(tokenizer, join.join(rows))
    else:
        ids = _prefix_ids(tokenizer, rows, join, max_windows * step + _SLACK)
    windows = cut_windows(ids, seq_len, bos)
    if len(windows) == 0:
        raise AdaprunerError(f"the evaluation text has only {len(ids)} tokens, fewer than one window of "
                             f"{seq_len}; use a smaller --seq-len")
    return windows if max_windows is None else windows[:max_windows]


# Tokens beyond the last needed window when only a prefix is tokenized: tokenization is local,
# so only the last few tokens of a prefix can differ from the full text's tokens.
_SLACK = 64


def _prefix_ids(tokenizer, rows: list[str], join: str, need: int) -> list[int]:
    """Token ids of the shortest row prefix with at least ``need`` tokens (all rows if fewer).

    Quick runs (``max_windows``) thus tokenize a small part of a corpus; their windows equal the
    first windows of the full tokenization.
    """
    chars = need * 8
    while True:
        total, k = 0, 0
        while k < len(rows) and total < chars:
            total += len(rows[k]) + len(join)
            k += 1
        ids = encode(tokenizer, join.join(rows[:k]))
        if len(ids) >= need or k == len(rows):
            return ids
        chars *= 2


def input_device(model) -> torch.device:
    """Where input ids must go: the device of the input embeddings (also under a device_map)."""
    return model.get_input_embeddings().weight.device


def perplexity(model, windows: torch.Tensor, batch_size: int = 8, progress: bool = True) -> PerplexityResult:
    """Perplexity of ``model`` on ``windows [W, seq_len]``: exp of the mean next-token NLL.

    Every window is scored independently on all ``seq_len - 1`` of its predictions; the mean is
    over all predicted tokens of all windows. ``batch_size`` windows go through the model at once.
    """
    if windows.dim() != 2 or windows.shape[0] == 0:
        raise AdaprunerError("perplexity needs a non-empty [windows, seq_len] tensor of token ids")
    check_seq_len(model, windows.shape[1])
    if batch_size < 1:
        raise AdaprunerError(f"--batch-size must be at least 1 (got {batch_size})")
    if getattr(model, "streamed", False):
        return _streamed(model, windows, batch_size, progress)
    device = input_device(model)
    nll = TokenNLL()
    bar = tqdm(range(0, len(windows), batch_size), desc="perplexity", unit="batch", disable=not progress,
               leave=False)
    with torch.inference_mode():
        for start in bar:
            batch = windows[start:start + batch_size].to(device)
            nll.add(model(input_ids=batch, use_cache=False).logits, batch)
            # The running value is the PPL of the windows so far (= a --max-windows run of that size).
            bar.set_postfix(ppl=f"{nll.ppl():.3f}", windows=start + len(batch), refresh=False)
    return _result(nll, len(windows))


def _result(nll: TokenNLL, n_windows: int) -> PerplexityResult:
    return PerplexityResult(ppl=nll.ppl(), mean_nll=nll.mean, n_windows=n_windows, n_tokens=nll.tokens)


def _streamed(model, windows: torch.Tensor, batch_size: int, progress: bool) -> PerplexityResult:
    """:func:`perplexity` of a :class:`~adapruner.streaming.model.StreamedModel`, one layer at a time."""
    from adapruner.streaming.perplexity import streamed_nll

    with tqdm(total=len(windows), desc="perplexity (streamed)", unit="window", disable=not progress,
              leave=False) as bar:
        def step(n, nll):
            bar.update(n)
            bar.set_postfix(ppl=f"{nll.ppl():.3f}", refresh=False)

        return _result(streamed_nll(model, windows, batch_size, step), len(windows))


def default_batch_size(seq_len: int) -> int:
    """Windows per batch when none is given: 8 at 128 tokens, fewer for longer windows."""
    return max(1, 1024 // seq_len)


def evaluate_corpus(model, tokenizer, name: str, data_dir: str | Path, split: str = "test",
                    seq_len: int = 128, max_windows: int | None = None, batch_size: int | None = None,
                    progress: bool = True, field: str = "text") -> dict:
    """Perplexity of ``model`` on corpus ``name``/``split`` (or on a user ``.txt``/``.jsonl``/``.json``
    file named by ``name``, reading ``field`` of its records) with the full protocol recorded.

    Returns ``{"ppl", "mean_nll", "n_windows", "n_tokens", "protocol": {...}}`` where the protocol
    names the dataset, split, seq_len, join string, BOS handling, window cap, batch size, dtype
    and software versions.
    """
    from adapruner.data import user_text
    from adapruner.data.corpora import JOIN, load_corpus

    check_seq_len(model, seq_len)
    if user_text.is_text_file(name):
        rows, join, source = user_text.read_rows(name, field), user_text.JOIN, user_text.protocol(name, field)
        split = None
    else:
        rows, join, source = load_corpus(name, split, data_dir), JOIN[name], None
    windows = corpus_windows(tokenizer, rows, seq_len, join=join, max_windows=max_windows)
    batch_size = batch_size or default_batch_size(seq_len)
    result = perplexity(model, windows, batch_size=batch_size, progress=progress)
    bos = leading_bos(tokenizer)
    protocol = {
        "dataset": name, "split": split, "rows": len(rows), "seq_len": seq_len, "join": join, "file": source,
        "windows": "non-overlapping, tail dropped, text tokenized once without special tokens",
        "bos_handling": f"[BOS={bos}] + seq_len-1 text tokens per window" if bos is not None
        else "seq_len text tokens per window (tokenizer adds no BOS)",
        "max_windows": max_windows, "batch_size": batch_size,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "versions": versions(),
    }
    return {**result.to_json(), "protocol": protocol}
