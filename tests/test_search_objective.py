"""The search objective on tiny models: the cached path equals a full forward, masks never leak,
statistics are re-used, and the space maps trials to valid configurations."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import optuna
import pytest
import torch

from adapruner.config import PruneConfig
from adapruner.errors import AdaprunerError
from adapruner.importance import collect_statistics, scores_from_statistics
from adapruner.importance.statistics import collect
from adapruner.allocation import allocate
from adapruner.pruning.masks import apply_masks
from adapruner.core.lm import TokenNLL
from adapruner.search.objective import CachedEvaluator, Objective, spread_windows
from adapruner.search.space import SearchSpace, resolve_duplicates, space_from_args

sys.path.insert(0, str(Path(__file__).parent))
from tiny import CONFIGS, tiny_batch, tiny_model  # noqa: E402


def full_ppl(model, windows: torch.Tensor) -> float:
    nll = TokenNLL()
    with torch.no_grad():
        nll.add(model(input_ids=windows, use_cache=False).logits, windows)
    return nll.ppl()


def a_plan(model, calib):
    config = PruneConfig()
    config.metric.name = "element1"
    config.allocation.layers = [1, 4]
    scores = scores_from_statistics(collect_statistics(model, calib, progress=False), config.metric)
    return allocate(model, scores, 0.2, config.allocation)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_cached_evaluation_equals_full_forward_with_masks(family):
    model = tiny_model(family)
    windows = tiny_batch(6, 24, seed=1)
    plan = a_plan(model, tiny_batch(4, 24, seed=2))
    assert min(plan.layers) >= 1
    evaluator = CachedEvaluator(model, {"a": windows}, start=1, batch_size=4)
    assert evaluator.dense["a"] == pytest.approx(full_ppl(model, windows), rel=1e-5)
    with apply_masks(model, plan):
        masked_full = full_ppl(model, windows)
        cached = evaluator.evaluate()[0]["a"]
    assert cached == pytest.approx(masked_full, rel=1e-5)
    assert cached != pytest.approx(evaluator.dense["a"], rel=1e-3)  # the masks really acted
    assert evaluator.evaluate()[0]["a"] == pytest.approx(evaluator.dense["a"], rel=1e-5)  # and are gone


def test_objective_reports_reuses_statistics_and_leaves_the_model_intact():
    model = tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def stats(m, calib, needs):
        calls.append(calib.shape)
        return collect(m, calib, needs, progress=False)

    pool = tiny_batch(20, 24, seed=3)
    windows = {"wikitext2": tiny_batch(5, 24, seed=4), "ptb": tiny_batch(3, 24, seed=5)}
    objective = Objective(model, pool, windows, 0.2, batch_size=2, statistics_fn=stats)
    space = SearchSpace(num_samples=4)
    study = optuna.create_study()
    steps = []
    trial = study.ask()
    config = space.suggest(trial, len(pool))
    result = objective(config, lambda step, value: steps.append((step, value)))
    assert math.isfinite(result.value) and set(result.ppl) == {"wikitext2", "ptb"}
    assert result.value == pytest.approx(sum(result.ppl.values()) / 2)
    assert [s for s, _ in steps] == list(range(5))  # 3 + 2 batches, interleaved
    assert steps[-1][1] == pytest.approx(result.value)
    objective(config, None)  # same calibration set, other call: no new backward pass
    assert len(calls) == 1 and calls[0] == (4, 24)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_space_maps_trials_to_configs_and_validates():
    space = SearchSpace(num_samples=5)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        config = space.suggest(study.ask(), pool_size=7)
        idx = config.calibration.indices
        assert len(set(idx)) == 5 and all(0 <= i < 7 for i in idx)
        assert 0 <= config.metric.alpha1 <= 1 and config.metric.name == "adapruner"
        assert PruneConfig.from_json(config.to_json()) == config
    assert resolve_duplicates([3, 3, 6, 6], 7) == [3, 4, 6, 0]
    sub = SearchSpace(num_samples=3, data_space="subspaces")
    assert sub.subspace_bounds(10) == [(0, 3), (3, 7), (7, 10)]
    config = sub.suggest(study.ask(), pool_size=10)
    assert [i in range(a, b) for i, (a, b) in zip(config.calibration.indices, sub.subspace_bounds(10))] == [True] * 3
    with pytest.raises(AdaprunerError, match="samples are asked"):
        space.suggest(study.ask(), pool_size=3)
    assert space.digest() == SearchSpace(num_samples=5).digest() != SearchSpace(num_samples=6).digest()
    with pytest.raises(AdaprunerError, match="unknown key"):
        SearchSpace.from_dict({"num_sample": 3})
    with pytest.raises(AdaprunerError, match="alpha1 range"):
        SearchSpace.from_dict({"alpha1": [0.5, 2.0]})
    with pytest.raises(AdaprunerError, match="not a metric coefficient"):
        SearchSpace.from_dict({"factors": {"nope": [1.0]}})
    fixed = space_from_args(SearchSpace(), no_data_search=True, fixed_metric="first")
    assert fixed.data_space == "fixed" and fixed.metric == "element1"


def test_space_file_yaml_and_json(tmp_path):
    (tmp_path / "s.yaml").write_text("num_samples: 3\naggregations: [sum, max]\n")
    space = SearchSpace.load(tmp_path / "s.yaml")
    assert space.num_samples == 3 and space.aggregations == ["sum", "max"]
    config = space.suggest(optuna.create_study().ask(), pool_size=10)
    assert config.metric.aggregation in ("sum", "max")
    (tmp_path / "s.json").write_text("{bad json")
    with pytest.raises(AdaprunerError, match="cannot be parsed"):
        SearchSpace.load(tmp_path / "s.json")
    with pytest.raises(AdaprunerError, match="not found"):
        SearchSpace.load(tmp_path / "missing.yaml")


def test_spread_windows_is_even():
    w = torch.arange(10).unsqueeze(1)
    assert spread_windows(w, 4).squeeze(1).tolist() == [0, 3, 6, 9]
    assert len(spread_windows(w, 50)) == 10


@pytest.mark.slow
def test_smollm2_cached_objective_matches_the_pruned_model(data_dir):
    """On the real model: a trial's masked, cached objective equals the physically pruned model's
    perplexity on the same validation windows (what the search optimises is what it ships)."""
    from adapruner.data.books import calibration_pool
    from adapruner.eval.perplexity import perplexity
    from adapruner.models.load import load_model
    from adapruner.planning import plan_pruning
    from adapruner.pruning.surgery import prune_model
    from adapruner.search.objective import ObjectiveProtocol, load_eval_windows

    loaded = load_model("smollm2-135m", device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    pool = calibration_pool(tok, data_dir)
    windows = load_eval_windows(tok, data_dir, ObjectiveProtocol(windows=4))
    objective = Objective(model, pool, windows, 0.2, batch_size=4)
    config = SearchSpace().suggest(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask(), len(pool))
    result = objective(config)
    assert result.value < 1e4
    plan = plan_pruning(model, pool[sorted(config.calibration.indices)], config, 0.2).plan
    prune_model(model, plan)
    for name, w in windows.items():
        assert perplexity(model, w, batch_size=4, progress=False).ppl == pytest.approx(result.ppl[name], rel=1e-3)
