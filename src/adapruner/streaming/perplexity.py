"""Perplexity of a model that does not fit in memory: the evaluation forward, one layer at a time.

The windows go through the decoder in chunks (each chunk's hidden states bounded to about
``CHUNK_BYTES``); inside a chunk every decoder layer is read once and runs all its batches, then
the final norm and the head score them. The batches are the in-memory path's, so the summed NLL
is the same.
"""

from __future__ import annotations

import torch

from adapruner.core.lm import TokenNLL, lm_logits
from adapruner.streaming.layers import run_layer
from adapruner.streaming.model import StreamedModel
from adapruner.streaming.statistics import record_calls

CHUNK_BYTES = 2**30  # hidden states of one chunk of windows


@torch.inference_mode()
def streamed_nll(sm: StreamedModel, windows: torch.Tensor, batch_size: int, progress=None) -> TokenNLL:
    """The next-token NLL of ``windows [W, T]``; ``progress(windows done, nll so far)`` after each chunk."""
    per_window = windows.shape[1] * sm.model.config.get_text_config().hidden_size * 4
    chunk = max(batch_size, (CHUNK_BYTES // per_window) // batch_size * batch_size)
    nll = TokenNLL()
    for part in windows.split(chunk):
        batches = record_calls(sm, part, batch_size)
        hidden = [b.hidden for b in batches]
        for i in range(sm.num_layers):
            with sm.layer(i) as (layer,):
                hidden = [run_layer(layer, h, b.calls[i]) for h, b in zip(hidden, batches)]
        with sm.materialised(*sm.head_paths()) as (norm, _):
            for h, ids in zip(hidden, part.split(batch_size)):
                ids = ids.to(sm.device)
                nll.add(lm_logits(sm.model, norm(h)), ids)
        if progress is not None:
            progress(len(part), nll)
    return nll
