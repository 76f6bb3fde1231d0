"""The quality stages: least-squares reconstruction, structured OBS, non-uniform allocation, and
the one search space over all of them (``--space full``)."""

from __future__ import annotations

import math
from dataclasses import replace

import optuna
import pytest
import torch
import transformers as T

import adapruner  # noqa: F401  (registers the pruned model types)
from adapruner.allocation import layer_budgets, removed_parameters, resolve_layer_range
from adapruner.config import AllocationConfig, MetricConfig, PruneConfig, UpdateConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.params import count_parameters
from adapruner.errors import AdaprunerError
from adapruner.planning import plan_pruning
from adapruner.pruning.masks import apply_masks
from adapruner.pruning.save import save_pruned
from adapruner.pruning.surgery import prune_model
from adapruner.search.space import SearchSpace
from tiny import CONFIGS, tiny_batch, tiny_model

SAVABLE = list(CONFIGS)


def logits(model, x):
    with torch.no_grad():
        return model(x).logits


def layer_output_error(model, plan, x, layer, projections=("o", "down")):
    """Squared error of decoder ``layer``'s o_proj / down_proj outputs, pruned (masked) vs dense."""
    adapter = adapter_for(model)
    mod = adapter.decoder_layers(model)[layer]
    paths = [f"{adapter.attn}.{adapter.o}" if p == "o" else f"{adapter.mlp}.{adapter.down}" for p in projections]
    outs = {}

    def grab(tag):
        return [mod.get_submodule(p).register_forward_hook(lambda m, a, o, p=p: outs.setdefault((tag, p), o))
                for p in paths]

    hooks = grab("dense")
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    with torch.no_grad(), apply_masks(model, plan):
        hooks = grab("pruned")  # after the masks' update hooks, so it sees the updated output
        model(x)
    for h in hooks:
        h.remove()
    return sum(float(((outs[("pruned", p)] - outs[("dense", p)]) ** 2).sum()) for p in paths)


@pytest.mark.parametrize("family", SAVABLE)
def test_reconstruction_lowers_the_layer_output_error(family):
    torch.manual_seed(0)
    model, calib = tiny_model(family), tiny_batch(16, 32, seed=1)
    base = PruneConfig(metric=MetricConfig(name="l2"), allocation=AllocationConfig(layers=[1, 3]))
    plain = plan_pruning(model, None, base, 0.25).plan
    for mode in ("oneshot", "sequential"):
        config = PruneConfig(metric=base.metric, allocation=base.allocation,
                             update=UpdateConfig(name="reconstruct", options={"mode": mode}))
        refit = plan_pruning(model, None, config, 0.25, update_calib=calib).plan
        assert refit.layers == plain.layers  # the update changes weights, never the decision
        # Layer 1 is the first pruned layer, so o_proj's inputs are the dense ones in both modes
        # and the least-squares fit must beat the plain pruning on them; sequentially, down_proj
        # is fitted on its actual (pruned) inputs too.
        projections = ("o", "down") if mode == "sequential" else ("o",)
        assert layer_output_error(model, refit, calib, 1, projections) < \
            0.99 * layer_output_error(model, plain, calib, 1, projections)


def test_dense_grams_equal_those_of_a_whole_forward():
    """The one-shot Gram pass ends after the last layer it needs; its matrices are those of the
    model's whole forward, bit for bit."""
    from adapruner.importance.statistics import Gram
    from adapruner.updates.reconstruct import dense_grams

    torch.manual_seed(0)
    model, calib = tiny_model("llama"), tiny_batch(5, 16, seed=1)
    paths = {1: ["self_attn.o_proj", "mlp.down_proj"], 2: ["mlp.down_proj"]}
    got = dense_grams(model, calib, paths, micro_batch=2)
    layers = adapter_for(model).decoder_layers(model)
    want = {(i, p): Gram() for i, ps in paths.items() for p in ps}
    handles = [layers[i].get_submodule(p).register_forward_pre_hook(g.hook()) for (i, p), g in want.items()]
    with torch.no_grad():
        for ids in calib.split(2):
            model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()
    assert set(got) == set(want)
    for key, g in want.items():
        assert torch.equal(got[key].h, g.h) and torch.equal(got[key].s, g.s) and got[key].n == g.n


