"""Saving a pruned model so that ``AutoModelForCausalLM.from_pretrained(out)`` loads it.

The directory holds safetensors weights, the tokenizer, ``pruning_report.json``, a model card
(``README.md``: how it was made and how to load it) and a ``config.json`` that records every
layer's widths (``layer_widths``). Two config flavours:

* every layer has the same widths and the family's standard config accepts them (transformers 5
  checks ``hidden_size % num_attention_heads == 0``): a plain standard config with explicit
  ``head_dim``; it needs nothing but transformers;
* otherwise the ``adapruner_pruned_<family>`` type of :mod:`.modeling_pruned`: registered when
  :mod:`adapruner` is imported, and shipped as ``modeling_pruned.py`` with an ``auto_map`` so that
  ``trust_remote_code=True`` loads it without adapruner.

Everything is written to a temporary sibling directory that is renamed at the end, so an
interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch.nn as nn
import transformers
from huggingface_hub.errors import StrictDataclassError

from adapruner.errors import AdaprunerError
from adapruner.pruning import modeling_pruned
from adapruner.pruning.model_card import model_card
from adapruner.core.adapters import adapter_for
from adapruner.core.io import atomic_directory, check_writable, rescue, write_failed
from adapruner.core.params import count_parameters
from adapruner.pruning.surgery import layer_widths

REPORT_NAME = "pruning_report.json"
MODEL_DIR = "model"  # a run directory OUT holds the checkpoint in OUT/model, its reports beside it


def _plain_config(config, widths: dict):
    """The family's standard config with ``widths`` everywhere, or None if it rejects them."""
    base = getattr(config, "base_model_type", None) or config.model_type
    if base not in modeling_pruned.FAMILIES:
        return None
    config_name, model_name = modeling_pruned.FAMILIES[base]
    data = config.to_dict()
    for key in ("model_type", "auto_map", "architectures", "transformers_version", "base_model_type"):
        data.pop(key, None)
    data.update(widths)
    try:
        cfg = getattr(transformers, config_name).from_dict(data)
    except (ValueError, TypeError, StrictDataclassError):  # e.g. hidden_size % num_attention_heads != 0
        return None
    cfg.architectures = [model_name]
    return cfg


def check_savable(model: nn.Module) -> None:
    """Refuse, before any work, models whose pruned checkpoint this engine cannot write.

    Multimodal wrappers (e.g. Gemma-3 4B+) can be scored, masked and pruned, but their config
    nests the text config and the pruned model types cover causal LMs only.
    """
    adapter = adapter_for(model)
    if adapter.text_config(model) is not model.config:
        raise AdaprunerError(
            f"saving a pruned '{model.config.model_type}' model is not supported (its text layers sit inside a "
            "multimodal wrapper); prune the text-only checkpoint of the family instead")
    base = getattr(model.config, "base_model_type", None) or model.config.model_type
    if base not in modeling_pruned.FAMILIES:
        raise AdaprunerError(f"saving a pruned '{base}' model is not supported; supported: "
                             f"{', '.join(sorted(modeling_pruned.FAMILIES))}")


def checkpoint_config(model: nn.Module):
    """The config to save for ``model``: plain when possible, else the pruned model type.

    Both record ``layer_widths`` (one dict per decoder layer).
    """
    config = adapter_for(model).text_config(model)
    widths = layer_widths(model)
    cfg = None
    # The family's own config cannot express per-layer widths or biases on o_proj/down_proj alone.
    if all(w == widths[0] for w in widths) and not any(w.get("output_bias") for w in widths):
        cfg = _plain_config(config, widths[0])
    if cfg is not None:
        cfg.__dict__["layer_widths"] = widths
        return cfg
    cfg = modeling_pruned.pruned_config(config, widths)
    cfg.auto_map = modeling_pruned.auto_map(cfg.base_model_type)
    adapter = adapter_for(model)
    layout = {"layers": adapter.layers, "attn": adapter.attn, "mlp": adapter.mlp}
    if layout != modeling_pruned.DEFAULT_LAYOUT:
        cfg.__dict__["layer_layout"] = layout
    return cfg


def shipped_modeling_file(base_type: str) -> str:
    """The text of ``modeling_pruned.py`` as shipped next to a checkpoint of ``base_type``: the
    module itself, carrying that family's transformers classes for where adapruner is missing."""
    source = Path(modeling_pruned.__file__).read_text()
    marker = "SHIPPED_FAMILIES: dict[str, tuple[str, str]] = {}"
    entry = {base_type: modeling_pruned.FAMILIES[base_type]}
    return source.replace(marker, f"SHIPPED_FAMILIES: dict[str, tuple[str, str]] = {entry!r}", 1)


def checkpoint_flavour(model: nn.Module) -> str:
    """``"plain"`` when ``model`` saves as its family's own config, else ``"adapruner_pruned"``."""
    return "adapruner_pruned" if checkpoint_config(model).model_type.startswith(modeling_pruned.PREFIX) else "plain"


def is_adapruner_output(directory: Path) -> bool:
    """Whether ``directory`` is empty or was written by adapruner (it holds a pruning report)."""
    return not any(directory.iterdir()) or (directory / REPORT_NAME).is_file()


