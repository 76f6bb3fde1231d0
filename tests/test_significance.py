"""Standard errors of zero-shot summaries and the paired comparison of two models: the formulas,
per-task resume of an evaluation, and ``adapruner compare`` on models that differ and that do not."""

from __future__ import annotations

import json
import math

import pytest

from adapruner.cli import main
from adapruner.errors import AdaprunerError
from adapruner.eval import significance as sig


def test_a_task_mean_and_its_standard_error_are_lm_evals():
    x = [1, 0, 1, 1, 0, 1, 1, 1]
    e = sig.mean_estimate(x)
    p = sum(x) / len(x)
    assert e.value == p and e.se == pytest.approx(math.sqrt(p * (1 - p) / (len(x) - 1)))


def test_summaries_over_tasks():
    tasks = {"boolq": {"correct": [1, 1, 1, 0], "chance": 0.5}, "piqa": {"correct": [1, 0, 1, 0], "chance": 0.5},
             "arc_easy": {"correct": [1, 0, 0, 0], "chance": 0.25}}
    s = sig.summarise(tasks)
    se = {t: sig.mean_estimate(v["correct"]).se for t, v in tasks.items()}
    assert s["mean"]["value"] == pytest.approx((0.75 + 0.5 + 0.25) / 3)
    assert s["mean"]["se"] == pytest.approx(math.sqrt(sum(v ** 2 for v in se.values())) / 3)
    assert s["mean_without_boolq"]["value"] == pytest.approx((0.5 + 0.25) / 2)
    # Chance-normalised: piqa 0.5 is guessing (0), arc_easy 0.25 is guessing (0), boolq 0.75 -> 0.5.
    assert s["chance_normalised_mean"]["value"] == pytest.approx(0.5 / 3)


def test_the_paired_comparison_sees_a_difference_the_unpaired_one_hides():
    # 400 examples: B is A with 16 answers turned wrong. Unpaired, 4 points at SE ~3.5 are noise;
    # paired, the models agree on 384 examples and the difference is ~4 SE.
    a = [1] * 240 + [0] * 160
    b = list(a)
    for i in range(0, 240, 15):
        b[i] = 0
    r = sig.compare({"piqa": {"correct": a}}, {"piqa": {"correct": b}})
    unpaired = math.hypot(sig.mean_estimate(a).se, sig.mean_estimate(b).se)
    assert r["mean"]["difference"] == pytest.approx(16 / 400)
    assert r["mean"]["difference"] < 2 * unpaired and r["mean"]["beyond_2_se"]
    assert r["tasks"]["piqa"]["mcnemar"] == {"a_only": 16, "b_only": 0, "p_value": pytest.approx(2 * 0.5 ** 16)}


def test_identical_results_do_not_differ_and_different_examples_are_refused():
    a = {"boolq": {"correct": [1, 0, 1]}, "piqa": {"correct": [0, 1]}}
    r = sig.compare(a, a)
    assert r["mean"]["difference"] == 0 and not r["mean"]["beyond_2_se"] and r["mean"]["p_value"] == 1.0
    assert r["mean_without_boolq"]["tasks"] == ["piqa"]
    with pytest.raises(AdaprunerError, match="same --limit"):
        sig.compare(a, {"boolq": {"correct": [1, 0]}})
    with pytest.raises(AdaprunerError, match="share no zero-shot task"):
        sig.compare(a, {"arc_easy": {"correct": [1]}})


def test_a_killed_evaluation_resumes_per_task(data_dir, tmp_path, monkeypatch):
    from tiny import tiny_model
    from tiny_tokenizer import char_tokenizer

    from adapruner.eval import zeroshot

    model, tok = tiny_model("llama"), char_tokenizer()
    resume = tmp_path / ".e.json.zeroshot-partial.json"
    first = zeroshot.run_zeroshot(model, tok, ["piqa"], data_dir, limit=3, batch_size=4, resume=resume,
                                  key={"model": "m"})
    assert json.loads(resume.read_text())["tasks"]["piqa"]["correct"] == first["piqa"]["correct"]
    ran = []
    real = zeroshot._one_task
    monkeypatch.setattr(zeroshot, "_one_task", lambda m, t, task, *a: ran.append(task) or real(m, t, task, *a))
    both = zeroshot.run_zeroshot(model, tok, ["piqa", "winogrande"], data_dir, limit=3, batch_size=4,
                                 resume=resume, key={"model": "m"})
    assert ran == ["winogrande"] and both["piqa"] == first["piqa"]
    zeroshot.run_zeroshot(model, tok, ["piqa"], data_dir, limit=3, batch_size=4, resume=resume,
                          key={"model": "another"})
    assert ran == ["winogrande", "piqa"]  # another model's finished tasks are never reused
    r = both["winogrande"]
    assert r["n"] == len(r["correct"]) == len(r["doc_ids"]) == 3 and r["chance"] == 0.5
    assert both["summary"]["mean"]["value"] == pytest.approx(both["average"]["value"])


@pytest.mark.slow
def test_compare_tells_models_that_differ_from_models_that_do_not(data_dir, tmp_path, capsys):
    """SmolLM2-135M against itself with half of its parameters cut by weight magnitude, on ARC-Easy
    and PIQA: larger than the noise; SmolLM2 against itself: zero, within the noise."""
    common = ["--tasks", "arc_easy,piqa", "--limit", "80", "--device", "cpu", "--data-dir", str(data_dir)]
    assert main(["prune", "--model", "smollm2-135m", "--ratio", "0.5", "--metric", "l2", "--out",
                 str(tmp_path / "p"), "--device", "cpu", "--data-dir", str(data_dir)]) == 0
    assert main(["eval", "--model", "smollm2-135m", "--out", str(tmp_path / "a.json"), *common]) == 0
    assert "standard error of up to 5.6 points" in capsys.readouterr().out
    assert main(["eval", "--model", str(tmp_path / "p" / "model"), "--out", str(tmp_path / "b.json"), *common]) == 0
    a = json.loads((tmp_path / "a.json").read_text())["zeroshot"]
    assert set(a["summary"]) == {"tasks", "mean", "chance_normalised_mean"} and a["arc_easy"]["n"] == 80
    assert not list(tmp_path.glob(".*zeroshot-partial.json"))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "c.json")]) == 0
    assert "larger than its noise" in capsys.readouterr().out
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["mean"]["beyond_2_se"] and c["mean"]["difference"] > 0
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    assert "within its noise" in capsys.readouterr().out
    (tmp_path / "old.json").write_text(json.dumps({"zeroshot": {"average": {"tasks": ["piqa"]}, "piqa": {"acc": 1}}}))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "old.json")]) == 2
    assert "no per-example outcomes for piqa" in capsys.readouterr().err