def test_oneshot_grams_cover_the_plan_layers_only_and_are_cached():
    """One-shot reconstruction computes Grams for the layers a plan covers, no others; a cached
    study adds a later plan's missing layers to them; the updates equal those without a cache."""
    from adapruner.updates.reconstruct import Reconstruct

    torch.manual_seed(0)
    model, calib = tiny_model("llama"), tiny_batch(6, 16, seed=1)
    update = UpdateConfig(name="reconstruct", options={"mode": "oneshot"})
    cache: dict = {}
    before: dict = {}
    for layers, computed in (([1, 3], {1, 2}), ([1, 4], {1, 2, 3})):
        config = PruneConfig(metric=MetricConfig(name="l2"), allocation=AllocationConfig(layers=layers), update=update)
        plan = plan_pruning(model, None, replace(config, update=UpdateConfig()), 0.25).plan
        cached = Reconstruct().compute(model, plan, calib, update, cache=cache)
        (grams,) = cache.values()
        assert {i for i, _ in grams} == computed
        assert all(grams[key] is gram for key, gram in before.items())  # kept, not computed again
        before = dict(grams)
        fresh = Reconstruct().compute(model, plan, calib, update)
        assert cached.keys() == fresh.keys() == set(plan.layers)
        for i in cached:
            for path, u in cached[i].items():
                assert torch.equal(u.weight, fresh[i][path].weight)


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "gemma2", "phi3"])
@pytest.mark.parametrize("options", [{"mode": "sequential"}, {"mode": "oneshot", "bias": True}])
def test_reconstructed_masks_equal_surgery_and_reload(family, options, tmp_path):
    torch.manual_seed(0)
    model, calib, x = tiny_model(family), tiny_batch(12, 24, seed=1), tiny_batch(2, 12, seed=2)
    config = PruneConfig(metric=MetricConfig(name="obs"), allocation=AllocationConfig(mode="global", layers=[0, 4]),
                         update=UpdateConfig(name="reconstruct", options=options))
    plan = plan_pruning(model, calib, config, 0.3, update_calib=calib).plan
    assert plan.updates and all(u.weight is not None for b in plan.updates.values() for u in b.values())
    with apply_masks(model, plan):
        masked = logits(model, x)
    prune_model(model, plan)
    assert (logits(model, x) - masked).abs().max().item() < 1e-4
    out = save_pruned(model, None, tmp_path / "out", {})
    reloaded = T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager")
    assert (logits(reloaded, x) - masked).abs().max().item() < 1e-4
    assert count_parameters(reloaded) == count_parameters(model)


def test_obs_scores_are_finite_and_need_no_gradients():
    from adapruner.importance import compute_scores, get_metric

    assert get_metric("obs").needs_gram and not get_metric("obs").needs_gradients
    model = tiny_model("llama")
    scores = compute_scores(model, MetricConfig(name="obs"), tiny_batch(8, 24), progress=False)
    shape = adapter_for(model).layer_shape(model, 0)
    assert scores[0]["head"].shape == (shape.num_heads,) and scores[0]["kv"].shape == (shape.num_kv_heads,)
    assert all(torch.isfinite(v).all() and (v >= 0).all() for s in scores.values() for v in s.values())


@pytest.mark.parametrize("mode,options", [("schedule", {"knots": [0.3, 1.0, 3.0]}), ("schedule", {"knots": [4, 0.25]}),
                                          ("saap", {"strength": 1.5}), ("schedule", {"knots": [1, 1]})])
@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.4])
def test_a_schedule_never_exceeds_the_budget_nor_breaks_gqa(mode, options, ratio):
    model = tiny_model("qwen3")
    config = PruneConfig(metric=MetricConfig(name="l2"), allocation=AllocationConfig(mode=mode, options=options,
                                                                                      layers=[0, 4]))
    plan = plan_pruning(model, None, config, ratio).plan
    for i, lp in plan.layers.items():
        lp.validate(adapter_for(model).layer_shape(model, i))
    target = ratio * count_parameters(model)
    removed = removed_parameters(model, plan)
    budgets = layer_budgets(model, resolve_layer_range(4, [0, 4]), config.allocation)
    block = max(b.channel_cost for b in budgets) * config.allocation.round_to
    assert target - block <= removed <= target


