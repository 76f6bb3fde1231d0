"""Zero-shot commonsense accuracy through lm-evaluation-harness, offline and on an in-memory model.

The seven tasks of the paper (BoolQ, PIQA, HellaSwag, WinoGrande, ARC-e, ARC-c, OBQA) are built
as harness tasks whose prompts are the harness's own standard ones (``doc_to_text`` /
``doc_to_choice`` / ``doc_to_target`` copied from lm_eval/tasks/*.yaml, or the harness's Python
functions imported for HellaSwag and WinoGrande), while the documents come from the local files
converted by :mod:`adapruner.data.zeroshot` (``dataset_path: json``). The model is wrapped with
``HFLM(pretrained=model_object)`` so a pruned model is evaluated without saving it first.

Summary average (LLM-Pruner's convention, confirmed by its authors in horseee/LLM-Pruner#25):
``acc_norm`` for every task where the harness reports it (PIQA, HellaSwag, ARC-e, ARC-c, OBQA)
and ``acc`` for BoolQ and WinoGrande, which only have ``acc``. Both metrics are always reported.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from adapruner.data.zeroshot import DEV_TASKS, SOURCES, base_task, check_tasks, converted_jsonl
from adapruner.errors import AdaprunerError

# The metric that enters the summary average for each task (see module docstring).
AVERAGE_METRIC = {
    "boolq": "acc", "piqa": "acc_norm", "hellaswag": "acc_norm", "winogrande": "acc",
    "arc_easy": "acc_norm", "arc_challenge": "acc_norm", "openbookqa": "acc_norm",
}
AVERAGE_METRIC.update({t: AVERAGE_METRIC[base_task(t)] for t in DEV_TASKS})

_ACC = {"metric": "acc", "aggregation": "mean", "higher_is_better": True}
_ACC_NORM = {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}


def _prompt(task: str) -> dict:
    """The harness's standard zero-shot prompt and metrics of ``task`` (lm-eval 0.4.x yaml; a
    development task uses its reported task's)."""
    task = base_task(task)
    if task == "boolq":  # super_glue/boolq/default.yaml
        return dict(doc_to_text="{{passage}}\nQuestion: {{question}}?\nAnswer:", doc_to_target="label",
                    doc_to_choice=["no", "yes"], metric_list=[_ACC], metadata={"version": 2.0})
    if task == "piqa":  # piqa/piqa.yaml
        return dict(doc_to_text="Question: {{goal}}\nAnswer:", doc_to_target="label",
                    doc_to_choice="{{[sol1, sol2]}}", metric_list=[_ACC, _ACC_NORM], metadata={"version": 1.0})
    if task == "hellaswag":  # hellaswag/hellaswag.yaml with its utils.process_docs
        from lm_eval.tasks.hellaswag.utils import process_docs
        return dict(process_docs=process_docs, doc_to_text="{{query}}", doc_to_target="{{label}}",
                    doc_to_choice="choices", metric_list=[_ACC, _ACC_NORM], metadata={"version": 1.0})
    if task == "winogrande":  # winogrande/default.yaml: partial evaluation (score the continuation)
        from lm_eval.tasks.winogrande import preprocess_winogrande as w
        return dict(doc_to_text=w.doc_to_text, doc_to_target=w.doc_to_target, doc_to_choice=w.doc_to_choice,
                    metric_list=[_ACC], metadata={"version": 1.0})
    if task in ("arc_easy", "arc_challenge"):  # arc/arc_easy.yaml
        return dict(doc_to_text="Question: {{question}}\nAnswer:",
                    doc_to_target="{{choices.label.index(answerKey)}}", doc_to_choice="{{choices.text}}",
                    metric_list=[_ACC, _ACC_NORM], metadata={"version": 1.0})
    if task == "openbookqa":  # openbookqa/openbookqa.yaml
        return dict(doc_to_text="question_stem", doc_to_target="{{choices.label.index(answerKey.lstrip())}}",
                    doc_to_choice="{{choices.text}}", metric_list=[_ACC, _ACC_NORM], metadata={"version": 1.0})
    raise AdaprunerError(f"unknown zero-shot task {task}")


def task_config(task: str, data_dir: Path) -> dict:
    """A harness ``TaskConfig`` dict for ``task`` reading the converted local JSONL."""
    path = converted_jsonl(task, data_dir)
    split = SOURCES[task].split
    return dict(task=task, dataset_path="json", dataset_kwargs={"data_files": {split: str(path)}},
                output_type="multiple_choice", test_split=split, num_fewshot=0, **_prompt(task))


def build_tasks(tasks: list[str], data_dir: Path) -> list:
    """Harness ``ConfigurableTask`` objects for ``tasks`` (documents loaded from local files)."""
    from lm_eval.api.task import ConfigurableTask

    return [ConfigurableTask(config=task_config(t, data_dir)) for t in check_tasks(tasks)]


