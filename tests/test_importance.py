"""Importance estimation on tiny random models: batched statistics, every metric, errors."""

from __future__ import annotations

import pytest
import torch
from tiny import CONFIGS, tiny_batch, tiny_model

from adapruner.config import AGGREGATIONS, MetricConfig
from adapruner.errors import AdaprunerError
from adapruner.importance import (
    ELEMENT_FACTORS,
    METRICS,
    collect_statistics,
    compute_scores,
    needs_calibration,
    scores_from_statistics,
)
from adapruner.importance.aggregation import aggregate
from adapruner.importance.folding import fold
from adapruner.importance.statistics import pruneable_linears
from adapruner.core.adapters import adapter_for

FACTORS = (0.0, 1.0, 1e3, 1e12)  # 1e12 makes the Fisher term dominate: checks F on its own


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def reference_statistics(model, calib):
    """The naive way: N separate backward passes with parameter .grad (LLM-Pruner style)."""
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    grads = []  # per sample: {linear: G_j}
    linears = {(i, path): lin for i, ls in pruneable_linears(model).items() for path, (lin, _) in ls.items()}
    for j in range(calib.shape[0]):
        model.zero_grad()
        ids = calib[j:j + 1]
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        grads.append({k: lin.weight.grad.detach().clone() for k, lin in linears.items()})
    model.zero_grad()
    for p in params:
        p.requires_grad_(False)
    ref = {}
    n = calib.shape[0]
    for i, ls in pruneable_linears(model).items():
        for path, (lin, members) in ls.items():
            w = lin.weight.detach()
            G = torch.stack([g[(i, path)] for g in grads])
            g_mean, fisher = G.mean(0), (G * G).sum(0)
            for m in members:
                ref[(i, m.name)] = {
                    "dot": torch.stack([fold(G[j] * w, m) for j in range(n)]),
                    "el1_sample": torch.stack([fold((G[j] * w).abs(), m) for j in range(n)]),
                    "el1": fold((g_mean * w).abs(), m),
                    "el2": torch.stack([fold((g_mean * w - c / 2 * fisher * w * w).abs(), m) for c in FACTORS]),
                }
    return ref


@pytest.mark.parametrize("family,micro_batch", [("llama", None), ("llama", 2), ("gemma2", None), ("phi3", 3)])
def test_batched_collection_equals_separate_backward_passes(family, micro_batch):
    model = tiny_model(family)
    calib = tiny_batch(n=4, length=16)
    ref = reference_statistics(model, calib)
    stats = collect_statistics(model, calib, micro_batch=micro_batch, element_factors=FACTORS, progress=False)
    assert all(not p.requires_grad for p in model.parameters())  # flags restored (reference left them off)
    assert all(p.grad is None for p in model.parameters())
    checked = 0
    for (i, name), expected in ref.items():
        got = stats.layers[i].members[name]
        for key, value in expected.items():
            assert rel_err(getattr(got, key), value) < 1e-4, (i, name, key)
            checked += 1
    assert checked == 4 * 7 * 4  # 4 layers x 7 members x 4 statistics