def test_schedule_prunes_deep_layers_more_with_increasing_knots():
    model = tiny_model("llama")
    config = PruneConfig(metric=MetricConfig(name="l2"),
                         allocation=AllocationConfig(mode="schedule", options={"knots": [0.25, 4.0]}, layers=[0, 4]))
    plan = plan_pruning(model, None, config, 0.2).plan
    kept = [len(plan.layers[i].kept_channels) + 100 * len(plan.layers[i].kept_heads) for i in range(4)]
    assert kept[0] > kept[-1]


def test_bad_allocation_options_are_one_line_errors():
    model = tiny_model("llama")
    for options, match in (({"knots": [0, 1]}, "positive numbers"), ({"bogus": 1}, "has no option")):
        with pytest.raises(AdaprunerError, match=match):
            plan_pruning(model, None, PruneConfig(metric=MetricConfig(name="l2"),
                                                  allocation=AllocationConfig(mode="schedule", options=options)), 0.2)


def test_full_space_suggests_every_kind_of_configuration():
    space = SearchSpace.load("full")
    assert space.needs_gram() and "dimensions" in space.to_json()
    assert SearchSpace.load("paper").digest() == SearchSpace().digest()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"metric": set(), "update": set(), "mode": set()}
    for _ in range(60):
        config = space.suggest(study.ask(), 500)
        seen["metric"].add(config.metric.name)
        seen["update"].add(config.update.name)
        seen["mode"].add(config.allocation.mode)
        if config.allocation.mode == "schedule":
            assert len(config.allocation.options["knots"]) == 3
        PruneConfig.from_json(config.to_json())  # round-trips
    assert seen["update"] == {"none", "bias", "reconstruct"} and len(seen["metric"]) >= 5
    assert seen["mode"] == {"uniform", "schedule", "saap"}


def test_a_full_space_with_an_unknown_name_is_a_one_line_error():
    data = {"dimensions": ["calibration", "metric-choice"], "options": {"metric-choice": {"choices": ["l2", "nope"]}}}
    with pytest.raises(AdaprunerError, match="unknown importance metric 'nope'.*choose one of random, l1"):
        SearchSpace.from_dict(data)
    data = {"dimensions": ["calibration", "metric", "update"], "options": {"update": {"choices": ["shrink"]}}}
    with pytest.raises(AdaprunerError, match="unknown weight update 'shrink'.*none, bias, reconstruct"):
        SearchSpace.from_dict(data)


def test_objective_of_the_full_space_scores_the_delivered_model():
    """A trial with reconstruction is scored with its update, and the physically pruned model
    (planned again through the same path) reproduces the objective."""
    from adapruner.eval.perplexity import perplexity
    from adapruner.search.objective import Objective

    model = tiny_model("llama")
    pool, windows = tiny_batch(80, 24, seed=1), {"wikitext2": tiny_batch(4, 24, seed=2)}
    data = SearchSpace.load("full").to_json()
    data["options"]["update"]["reconstruct"]["windows"] = 32  # the tiny pool has 80 windows
    space = SearchSpace.from_dict(data)
    objective = Objective(model, pool, windows, 0.25, batch_size=2, element_factors=space.element_factors())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(12):
        config = space.suggest(study.ask(), len(pool))
        if config.update.name == "reconstruct":
            break
    assert config.update.name == "reconstruct"
    result = objective(config)
    assert objective.update_cache  # the dense Grams are kept for the next trial
    plan = objective.plan(config)
    prune_model(model, plan)
    assert math.isclose(perplexity(model, windows["wikitext2"], batch_size=2, progress=False).ppl,
                        result.ppl["wikitext2"], rel_tol=1e-4)


def test_gram_product_is_the_full_product():
    """The blocked, mirrored ``x.T @ x`` of the Gram passes: the full product's values (to float
    rounding; bit for bit on this project's CPUs, which the weights digests check) at every width,
    blocked or not, and symmetric."""
    from adapruner.importance.statistics import gram_product

    torch.manual_seed(0)
    for d in (96, 576, 1100):
        x = torch.randn(300, d)
        got, want = gram_product(x), x.T @ x
        assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-4)
        assert torch.equal(got, got.T)
