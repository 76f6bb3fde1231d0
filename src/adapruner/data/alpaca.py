"""Instruction data in Alpaca format for recovery fine-tuning.

Rows are ``{instruction, input, output}`` (``input`` may be empty), read from a JSON list, a JSONL
file, or a Hugging Face dataset name (``yahma/alpaca-cleaned``) when a network exists. Prompts use
the Alpaca template exactly as LLM-Pruner's post-training does (its ``Prompter`` with the
``alpaca`` template from alpaca-lora), and the EOS token is appended to the response.

Loss mask: by default only the response tokens are trained on (LLM-Pruner's ``train_on_inputs``
is off unless its flag is given), so the model learns to answer, not to reproduce the fixed
template; ``train_on_inputs=True`` trains on the full prompt as well.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from adapruner.errors import AdaprunerError

REQUIRED_KEYS = ("instruction", "input", "output")

TEMPLATE_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
TEMPLATE_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def _validate(rows: list, source: str) -> list[dict]:
    if not isinstance(rows, list) or not rows:
        raise AdaprunerError(f"{source}: expected a non-empty JSON list of {{instruction, input, output}} rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise AdaprunerError(f"{source}: row {i} is not an object; every row needs keys {', '.join(REQUIRED_KEYS)}")
        for key in REQUIRED_KEYS:
            if key not in row:
                raise AdaprunerError(f"{source}: row {i} lacks the key '{key}'; Alpaca rows need "
                                     f"{', '.join(REQUIRED_KEYS)} (input may be empty)")
            if not isinstance(row[key], str):
                raise AdaprunerError(f"{source}: row {i} key '{key}' is not a string")
    return [{k: r[k] for k in REQUIRED_KEYS} for r in rows]


def load_alpaca(source: str | Path) -> list[dict]:
    """Alpaca rows from a JSON/JSONL file, or from a Hugging Face dataset name if no such file exists."""
    path = Path(source)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        try:
            if text.lstrip().startswith("["):
                rows = json.loads(text)
            else:
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise AdaprunerError(f"{path} is neither a JSON list nor JSONL ({exc.msg} at line {exc.lineno})") from None
        return _validate(rows, str(path))
    looks_like_hub_id = str(source).count("/") == 1 and not path.suffix and not str(source).startswith((".", "/"))
    if not looks_like_hub_id:
        raise AdaprunerError(f"instruction data file {source} not found; pass a JSON/JSONL file of "
                             "{instruction, input, output} rows or a dataset name like yahma/alpaca-cleaned")
    try:
        from datasets import load_dataset

        ds = load_dataset(str(source), split="train")
    except Exception as exc:  # network or hub errors come in many types
        raise AdaprunerError(f"could not load dataset '{source}' from the Hugging Face hub "
                             f"({type(exc).__name__}); pass a local JSON/JSONL file instead") from None
    return _validate([dict(r) for r in ds], str(source))


def alpaca_prompt(row: dict) -> str:
    """The Alpaca prompt (everything before the response)."""
    if row["input"].strip():
        return TEMPLATE_WITH_INPUT.format(instruction=row["instruction"], input=row["input"])
    return TEMPLATE_NO_INPUT.format(instruction=row["instruction"])


def tokenize_example(tokenizer, row: dict, cutoff: int = 256, train_on_inputs: bool = False) -> dict:
    """``input_ids`` and ``labels`` (-100 = not trained on) of one example, truncated to ``cutoff``.

    The EOS token is appended when it fits, as in LLM-Pruner (``add_eos_token``), so the model
    learns where an answer ends.
    """
    prompt = alpaca_prompt(row)
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    full_ids = tokenizer(prompt + row["output"], add_special_tokens=True)["input_ids"][:cutoff]
    if tokenizer.eos_token_id is not None and len(full_ids) < cutoff and (not full_ids or full_ids[-1] != tokenizer.eos_token_id):
        full_ids = full_ids + [tokenizer.eos_token_id]
    labels = list(full_ids)
    if not train_on_inputs:
        n = min(len(prompt_ids), len(labels))
        labels[:n] = [-100] * n
    return {"input_ids": full_ids, "labels": labels}


def split_train_val(rows: list[dict], val_size: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A seeded random hold-out of ``val_size`` rows (LLM-Pruner's ``val_set_size``)."""
    if val_size < 1 or val_size >= len(rows):
        raise AdaprunerError(f"--val-size must be between 1 and {len(rows) - 1} for {len(rows)} rows (got {val_size})")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    val = [rows[i] for i in order[:val_size]]
    train = [rows[i] for i in order[val_size:]]
    return train, val


def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of tokenised examples into a batch; padded labels are -100."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
