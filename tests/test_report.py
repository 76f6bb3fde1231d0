"""The run report: tolerant of which files exist, tables and plots from every kind of output."""

from __future__ import annotations

import csv
import json

import pytest

from adapruner.cli import main
from adapruner.errors import AdaprunerError
from adapruner.report import collect_run, write_report


def _zeroshot(avg: float) -> dict:
    return {"piqa": {"acc": avg - 0.01, "acc_norm": avg, "average_metric": "acc_norm", "n": 10},
            "boolq": {"acc": avg, "acc_norm": None, "average_metric": "acc", "n": 10},
            "average": {"value": avg, "metric": "...", "tasks": ["piqa", "boolq"]},
            "protocol": {"lm_eval_version": "0.4.13", "limit": 10, "num_fewshot": 0}}


@pytest.fixture()
def runs(tmp_path):
    dense = tmp_path / "dense"
    dense.mkdir()
    (dense / "eval.json").write_text(json.dumps({
        "command": "eval", "parameters": 1000,
        "perplexity": [{"dataset": "wikitext2", "split": "test", "seq_len": 128, "ppl": 20.0},
                       {"dataset": "ptb", "split": "test", "seq_len": 128, "ppl": 30.0}],
        "zeroshot": _zeroshot(0.6)}))
    pruned = tmp_path / "pruned"
    (pruned / "model").mkdir(parents=True)
    plan = {str(i): {"kept_heads": list(range(6 - i)), "kept_kv": [0, 1, 2][: max(1, 3 - i)],
                     "kept_channels": list(range(100 - 10 * i))} for i in range(3)}
    (pruned / "model" / "pruning_report.json").write_text(json.dumps({"plan": plan, "parameters_after": 800}))
    (pruned / "model" / "config.json").write_text("{}")
    (pruned / "eval.json").write_text(json.dumps({"perplexity": [{"dataset": "wikitext2", "seq_len": 128, "ppl": 25.0}],
                                                  "zeroshot": _zeroshot(0.55)}))
    with (pruned / "trials.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["number", "state", "value"])
        w.writeheader()
        for n, v in enumerate([40, 35, 37, 30, float("nan")]):
            w.writerow({"number": n, "state": "COMPLETE" if v == v else "FAIL", "value": v if v == v else ""})
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / "finetune_report.json").write_text(json.dumps({"method": "lora", "steps": 5, "val_loss_before": 2.5,
                                                           "val_loss_after": 2.1, "seconds": 12}))
    (tuned / "stats.json").write_text(json.dumps({
        "command": "stats", "protocol": {"context": 64},
        "models": {n: {"parameters": p, "macs_per_token": {"total": 2 * p}, "peak_memory": {"bytes": 4 * p},
                       "prefill_latency_s": lat, "decode_tokens_per_s": 10 / lat, "layers": [],
                       "samples": [{"prompt": "The universe is", "continuation": " big."}]}
                   for n, p, lat in (("dense", 1000, 0.02), ("pruned", 800, 0.015))},
        "ratios": {"pruned": {"vs": "dense", "parameters": 0.8, "macs_per_token": 0.8, "prefill_speedup": 1.33,
                              "decode_speedup": 1.33, "peak_memory": 0.8, "weight_bytes": 0.8}}}))
    return dense, pruned, tuned


def test_collect_reads_every_kind(runs):
    dense, pruned, tuned = runs
    d = collect_run(dense)
    assert d.ppl == {"wikitext2": 20.0, "ptb": 30.0} and d.zeroshot == {"piqa": 0.6, "boolq": 0.6}
    assert d.zeroshot_limit == 10 and d.parameters == 1000
    p = collect_run(pruned)
    assert p.parameters == 800 and [w["heads"] for w in p.layer_widths] == [6, 5, 4]
    assert [t["value"] for t in p.trials] == [40, 35, 37, 30]  # the failed trial is left out
    t = collect_run(tuned)
    assert t.finetune["val_loss_after"] == 2.1 and t.stats["ratios"]["pruned"]["prefill_speedup"] == 1.33


def test_report_markdown_and_plots(runs, tmp_path):
    out = write_report(list(runs), tmp_path / "rep" / "report.md")
    text = out.read_text()
    for section in ("## Perplexity", "## Zero-shot accuracy", "## Recovery fine-tuning", "## Deployment statistics",
                    "## Per-layer kept widths", "## Search convergence", "## Sample generations"):
        assert section in text
    assert "25.00 (+5.00)" in text and "55.00 (-5.00)" in text  # deltas vs the first (dense) run
    assert "prefill speed-up 1.33x" in text
    for png in ("widths.png", "ppl.png", "accuracy.png", "convergence.png"):
        assert (tmp_path / "rep" / "report_plots" / png).stat().st_size > 1000


def test_report_tolerates_partial_runs_and_rejects_empty(runs, tmp_path, capsys):
    dense, _, tuned = runs
    assert main(["report", str(tuned), "--out", str(tmp_path / "only_tuned.md")]) == 0
    assert "## Perplexity" not in (tmp_path / "only_tuned.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdaprunerError, match="holds no adapruner output"):
        collect_run(empty)
    assert main(["report", str(dense), str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
