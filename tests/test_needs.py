"""The statistics planner: a configuration collects what its metric and update read, no more."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from adapruner.config import PruneConfig
from adapruner.importance.coefficients import ELEMENT_FACTORS
from adapruner.importance.needs import WEIGHTS_ONLY, StatisticsNeeds
from adapruner.importance.statistics import collect
from adapruner.planning import statistics_needs
from adapruner.search.objective import Objective

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_batch, tiny_model  # noqa: E402


def config(metric: str, update: str = "none", **options) -> PruneConfig:
    c = PruneConfig()
    c.metric.name, c.update.name, c.update.options = metric, update, options
    return c


@pytest.mark.parametrize("metric, update, samples, gradients, gram", [
    ("l2", "none", False, False, False),
    ("random", "none", False, False, False),
    ("l2", "bias", True, False, False),  # bias compensation reads the samples' input means
    ("wanda-sp", "none", True, False, False),
    ("flap", "bias", True, False, False),
    ("obs", "none", True, False, True),
    ("element1", "none", True, True, False),
    ("saap", "reconstruct", True, True, False),
])
def test_a_configuration_needs_what_its_metric_and_update_read(metric, update, samples, gradients, gram):
    needs = statistics_needs(config(metric, update))
    assert (needs.samples, needs.gradients, needs.gram) == (samples, gradients, gram)
    assert (1.0 in needs.element_factors) == gradients


def test_an_update_with_windows_of_its_own_adds_nothing_to_the_importance_pass():
    assert statistics_needs(config("l2", "reconstruct", windows=8)) == WEIGHTS_ONLY


def test_needs_join_and_cover():
    grad = StatisticsNeeds(samples=True, gradients=True, element_factors=(1.0,))
    acts = StatisticsNeeds(samples=True)
    assert grad.covers(acts) and not acts.covers(grad) and acts.covers(WEIGHTS_ONLY)
    both = grad | StatisticsNeeds(samples=True, gram=True, element_factors=(10.0,))
    assert both.covers(grad) and both.gram and both.element_factors == (1.0, 10.0)
    assert not grad.covers(StatisticsNeeds(samples=True, gradients=True, element_factors=(10.0,)))


def test_collected_statistics_record_what_they_hold():
    model, calib = tiny_model("llama"), tiny_batch(3, 16)
    acts = collect(model, calib, StatisticsNeeds(samples=True), progress=False)
    assert acts.needs == StatisticsNeeds(samples=True) and not acts.has_gradients
    grads = collect(model, calib, StatisticsNeeds(samples=True, gradients=True, element_factors=(10.0, 1.0)),
                    progress=False)
    assert grads.has_gradients and grads.element_factors == (1.0, 10.0)
    for i, layer in acts.layers.items():  # a pass without backward has the same activation statistics
        for name, m in layer.members.items():
            if m.wanda is not None:
                assert torch.equal(m.wanda, grads.layers[i].members[name].wanda)
                assert torch.equal(m.fluctuation, grads.layers[i].members[name].fluctuation)
    assert collect(model, None, WEIGHTS_ONLY).num_samples == 0


def test_a_gradient_free_trial_runs_no_backward_and_gives_the_plan_of_a_full_pass():
    model = tiny_model("llama")
    pool = tiny_batch(12, 16, seed=3)
    windows = {"wikitext2": tiny_batch(2, 16, seed=4)}
    asked = []

    def stats(m, calib, needs):
        asked.append(needs)
        return collect(m, calib, needs, progress=False)

    objective = Objective(model, pool, windows, 0.2, batch_size=2, statistics_fn=stats)
    wanda, element = config("wanda-sp", "bias"), config("element1")
    for c in (wanda, element):
        c.calibration = replace(c.calibration, num_samples=4, indices=[0, 3, 5, 7])
    alone = objective.plan(wanda)
    assert asked[-1] == StatisticsNeeds(samples=True)
    objective.plan(element)  # the same windows, now with gradients: collected again, with every factor
    assert asked[-1].gradients and asked[-1].element_factors == ELEMENT_FACTORS
    reused = objective.plan(wanda)  # the gradient pass holds what wanda-sp reads: no third pass
    assert len(asked) == 2
    assert alone.to_json() == reused.to_json()  # the pass without backward plans the same model
    assert alone.updates.keys() == reused.updates.keys()
    for i, updates in alone.updates.items():
        for path, update in updates.items():
            assert torch.equal(update.bias, reused.updates[i][path].bias)
