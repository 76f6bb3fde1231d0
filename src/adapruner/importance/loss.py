"""The calibration loss: per-sample mean next-token cross-entropy, lean on memory.

The importance statistics need F_j, the mean next-token negative log-likelihood of sample j,
for every sample (the backward pass then gets sum_j F_j). Calling the model for its logits keeps
[N, T, vocab] tensors alive until the backward pass reaches them (the logits, the saved
log-softmax, their gradient); with SmolLM2's 49k-token vocabulary each is ~0.25 GB for 10 x 128
tokens, a large share of the whole pass. Instead the decoder runs once for the final hidden
states, and the output head plus cross-entropy run per sample under activation checkpointing:
the backward pass recomputes one sample's logits at a time, so only one sample's [T, vocab]
tensors ever exist. The head is the model's own output embedding, with Gemma-2/3's final logit
soft-capping when the config sets it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from adapruner.core.lm import lm_logits, shifted_nll


def _head(model: nn.Module):
    def sample_nll(hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return shifted_nll(lm_logits(model, hidden[:-1]), ids[1:], reduction="mean")

    return sample_nll


def per_sample_nll(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each sample of ``ids`` [N, T] under ``model``, shape [N].

    Differentiable; see the module docstring for why the head runs per sample with checkpointing.
    """
    hidden = model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
    return per_sample_nll_of_hidden(model, hidden, ids)


def per_sample_nll_of_hidden(model: nn.Module, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """:func:`per_sample_nll` from the decoder's final (normed) hidden states ``[N, T, H]``: the head
    and the loss, per sample under checkpointing when gradients flow (the streamed path's loss)."""
    sample_nll = _head(model)
    if not torch.is_grad_enabled() or not hidden.requires_grad:
        return torch.stack([sample_nll(hidden[j], ids[j]) for j in range(ids.shape[0])])
    return torch.stack([checkpoint(sample_nll, hidden[j], ids[j], use_reentrant=False)
                        for j in range(ids.shape[0])])
