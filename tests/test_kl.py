"""The chunked, gradient-fused KL equals autograd through kl_div over two log-softmaxes."""

import pytest
import torch
import torch.nn.functional as F

from adapruner.recovery import kl as kl_module
from adapruner.recovery.kl import chunked_distillation_loss, chunked_kl


def reference(s_logits: torch.Tensor, t_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    s = s_logits[:, :-1].float() / temperature
    t = t_logits[:, :-1].float() / temperature
    return temperature**2 * F.kl_div(F.log_softmax(s, -1).reshape(-1, s.shape[-1]),
                                     F.log_softmax(t, -1).reshape(-1, t.shape[-1]),
                                     log_target=True, reduction="batchmean")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_value_and_gradient_match_kl_div(dtype, temperature, monkeypatch):
    monkeypatch.setattr(kl_module, "CHUNK_ROWS", 7)  # several chunks per sequence, a ragged last one
    torch.manual_seed(0)
    s = (3 * torch.randn(3, 20, 50)).to(dtype).requires_grad_(True)
    t = (3 * torch.randn(3, 20, 50)).to(dtype)
    s_before, t_before = s.detach().clone(), t.clone()
    ours = chunked_kl(s, t, temperature, positions=19)
    ours.backward()
    grad = s.grad.clone()
    s.grad = None
    ref = reference(s, t, temperature)
    ref.backward()
    assert torch.allclose(ours, ref, rtol=1e-5)
    assert torch.allclose(grad.float(), s.grad.float(), atol=1e-6 if dtype == torch.float32 else 1e-4)
    assert torch.equal(grad[:, -1], torch.zeros_like(grad[:, -1]))  # the last position predicts nothing
    assert torch.equal(s.detach(), s_before) and torch.equal(t, t_before)  # the caller's logits are untouched


def test_teacher_log_probs_give_the_same_kl():
    torch.manual_seed(1)
    s, t = torch.randn(2, 5, 30), torch.randn(2, 5, 30)
    assert torch.allclose(chunked_kl(s, t), chunked_kl(s, F.log_softmax(t, -1)), atol=1e-6)


def test_no_gradient_buffer_without_grad():
    s, t = torch.randn(1, 4, 10), torch.randn(1, 4, 10)
    with torch.no_grad():
        assert chunked_kl(s, t).item() > 0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must be equal"):
        chunked_kl(torch.randn(1, 4, 10), torch.randn(1, 4, 11))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature, lm_weight", [(1.0, 0.5), (2.0, 0.5), (1.0, 0.0)])
def test_fused_next_token_loss_matches_autograd(dtype, temperature, lm_weight, monkeypatch):
    """KL + lm_weight * cross-entropy in one chunked pass: the value, the KL it reports and the
    gradient equal autograd through kl_div and cross_entropy."""
    monkeypatch.setattr(kl_module, "CHUNK_ROWS", 7)
    torch.manual_seed(2)
    s = (3 * torch.randn(3, 20, 50)).to(dtype).requires_grad_(True)
    t = (3 * torch.randn(3, 20, 50)).to(dtype)
    ids = torch.randint(0, 50, (3, 20))
    ours, kl = chunked_distillation_loss(s, t, ids, temperature, lm_weight)
    ours.backward()
    grad = s.grad.clone()
    s.grad = None
    ref_kl = reference(s, t, temperature)
    ce = F.cross_entropy(s[:, :-1].float().reshape(-1, 50), ids[:, 1:].reshape(-1))
    ref = ref_kl + lm_weight * ce
    ref.backward()
    assert torch.allclose(ours, ref, rtol=1e-5)
    assert kl == pytest.approx(ref_kl.item() / temperature**2, rel=1e-5)
    # bfloat16: both sides round the same gradient to 8 bits of mantissa, one ulp apart at most
    tol = dict(atol=1e-6, rtol=0) if dtype == torch.float32 else dict(atol=1e-5, rtol=8e-3)
    assert torch.allclose(grad.float(), s.grad.float(), **tol)
    assert torch.equal(grad[:, -1], torch.zeros_like(grad[:, -1]))
