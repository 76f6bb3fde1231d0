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
    card = (out / "README.md").read_text()
    assert "## How to load it" in card and "## Widths" in card and "`l2`" in card
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    report = json.loads((out / "pruning_report.json").read_text())
    assert set(report["budget"]["removed_fraction"]) == {"total", "non_embedding", "in_layers"}
    assert report["budget"]["removed_fraction"]["in_layers"] > report["budget"]["removed_fraction"]["total"]


@pytest.mark.parametrize("mode", ["uniform", "global"])
def test_a_checkpoint_loads_exactly_as_its_card_says(checkpoint, tmp_path, mode):
    out = tmp_path / mode
    _prune(checkpoint, out, "--mode", mode, "--round-to", "32")
    flavour = json.loads((out / "pruning_report.json").read_text())["checkpoint"]["flavour"]
    card = (out / "README.md").read_text()
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
