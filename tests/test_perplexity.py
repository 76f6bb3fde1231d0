"""Perplexity: windows follow the LLM-Pruner protocol and the number equals a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from adapruner.data.corpora import load_ptb
from adapruner.errors import AdaprunerError
from adapruner.eval.perplexity import (check_seq_len, corpus_windows, evaluate_corpus, perplexity)
from tiny import tiny_batch, tiny_model
from tiny_tokenizer import char_tokenizer


def hand_perplexity(model, windows: torch.Tensor) -> float:
    """exp(mean NLL), each next-token prediction computed from its own prefix in float64."""
    total, count = 0.0, 0
    with torch.no_grad():
        for w in windows:
            for t in range(1, len(w)):
                logits = model(input_ids=w[:t].unsqueeze(0)).logits[0, -1].double()
                total -= torch.log_softmax(logits, dim=-1)[w[t]].item()
                count += 1
    return math.exp(total / count)


def test_perplexity_equals_hand_computed_reference():
    model = tiny_model("llama")
    windows = tiny_batch(n=5, length=12)
    result = perplexity(model, windows, batch_size=2, progress=False)
    assert result.n_windows == 5
    assert result.n_tokens == 5 * 11  # every window predicts all but its first token
    assert result.ppl == pytest.approx(hand_perplexity(model, windows), rel=1e-5)
    assert result.mean_nll == pytest.approx(math.log(result.ppl))


@pytest.mark.parametrize("family", ["qwen3", "gemma2"])
def test_perplexity_other_families_and_batching(family):
    model = tiny_model(family)
    windows = tiny_batch(n=4, length=10, seed=3)
    one = perplexity(model, windows, batch_size=1, progress=False)
    many = perplexity(model, windows, batch_size=8, progress=False)
    assert one.ppl == pytest.approx(many.ppl, rel=1e-5)
    assert one.ppl == pytest.approx(hand_perplexity(model, windows), rel=1e-5)


def test_windows_are_consecutive_non_overlapping_chunks_without_bos():
    tok = char_tokenizer(add_bos=False)
    rows = ["first row", "", "second row that is a bit longer", "third"]
    windows = corpus_windows(tok, rows, seq_len=8, join="\n\n")
    ids = tok("\n\n".join(rows), add_special_tokens=False).input_ids
    assert windows.shape == (len(ids) // 8, 8)
    assert windows.flatten().tolist() == ids[: windows.numel()]  # tail dropped, nothing repeated


def test_windows_start_with_bos_when_the_tokenizer_prepends_it():
    tok = char_tokenizer(add_bos=True)
    rows = ["a" * 10, "b" * 20]
    windows = corpus_windows(tok, rows, seq_len=6, join=" ")
    ids = tok(" ".join(rows), add_special_tokens=False).input_ids
    assert (windows[:, 0] == tok.bos_token_id).all()
    assert windows.shape == (len(ids) // 5, 6)
    assert windows[:, 1:].flatten().tolist() == ids[: len(windows) * 5]


def test_join_string_is_used_and_max_windows_keeps_the_first():
    tok = char_tokenizer()
    rows = ["x" * 30, "y" * 30]
    spaced = corpus_windows(tok, rows, seq_len=4, join=" ")
    newlines = corpus_windows(tok, rows, seq_len=4, join="\n\n")
    assert len(newlines) == (62 // 4) and len(spaced) == (61 // 4)
    for n in (1, 3, 15):
        assert torch.equal(corpus_windows(tok, rows, seq_len=4, join=" ", max_windows=n), spaced[:n])
    assert len(corpus_windows(tok, rows, seq_len=4, join=" ", max_windows=100)) == len(spaced)


def test_bad_windows_inputs_are_one_line_errors():
    tok = char_tokenizer()
    model = tiny_model("llama")  # max_position_embeddings = 256
    for call, fragment in [
        (lambda: corpus_windows(tok, ["", " "], seq_len=4), "empty"),
        (lambda: corpus_windows(tok, ["abc"], seq_len=8), "fewer than one window"),
        (lambda: corpus_windows(tok, ["abcdefgh"], seq_len=1), "at least 2"),
        (lambda: corpus_windows(tok, ["abcdefgh"], seq_len=4, max_windows=0), "--max-windows"),
        (lambda: check_seq_len(model, 1), "at least 2"),
        (lambda: check_seq_len(model, 257), "exceeds the model's context of 256"),
        (lambda: perplexity(model, torch.zeros(0, 8, dtype=torch.long)), "non-empty"),
    ]:
        with pytest.raises(AdaprunerError, match=fragment) as info:
            call()
        assert "\n" not in str(info.value)


def test_evaluate_corpus_records_the_protocol(data_dir):
    model = tiny_model("llama")
    tok = char_tokenizer()
    r = evaluate_corpus(model, tok, "ptb", data_dir, seq_len=32, max_windows=3, batch_size=2, progress=False)
    assert r["n_windows"] == 3 and r["n_tokens"] == 3 * 31
    p = r["protocol"]
    assert p["dataset"] == "ptb" and p["split"] == "test" and p["seq_len"] == 32
    assert p["join"] == "\n\n" and p["max_windows"] == 3 and p["rows"] == 3761
    assert "no BOS" in p["bos_handling"] and p["dtype"] == "float32"
    assert {"torch", "transformers", "adapruner"} <= set(p["versions"])
    windows = corpus_windows(tok, load_ptb(data_dir), 32, max_windows=3)
    assert r["ppl"] == pytest.approx(perplexity(model, windows, progress=False).ppl)


@pytest.mark.slow
def test_smollm2_perplexity_is_that_of_a_trained_model(data_dir):
    from adapruner.models.load import load_model

    loaded = load_model("smollm2-135m", device="cpu")
    r = evaluate_corpus(loaded.model, loaded.tokenizer, "wikitext2", data_dir, seq_len=128, max_windows=8,
                        progress=False)
    assert r["n_windows"] == 8 and r["n_tokens"] == 8 * 127
    # A random 49k-vocabulary model scores ~49,000; a trained small LM scores tens.
    assert 5 < r["ppl"] < 150
    # Quick runs tokenize only a prefix of the corpus; their windows are the full run's first windows.
    from adapruner.data.corpora import load_ptb

    rows = load_ptb(data_dir)
    full = corpus_windows(loaded.tokenizer, rows, 128)
    assert torch.equal(corpus_windows(loaded.tokenizer, rows, 128, max_windows=20), full[:20])
