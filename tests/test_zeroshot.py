"""Zero-shot converters and harness tasks: row counts of the data README, first items read as the
datasets' own text through the harness's standard prompts, the result layout, and errors."""

from __future__ import annotations


import pytest
import torch
from test_recovery import char_tokenizer
from tiny import tiny_model

from adapruner.data.zeroshot import DEV_TASKS, SOURCES, TASKS, converted_jsonl, load_task_rows
from adapruner.errors import AdaprunerError
from adapruner.eval.zeroshot import AVERAGE_METRIC, build_tasks, run_zeroshot

README_ROWS = {"boolq": 3270, "piqa": 1838, "hellaswag": 10042, "winogrande": 1267, "arc_easy": 2376,
               "arc_challenge": 1172, "openbookqa": 500, "arc_easy_dev": 570, "arc_challenge_dev": 299,
               "openbookqa_dev": 500}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPRUNER_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("task", TASKS + DEV_TASKS)
def test_converter_row_counts(task, data_dir):
    rows = load_task_rows(task, data_dir)
    assert len(rows) == README_ROWS[task] == SOURCES[task].rows


def _first(task, data_dir):
    (t,) = build_tasks([task], data_dir)
    doc = next(iter(t.test_docs()))
    return t, doc, t.doc_to_text(doc), t.doc_to_choice(doc), t.doc_to_target(doc)


def test_boolq_first_item(data_dir):
    _, doc, text, choices, target = _first("boolq", data_dir)
    assert text.startswith("Ethanol fuel -- All biomass goes through")
    assert text.endswith("\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
    assert choices == ["no", "yes"] and target == 0  # label false


def test_piqa_first_item(data_dir):
    _, doc, text, choices, target = _first("piqa", data_dir)
    assert text == "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
    assert choices[0].startswith("Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper")
    assert target == 0


def test_hellaswag_first_item_uses_harness_preprocessing(data_dir):
    _, doc, text, choices, target = _first("hellaswag", data_dir)
    assert text == "Roof shingle removal: A man is sitting on a roof. he"
    assert choices == ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                       "is holding a rubik's cube.", "starts pulling up roofing on a roof."]
    assert int(target) == 3


def test_winogrande_first_item_partial_scoring(data_dir):
    _, doc, text, choices, target = _first("winogrande", data_dir)
    # Partial evaluation: the two contexts differ by the option, the continuation is shared.
    assert choices == ["Sarah was a much better surgeon than Maria so Sarah",
                       "Sarah was a much better surgeon than Maria so Maria"]
    assert target == "always got the easier cases." and text == 1  # answer "2"


@pytest.mark.parametrize("task, stem, answer", [
    ("arc_easy", "Which statement best explains why photosynthesis is the foundation of most food webs?", 0),
    ("arc_challenge", "An astronomer observes that a planet rotates faster after a meteorite impact.", 2),
    ("openbookqa", "A person wants to start saving money so that they can afford a nice vacation", 1),
])
def test_ai2_first_items(task, stem, answer, data_dir):
    _, doc, text, choices, target = _first(task, data_dir)
    assert stem in text and len(choices) == 4 and target == answer
    if task != "openbookqa":
        assert text.startswith("Question: ") and text.endswith("\nAnswer:")


def test_cache_is_keyed_by_content(data_dir, tmp_path):
    first = converted_jsonl("openbookqa", data_dir)
    assert converted_jsonl("openbookqa", data_dir) == first
    copy = tmp_path / "data" / "zeroshot" / "openbookqa"
    copy.mkdir(parents=True)
    src = (data_dir / "zeroshot" / "openbookqa" / "test.jsonl").read_text().splitlines(keepends=True)
    (copy / "test.jsonl").write_text("".join(src[:10]))
    changed = converted_jsonl("openbookqa", tmp_path / "data")
    assert changed != first and len(changed.read_text().splitlines()) == 10


def test_errors(data_dir, tmp_path):
    with pytest.raises(AdaprunerError, match="unknown zero-shot task.*valid tasks: boolq, piqa"):
        run_zeroshot(None, None, ["boolq", "mmlu"], data_dir, limit=2, batch_size=2)
    with pytest.raises(AdaprunerError, match="--limit must be at least 1"):
        run_zeroshot(None, None, ["boolq"], data_dir, limit=0, batch_size=2)
    with pytest.raises(AdaprunerError, match="not found"):
        run_zeroshot(None, None, ["piqa"], tmp_path, limit=1, batch_size=2)


def test_run_zeroshot_result_layout(data_dir):
    torch.manual_seed(0)
    result = run_zeroshot(tiny_model("llama"), char_tokenizer(), ["piqa", "winogrande"], data_dir, limit=2,
                          batch_size=4)
    for task in ("piqa", "winogrande"):
        r = result[task]
        assert r["n"] == 2 and 0.0 <= r["acc"] <= 1.0 and r["acc_stderr"] is not None
        assert r["average_metric"] == AVERAGE_METRIC[task]
    assert result["winogrande"]["acc_norm"] is None  # the harness defines only acc for WinoGrande
    assert result["average"]["value"] == pytest.approx((result["piqa"]["acc_norm"] + result["winogrande"]["acc"]) / 2)
    p = result["protocol"]
    assert p["num_fewshot"] == 0 and p["limit"] == 2 and p["lm_eval_version"] and p["task_versions"]["piqa"] == 1.0


@pytest.mark.slow
def test_smollm2_zeroshot_all_tasks(data_dir):
    from adapruner.models.load import load_model

    loaded = load_model("smollm2-135m", device="cpu")
    result = run_zeroshot(loaded.model, loaded.tokenizer, list(TASKS), data_dir, limit=2, batch_size=8)
    assert set(TASKS) <= set(result)
    assert all(result[t]["n"] == 2 for t in TASKS)
    assert 0.0 <= result["average"]["value"] <= 1.0


def test_boolq_labels_balance(data_dir):
    labels = [r["label"] for r in load_task_rows("boolq", data_dir)]
    assert sum(labels) == 2033 and len(labels) - sum(labels) == 1237  # "true" / "false" strings in the file


def test_development_tasks_are_other_documents_with_the_reported_prompt(data_dir):
    """ARC-e / ARC-c / OBQA development splits: never the reported test documents, the same prompt."""
    for dev in DEV_TASKS:
        test = dev.removesuffix("_dev")
        assert not {r["id"] for r in load_task_rows(dev, data_dir)} & {r["id"] for r in load_task_rows(test, data_dir)}
        (t,) = build_tasks([dev], data_dir)
        doc = next(iter(t.test_docs()))
        assert t.doc_to_text(doc).startswith("Question:" if dev.startswith("arc") else doc["question_stem"][:10])
        assert AVERAGE_METRIC[dev] == "acc_norm"
    assert len(TASKS) == 7 and not set(TASKS) & set(DEV_TASKS)
