"""FLAP's bias compensation: masks == surgery, the calibration mean is kept, save/reload, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as T

import adapruner  # noqa: F401  (registers the pruned model types)
from adapruner.cli import main
from adapruner.config import AllocationConfig, MetricConfig, PruneConfig, UpdateConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.params import count_parameters
from adapruner.planning import plan_pruning
from adapruner.pruning.masks import apply_masks
from adapruner.pruning.save import save_pruned
from adapruner.pruning.surgery import prune_model
from tiny import tiny_batch, tiny_model
from tiny_tokenizer import char_tokenizer


def compensated_plan(model, calib, layers=(0, 4)):
    config = PruneConfig(metric=MetricConfig(name="flap"), allocation=AllocationConfig(layers=list(layers)),
                         update=UpdateConfig(name="bias"))
    return plan_pruning(model, calib, config, 0.3, progress=False).plan


def logits(model, x):
    with torch.no_grad():
        return model(x).logits


@pytest.mark.parametrize("family", ["llama", "qwen2", "phi3", "gemma2"])
def test_compensated_masks_equal_surgery_and_reload(family, tmp_path):
    torch.manual_seed(0)
    model, calib, x = tiny_model(family), tiny_batch(6, 16), tiny_batch(2, 12)
    plan = compensated_plan(model, calib)
    assert plan.updates and all(u.bias.abs().sum() > 0 for b in plan.updates.values() for u in b.values())
    with apply_masks(model, plan):
        masked = logits(model, x)
    dense = logits(model, x)
    assert not torch.allclose(masked, dense)
    prune_model(model, plan)
    assert (logits(model, x) - masked).abs().max().item() < 1e-4
    out = save_pruned(model, None, tmp_path / "out", {})
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"].startswith("adapruner_pruned_")
    assert all(w.get("output_bias") for w in config["layer_widths"])
    reloaded = T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager")
    assert (logits(reloaded, x) - masked).abs().max().item() < 1e-4
    assert count_parameters(reloaded) == count_parameters(model)


def test_compensation_keeps_the_calibration_mean_of_the_first_pruned_o_proj():
    torch.manual_seed(0)
    model, calib = tiny_model("llama"), tiny_batch(6, 16)
    plan = compensated_plan(model, calib, layers=(1, 3))
    o_proj = adapter_for(model).decoder_layers(model)[1].self_attn.o_proj
    seen = []

    def run(plan_or_none):
        masks = apply_masks(model, plan_or_none) if plan_or_none else None
        # Registered after the masks so that it sees the output with the compensation added.
        hook = o_proj.register_forward_hook(lambda m, a, out: seen.append(out.reshape(-1, out.shape[-1]).mean(0)))
        with torch.no_grad():
            model(calib)
        hook.remove()
        if masks:
            masks.remove()

    run(None)
    run(plan)
    run(type(plan)(layers=plan.layers))
    dense, compensated, plain = seen
    # Layer 1 is the first pruned layer and the kept heads' outputs do not depend on the removed
    # ones, so o_proj's kept inputs are the dense ones and its calibration mean is kept exactly.
    assert torch.allclose(compensated, dense, atol=1e-5)
    assert (plain - dense).abs().max() > 10 * (compensated - dense).abs().max()


def test_prune_cli_bias_compensation(tmp_path, data_dir):
    path = tmp_path / "llama"
    tiny_model("llama").save_pretrained(path)
    char_tokenizer(add_bos=True).save_pretrained(path)
    out = tmp_path / "pruned"
    assert main(["prune", "--model", str(path), "--ratio", "0.3", "--metric", "l2", "--bias-compensation",
                 "--num-samples", "3", "--calib-seq-len", "32", "--layers", "0:4", "--out", str(out),
                 "--device", "cpu", "--data-dir", str(data_dir)]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["config"]["update"]["name"] == "bias"
    assert len(report["config"]["calibration"]["indices"]) == 3
    model = T.AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.model.layers[0].mlp.down_proj.bias is not None
    assert model.model.layers[0].self_attn.o_proj.bias is not None


def test_legacy_bias_compensation_flag_in_a_config_reads_as_the_bias_update():
    config = PruneConfig.from_json({"metric": {"name": "flap", "bias_compensation": True}})
    assert config.update.name == "bias" and config.metric.name == "flap"
    assert PruneConfig.from_json({"metric": {"bias_compensation": False}}).update.name == "none"
