"""The ``README.md`` model card written into every saved model directory, and the compact
per-layer width summary that ``prune`` and ``search`` print.

The card says what the model is, how it was made (command, ratio, metric, weight update,
allocation, calibration), how to load it (a plain transformers checkpoint, or one that needs
``import adapruner`` / ``trust_remote_code=True``), its per-layer widths and the numbers measured
when it was made.
"""

from __future__ import annotations


def width_ranges(widths: list[dict]) -> list[str]:
    """Per-layer widths as ranges of equal layers, e.g. ``layers 0-3: 9 heads / 3 KV, 1536 channels``."""
    out = []
    start = 0
    for i in range(1, len(widths) + 1):
        if i == len(widths) or widths[i] != widths[start]:
            w = widths[start]
            span = f"layer {start}" if i - 1 == start else f"layers {start}-{i - 1}"
            bias = " (+ output bias)" if w.get("output_bias") else ""
            out.append(f"{span}: {w['num_attention_heads']} heads / {w['num_key_value_heads']} KV, "
                       f"{w['intermediate_size']} MLP channels{bias}")
            start = i
    return out


def loading_note(flavour: str) -> str:
    """How a checkpoint of ``flavour`` (``plain`` or ``adapruner_pruned``) loads."""
    if flavour == "plain":
        return ("A plain transformers checkpoint: every layer has the same widths, so "
                "`AutoModelForCausalLM.from_pretrained(DIR)` loads it with transformers alone.")
    return ("Layers differ in width (or carry added output biases), which the family's own config cannot "
            "express: load it with `import adapruner` first, then `AutoModelForCausalLM.from_pretrained(DIR)`, "
            "or without adapruner with `from_pretrained(DIR, trust_remote_code=True)` (the model code is "
            "`modeling_pruned.py` in this directory). A plain `from_pretrained(DIR)` without either fails.")


def model_card(report: dict, flavour: str, widths: list[dict], parameters: int) -> str:
    """The markdown model card of a saved pruned model (see the module docstring)."""
    config = report.get("config") or {}
    metric = (config.get("metric") or {}).get("name", "?")
    update = (config.get("update") or {}).get("name", "none")
    allocation = (config.get("allocation") or {}).get("mode", "?")
    cal = config.get("calibration") or {}
    source = report.get("model") or report.get("provenance", {}).get("model") or "?"
    if isinstance(source, dict):
        source = source.get("spec") or source.get("path") or "?"
    ratio = report.get("ratio_requested", report.get("provenance", {}).get("ratio"))
    before = report.get("parameters_before") or (report.get("parameters") or {}).get("dense")
    lines = [f"# Pruned {source}", "",
             f"Made by `adapruner {report.get('command', 'prune')}`: structured pruning of {source}"
             + (f" with {ratio:.0%} of all parameters removed" if isinstance(ratio, (int, float)) else "") + ".", "",
             "## How it was made", "",
             f"- importance metric: `{metric}`; weight update: `{update}`; allocation: `{allocation}`",
             f"- calibration: {cal.get('num_samples', '?')} book windows of {cal.get('seq_len', '?')} tokens "
             f"(pool seed {cal.get('pool_seed', '?')}, indices {cal.get('indices')})",
             f"- parameters: {before:,} -> {parameters:,}" if before else f"- parameters: {parameters:,}",
             "- the full configuration, protocol and versions: `pruning_report.json` in this directory", "",
             "## How to load it", "", loading_note(flavour), "",
             "```python", "import adapruner  # only needed when the checkpoint is not plain",
             "from transformers import AutoModelForCausalLM, AutoTokenizer",
             "model = AutoModelForCausalLM.from_pretrained(DIR)", "tokenizer = AutoTokenizer.from_pretrained(DIR)",
             "```", "", "## Widths", ""]
    lines += [f"- {r}" for r in width_ranges(widths)]
    measured = report.get("pruned_validation_ppl")
    lines += ["", "## Measured", ""]
    if measured:
        lines.append("Validation perplexity of the search objective (WikiText-2 / PTB validation windows): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in measured.items()))
    else:
        lines.append("Nothing measured at save time; run `adapruner eval --model DIR --ppl wikitext2,ptb`.")
    return "\n".join(lines) + "\n"
