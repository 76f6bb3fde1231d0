"""Pruning engine on tiny random models: allocation, masks == surgery, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as T

from adapruner.config import AllocationConfig, MetricConfig
from adapruner.errors import AdaprunerError
from adapruner.importance import compute_scores
from adapruner.core.adapters import adapter_for
from adapruner.allocation import (allocate, count_parameters, default_layer_range, max_reachable_ratio,
                                          removed_parameters)
from adapruner.pruning.masks import apply_masks
from adapruner.core.structure import LayerPlan, LinearUpdate, PruningPlan
from adapruner.pruning.surgery import prune_model, swap_pruned
from tiny import CONFIGS, tiny_batch, tiny_model

ALL_LAYERS = [0, 4]


def random_scores(model, seed: int = 0):
    return compute_scores(model, MetricConfig(name="random", seed=seed), None, progress=False)


def logits(model, x):
    with torch.no_grad():
        return model(x).logits


@pytest.mark.parametrize("attention", ["heads", "kv"])
@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_masks_equal_surgery_and_ratio_is_met(family, attention):
    x = tiny_batch()
    for ratio in (0.2, 0.5):
        model = tiny_model(family)
        before = count_parameters(model)
        dense = logits(model, x)
        plan = allocate(model, random_scores(model), ratio, AllocationConfig(layers=ALL_LAYERS, attention=attention))
        with apply_masks(model, plan):
            masked = logits(model, x)
        assert torch.equal(logits(model, x), dense), "removing the masks must restore the dense model"
        pruned = prune_model(copy.deepcopy(model), plan)
        surgery = logits(pruned, x)
        assert (masked - surgery).abs().max().item() < 1e-4
        assert (dense - surgery).abs().max().item() > 1e-3, "pruning must change the function"
        after = count_parameters(pruned)
        assert abs((before - after) / before - ratio) < 0.01
        assert before - after == removed_parameters(model, plan)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_swapped_pruned_modules_compute_what_masks_compute_and_leave_the_model_as_it_was(family):
    """A search trial's forward runs on swapped-in pruned modules: the same function as masks (with
    replacement weights and added biases, also on a layer the plan keeps whole), and removing the
    handle restores the model's own modules and weights bit for bit."""
    model, x = tiny_model(family), tiny_batch()
    adapter, layers = adapter_for(model), adapter_for(model).decoder_layers(model)
    plan = allocate(model, random_scores(model), 0.3, AllocationConfig(layers=[0, 3]))
    g = torch.Generator().manual_seed(1)
    for idx in (0, 2, 3):  # layer 3 keeps its width and only gets updates
        for m in adapter.members(adapter.layer_shape(model, idx)):
            if m.axis == 1:
                w = layers[idx].get_submodule(m.path).weight
                plan.updates.setdefault(idx, {})[m.path] = LinearUpdate(
                    weight=w + 0.02 * torch.randn(w.shape, generator=g), bias=0.1 * torch.randn(w.shape[0], generator=g))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dense = logits(model, x)
    with apply_masks(model, plan):
        masked = logits(model, x)
    with swap_pruned(model, plan):
        swapped = logits(model, x)
    assert (swapped - masked).abs().max().item() < 1e-4
    assert (swapped - dense).abs().max().item() > 1e-3
    assert torch.equal(logits(model, x), dense)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("family", ["llama", "phi3", "gemma3"])
def test_global_mode_masks_equal_surgery(family):
    model, x = tiny_model(family), tiny_batch()
    before = count_parameters(model)
    plan = allocate(model, random_scores(model), 0.3, AllocationConfig(mode="global", layers=ALL_LAYERS))
    with apply_masks(model, plan):
        masked = logits(model, x)
    pruned = prune_model(copy.deepcopy(model), plan)
    assert (masked - logits(pruned, x)).abs().max().item() < 1e-4
    assert abs((before - count_parameters(pruned)) / before - 0.3) < 0.01


