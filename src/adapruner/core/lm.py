"""The language-model head and the next-token loss, written once for every caller.

Importance (per-sample calibration loss), the search objective (cached forward from the first
pruned layer), perplexity and recovery training all need "logits from final hidden states" and
"summed next-token NLL"; family differences (Gemma's final logit soft-capping) live here and in
the adapter, nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from adapruner.core.adapters import text_config


def logit_softcap(model: nn.Module) -> float | None:
    """Gemma-2/3's ``final_logit_softcapping`` (None for families without it)."""
    return getattr(text_config(model), "final_logit_softcapping", None) or None


def lm_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Float32 logits of final-norm'ed ``hidden`` states: the output embedding plus soft-capping."""
    logits = model.get_output_embeddings()(hidden).float()
    cap = logit_softcap(model)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def shifted_nll(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Cross-entropy of ``logits [..., V]`` against already aligned ``targets [...]`` in float32;
    targets of -100 are ignored (padding, prompt tokens)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1).to(logits.device),
                           reduction=reduction, ignore_index=-100)


def next_token_nll(logits: torch.Tensor, ids: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """NLL of ``ids[..., 1:]`` under ``logits[..., :-1, :]`` (position t predicts token t+1)."""
    return shifted_nll(logits[..., :-1, :], ids[..., 1:], reduction)


@dataclass
class TokenNLL:
    """Summed next-token NLL and the number of predicted tokens over any number of batches: the one
    accumulation behind evaluation perplexity, the search objective, training validation and
    distillation's validation (each brings its own logits)."""

    total: float = 0.0
    tokens: int = 0

    def add(self, logits: torch.Tensor, ids: torch.Tensor) -> None:
        """Add one batch: ``logits [B, T, V]`` predicting ``ids [B, T]`` (labels of -100 are not
        counted). A loss that is not finite (a ruined model) makes the total infinite."""
        value = float(next_token_nll(logits, ids))
        self.total += value if math.isfinite(value) else math.inf
        self.tokens += int((ids[..., 1:] != -100).sum())

    @property
    def mean(self) -> float:
        """Mean NLL per predicted token."""
        return self.total / max(self.tokens, 1)

    def ppl(self, cap: float | None = None) -> float:
        """exp of the mean NLL: infinite past float range, or ``exp(cap)`` when a ``cap`` is given
        (the search needs a finite score for a ruined model)."""
        if cap is not None:
            return math.exp(min(self.mean, cap))
        return math.exp(self.mean) if self.mean < 709.0 else math.inf
