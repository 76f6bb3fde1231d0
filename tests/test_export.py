"""GGUF export on tiny random models of every supported family: llama.cpp computes what
transformers computes, uniform or per-layer widths, with or without compensation biases."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
from gguf.vocab import bytes_to_unicode
import pytest
import torch

import adapruner  # noqa: F401  (registers the pruned model types)
from conftest import need_llama_cpp
from adapruner.cli import main
from adapruner.core.structure import LinearUpdate, PruningPlan
from adapruner.errors import AdaprunerError
from adapruner.export import export_gguf
from adapruner.export.gguf import FAMILIES, _permute
from adapruner.pruning.save import save_pruned
from adapruner.pruning.surgery import prune_model
from test_bad_input import one_line_error
from test_engine_save import prune_middle, uniform_plan
from tiny import tiny_batch, tiny_model

EXPORTED = ("llama", "mistral", "qwen2")


def tiny_tokenizer_gguf(path: Path, n_vocab: int = 256) -> Path:
    """A GGUF holding only a byte-level BPE tokenizer of ``n_vocab`` tokens (the tiny models'
    character tokenizer has no GGUF form; comparisons run on token ids anyway)."""
    byte_chars = list(bytes_to_unicode().values())
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tokens = specials + [c for c in byte_chars if c not in "ab"][: n_vocab - len(specials) - 3] + ["a", "b", "ab"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL] * 4 + [gguf.TokenType.NORMAL] * (n_vocab - 4))
    w.add_token_merges(["a b"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tokenizer_gguf(tmp_path_factory) -> Path:
    return tiny_tokenizer_gguf(tmp_path_factory.mktemp("tok") / "tokenizer.gguf")


def biased_plan(model) -> PruningPlan:
    """Per-layer widths (layers 1-2 pruned differently) plus compensation biases on layer 1."""
    plan = uniform_plan()
    plan.layers = {1: plan.layers[1], 2: uniform_plan(1, 32).layers[2]}
    g = torch.Generator().manual_seed(1)
    h = model.config.hidden_size
    plan.updates = {1: {"self_attn.o_proj": LinearUpdate(bias=torch.randn(h, generator=g) * 0.1),
                        "mlp.down_proj": LinearUpdate(bias=torch.randn(h, generator=g) * 0.1)}}
    return plan


def build(family: str, layout: str):
    if layout == "uniform":
        return prune_model(tiny_model(family), uniform_plan())
    if layout == "per-layer":
        return prune_middle(family)
    model = tiny_model(family)
    return prune_model(model, biased_plan(model))


def hf_nll(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(x).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()


def hf_greedy(model, ids: list[int], n: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, min_new_tokens=n)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("layout", ["uniform", "per-layer", "biases"])
@pytest.mark.parametrize("family", EXPORTED)
def test_llama_cpp_matches_transformers(family, layout, tokenizer_gguf, tmp_path):
    need_llama_cpp()
    from adapruner.export.llamacpp import greedy, mean_nll, open_gguf

    model = build(family, layout)
    model.generation_config.eos_token_id = None  # compare full-length continuations
    ckpt = save_pruned(model, None, tmp_path / "model", {})
    x = tiny_batch(4, 32)
    expected = hf_nll(model, x)
    prompts = [row[:8].tolist() for row in x[:3]]
    for outtype, tol in (("f32", 0.005), ("q8_0", 0.03)):
        result = export_gguf(ckpt, tmp_path / f"m-{outtype}.gguf", outtype=outtype, tokenizer_from=tokenizer_gguf)
        # qwen2's own architecture cannot hold pruned heads (see GGUFMapping.full_width_q)
        own = layout == "uniform" and not FAMILIES[family].full_width_q
        assert result.arch == (FAMILIES[family].arch if own else "deci")
        with open_gguf(result.path, n_ctx=64, f32_cache=outtype == "f32") as llm:
            got = mean_nll(llm, [row.tolist() for row in x])
            assert abs(got - expected) / expected < tol, (outtype, got, expected)
            if outtype == "f32":
                for ids in prompts:
                    assert greedy(llm, ids, 12) == hf_greedy(model, ids, 12)


def test_uniform_models_go_to_deci_where_the_family_arch_cannot_hold_them(tokenizer_gguf, tmp_path):
    model = tiny_model("qwen2")
    plan = uniform_plan(3, 64)  # all heads kept, MLP halved: fits qwen2's own architecture
    ckpt = save_pruned(prune_model(model, plan), None, tmp_path / "model0", {})
    assert export_gguf(ckpt, tmp_path / "m0.gguf", tokenizer_from=tokenizer_gguf).arch == "qwen2"
    model = tiny_model("qwen2")
    plan.updates = {i: {"mlp.down_proj": LinearUpdate(bias=torch.full((96,), 0.01))} for i in range(4)}
    ckpt = save_pruned(prune_model(model, plan), None, tmp_path / "model", {})
    assert export_gguf(ckpt, tmp_path / "m.gguf", tokenizer_from=tokenizer_gguf).arch == "deci"
    model = tiny_model("llama")
    plan.updates = {i: {"mlp.down_proj": LinearUpdate(bias=torch.full((96,), 0.01))} for i in range(4)}
    ckpt = save_pruned(prune_model(model, plan), None, tmp_path / "model2", {})
    assert export_gguf(ckpt, tmp_path / "m2.gguf", tokenizer_from=tokenizer_gguf).arch == "llama"


def test_written_metadata_records_per_layer_widths(tokenizer_gguf, tmp_path):
    model = prune_middle("llama")
    ckpt = save_pruned(model, None, tmp_path / "model", {})
    widths = json.loads((ckpt / "config.json").read_text())["layer_widths"]
    path = export_gguf(ckpt, tmp_path / "m.gguf", tokenizer_from=tokenizer_gguf).path
    fields = gguf.GGUFReader(str(path)).fields
    assert fields["general.architecture"].contents() == "deci"
    assert fields["deci.attention.head_count"].contents() == [w["num_attention_heads"] for w in widths]
    assert fields["deci.attention.head_count_kv"].contents() == [w["num_key_value_heads"] for w in widths]
    assert fields["deci.feed_forward_length"].contents() == [w["intermediate_size"] for w in widths]
    assert fields["deci.attention.key_length"].contents() == 16
    assert len(fields["tokenizer.ggml.tokens"].data) == 256


def test_rope_permutation_interleaves_the_halves_of_each_head():
    t = torch.arange(8.0).reshape(8, 1)  # two heads of dim 4: halves [0,1|2,3], [4,5|6,7]
    assert _permute(t, 4).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_bad_input_is_one_line_and_writes_nothing(tiny_llama_dir, tokenizer_gguf, tmp_path, capsys):
    out = tmp_path / "x.gguf"
    one_line_error(capsys, ["export", "--model", str(tmp_path), "--out", str(out)], "not a Hugging Face checkpoint")
    qwen3 = save_pruned(prune_middle("qwen3"), None, tmp_path / "qwen3", {})
    one_line_error(capsys, ["export", "--model", str(qwen3), "--out", str(out)], "cannot export a 'qwen3'")
    with pytest.raises(SystemExit):
        main(["export", "--model", str(tiny_llama_dir), "--out", str(out), "--outtype", "q4_k"])
    with pytest.raises(AdaprunerError, match="unknown --outtype"):
        export_gguf(tiny_llama_dir, out, outtype="q4_k")
    one_line_error(capsys, ["export", "--model", str(tiny_llama_dir), "--out", str(out),
                            "--tokenizer-from", str(tmp_path / "missing.gguf")], "does not exist")
    # a tokenizer of another size is not this model's tokenizer
    small = tiny_tokenizer_gguf(tmp_path / "small.gguf", n_vocab=128)
    one_line_error(capsys, ["export", "--model", str(tiny_llama_dir), "--out", str(out),
                            "--tokenizer-from", str(small)], "has 128 tokens")
    # the character tokenizer of the tiny checkpoint has no GGUF form
    one_line_error(capsys, ["export", "--model", str(tiny_llama_dir), "--out", str(out)], "cannot convert a 'WordLevel'")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".gguf") or ".tmp-" in p.name) == \
        ["small.gguf"]
    out.write_bytes(b"mine")
    one_line_error(capsys, ["export", "--model", str(tiny_llama_dir), "--out", str(out),
                            "--tokenizer-from", str(tokenizer_gguf)], "already exists")
    assert out.read_bytes() == b"mine"
    assert main(["export", "--model", str(tiny_llama_dir), "--out", str(out), "--tokenizer-from", str(tokenizer_gguf),
                 "--overwrite"]) == 0
    assert out.read_bytes()[:4] == b"GGUF"


@pytest.mark.parametrize("rope", [{"rope_type": "linear", "factor": 2.0},
                                  {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64}])
def test_rope_scaling_is_carried_over(rope, tokenizer_gguf, tmp_path):
    """Linear and Llama-3 rope scaling give llama.cpp the positions transformers uses (logits
    compared directly: a random model's mean NLL hardly depends on positions, its logits do; without
    the scaling they differ by ~1.6 here)."""
    need_llama_cpp()
    import transformers as T

    from adapruner.export.llamacpp import logits, open_gguf
    from tiny import COMMON

    torch.manual_seed(0)
    config = T.LlamaConfig(**COMMON, rope_parameters={"rope_theta": 10000.0, **rope})
    config._attn_implementation = "eager"
    model = T.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    ckpt = save_pruned(prune_model(model, uniform_plan()), None, tmp_path / "model", {})
    x = tiny_batch(1, 128)
    result = export_gguf(ckpt, tmp_path / "m.gguf", tokenizer_from=tokenizer_gguf)
    with open_gguf(result.path, n_ctx=128, f32_cache=True) as llm:
        got = logits(llm, x[0].tolist())
    with torch.no_grad():
        expected = model(x).logits[0].numpy()
    assert abs(got - expected).max() < 1e-3