def test_heads_mode_keeps_equal_heads_per_group_and_all_groups():
    model = tiny_model("llama")
    plan = allocate(model, random_scores(model), 0.4, AllocationConfig(layers=ALL_LAYERS, attention="heads"))
    shape = adapter_for(model).layer_shape(model, 0)
    for p in plan.layers.values():
        assert p.kept_kv == list(range(shape.num_kv_heads))
        per_group = [sum(1 for h in p.kept_heads if h // shape.group_size == k) for k in p.kept_kv]
        assert len(set(per_group)) == 1 and per_group[0] < shape.group_size
        assert len(p.kept_channels) % 8 == 0


def test_kv_mode_removes_whole_groups():
    model = tiny_model("qwen2")
    plan = allocate(model, random_scores(model), 0.4, AllocationConfig(layers=ALL_LAYERS, attention="kv"))
    g = adapter_for(model).layer_shape(model, 0).group_size
    for p in plan.layers.values():
        assert len(p.kept_kv) == 1
        assert p.kept_heads == [k * g + h for k in p.kept_kv for h in range(g)]


def test_uniform_prunes_every_layer_of_the_range_alike_and_nothing_else():
    model = tiny_model("mistral")
    plan = allocate(model, random_scores(model), 0.1, AllocationConfig(layers=[1, 3]))
    assert sorted(plan.layers) == [1, 2]
    heads = {len(p.kept_heads) for p in plan.layers.values()}
    channels = [len(p.kept_channels) for p in plan.layers.values()]
    assert len(heads) == 1 and max(channels) - min(channels) <= 8


def test_scores_decide_what_is_kept():
    model = tiny_model("llama")
    scores = random_scores(model)
    for i in scores:
        scores[i]["channel"] = torch.arange(128, dtype=torch.float64)  # higher index = more important
    plan = allocate(model, scores, 0.2, AllocationConfig(layers=ALL_LAYERS, attention="none"))
    for p in plan.layers.values():
        assert p.kept_channels == list(range(128 - len(p.kept_channels), 128))
        assert len(p.kept_heads) == 6


def test_attention_none_and_mha_heads():
    model = tiny_model("llama")
    plan = allocate(model, random_scores(model), 0.2, AllocationConfig(layers=ALL_LAYERS, attention="none"))
    assert all(len(p.kept_heads) == 6 and len(p.kept_kv) == 2 for p in plan.layers.values())
    # Multi-head attention (one head per KV group): a head step removes a whole group.
    cfg = T.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=4, vocab_size=128)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    mha = T.AutoModelForCausalLM.from_config(cfg).eval()
    plan = allocate(mha, random_scores(mha), 0.3, AllocationConfig(layers=[0, 2], attention="heads"))
    x = tiny_batch(2, 16, 128)
    with apply_masks(mha, plan):
        masked = logits(mha, x)
    assert any(len(p.kept_heads) < 4 for p in plan.layers.values())
    assert (masked - logits(prune_model(mha, plan), x)).abs().max().item() < 1e-4


def test_default_layer_range_follows_the_paper():
    assert default_layer_range(32) == (4, 30)
    assert default_layer_range(30) == (4, 28)
    assert default_layer_range(4) == (0, 4)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.0, 1.5])
def test_ratio_outside_zero_one_is_rejected(ratio):
    model = tiny_model("llama")
    with pytest.raises(AdaprunerError, match="strictly between 0 and 1"):
        allocate(model, random_scores(model), ratio, AllocationConfig(layers=ALL_LAYERS))


def test_unreachable_ratio_states_the_maximum():
    model = tiny_model("llama")
    cfg = AllocationConfig(layers=[1, 2], attention="kv")
    best = max_reachable_ratio(model, cfg)
    with pytest.raises(AdaprunerError, match=f"at most {best:.4f}"):
        allocate(model, random_scores(model), 0.5, cfg)
    plan = allocate(model, random_scores(model), best, cfg)  # the maximum itself is reachable
    p = plan.layers[1]
    assert len(p.kept_kv) == 1 and len(p.kept_channels) == 8


@pytest.mark.parametrize("layers", [[0, 9], [3, 3], [-1, 2], [2, 1]])
def test_bad_layer_range_is_rejected(layers):
    model = tiny_model("llama")
    with pytest.raises(AdaprunerError, match="layer range"):
        allocate(model, random_scores(model), 0.2, AllocationConfig(layers=layers))


def test_bad_modes_are_rejected():
    model = tiny_model("llama")
    with pytest.raises(AdaprunerError, match="allocation mode"):
        allocate(model, random_scores(model), 0.2, AllocationConfig(mode="fancy"))
    with pytest.raises(AdaprunerError, match="attention mode"):
        allocate(model, random_scores(model), 0.2, AllocationConfig(attention="rows"))


def test_unsupported_architecture_lists_the_supported_ones():
    gpt2 = T.AutoModelForCausalLM.from_config(T.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(AdaprunerError, match="unsupported architecture 'gpt2'.*llama"):
        allocate(gpt2, {}, 0.2, AllocationConfig())


def test_invalid_plan_is_refused_by_masks_and_surgery():
    model = tiny_model("llama")
    # Groups keeping different numbers of heads are not a valid GQA layer.
    bad = PruningPlan({0: LayerPlan(kept_heads=[0, 1, 3], kept_kv=[0, 1], kept_channels=list(range(128)))})
    with pytest.raises(ValueError):
        apply_masks(model, bad)
    with pytest.raises(ValueError):
        prune_model(model, bad)


def test_multimodal_gemma3_text_layers_prune_exactly_but_refuse_to_save(tmp_path):
    from adapruner.pruning.save import save_pruned

    text = dict(hidden_size=96, intermediate_size=128, num_hidden_layers=2, num_attention_heads=6,
                num_key_value_heads=2, vocab_size=300, head_dim=24)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=28, patch_size=14)
    cfg = T.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=299,
                         boi_token_index=297, eoi_token_index=298)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = T.AutoModelForCausalLM.from_config(cfg).eval()
    plan = allocate(model, random_scores(model), 0.2, AllocationConfig(layers=[0, 2]))
    x = tiny_batch(2, 16, 290)
    with apply_masks(model, plan):
        masked = logits(model, x)
    pruned = prune_model(copy.deepcopy(model), plan)
    assert (masked - logits(pruned, x)).abs().max().item() < 1e-4
    with pytest.raises(AdaprunerError, match="multimodal"):
        save_pruned(pruned, None, tmp_path / "out", {})
    assert not (tmp_path / "out").exists()
