"""Pluggable stages: a toy metric, allocator, weight update and search dimension, registered from
this test file only, run through ``prune`` and ``search`` without touching the package."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
import transformers as T

import adapruner  # noqa: F401  (registers the pruned model types)
from adapruner.allocation.base import ALLOCATORS, Allocator, register_allocator
from adapruner.allocation.budget import layer_plan
from adapruner.cli import main
from adapruner.config import AllocationConfig, MetricConfig, PruneConfig, UpdateConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.params import count_parameters
from adapruner.core.structure import LinearUpdate, PruningPlan
from adapruner.errors import AdaprunerError
from adapruner.importance.aggregation import aggregate
from adapruner.importance.base import METRICS, Metric, register_metric
from adapruner.planning import plan_pruning
from adapruner.pruning.masks import apply_masks
from adapruner.pruning.save import save_pruned
from adapruner.pruning.surgery import prune_model
from adapruner.search.dimensions.base import DIMENSIONS, SearchDimension, register_dimension
from adapruner.search.space import SearchSpace
from adapruner.search.storage import default_storage
from adapruner.updates.base import UPDATES, WeightUpdate, register_update
from tiny import tiny_batch, tiny_model
from tiny_tokenizer import char_tokenizer


# -- the toy implementations: one class each, as a user would write them ------------------------

@register_metric
class ToyNorm(Metric):
    """|W|^power summed per unit (data-free)."""

    name = "toy-norm"
    help = "toy: weight magnitude to a power"
    needs_calibration = False
    options = {"power": (1.0, "exponent of the magnitude")}

    def score(self, stats, layer, kind, config):
        power = float(config.options.get("power", 1.0))
        return aggregate([v.double() ** power for _, v in stats.layers[layer].view(kind, "w_abs")],
                         config.aggregation)


@register_allocator
class MlpOnly(Allocator):
    """The same MLP fraction everywhere, attention untouched."""

    name = "toy-mlp-only"

    def allocate(self, budgets, scores, target, config):
        mlp = sum(b.mlp_params for b in budgets)
        plan = PruningPlan()
        for b in budgets:
            inter = b.shape.intermediate_size
            kept = max(b.channel_min_keep, inter - round(target * b.mlp_params / mlp / b.channel_cost))
            plan.layers[b.index] = layer_plan(b, scores[b.index], config.attention, 0, kept)
        return plan


@register_update
class Scale(WeightUpdate):
    """Scale every output projection of a pruned layer (a weight replacement, like reconstruction)."""

    name = "toy-scale"
    needs_calibration = False
    options = {"factor": (0.5, "multiplier")}

    def compute(self, model, plan, calib, config, stats=None, micro_batch=None, cache=None):
        factor = float(self.option(config, "factor"))
        adapter = adapter_for(model)
        layers = adapter.decoder_layers(model)
        out = {}
        for i in plan.layers:
            for path in (f"{adapter.attn}.{adapter.o}", f"{adapter.mlp}.{adapter.down}"):
                w = layers[i].get_submodule(path).weight.detach()
                out.setdefault(i, {})[path] = LinearUpdate(weight=w * factor, bias=torch.full((w.shape[0],), 0.01))
        return out


@register_dimension
class RoundTo(SearchDimension):
    """Searches the channel rounding of the allocation."""

    name = "toy-round-to"

    def validate(self, space):
        choices = space.options.get(self.name, {}).get("choices")
        if not choices:
            raise AdaprunerError("toy-round-to needs options: {toy-round-to: {choices: [...]}}")

    def suggest(self, trial, space, config, ctx):
        config.allocation.round_to = trial.suggest_categorical("round_to", space.options[self.name]["choices"])


# -- tests ----------------------------------------------------------------------------------------

def test_registered_names_are_choices_everywhere():
    assert "toy-norm" in METRICS and "toy-mlp-only" in ALLOCATORS and "toy-scale" in UPDATES
    assert "toy-round-to" in DIMENSIONS
    with pytest.raises(AdaprunerError, match="unknown weight update 'nope'.*toy-scale"):
        UPDATES.get("nope")
    with pytest.raises(AdaprunerError, match="has no option.*'bogus'.*its options: power"):
        plan_pruning(tiny_model("llama"), None, PruneConfig(metric=MetricConfig(name="toy-norm",
                                                                               options={"bogus": 1})), 0.1)


def test_toy_update_masks_equal_surgery_and_reload(tmp_path):
    torch.manual_seed(0)
    model, x = tiny_model("llama"), tiny_batch(2, 12)
    config = PruneConfig(metric=MetricConfig(name="toy-norm", options={"power": 2}),
                         allocation=AllocationConfig(mode="toy-mlp-only", layers=[0, 4]),
                         update=UpdateConfig(name="toy-scale", options={"factor": 0.7}))
    plan = plan_pruning(model, None, config, 0.1).plan
    assert all(len(p.kept_heads) == 6 for p in plan.layers.values())  # attention untouched
    with torch.no_grad(), apply_masks(model, plan):
        masked = model(x).logits
    prune_model(model, plan)
    with torch.no_grad():
        assert (model(x).logits - masked).abs().max() < 1e-4
    out = save_pruned(model, None, tmp_path / "out", {})
    reloaded = T.AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        assert (reloaded(x).logits - masked).abs().max() < 1e-4
    assert count_parameters(reloaded) == count_parameters(model)


def _checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "llama"
    tiny_model("llama").save_pretrained(path)
    char_tokenizer(add_bos=True).save_pretrained(path)
    return path


def test_prune_cli_with_every_toy_stage(tmp_path):
    out = tmp_path / "pruned"
    assert main(["prune", "--model", str(_checkpoint(tmp_path)), "--ratio", "0.1", "--metric", "toy-norm",
                 "--metric-option", "power=2", "--mode", "toy-mlp-only", "--update", "toy-scale",
                 "--update-option", "factor=0.9", "--layers", "0:4", "--out", str(out), "--device", "cpu"]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["config"]["metric"]["options"] == {"power": 2}
    assert report["config"]["update"] == {"name": "toy-scale", "options": {"factor": 0.9}}
    assert abs(report["ratio_achieved"] - 0.1) < 0.02


def test_search_cli_with_a_toy_dimension(tmp_path, data_dir):
    space = tmp_path / "space.yaml"
    space.write_text("num_samples: 3\ndimensions: [calibration, metric, toy-round-to]\n"
                     "options: {toy-round-to: {choices: [4, 16]}}\n")
    out = tmp_path / "search"
    assert main(["search", "--model", str(_checkpoint(tmp_path)), "--ratio", "0.2", "--trials", "3",
                 "--out", str(out), "--data-dir", str(data_dir), "--eval-windows", "2", "--device", "cpu",
                 "--space", str(space), "--early-stop", "none"]) == 0
    study = optuna.load_study(study_name="adapruner-tpe", storage=default_storage(out))
    trials = study.get_trials(deepcopy=False)
    assert all(t.params["round_to"] in (4, 16) for t in trials)
    assert all(t.user_attrs["config"]["allocation"]["round_to"] == t.params["round_to"] for t in trials)
    best = json.loads((out / "best_config.json").read_text())
    assert best["config"]["allocation"]["round_to"] == study.best_trial.params["round_to"]
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["reproduction"]["reproduced"] is True


def test_space_validation_comes_from_the_registry():
    with pytest.raises(AdaprunerError, match="unknown search dimension 'nope'"):
        SearchSpace.from_dict({"dimensions": ["calibration", "nope"]})
    with pytest.raises(AdaprunerError, match="toy-round-to needs options"):
        SearchSpace.from_dict({"dimensions": ["calibration", "metric", "toy-round-to"]})
    with pytest.raises(AdaprunerError, match="does not search"):
        SearchSpace.from_dict({"options": {"toy-round-to": {"choices": [8]}}})
    # The default dimensions leave the space's hash as it was before dimensions existed.
    assert "dimensions" not in SearchSpace().to_json()


def test_a_space_factor_off_the_default_list_is_collected_not_fatal():
    space = SearchSpace.from_dict({"num_samples": 2, "factors": {"second_order_el": [5.0]}})
    assert 5.0 in space.element_factors()
    from adapruner.search.objective import Objective

    model = tiny_model("llama")
    pool, windows = tiny_batch(6, 16, seed=1), {"wikitext2": tiny_batch(2, 16, seed=2)}
    objective = Objective(model, pool, windows, 0.2, batch_size=2, element_factors=space.element_factors())
    config = space.suggest(optuna.create_study().ask(), len(pool))
    assert config.metric.second_order_el == 5.0
    assert objective(config).value > 0


def test_cli_imports_plugins_named_in_the_environment(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_plugin.py").write_text(
        "from adapruner.allocation.base import register_allocator\n"
        "from adapruner.allocation.uniform import Uniform\n"
        "@register_allocator\nclass Same(Uniform):\n    name = 'plugin-uniform'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ADAPRUNER_PLUGINS", "my_plugin")
    try:
        with pytest.raises(SystemExit):
            main(["prune", "--help"])
        assert "plugin-uniform" in capsys.readouterr().out
    finally:
        ALLOCATORS.unregister("plugin-uniform")
    monkeypatch.setenv("ADAPRUNER_PLUGINS", "no_such_plugin_module")
    assert main(["models"]) == 2
    assert "cannot import plugin 'no_such_plugin_module'" in capsys.readouterr().err


def test_the_cli_catalogue_matches_the_registries():
    from adapruner import catalogue
    from adapruner.allocation.budget import ATTENTION_MODES
    from adapruner.export.gguf import OUTTYPES
    from adapruner.models.load import DTYPES

    from adapruner.objectives import OBJECTIVES

    for kind, registry in (("metric", METRICS), ("update", UPDATES), ("allocation", ALLOCATORS),
                           ("objective", OBJECTIVES)):
        builtin = catalogue._REGISTRIES[kind][2]
        toys = {n for n in registry.names() if n.startswith("toy-")}
        assert list(builtin) == [n for n in registry.names() if n not in toys]
        assert all(builtin[n] == registry.get(n).help for n in builtin)
        assert toys <= set(catalogue.offered(kind))  # a plugin's implementation is offered too
    assert catalogue.ATTENTION_MODES == ATTENTION_MODES
    assert set(catalogue.DTYPES) == set(DTYPES) and catalogue.GGUF_OUTTYPES == tuple(OUTTYPES)
    from adapruner.search.samplers import SAMPLERS

    assert catalogue.SAMPLERS == SAMPLERS


def test_help_imports_neither_torch_nor_transformers_and_pruned_types_register_lazily():
    import subprocess
    import sys

    probe = ("import sys, adapruner.cli as cli; cli.load_plugins(); parser = cli.build_parser(); "
             "print(sorted({'torch', 'transformers'} & set(sys.modules))); "
             "import transformers; from transformers.models.auto.configuration_auto import CONFIG_MAPPING; "
             "print('adapruner_pruned_llama' in CONFIG_MAPPING)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


def test_the_example_plugin_metric_prunes_and_joins_the_full_space(tmp_path, data_dir):
    """docs/extending.md's example: one file, named in ADAPRUNER_PLUGINS, is a --metric choice with a
    forward-only calibration pass, and a metric of --space full."""
    import os
    import subprocess
    import sys

    examples = Path(__file__).resolve().parents[1] / "examples"
    env = {**os.environ, "PYTHONPATH": str(examples), "ADAPRUNER_PLUGINS": "plugin_metric"}
    cli = [sys.executable, "-m", "adapruner.cli"]
    subprocess.run(cli + ["prune", "--model", str(_checkpoint(tmp_path)), "--ratio", "0.2", "--metric", "wanda-flap",
                          "--metric-option", "mix=0.3", "--out", str(tmp_path / "p"), "--data-dir", str(data_dir)],
                   env=env, check=True, capture_output=True)
    report = json.loads((tmp_path / "p" / "pruning_report.json").read_text())
    assert report["config"]["metric"] == {**report["config"]["metric"], "name": "wanda-flap", "options": {"mix": 0.3}}
    probe = ("import adapruner.cli as cli; cli.load_plugins(); "
             "from adapruner.planning import statistics_needs; from adapruner.config import PruneConfig; "
             "from adapruner.search.space import SearchSpace; c = PruneConfig(); c.metric.name = 'wanda-flap'; "
             "print(statistics_needs(c).gradients, SearchSpace.load('full').options['metric-choice']['choices'][-1])")
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "wanda-flap"]
