"""Search objectives: the KL divergence is exact with the whole vocabulary and a close lower
bound with its top K, zero for the dense model; ``search --objective kl`` and ``mix`` run, record
their protocol and reproduce their best trial; perplexity stays the default; held-back book
windows are never calibration windows; finalists are re-scored on the zero-shot proxy once."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
import torch.nn.functional as F
from tiny import tiny_batch, tiny_model

from adapruner.cli import main
from adapruner.config import PruneConfig
from adapruner.objectives import OBJECTIVES
from adapruner.objectives.kl import dense_reference, kl_sum
from adapruner.search.objective import Measure, Objective


def exact_kl(p_logits, q_logits):
    logp, logq = (torch.log_softmax(x[:, :-1].float(), -1) for x in (p_logits, q_logits))
    return F.kl_div(logq, logp, log_target=True, reduction="sum")


def test_kl_is_exact_with_the_vocabulary_and_a_close_lower_bound_with_its_top_k():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 9, 300, generator=g) * 3
    q = p + torch.randn(2, 9, 300, generator=g)
    exact = exact_kl(p, q)
    assert kl_sum(q[:, :-1], dense_reference(p, 0)) == pytest.approx(float(exact), rel=1e-5)
    bounds = [float(kl_sum(q[:, :-1], dense_reference(p, k))) for k in (8, 64, 256)]
    assert all(b <= float(exact) + 1e-4 for b in bounds) and bounds == sorted(bounds)
    assert bounds[-1] == pytest.approx(float(exact), rel=0.05)
    assert float(kl_sum(p[:, :-1], dense_reference(p, 64))) == pytest.approx(0, abs=1e-4)


def test_the_kl_objective_is_zero_for_the_dense_model_and_positive_once_pruned():
    model = tiny_model("llama")
    pool, windows = tiny_batch(12, 24, seed=3), {"wikitext2": tiny_batch(4, 24, seed=4)}
    objective = Objective(model, pool, windows, 0.3, batch_size=2, measure=Measure("kl", {"top_k": 0}))
    config = PruneConfig.from_json({"metric": {"name": "l2"}, "calibration": {"seq_len": 24, "num_samples": 4,
                                                                               "indices": [0, 1, 2, 3]}})
    result = objective(config)
    assert result.value > 0.01 and set(result.parts) == set(result.ppl) == {"wikitext2"}
    assert result.ppl["wikitext2"] != pytest.approx(objective.dense_ppl["wikitext2"], rel=1e-3)
    assert objective.evaluator.evaluate()[0]["wikitext2"] == pytest.approx(0, abs=1e-5)  # masks gone: dense
    with pytest.raises(Exception, match="has no option"):
        Measure("kl", {"k": 5}).resolved()
    assert OBJECTIVES.names()[:2] == ("ppl", "kl")


def tiny_search(model, data_dir, out, trials: int, windows: int, *extra: str) -> list[str]:
    """The argument vector of a small search of the tiny model (4 calibration samples)."""
    space = out.parent / "space.yaml"
    space.write_text("num_samples: 4\n")
    return ["search", "--model", str(model), "--ratio", "0.2", "--trials", str(trials), "--out", str(out),
            "--data-dir", str(data_dir), "--eval-windows", str(windows), "--device", "cpu", "--space", str(space),
            *extra]


def test_search_with_the_kl_objective(tiny_llama_dir, data_dir, tmp_path):
    from adapruner.search.storage import default_storage

    out = tmp_path / "kl"
    assert main(tiny_search(tiny_llama_dir, data_dir, out, 3, 4, "--objective", "kl",
                            "--objective-option", "top_k=64")) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["protocol"]["objective_name"] == "kl" and report["protocol"]["objective_options"] == {"top_k": 64}
    assert report["reproduction"]["reproduced"] and set(report["pruned_objective"]) == {"wikitext2", "ptb"}
    trials = optuna.load_study(study_name="adapruner-tpe", storage=default_storage(out)).trials
    assert all(0 < t.value < 20 and set(t.user_attrs["objective_parts"]) == {"wikitext2", "ptb"} for t in trials)
    # Another objective is another study: the same output with the paper's objective is refused.
    assert main(tiny_search(tiny_llama_dir, data_dir, out, 3, 4)) == 2


def test_held_back_book_windows_are_never_calibration_windows(tiny_llama_dir, data_dir):
    from adapruner.data.books import held_back_windows, load_pool
    from adapruner.models.load import load_model

    tokenizer = load_model(str(tiny_llama_dir), device="cpu").tokenizer
    held = held_back_windows(tokenizer, data_dir, 32)
    pool = load_pool(tokenizer, data_dir, 32).ids
    assert held.shape[1] == 32 and len(held) > 100
    # every pool window is a paragraph's first tokens; a held-back one is its second window
    assert not set(map(tuple, held[:, 1:].tolist())) & set(map(tuple, pool[:, 1:].tolist()))


def test_search_with_the_mixed_domain_objective(tiny_llama_dir, data_dir, tmp_path):
    out = tmp_path / "mix"
    assert main(tiny_search(tiny_llama_dir, data_dir, out, 2, 3, "--objective", "mix")) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    domains = {"wikitext2", "ptb", "books", "alpaca"}
    assert report["protocol"]["objective_name"] == "mix" and set(report["protocol"]["datasets"]) == domains
    assert report["reproduction"]["reproduced"] and set(report["pruned_objective"]) == domains


def test_finalists_are_rescored_on_the_zero_shot_proxy_once(tiny_llama_dir, data_dir, tmp_path, monkeypatch):
    import adapruner.eval.zeroshot as zeroshot

    out = tmp_path / "fin"
    argv = tiny_search(tiny_llama_dir, data_dir, out, 4, 2, "--finalists", "2", "--finalist-examples", "3")
    assert main(argv) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    fin = report["finalists"]
    assert fin["count"] == 2 and len(fin["trials"]) == 2 and fin["examples_per_task"] == 3
    assert fin["trials"][0]["objective"] <= fin["trials"][1]["objective"]  # the two best, in order
    best = max(fin["trials"], key=lambda r: (r["proxy"]["value"], -r["objective"]))
    assert report["provenance"]["best_trial"] == fin["delivered_trial"] == best["trial"]
    assert report["reproduction"]["reproduced"]  # the delivered finalist's objective is reproduced
    # Delivering the finished study again reads the finalists' proxies from the study.
    calls = []
    monkeypatch.setattr(zeroshot, "run_zeroshot", lambda *a, **k: calls.append(a))
    assert main(argv) == 0 and calls == []
    assert json.loads((out / "pruning_report.json").read_text())["finalists"] == fin


def test_a_bfloat16_screen_is_close_to_the_objective_as_loaded():
    model = tiny_model("llama")
    pool, windows = tiny_batch(12, 24, seed=3), {"wikitext2": tiny_batch(4, 24, seed=4)}
    objective = Objective(model, pool, windows, 0.3, batch_size=2, precision="bfloat16")
    config = PruneConfig.from_json({"metric": {"name": "l2"}, "calibration": {"seq_len": 24, "num_samples": 4,
                                                                               "indices": [0, 1, 2, 3]}})
    screened, loaded = objective(config).value, objective(config, precision="model").value
    assert screened != loaded and screened == pytest.approx(loaded, rel=0.02)
    assert next(model.parameters()).dtype == torch.float32  # autocast: the weights stay as loaded
    with pytest.raises(Exception, match="unknown trial precision"):
        Objective(model, pool, windows, 0.3, precision="fp8")


def test_a_search_screened_in_bfloat16_delivers_its_best_trial_as_loaded(tiny_llama_dir, data_dir, tmp_path,
                                                                        monkeypatch):
    from adapruner.search.objective import Objective as Scored

    out = tmp_path / "bf16"
    argv = tiny_search(tiny_llama_dir, data_dir, out, 5, 2, "--trial-precision", "bfloat16")
    assert main(argv) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["protocol"]["trial_precision"] == "bfloat16"
    rescored = report["rescored"]["trials"]
    assert len(rescored) == 3 and [r["screened"] for r in rescored] == sorted(r["screened"] for r in rescored)
    best = min(rescored, key=lambda r: r["as_loaded"])
    assert report["provenance"]["best_trial"] == best["trial"] and report["provenance"]["objective"] == best["as_loaded"]
    assert report["reproduction"]["reproduced"]  # the delivered model reproduces the value as loaded
    # Delivering the finished study again reads the re-scored values from the study.
    calls = []
    original = Scored.__call__
    monkeypatch.setattr(Scored, "__call__", lambda self, config, report=None, precision=None:
                        calls.append(precision) or original(self, config, report, precision))
    assert main(argv) == 0 and calls == []
    assert json.loads((out / "pruning_report.json").read_text())["rescored"]["trials"] == rescored
    # A screened study is another objective's study: the same output as loaded is refused.
    assert main(tiny_search(tiny_llama_dir, data_dir, out, 5, 2)) == 2
