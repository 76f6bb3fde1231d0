"""Saving pruned models and loading them back with plain ``from_pretrained``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers as T
from safetensors.torch import save_file

import adapruner  # noqa: F401  (registers the pruned model types)
from adapruner.config import AllocationConfig, MetricConfig
from adapruner.errors import AdaprunerError
from adapruner.importance import compute_scores
from adapruner.allocation import allocate, count_parameters
from adapruner.pruning.save import REPORT_NAME, save_pruned
from adapruner.core.structure import LayerPlan, PruningPlan
from adapruner.pruning.surgery import prune_model
from tiny import CONFIGS, tiny_batch, tiny_model


def logits(model, x):
    with torch.no_grad():
        return model(x).logits


def prune_middle(family: str):
    """A tiny model whose middle layers are pruned (so widths differ between layers)."""
    model = tiny_model(family)
    scores = compute_scores(model, MetricConfig(name="random"), None, progress=False)
    plan = allocate(model, scores, 0.3, AllocationConfig(layers=[1, 3]))
    return prune_model(model, plan)


def uniform_plan(heads_per_group: int = 2, channels: int = 64) -> PruningPlan:
    """Every layer of a tiny model (6 heads, 2 KV groups, 128 channels) keeps the same widths."""
    return PruningPlan({i: LayerPlan(kept_heads=[h for k in range(2) for h in range(3 * k, 3 * k + heads_per_group)],
                                     kept_kv=[0, 1], kept_channels=list(range(0, 128, 128 // channels)))
                        for i in range(4)})


def run_without_adapruner(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``import adapruner`` fails."""
    prelude = "import sys\nsys.modules['adapruner'] = None\n"
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "hf_modules"), PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_save_reload_same_logits_and_generate(family, tmp_path):
    model, x = prune_middle(family), tiny_batch()
    expected = logits(model, x)
    out = save_pruned(model, None, tmp_path / "out", {"note": "test"})
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "adapruner_pruned_" + model.config.model_type
    assert config["layer_widths"][0] != config["layer_widths"][1]
    assert (out / "modeling_pruned.py").is_file() and "auto_map" in config
    reloaded = T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager")
    assert (logits(reloaded, x) - expected).abs().max().item() < 1e-5
    assert count_parameters(reloaded) == count_parameters(model)
    if model.config.tie_word_embeddings:
        assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    generated = reloaded.generate(x[:1, :6], max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, 10)
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["note"] == "test" and report["layer_widths"] == config["layer_widths"]
    assert report["checkpoint"]["flavour"] == "adapruner_pruned"


