"""The distillation loss over a large vocabulary, computed in row chunks with its gradient fused in.

``KL(teacher || student)`` over next-token distributions is a handful of elementwise passes over
``batch x positions x vocab`` values (49,152 for SmolLM2, 128k for Llama 3). Written as
``kl_div(log_softmax(s), log_softmax(t))`` autograd keeps float32 copies of both log-softmaxes,
the KL's elementwise product and their gradients: on 2 CPU cores that was a quarter of a
distillation step, more than the teacher's forward pass. The gradient of the summed KL with
respect to the student's logits has a closed form, ``T * (softmax(s / T) - softmax(t / T))``,
so the forward pass can write it once, chunk by chunk while the chunk is hot, in the logits'
own dtype, and the backward pass only scales it (the approach of fused-linear-cross-entropy
kernels such as Liger's, without the custom kernel). The optional next-token loss on the text
(``--lm-weight``) is fused the same way: its gradient, ``softmax(s) - onehot``, is added in the
same chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rows of the vocabulary-wide float32 temporaries held at once: 32 x 49,152 x 4 bytes = 6 MiB
# each, small enough to stay near the cache, large enough that the per-chunk overhead vanishes.
CHUNK_ROWS = 32


class _ChunkedDistillLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor | None, temperature: float,
                lm_weight: float, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
        # student, teacher: (batch, length, vocab); the first ``positions`` of every sequence
        # count. The loss is (T^2 * summed per-position KL + lm_weight * summed NLL of ``targets``)
        # / (batch * positions); the KL's mean alone comes back as a second, non-differentiable
        # output. Each chunk is copied before it is scaled in place, so the caller's logits keep
        # their values.
        rows = student.shape[0] * positions
        want_grad = ctx.needs_input_grad[0]
        ce = bool(lm_weight) and targets is not None
        grad = torch.zeros_like(student) if want_grad else None
        kl_sum = torch.zeros((), dtype=torch.float64, device=student.device)
        nll_sum = torch.zeros((), dtype=torch.float64, device=student.device)
        for b in range(student.shape[0]):
            for i in range(0, positions, CHUNK_ROWS):
                j = min(i + CHUNK_ROWS, positions)
                x = student[b, i:j].to(torch.float32, copy=True)
                # the next-token loss is at temperature 1: at T = 1 it shares the KL's log-softmax
                s1 = F.log_softmax(x, -1) if ce and temperature != 1 else None
                s = F.log_softmax(x.div_(temperature), -1)
                if s1 is None:
                    s1 = s
                t = F.log_softmax(teacher[b, i:j].to(s.device, torch.float32, copy=True).div_(temperature), -1)
                p_t = t.exp()
                kl_sum += t.sub_(s).mul_(p_t).sum(dtype=torch.float64)  # t is spent after this line
                if ce:
                    tgt = targets[b, i:j].to(s.device).unsqueeze(-1)
                    nll_sum -= s1.gather(-1, tgt).sum(dtype=torch.float64)
                if want_grad:
                    # d/dx of T^2 KL = T (softmax(x / T) - p_t); of the NLL = softmax(x) - onehot.
                    # softmax(x) first: at T = 1, s1 is s, which the next line overwrites.
                    p_s = s1.exp().mul_(lm_weight) if ce else None
                    q = s.exp_().sub_(p_t).mul_(temperature)
                    if ce:
                        q.add_(p_s).scatter_add_(-1, tgt, torch.full(tgt.shape, -float(lm_weight), device=q.device))
                    grad[b, i:j] = q.div_(rows)
        ctx.save_for_backward(grad)
        kl = (kl_sum / rows).float()
        ctx.mark_non_differentiable(kl)
        return (temperature**2 * kl_sum / rows + lm_weight * nll_sum / rows).float(), kl

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor, _grad_kl: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None, None, None, None


def _check_shapes(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if teacher_logits.shape != student_logits.shape or student_logits.dim() != 3:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} must be equal (batch, length, vocab) shapes")


def chunked_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
               positions: int | None = None) -> torch.Tensor:
    """``T^2`` times the mean over predicted positions of ``KL(softmax(t / T) || softmax(s / T))``.

    Both arguments are ``(batch, length, vocab)`` logits (the teacher's may also be
    log-probabilities: the log-softmax of a log-softmax is itself); the first ``positions`` of
    each sequence count (all by default; ``length - 1`` for next-token prediction, whose last
    position has no target). Equal in value and gradient to ``T**2 * kl_div(log_softmax(s / T),
    log_softmax(t / T), log_target=True, reduction="batchmean")`` over those rows, without its
    float32 intermediates; the gradient reaches the student only.
    """
    _check_shapes(student_logits, teacher_logits)
    length = student_logits.shape[1]
    positions = length if positions is None else positions
    if not 0 < positions <= length:
        raise ValueError(f"positions must be in 1..{length} (got {positions})")
    return _ChunkedDistillLoss.apply(student_logits, teacher_logits.detach(), None, float(temperature), 0.0,
                                     positions)[0]


def chunked_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, ids: torch.Tensor,
                              temperature: float = 1.0, lm_weight: float = 0.0) -> tuple[torch.Tensor, float]:
    """``T^2 KL + lm_weight * NLL`` over next-token predictions, and the KL alone (at T).

    The KL is :func:`chunked_kl` over the ``length - 1`` predicting positions; the NLL is the
    student's mean cross-entropy on ``ids[:, 1:]`` at temperature 1, computed in the same chunks
    with its gradient fused in, instead of autograd through a float32 log-softmax of the whole
    ``batch x positions x vocab`` (which cost a 6-minute pilot 10-24 % of its steps). Equal in
    value and gradient to ``chunked_kl(...) + lm_weight * cross_entropy(...)``.
    """
    _check_shapes(student_logits, teacher_logits)
    if ids.shape != student_logits.shape[:2]:
        raise ValueError(f"ids {tuple(ids.shape)} must be the logits' (batch, length) "
                         f"{tuple(student_logits.shape[:2])}")
    loss, kl = _ChunkedDistillLoss.apply(student_logits, teacher_logits.detach(), ids[:, 1:], float(temperature),
                                         float(lm_weight), student_logits.shape[1] - 1)
    return loss, float(kl)