def _clean(x) -> float | None:
    """A JSON-safe float (the harness reports 'N/A' or NaN for missing stderr)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def run_zeroshot(model, tokenizer, tasks: list[str], data_dir: Path, limit: int | None,
                 batch_size: int, resume: Path | None = None, key: dict | None = None, log=print) -> dict:
    """Zero-shot accuracy of an in-memory causal LM on ``tasks`` read from ``data_dir``.

    Returns ``{task: {acc, acc_stderr, acc_norm, acc_norm_stderr, n, average_metric, chance,
    correct, doc_ids}, "average": {...}, "summary": {...}, "protocol": {...}}``: ``acc_norm`` is
    None where the harness does not define it; ``correct`` holds the 0/1 outcome of every example
    under the task's summary metric (``doc_ids`` in the same order), what paired comparisons need;
    ``summary`` the 7-task mean, the mean without BoolQ and the chance-normalised mean with their
    standard errors (:mod:`adapruner.eval.significance`). ``limit`` evaluates only the first
    ``limit`` documents of each task (None = all). Tasks run one at a time; with ``resume`` each
    finished task is written there (with ``key``, what decides the results) and a later call with
    the same key skips it.
    """
    import lm_eval

    from adapruner.eval.significance import summarise

    tasks = check_tasks(list(tasks))
    if limit is not None and limit < 1:
        raise AdaprunerError(f"--limit must be at least 1 (got {limit}); omit it to evaluate every document")
    if batch_size < 1:
        raise AdaprunerError(f"--batch-size must be at least 1 (got {batch_size})")
    task_objects = dict(zip(tasks, build_tasks(tasks, Path(data_dir))))  # missing files fail before model work
    key = {**(key or {}), "limit": limit, "batch_size": batch_size, "lm_eval_version": lm_eval.__version__}
    result: dict = _finished(resume, key)
    if result:
        log(f"zero-shot: {', '.join(result)} already evaluated ({resume}); resuming with the rest")
    start = time.time()
    for t in tasks:
        if t in result:
            continue
        result[t] = _one_task(model, tokenizer, t, task_objects[t], limit, batch_size)
        if resume is not None:
            from adapruner.core.io import write_json

            write_json(resume, {"key": key, "tasks": result})
    result = {t: result[t] for t in tasks}
    values = [result[t][AVERAGE_METRIC[t]] for t in tasks]
    result["average"] = {
        "value": sum(values) / len(values),
        "metric": "acc_norm where the harness reports it (piqa, hellaswag, arc_easy, arc_challenge, "
                  "openbookqa), acc otherwise (boolq, winogrande); LLM-Pruner's convention",
        "tasks": tasks,
    }
    result["summary"] = summarise({t: result[t] for t in tasks})
    result["protocol"] = {
        "harness": "lm-evaluation-harness", "lm_eval_version": lm_eval.__version__,
        "limit": limit, "num_fewshot": 0, "batch_size": batch_size,
        "task_versions": {t: result[t].pop("version", None) for t in tasks},
        "splits": {t: SOURCES[t].split for t in tasks},
        "source_files": {t: list(SOURCES[t].files) for t in tasks},
        "metrics": {t: AVERAGE_METRIC[t] for t in tasks},
        "standard_errors": "per task sd/sqrt(n) of the 0/1 outcomes; means over tasks sqrt(sum se^2)/k",
        "seconds": round(time.time() - start, 1),
    }
    return result


def zeroshot_resume_file(out: Path) -> Path:
    """Where an evaluation writing ``out`` keeps its finished zero-shot tasks until it completes."""
    out = Path(out)
    return out.with_name(f".{out.name}.zeroshot-partial.json")


def _finished(resume: Path | None, key: dict) -> dict:
    """The tasks a killed evaluation with the same ``key`` finished (none if another key)."""
    import json

    if resume is None or not resume.is_file():
        return {}
    try:
        data = json.loads(resume.read_text())
    except (OSError, ValueError):
        return {}
    return dict(data.get("tasks", {})) if data.get("key") == key else {}


def _one_task(model, tokenizer, task: str, task_object, limit: int | None, batch_size: int) -> dict:
    """One task through the harness: its metrics, stderrs and every example's outcome."""
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    device = str(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    t0 = time.time()
    try:
        with torch.no_grad():
            out = simple_evaluate(model=lm, tasks=[task_object], limit=limit, num_fewshot=None,
                                  task_manager=TaskManager(include_defaults=False), log_samples=True)
    except AssertionError:  # the harness asserts that every answer fits the model's context
        raise AdaprunerError(f"lm-evaluation-harness cannot score {task} with this model: an answer is longer than "
                             f"its {lm.max_length}-token context; leave {task} out of --tasks") from None
    finally:
        model.train(was_training)
    r = out["results"][task]
    metric = AVERAGE_METRIC[task]
    samples = sorted(out["samples"][task], key=lambda x: x["doc_id"])
    return {
        "acc": _clean(r.get("acc,none")), "acc_stderr": _clean(r.get("acc_stderr,none")),
        "acc_norm": _clean(r.get("acc_norm,none")), "acc_norm_stderr": _clean(r.get("acc_norm_stderr,none")),
        "n": len(samples), "average_metric": metric,
        "chance": sum(1 / len(x["arguments"]) for x in samples) / len(samples),
        "correct": [int(x[metric]) for x in samples], "doc_ids": [x["doc_id"] for x in samples],
        "seconds": round(time.time() - t0, 1), "version": out.get("versions", {}).get(task),
    }
