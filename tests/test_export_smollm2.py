"""GGUF export of the real SmolLM2-135M, pruned 20 % with uniform and with per-layer (global)
allocation, run in llama.cpp and compared with transformers on the same token ids: the same
greedy continuations and the same WikiText-2 NLL (f32 within 0.5 %, q8_0 within 3 %)."""

from __future__ import annotations

import json

import gguf
import pytest
import torch
import transformers as T

import adapruner  # noqa: F401  (registers the pruned model types)
from conftest import need_llama_cpp
from adapruner.cli import main
from adapruner.data.corpora import load_wikitext2
from adapruner.data.tokens import cut_windows, encode, leading_bos
from adapruner.export import export_gguf
from adapruner.export.gguf import resolve_checkpoint
from adapruner.export.vocab import convert_tokenizer
from adapruner.models.aliases import alias_gguf_path

pytestmark = pytest.mark.slow
SEQ_LEN, N_WINDOWS, N_PROMPTS, N_NEW = 128, 16, 5, 32


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, data_dir) -> dict:
    """Two 20 % models: uniform with equal widths (a plain Llama) and FLAP + bias, global (per-layer)."""
    root = tmp_path_factory.mktemp("export")
    common = ["--model", "smollm2-135m", "--ratio", "0.2", "--seed", "0", "--device", "cpu", "--data-dir", str(data_dir)]
    assert main(["prune", *common, "--metric", "l2", "--layers", "0:30", "--allocation-option", "equal=true",
                 "--out", str(root / "uniform")]) == 0
    assert main(["prune", *common, "--metric", "flap", "--update", "bias", "--mode", "global",
                 "--out", str(root / "global")]) == 0
    return {"uniform": root / "uniform" / "model", "global": root / "global" / "model", "root": root}


@pytest.fixture(scope="module")
def windows(pruned, data_dir) -> torch.Tensor:
    tok = T.AutoTokenizer.from_pretrained(pruned["uniform"])
    ids = encode(tok, "\n\n".join(load_wikitext2(data_dir, "test")[:400]))
    return cut_windows(ids, SEQ_LEN, leading_bos(tok))[:N_WINDOWS]


def transformers_reference(directory, windows: torch.Tensor) -> tuple[float, list[list[int]]]:
    model = T.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        logits = torch.cat([model(w[None]).logits for w in windows])[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
        continuations = [model.generate(w[None, :16], max_new_tokens=N_NEW, min_new_tokens=N_NEW,
                                        do_sample=False)[0, 16:].tolist() for w in windows[:N_PROMPTS]]
    return nll.item(), continuations


@pytest.mark.parametrize("kind, arch", [("uniform", "llama"), ("global", "deci")])
def test_llama_cpp_runs_the_pruned_model_as_transformers_does(pruned, windows, kind, arch):
    need_llama_cpp()
    from adapruner.export.llamacpp import greedy, mean_nll, open_gguf

    ckpt = pruned[kind]
    widths = json.loads((ckpt / "config.json").read_text())["layer_widths"]
    assert (len({json.dumps(w, sort_keys=True) for w in widths}) == 1) == (kind == "uniform")
    expected_nll, expected_tokens = transformers_reference(ckpt, windows)
    rows = [w.tolist() for w in windows]
    for outtype, tol in (("f32", 0.005), ("q8_0", 0.03)):
        result = export_gguf(ckpt, pruned["root"] / f"{kind}-{outtype}.gguf", outtype=outtype)
        assert result.arch == arch and result.tokenizer.startswith("copied from")
        # f32 with an f32 KV cache is the exactness check; q8_0 runs as users run it (f16 cache)
        with open_gguf(result.path, n_ctx=SEQ_LEN + N_NEW, f32_cache=outtype == "f32") as llm:
            nll = mean_nll(llm, rows)
            assert abs(nll - expected_nll) / expected_nll < tol, (outtype, nll, expected_nll)
            if outtype == "f32":
                assert [greedy(llm, r[:16], N_NEW) for r in rows[:N_PROMPTS]] == expected_tokens
        result.path.unlink()


def test_tokenizer_converted_from_tokenizer_json_equals_the_bundled_gguf():
    """The conversion path (for checkpoints with no GGUF of origin) gives llama.cpp exactly the
    tokenizer that SmolLM2's own GGUF carries."""
    writer = gguf.GGUFWriter(None, "llama")
    assert convert_tokenizer(writer, resolve_checkpoint("smollm2-135m"), 49152) == "gpt2"
    ours = writer.kv_data[0]
    bundled = gguf.GGUFReader(str(alias_gguf_path("smollm2-135m"))).fields
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.chat_template"):
        assert ours[key].value == bundled[key].contents(), key
    assert ours["tokenizer.ggml.add_bos_token"].value is False  # as transformers' tokenizer: no BOS
