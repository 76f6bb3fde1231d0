"""The Python API: the documented example runs, and the API and the CLI build the same model."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import adapruner
from adapruner.cli import main

REPO = Path(__file__).resolve().parents[1]


def digest(model_dir: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(model_dir.glob("*.safetensors")))).hexdigest()


def test_the_api_and_the_cli_prune_the_same_model(tiny_llama_dir, data_dir, tmp_path):
    flags = dict(recipe="wanda-sp-reconstruct", device="cpu", data_dir=data_dir)
    result = adapruner.prune(tiny_llama_dir, 0.3, out=tmp_path / "api", **flags)
    assert main(["prune", "--model", str(tiny_llama_dir), "--ratio", "0.3", "--recipe", "wanda-sp-reconstruct",
                 "--out", str(tmp_path / "cli"), "--device", "cpu", "--data-dir", str(data_dir)]) == 0
    assert digest(result.model_dir) == digest(tmp_path / "cli" / "model")
    report = json.loads((tmp_path / "cli" / "pruning_report.json").read_text())
    assert result.report["recipe"] == report["recipe"] == "wanda-sp-reconstruct"
    assert sum(p.numel() for p in result.model.parameters()) == report["parameters_after"]
    in_memory = adapruner.prune(tiny_llama_dir, 0.3, **flags)  # no out: nothing written, the model returned
    assert in_memory.out is None and in_memory.report["parameters_after"] == report["parameters_after"]
    scores = adapruner.evaluate(result.model_dir, ppl=[str(data_dir / "ptb" / "ptb.valid.txt")], max_windows=2,
                                device="cpu", out=tmp_path / "eval.json")
    assert json.loads((tmp_path / "eval.json").read_text())["perplexity"][0]["ppl"] == \
        pytest.approx(next(iter(scores.perplexity.values())))
    with pytest.raises(adapruner.AdaprunerError, match="config and recipe"):
        adapruner.prune(tiny_llama_dir, 0.3, recipe="element1", config="x.json")


@pytest.mark.slow
def test_the_documented_example_runs(data_dir, tmp_path):
    env = {**os.environ, "ADAPRUNER_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py"), str(tmp_path / "p20")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "removed 20.0% of the parameters" in done.stdout and "WikiText-2 perplexity" in done.stdout
