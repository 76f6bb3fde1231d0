"""What a user finds after a prune: the model card, the summary, file permissions, and loading
exactly the way the card says (plain checkpoints plainly, the others only with adapruner or
``trust_remote_code``)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from adapruner.cli import main


@pytest.fixture(scope="module")
def checkpoint(tiny_llama_dir) -> Path:
    return tiny_llama_dir


def _prune(checkpoint: Path, out: Path, *extra: str) -> None:
    assert main(["prune", "--model", str(checkpoint), "--ratio", "0.2", "--metric", "l2", "--layers", "0:4",
                 "--out", str(out), "--device", "cpu", *extra]) == 0


def _load(directory: Path, how: str) -> subprocess.CompletedProcess:
    code = {"plain": "from transformers import AutoModelForCausalLM as A; A.from_pretrained({d!r})",
            "adapruner": "import adapruner; from transformers import AutoModelForCausalLM as A; A.from_pretrained({d!r})",
            "remote": "from transformers import AutoModelForCausalLM as A; A.from_pretrained({d!r}, trust_remote_code=True)"}
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code[how].format(d=str(directory))], capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)


def test_prune_writes_a_model_card_and_ordinary_permissions(checkpoint, tmp_path, capsys):
    out = tmp_path / "uniform"
    _prune(checkpoint, out, "--round-to", "4")
    printed = capsys.readouterr().out
    assert "of the non-embedding ones" in printed and "of the pruned layers'" in printed
    assert "  layer" in printed  # per-layer widths, as ranges of equal layers
    card = (out / "model" / "README.md").read_text()
    assert "## How to load it" in card and "## Widths" in card and "`l2`" in card
    files = [f for f in out.rglob("*") if f.is_file()]
    assert {"pruning_report.json", "model/model.safetensors", "model/pruning_report.json"} <= \
        {str(f.relative_to(out)) for f in files}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    report = json.loads((out / "pruning_report.json").read_text())
    assert set(report["budget"]["removed_fraction"]) == {"total", "non_embedding", "in_layers"}
    assert report["budget"]["removed_fraction"]["in_layers"] > report["budget"]["removed_fraction"]["total"]


@pytest.mark.parametrize("mode", ["uniform", "global"])
def test_a_checkpoint_loads_exactly_as_its_card_says(checkpoint, tmp_path, mode):
    out = tmp_path / mode
    _prune(checkpoint, out, "--mode", mode, "--round-to", "32")
    flavour = json.loads((out / "pruning_report.json").read_text())["checkpoint"]["flavour"]
    card = (out / "model" / "README.md").read_text()
    out = out / "model"
    if flavour == "plain":
        assert "A plain transformers checkpoint" in card
        assert _load(out, "plain").returncode == 0
    else:
        assert "A plain `from_pretrained(DIR)` without either fails" in card
        assert _load(out, "plain").returncode != 0
        assert _load(out, "adapruner").returncode == 0
        assert _load(out, "remote").returncode == 0
    if mode == "global":
        assert flavour == "adapruner_pruned"


def test_one_layout_and_eval_outputs_that_never_replace_another_models(checkpoint, tmp_path, data_dir, capsys,
                                                                       monkeypatch):
    """prune and finetune write run directories like search (model in OUT/model, reports beside);
    --model OUT reads the model in it; eval's default output is named after the model."""
    run = tmp_path / "run"
    _prune(checkpoint, run, "--round-to", "4")
    assert (run / "model" / "config.json").is_file() and (run / "pruning_report.json").is_file()
    assert not (run / "config.json").exists()
    tuned = tmp_path / "tuned"
    assert main(["finetune", "--model", str(run), "--data", str(data_dir / "alpaca" / "alpaca_first200.json"),
                 "--out", str(tuned), "--max-steps", "1", "--batch-size", "2", "--micro-batch-size", "2",
                 "--val-size", "2", "--cutoff", "64", "--device", "cpu"]) == 0
    assert {p.name for p in tuned.iterdir()} >= {"model", "pruning_report.json", "finetune_report.json"}

    text = tmp_path / "text.txt"
    text.write_text("hello world, this is a small text to score.\n" * 40)
    monkeypatch.chdir(tmp_path)
    common = ["--ppl", str(text), "--seq-len", "16", "--max-windows", "2", "--device", "cpu"]
    assert main(["eval", "--model", str(run), *common]) == 0  # the run directory: its model
    assert (run / "eval_results.json").is_file()
    assert main(["eval", "--model", str(checkpoint), *common]) == 0
    assert (checkpoint / "eval_results.json").is_file()
    first = json.loads((run / "eval_results.json").read_text())
    assert first["model_id"] == str((run / "model").resolve())
    # another model's result is never replaced without --overwrite; the same model's is (a re-run)
    capsys.readouterr()
    assert main(["eval", "--model", str(checkpoint), *common, "--out", str(run / "eval_results.json")]) == 2
    assert "already holds results of" in capsys.readouterr().err
    assert json.loads((run / "eval_results.json").read_text()) == first
    assert main(["eval", "--model", str(run / "model"), *common]) == 0
    assert main(["eval", "--model", str(checkpoint), *common, "--out", str(run / "eval_results.json"),
                 "--overwrite"]) == 0
    (checkpoint / "eval_results.json").unlink()  # the shared fixture directory stays as it was
