"""KL divergence of the pruned model's next-token distribution from the dense model's.

KL(P_dense || Q_pruned), averaged over every predicted position of a dataset's windows, then
over the datasets. It asks the pruned model to keep the dense model's whole prediction, not
only the probability of the observed next token (what perplexity rewards), which is what
compression searches after the paper (EvoPress, DarwinLM) rank candidates by.

The dense distribution is kept as its ``top_k`` largest probabilities (their log-probabilities
and token ids) and the mass of the rest, computed once per study: the divergence is then
sum_i p_i (log p_i - log q_i) over the kept tokens plus p_rest (log p_rest - log q_rest), with
q_rest the pruned model's mass outside the kept tokens. That is exact when ``top_k`` is the
vocabulary (``top_k=0``) and a lower bound otherwise (the log-sum inequality), tight once the
tail holds little mass; K = 512 holds a 49k vocabulary's distribution in 1 % of its memory.
"""

from __future__ import annotations

import math

import torch

from adapruner.errors import AdaprunerError
from adapruner.objectives.base import Scorer, SearchObjective, register_objective

_TINY = 1e-30


class KLScorer(Scorer):
    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, dataset: str, logits: torch.Tensor, ids: torch.Tensor, reference) -> None:
        value = float(kl_sum(logits[:, :-1], reference))
        self.sums[dataset] = self.sums.get(dataset, 0.0) + (value if math.isfinite(value) else math.inf)
        self.counts[dataset] = self.counts.get(dataset, 0) + logits.shape[0] * (logits.shape[1] - 1)

    def per_dataset(self) -> dict[str, float]:
        return {name: self.sums[name] / max(self.counts[name], 1) for name in self.sums}


def dense_reference(logits: torch.Tensor, top_k: int) -> dict[str, torch.Tensor]:
    """The dense next-token distributions of ``logits [B, T, V]`` at positions 0..T-2: the top-k
    log-probabilities and ids and the log of the remaining mass (all of them for ``top_k`` 0)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    if not top_k or top_k >= logp.shape[-1]:
        return {"logp": logp, "ids": None, "log_rest": None}
    top, idx = logp.topk(top_k, dim=-1)
    rest = (1 - top.exp().sum(-1)).clamp_min(_TINY).log()
    return {"logp": top, "ids": idx.to(torch.int32), "log_rest": rest}


def kl_sum(logits: torch.Tensor, ref: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed KL(dense || pruned) over the positions of ``logits [B, T-1, V]`` (already aligned
    with the reference's positions)."""
    logits = logits.float()
    logp = ref["logp"].to(logits.device)
    if ref["ids"] is None:
        return (logp.exp() * (logp - torch.log_softmax(logits, dim=-1))).sum()
    # Only the kept tokens' log-probabilities: one logsumexp, not a log-softmax of the vocabulary.
    logq_top = logits.gather(-1, ref["ids"].to(logits.device).long()) - logits.logsumexp(-1, keepdim=True)
    q_rest = (1 - logq_top.exp().sum(-1)).clamp_min(_TINY)
    log_rest = ref["log_rest"].to(logits.device)
    return (logp.exp() * (logp - logq_top)).sum() + (log_rest.exp() * (log_rest - q_rest.log())).sum()


@register_objective
class KLDivergence(SearchObjective):
    name = "kl"
    help = "mean KL divergence of the pruned model's next-token distribution from the dense model's"
    options = {"top_k": (512, "dense probabilities kept per position (0: the whole vocabulary)")}

    def resolved(self, options: dict | None) -> dict:
        out = super().resolved(options)
        k = out["top_k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise AdaprunerError(f"the kl objective's top_k must be a whole number >= 0 (0: the whole vocabulary), "
                                 f"got {k!r}")
        return out

    def reference(self, logits: torch.Tensor, ids: torch.Tensor, options: dict):
        return dense_reference(logits, int(options["top_k"]))

    def scorer(self, options: dict) -> Scorer:
        return KLScorer()

    def describe(self, options: dict) -> str:
        k = int(options["top_k"])
        return f"{self.help} ({'full vocabulary' if not k else f'dense top-{k} and the rest of its mass'})"