def test_trust_remote_code_loads_without_adapruner(tmp_path):
    model, x = prune_middle("gemma3"), tiny_batch()
    out = save_pruned(model, None, tmp_path / "out", {})
    save_file({"x": x, "logits": logits(model, x).contiguous()}, str(tmp_path / "expected.safetensors"))
    result = run_without_adapruner(f"""
        import torch, transformers as T
        from safetensors.torch import load_file
        ref = load_file({str(tmp_path / 'expected.safetensors')!r})
        try:
            T.AutoModelForCausalLM.from_pretrained({str(out)!r})
            print("loaded without trust_remote_code")
        except Exception as exc:
            print("refused:", type(exc).__name__)
        m = T.AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True, attn_implementation="eager")
        with torch.no_grad():
            diff = (m(ref["x"]).logits - ref["logits"]).abs().max().item()
        print("module", type(m).__module__)
        print("diff", diff)
        print("generated", m.generate(ref["x"][:1, :5], max_new_tokens=3, do_sample=False).shape[1])
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "refused: ValueError" in result.stdout  # transformers may print a [y/N] prompt first
    assert any(line.startswith("module transformers_modules") for line in lines)
    assert float(next(line for line in lines if line.startswith("diff")).split()[1]) < 1e-5
    assert "generated 8" in lines


def test_uniform_widths_give_a_plain_config_loadable_without_adapruner(tmp_path):
    model, x = tiny_model("qwen2"), tiny_batch()  # qwen2: q/k/v biases must follow their rows
    prune_model(model, uniform_plan())
    out = save_pruned(model, None, tmp_path / "out", {})
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["num_attention_heads"] == 4 and config["num_key_value_heads"] == 2
    assert config["intermediate_size"] == 64 and config["head_dim"] == 16
    assert len(config["layer_widths"]) == 4 and not (out / "modeling_pruned.py").exists()
    save_file({"x": x, "logits": logits(model, x).contiguous()}, str(tmp_path / "expected.safetensors"))
    result = run_without_adapruner(f"""
        import torch, transformers as T
        from safetensors.torch import load_file
        ref = load_file({str(tmp_path / 'expected.safetensors')!r})
        m = T.AutoModelForCausalLM.from_pretrained({str(out)!r}, attn_implementation="eager")
        with torch.no_grad():
            print(type(m).__name__, (m(ref["x"]).logits - ref["logits"]).abs().max().item())
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    name, diff = result.stdout.split()[-2:]
    assert name == "Qwen2ForCausalLM" and float(diff) < 1e-5


def test_uniform_widths_the_family_config_rejects_fall_back_to_the_pruned_type(tmp_path):
    # 96 hidden / 5 heads is not an integer: transformers' standard config refuses it.
    cfg = T.LlamaConfig(hidden_size=96, intermediate_size=64, num_hidden_layers=2, num_attention_heads=6,
                        num_key_value_heads=6, vocab_size=128)
    torch.manual_seed(0)
    model = T.AutoModelForCausalLM.from_config(cfg).eval()
    plan = PruningPlan({i: LayerPlan(kept_heads=[0, 1, 2, 3, 5], kept_kv=[0, 1, 2, 3, 5],
                                     kept_channels=list(range(64))) for i in range(2)})
    prune_model(model, plan)
    x = tiny_batch(2, 8, 128)
    out = save_pruned(model, None, tmp_path / "out", {})
    assert json.loads((out / "config.json").read_text())["model_type"] == "adapruner_pruned_llama"
    reloaded = T.AutoModelForCausalLM.from_pretrained(out)
    assert (logits(reloaded, x) - logits(model, x)).abs().max().item() < 1e-5


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    model = prune_middle("llama")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(AdaprunerError, match="already exists.*--overwrite"):
        save_pruned(model, None, out, {})
    assert (out / "keep.txt").read_text() == "user data"
    with pytest.raises(AdaprunerError, match="not an adapruner output"):
        save_pruned(model, None, out, {}, overwrite=True)  # --overwrite never deletes a user's directory
    assert (out / "keep.txt").read_text() == "user data"
    save_pruned(model, None, out, {"second": True}, force=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert json.loads((out / REPORT_NAME).read_text())["second"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temporary directory may remain"


def test_pruning_a_pruned_model_again(tmp_path):
    model, x = prune_middle("phi3"), tiny_batch()
    out = save_pruned(model, None, tmp_path / "a", {})
    again = T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    scores = compute_scores(again, MetricConfig(name="l2"), None, progress=False)
    before = count_parameters(again)
    plan = allocate(again, scores, 0.1, AllocationConfig(layers=[0, 4]))
    prune_model(again, plan)
    assert abs((before - count_parameters(again)) / before - 0.1) < 0.01
    out2 = save_pruned(again, None, tmp_path / "b", {})
    reloaded = T.AutoModelForCausalLM.from_pretrained(out2, attn_implementation="eager")
    assert (logits(reloaded, x) - logits(again, x)).abs().max().item() < 1e-5


def test_plain_save_pretrained_of_a_reloaded_model_ships_the_modeling_file(tmp_path):
    out = save_pruned(prune_middle("llama"), None, tmp_path / "a", {})
    T.AutoModelForCausalLM.from_pretrained(out).save_pretrained(tmp_path / "b")
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (tmp_path / "b" / "modeling_pruned.py").is_file()
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_pruned.AdaprunerPrunedLlamaForCausalLM"
    assert config["layer_widths"] == json.loads((out / "config.json").read_text())["layer_widths"]
