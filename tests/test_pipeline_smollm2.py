"""The whole pipeline on the real SmolLM2-135M, as a user runs it: search -> saved model ->
plain ``from_pretrained`` -> configuration transfer to another ratio -> LoRA recovery ->
evaluation -> report. Tiny budgets (3 trials, a few windows, 2 tuning steps) keep it to ~2 min
on CPU; the numbers it checks are the pipeline's contracts, not the method's quality."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import transformers as T

import adapruner  # noqa: F401  (registers the pruned model types for from_pretrained)
from adapruner.cli import main
from adapruner.allocation import count_parameters

DENSE_PARAMETERS = 134_515_008


@pytest.mark.slow
def test_search_prune_transfer_finetune_eval_report(tmp_path, data_dir, capsys):
    common = ["--device", "cpu", "--data-dir", str(data_dir)]
    run = tmp_path / "search"
    assert main(["search", "--model", "smollm2-135m", "--ratio", "0.2", "--trials", "3", "--eval-windows", "2",
                 "--out", str(run), "--seed", "0", *common]) == 0

    # The search's outputs, and a best trial that the saved model reproduces.
    best = json.loads((run / "best_config.json").read_text())
    with (run / "trials.csv").open() as f:
        trials = list(csv.DictReader(f))
    finished = [t for t in trials if t["state"] in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and (run / "convergence.png").stat().st_size > 0
    values = [float(t["value"]) for t in trials if t["state"] == "COMPLETE"]
    assert best["provenance"]["objective"] == pytest.approx(min(values))
    report = json.loads((run / "pruning_report.json").read_text())
    assert report["parameters"]["dense"] == DENSE_PARAMETERS
    assert report["parameters"]["removed_fraction"] == pytest.approx(0.2, abs=0.005)
    mean_ppl = sum(report["pruned_validation_ppl"].values()) / 2
    assert mean_ppl == pytest.approx(best["provenance"]["objective"], rel=1e-3)

    # A plain from_pretrained loads the searched model; it is the size the report says.
    model = T.AutoModelForCausalLM.from_pretrained(run / "model")
    assert count_parameters(model) == report["parameters"]["pruned"]
    tok = T.AutoTokenizer.from_pretrained(run / "model")
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()

    # Transfer: the found configuration applied at another ratio without searching.
    transferred = tmp_path / "pruned30"
    assert main(["prune", "--model", "smollm2-135m", "--ratio", "0.3", "--config", str(run / "best_config.json"),
                 "--out", str(transferred), *common]) == 0
    t_report = json.loads((transferred / "pruning_report.json").read_text())
    assert t_report["ratio_achieved"] == pytest.approx(0.3, abs=0.005)
    assert t_report["config"]["calibration"]["indices"] == best["config"]["calibration"]["indices"]
    assert t_report["config"]["metric"] == best["config"]["metric"]

    # Recovery, then evaluation of the recovered model.
    tuned = tmp_path / "tuned"
    assert main(["finetune", "--model", str(run / "model"), "--data",
                 str(data_dir / "alpaca" / "alpaca_first200.json"), "--max-steps", "2", "--batch-size", "2",
                 "--micro-batch-size", "2", "--cutoff", "64", "--val-size", "4", "--out", str(tuned),
                 "--device", "cpu"]) == 0
    assert count_parameters(T.AutoModelForCausalLM.from_pretrained(tuned / "model")) == report["parameters"]["pruned"]
    evaluation = tmp_path / "eval.json"
    assert main(["eval", "--model", str(tuned), "--ppl", "wikitext2", "--max-windows", "2", "--tasks", "boolq",
                 "--limit", "4", "--out", str(evaluation), *common]) == 0
    result = json.loads(evaluation.read_text())
    assert 1 < result["perplexity"][0]["ppl"] < 10_000
    assert 0 <= result["zeroshot"]["boolq"]["acc"] <= 1

    # One report over the runs.
    md = tmp_path / "report.md"
    assert main(["report", "--out", str(md), str(run), str(tuned)]) == 0
    assert md.stat().st_size > 0
    capsys.readouterr()
