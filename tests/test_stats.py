"""Deployment statistics: exact parameter count and MACs for a known tiny config, side-by-side
measurement with ratios, and the stats command's JSON."""

from __future__ import annotations

import json

import pytest
import torch
from test_recovery import char_tokenizer
from tiny import COMMON, tiny_model

from adapruner.cli import main
from adapruner.eval.stats import TimingProtocol, count_parameters, macs_per_token, measure, weight_bytes


def test_parameter_count_exact_for_tiny_llama():
    model = tiny_model("llama")
    h, i, n_layers, v = COMMON["hidden_size"], COMMON["intermediate_size"], COMMON["num_hidden_layers"], COMMON["vocab_size"]
    hd = h // COMMON["num_attention_heads"]
    kv = COMMON["num_key_value_heads"] * hd
    per_layer = h * h + 2 * h * kv + h * h + 3 * h * i + 2 * h  # q, k, v, o, gate/up/down, two RMSNorms
    expected = v * h + n_layers * per_layer + h + v * h  # embeddings, layers, final norm, untied LM head
    assert count_parameters(model) == expected == 295_776
    assert weight_bytes(model) >= 4 * expected


def test_macs_follow_layer_widths():
    model = tiny_model("llama")
    h, i, n = 96, 128, 4
    m = macs_per_token(model, context=64)
    assert m["linear"] == n * (h * (96 + 2 * 32) + 96 * h + 3 * h * i) + 256 * h
    assert m["attention"] == n * 2 * 96 * 64 and m["total"] == m["linear"] + m["attention"]
    # Halving one layer's MLP removes exactly its share of MACs.
    mlp = model.model.layers[0].mlp
    keep = torch.arange(64)
    for name in ("gate_proj", "up_proj"):
        lin = getattr(mlp, name)
        new = torch.nn.Linear(h, 64, bias=False)
        new.weight.data = lin.weight.data[keep]
        setattr(mlp, name, new)
    down = torch.nn.Linear(64, h, bias=False)
    down.weight.data = mlp.down_proj.weight.data[:, keep]
    mlp.down_proj = down
    assert macs_per_token(model, 64)["linear"] == m["linear"] - 3 * h * 64


def test_measure_two_models_side_by_side():
    tok = char_tokenizer()
    result = measure({"a": (tiny_model("llama"), tok), "b": (tiny_model("qwen2", seed=1), tok)},
                     TimingProtocol(context=16, decode_steps=3, warmup=1, repeats=2), max_new_tokens=4,
                     progress=False)
    a, b = result["models"]["a"], result["models"]["b"]
    assert a["prefill_latency_s"] > 0 and a["decode_tokens_per_s"] > 0 and len(a["prefill_latency_all_s"]) == 2
    assert a["samples"][0]["prompt"].startswith("The universe is the entirety of space")
    assert a["peak_memory"]["bytes"] >= a["weight_bytes"] and a["peak_memory"]["method"]
    r = result["ratios"]["b"]
    assert r["vs"] == "a" and r["parameters"] == pytest.approx(b["parameters"] / a["parameters"])
    assert r["prefill_speedup"] == pytest.approx(a["prefill_latency_s"] / b["prefill_latency_s"])
    assert result["protocol"]["context"] == 16 and len(a["layers"]) == 4


def test_stats_command_writes_json(tmp_path, capsys):
    paths = []
    for seed in (0, 1):
        p = tmp_path / f"m{seed}"
        tiny_model("llama", seed=seed).save_pretrained(p)
        char_tokenizer().save_pretrained(p)
        paths.append(str(p))
    out = tmp_path / "stats.json"
    code = main(["stats", "--model", paths[0], "--model2", paths[1], "--out", str(out), "--repeats", "2",
                 "--decode-steps", "2", "--max-new-tokens", "3", "--context", "8", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["command"] == "stats" and set(data["models"]) == set(paths)
    assert data["models"][paths[0]]["parameters"] == 295_776 and paths[1] in data["ratios"]
    assert "prefill speed-up" in capsys.readouterr().out
    code = main(["stats", "--model", paths[0], "--repeats", "0", "--out", str(out)])
    assert code == 2