def test_collection_leaves_requires_grad_flags_and_weights():
    model = tiny_model("qwen2")
    model.lm_head.weight.requires_grad_(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    collect_statistics(model, tiny_batch(n=2, length=8), progress=False)
    assert model.lm_head.weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_every_metric_gives_finite_scores_of_the_right_shapes(family):
    model = tiny_model(family)
    stats = collect_statistics(model, tiny_batch(n=3, length=12), gram=True, progress=False)
    adapter = adapter_for(model)
    for name in METRICS:
        metric = MetricConfig(name=name, second_order_el=1e2, align_el=1e-2)
        scores = scores_from_statistics(stats, metric)
        assert sorted(scores) == list(range(len(adapter.decoder_layers(model))))
        for i, per_layer in scores.items():
            shape = adapter.layer_shape(model, i)
            assert per_layer["head"].shape == (shape.num_heads,), (family, name)
            assert per_layer["kv"].shape == (shape.num_kv_heads,), (family, name)
            assert per_layer["channel"].shape == (shape.intermediate_size,), (family, name)
            for value in per_layer.values():
                assert torch.isfinite(value).all(), (family, name)


def test_compute_scores_matches_statistics_path_and_needs_no_calibration_for_magnitude():
    model = tiny_model("llama")
    calib = tiny_batch(n=3, length=12)
    metric = MetricConfig(name="adapruner", alpha1=0.3, alpha2=0.7, align_el=1e-2, second_order_el=1e3)
    direct = compute_scores(model, metric, calib, progress=False)
    via_stats = scores_from_statistics(collect_statistics(model, calib, progress=False), metric)
    for i in direct:
        for kind in direct[i]:
            assert torch.allclose(direct[i][kind], via_stats[i][kind], rtol=1e-6)
    for name in ("random", "l1", "l2"):
        assert not needs_calibration(name)
        assert compute_scores(model, MetricConfig(name=name), None, progress=False)
    assert needs_calibration("wanda-sp") and needs_calibration("element2")


def test_magnitude_scores_follow_the_weights():
    model = tiny_model("llama")
    scores = compute_scores(model, MetricConfig(name="l1"), None, progress=False)
    layer = adapter_for(model).decoder_layers(model)[1]
    down = layer.mlp.down_proj.weight.abs().sum(0)
    expected = layer.mlp.gate_proj.weight.abs().sum(1) + layer.mlp.up_proj.weight.abs().sum(1) + down
    assert torch.allclose(scores[1]["channel"].float(), expected, rtol=1e-5)
    with torch.no_grad():
        layer.self_attn.q_proj.weight[:16] *= 10  # head 0 (head_dim 16) gets much larger weights
    scores = compute_scores(model, MetricConfig(name="l2"), None, progress=False)
    assert int(scores[1]["head"].argmax()) == 0
    assert int(scores[1]["kv"].argmax()) == 0  # its KV group (heads 0-2)


def test_random_metric_is_seeded():
    model = tiny_model("llama")
    a = compute_scores(model, MetricConfig(name="random", seed=1), None, progress=False)
    b = compute_scores(model, MetricConfig(name="random", seed=1), None, progress=False)
    c = compute_scores(model, MetricConfig(name="random", seed=2), None, progress=False)
    assert torch.equal(a[0]["channel"], b[0]["channel"])
    assert not torch.equal(a[0]["channel"], c[0]["channel"])


def test_kv_scores_group_their_query_heads():
    model = tiny_model("llama")  # 6 query heads, 2 KV heads: groups of 3
    stats = collect_statistics(model, tiny_batch(n=2, length=12), progress=False)
    scores = scores_from_statistics(stats, MetricConfig(name="element1"))
    layer = stats.layers[2]
    k, v = layer.members["k"].el1, layer.members["v"].el1
    q, o = layer.members["q"].el1.view(2, 3).sum(1), layer.members["o"].el1.view(2, 3).sum(1)
    assert torch.allclose(scores[2]["kv"], (q + k + v + o).double(), rtol=1e-6)
    assert torch.allclose(scores[2]["head"], (layer.members["q"].el1 + layer.members["o"].el1).double(), rtol=1e-6)


def test_aggregation_modes():
    a, b, c = torch.tensor([1.0, 4.0]), torch.tensor([2.0, 0.5]), torch.tensor([3.0, 1.0])
    assert torch.equal(aggregate([a, b, c], "sum"), torch.tensor([6.0, 5.5], dtype=torch.float64))
    assert torch.equal(aggregate([a, b, c], "mean"), torch.tensor([2.0, 5.5 / 3], dtype=torch.float64))
    assert torch.equal(aggregate([a, b, c], "max"), torch.tensor([3.0, 4.0], dtype=torch.float64))
    assert torch.equal(aggregate([a, b, c], "prod"), torch.tensor([6.0, 2.0], dtype=torch.float64))
    assert torch.equal(aggregate([a, b, c], "last"), torch.tensor([3.0, 1.0], dtype=torch.float64))
    with pytest.raises(AdaprunerError, match="aggregation"):
        aggregate([a], "median")


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_every_aggregation_through_the_metrics(mode):
    model = tiny_model("mistral")
    stats = collect_statistics(model, tiny_batch(n=2, length=10), progress=False)
    for name in ("l1", "element2", "saap", "flap"):
        scores = scores_from_statistics(stats, MetricConfig(name=name, aggregation=mode))
        assert all(torch.isfinite(v).all() for s in scores.values() for v in s.values())


def test_adapruner_blend_reduces_to_its_parts():
    model = tiny_model("llama")
    stats = collect_statistics(model, tiny_batch(n=3, length=12), progress=False)
    vec = scores_from_statistics(stats, MetricConfig(name="vector"))
    el2 = scores_from_statistics(stats, MetricConfig(name="element2"))
    only_vec = scores_from_statistics(stats, MetricConfig(name="adapruner", alpha1=1, alpha2=0, second_order_vec=0))
    only_el = scores_from_statistics(stats, MetricConfig(name="adapruner", alpha1=0, alpha2=1, second_order_el=1,
                                                                    align_el=1))
    mixed = scores_from_statistics(stats, MetricConfig(name="adapruner", alpha1=0.5, alpha2=0.5,
                                                      second_order_vec=0, second_order_el=1, align_el=1e-2))
    for i in vec:
        for kind in vec[i]:
            assert torch.allclose(only_vec[i][kind], vec[i][kind])
            assert torch.allclose(only_el[i][kind], el2[i][kind])
            assert torch.allclose(mixed[i][kind], 0.5 * vec[i][kind] + 0.5e-2 * el2[i][kind])


def test_saap_weights_the_more_certain_score_higher():
    from adapruner.importance.saap import saap_parts

    model = tiny_model("llama")
    stats = collect_statistics(model, tiny_batch(n=4, length=12), progress=False)
    metric = MetricConfig(name="saap")
    parts = saap_parts(stats, 1, "channel", metric)
    fused = scores_from_statistics(stats, metric)[1]["channel"]
    (v, sv), (e, se) = parts["vec"], parts["el"]
    assert sv > 0 and se > 0
    assert torch.allclose(fused, v / (2 * sv**2) + e / (2 * se**2) + torch.log(torch.tensor(sv * se, dtype=torch.float64)))
    assert torch.allclose(v.mean(), torch.tensor(1.0, dtype=torch.float64))


def test_flap_is_standardised_and_wanda_uses_activations():
    model = tiny_model("llama")
    calib = tiny_batch(n=3, length=12)
    flap = compute_scores(model, MetricConfig(name="flap"), calib, progress=False)
    allc = torch.cat([s["channel"] for s in flap.values()])
    assert abs(float(allc.mean())) < 1e-6 and abs(float(allc.std()) - 1) < 1e-6
    stats = collect_statistics(model, calib, gradients=False, progress=False)
    assert stats.layers[0].members["down"].dot is None  # no backward pass was run
    down = stats.layers[0].members["down"]
    wanda = scores_from_statistics(stats, MetricConfig(name="wanda-sp"))
    assert torch.allclose(wanda[0]["channel"], down.wanda.double())
    assert stats.layers[0].input_mean["down"].shape == (128,)


# -- bad input ------------------------------------------------------------------------------

def test_unknown_metric_lists_valid_names():
    with pytest.raises(AdaprunerError, match="unknown importance metric 'taylor'.*element2.*flap"):
        compute_scores(tiny_model("llama"), MetricConfig(name="taylor"), tiny_batch(2, 8))


def test_calibration_errors():
    model = tiny_model("llama")
    with pytest.raises(AdaprunerError, match="zero samples"):
        compute_scores(model, MetricConfig(name="element1"), torch.zeros(0, 16, dtype=torch.long))
    with pytest.raises(AdaprunerError, match="12 tokens but 16 were requested"):
        compute_scores(model, MetricConfig(name="element1"), tiny_batch(2, 12), seq_len=16)
    with pytest.raises(AdaprunerError, match="needs calibration samples"):
        compute_scores(model, MetricConfig(name="wanda-sp"), None)
    with pytest.raises(AdaprunerError, match="token ids must lie"):
        compute_scores(model, MetricConfig(name="vector"), torch.full((2, 8), 10_000))
    with pytest.raises(AdaprunerError, match="second-order factor 7 was not collected"):
        stats = collect_statistics(model, tiny_batch(2, 8), element_factors=(0.0, 1.0), progress=False)
        scores_from_statistics(stats, MetricConfig(name="adapruner", second_order_el=7))
    with pytest.raises(AdaprunerError, match="aggregation"):
        compute_scores(model, MetricConfig(name="l1", aggregation="median"), None)
    assert set(ELEMENT_FACTORS) >= {0.0, 1.0}


def test_nan_gradients_are_an_error_not_a_nan_model():
    model = tiny_model("llama")
    layer = adapter_for(model).decoder_layers(model)[2]

    def poison(module, args, out):
        hidden = out[0] if isinstance(out, tuple) else out
        hidden.register_hook(lambda g: g * float("nan"))

    handle = layer.register_forward_hook(poison)
    try:
        with pytest.raises(AdaprunerError, match="NaN/inf gradients"):
            compute_scores(model, MetricConfig(name="element2"), tiny_batch(2, 8), progress=False)
    finally:
        handle.remove()
    assert all(p.grad is None and torch.isfinite(p).all() for p in model.parameters())


def test_nan_weights_are_an_error():
    model = tiny_model("llama")
    with torch.no_grad():
        adapter_for(model).decoder_layers(model)[1].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(AdaprunerError, match="NaN/inf"):
        compute_scores(model, MetricConfig(name="vector"), tiny_batch(2, 8), progress=False)


def test_lean_loss_matches_the_models_own_loss():
    from adapruner.importance.loss import per_sample_nll

    for family in ("llama", "gemma2", "phi3"):  # gemma2: final logit soft-capping
        model = tiny_model(family)
        ids = tiny_batch(3, 10)
        expected = torch.stack([model(input_ids=ids[j:j + 1], labels=ids[j:j + 1]).loss for j in range(3)])
        with torch.no_grad():
            assert torch.allclose(per_sample_nll(model, ids), expected, rtol=1e-5), family
