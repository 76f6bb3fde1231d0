"""The calibration loss: per-sample mean next-token cross-entropy, lean on memory.

The importance statistics need F_j, the mean next-token negative log-likelihood of sample j,
for every sample (the backward pass then gets sum_j F_j). The plain way (slice the logits, call
``cross_entropy``) keeps three [N, T, vocab] tensors alive at the start of the backward pass
(the logits, the saved log-softmax and its gradient); with SmolLM2's 49k-token vocabulary that is
~0.75 GB for 10 x 128 tokens, more than the whole model. :class:`SampleNLL` saves only the
logits and a log-sum-exp per token, and its backward writes the softmax gradient into the logits'
own buffer, so one [N, T, vocab] tensor exists in all.

Reusing the buffer is safe because nothing else in the graph saves the final logits (the output
projection's weight is frozen, so its backward needs only the weight; a soft-capping ``tanh``
saves its own output, not the capped logits); the caller must not use the logits afterwards.
"""

from __future__ import annotations

import torch


class SampleNLL(torch.autograd.Function):
    """``SampleNLL.apply(logits [N, T, V], ids [N, T]) -> [N]``: mean NLL of ids[:, 1:] per sample."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        n, t, _ = logits.shape
        lse = torch.empty(n, t - 1, dtype=torch.float32, device=logits.device)
        target = torch.empty_like(lse)
        for j in range(n):  # one sample at a time bounds the float32 temporaries
            row = logits[j, :-1].float()
            lse[j] = torch.logsumexp(row, dim=-1)
            target[j] = row.gather(-1, ids[j, 1:, None]).squeeze(-1)
        ctx.save_for_backward(logits, ids, lse)
        return (lse - target).mean(dim=1)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, ids, lse = ctx.saved_tensors
        t = logits.shape[1]
        grad = logits  # overwritten in place: d F_j / d logits = (softmax - onehot) / (T - 1)
        for j in range(logits.shape[0]):
            g = (logits[j, :-1].float() - lse[j, :, None]).exp_()
            g.scatter_add_(-1, ids[j, 1:, None], torch.full_like(g[:, :1], -1.0))
            g.mul_(grad_out[j].float() / (t - 1))
            grad[j, :-1].copy_(g)
            grad[j, -1].zero_()
        return grad, None


def per_sample_nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each sample, [N]; differentiable through :class:`SampleNLL`."""
    return SampleNLL.apply(logits, ids)