def check_output_dir(out: str | Path, overwrite: bool = False, force: bool = False) -> Path:
    """Refuse, before any work, an ``out`` that exists (unless ``overwrite``), is not a directory, or
    is a directory adapruner did not write (unless ``force``: ``--overwrite`` never deletes a
    user's directory by accident)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AdaprunerError(f"output path {out} exists and is not a directory; choose another --out")
    check_writable(out)
    if out.exists() and not (overwrite or force):
        raise AdaprunerError(f"output directory {out} already exists; pass --overwrite or choose another --out")
    if out.exists() and not force and not is_adapruner_output(out):
        raise AdaprunerError(f"output directory {out} is not an adapruner output (no {REPORT_NAME}); --overwrite "
                             "would delete it: choose another --out, or pass --force-overwrite if you mean it")
    return out


def save_pruned(model: nn.Module, tokenizer, out_dir: str | Path, report: dict, overwrite: bool = False,
                force: bool = False) -> Path:
    """Write ``model`` (already pruned by surgery), its tokenizer and ``report`` to ``out_dir``.

    Returns the final directory. Refuses an existing ``out_dir`` unless ``overwrite`` (and one that
    adapruner did not write unless ``force``, see :func:`check_output_dir`). ``report`` is
    extended with the per-layer widths, the parameter count and the config flavour.
    """
    check_savable(model)
    out = check_output_dir(out_dir, overwrite, force)
    try:
        return _write(model, tokenizer, out, report, overwrite or force)
    except OSError as exc:
        # As for run directories: nothing half-written at ``out``, the finished model kept elsewhere.
        raise write_failed(out, exc, rescue(lambda t: _write(model, tokenizer, t, report, False), out.name)) from None


def save_run(model: nn.Module, tokenizer, out_dir: str | Path, report: dict, overwrite: bool = False,
             force: bool = False, extra: dict[str, dict] | None = None) -> Path:
    """Write the run directory ``out_dir`` of ``prune`` / ``finetune``: the checkpoint in
    ``out_dir/model`` (see :func:`save_pruned`) and its ``pruning_report.json`` beside it, plus the
    ``extra`` JSON files (name -> data) at both places, the layout ``search`` writes too.

    The whole directory appears at once (staged and renamed); refusal rules as :func:`save_pruned`.
    Returns ``out_dir``.
    """
    check_savable(model)
    out = check_output_dir(out_dir, overwrite, force)

    def write(target: Path) -> None:
        with atomic_directory(target, overwrite=overwrite or force) as tmp:
            _write(model, tokenizer, tmp / MODEL_DIR, report, False)
            shutil.copyfile(tmp / MODEL_DIR / REPORT_NAME, tmp / REPORT_NAME)
            for name, data in (extra or {}).items():
                for where in (tmp, tmp / MODEL_DIR):
                    (where / name).write_text(json.dumps(data, indent=2, default=str) + "\n")

    try:
        write(out)
    except OSError as exc:
        # Nothing half-written stays at ``out``; the finished model is kept elsewhere if possible.
        raise write_failed(out, exc, rescue(write, out.name)) from None
    return out


def run_model_dir(directory: str | Path) -> Path:
    """The checkpoint inside a run directory (``OUT/model``), or ``directory`` itself when it is one."""
    directory = Path(directory)
    if not (directory / "config.json").is_file() and (directory / MODEL_DIR / "config.json").is_file():
        return directory / MODEL_DIR
    return directory


def _write(model: nn.Module, tokenizer, out: Path, report: dict, overwrite: bool) -> Path:
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        write_checkpoint_files(model, tokenizer, tmp, report)
    return out


def write_checkpoint_files(model: nn.Module, tokenizer, tmp: Path, report: dict, dtype=None) -> None:
    """Everything of a pruned checkpoint but its weights, into ``tmp``: the checkpoint config
    (replacing the one ``save_pretrained`` wrote), ``modeling_pruned.py`` when needed, the
    tokenizer, the report and the model card. The streamed path writes the weights itself (in
    ``dtype`` when given, which the config then records)."""
    cfg = checkpoint_config(model)
    cfg.dtype = dtype or next(model.parameters()).dtype
    cfg.save_pretrained(tmp)
    pruned_type = cfg.model_type.startswith(modeling_pruned.PREFIX)
    if pruned_type:
        (tmp / "modeling_pruned.py").write_text(shipped_modeling_file(cfg.base_model_type))
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    full = dict(report)
    full.update({
        "layer_widths": cfg.__dict__["layer_widths"],
        "parameters_after": count_parameters(model),
        "checkpoint": {"model_type": cfg.model_type,
                       "flavour": "adapruner_pruned" if pruned_type else "plain",
                       "transformers_version": transformers.__version__},
    })
    (tmp / REPORT_NAME).write_text(json.dumps(full, indent=2, default=str) + "\n")
    flavour = full["checkpoint"]["flavour"]
    (tmp / "README.md").write_text(model_card(full, flavour, full["layer_widths"], full["parameters_after"]))
