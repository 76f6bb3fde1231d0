"""A checkpoint directory read for export: its config, per-layer widths and tensors.

Export reads the safetensors files directly rather than building the model: the widths of every
layer are then those of the stored tensors (which is what llama.cpp will be given), the memory
used is one tensor at a time plus the output, and a plain, a pruned (``adapruner_pruned_*``) and
a recovered checkpoint are read alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from adapruner.errors import AdaprunerError
from adapruner.pruning.modeling_pruned import PREFIX


@dataclass(frozen=True)
class LayerShape:
    """One decoder layer's widths as stored: heads, KV heads, MLP channels, and its biases."""

    n_head: int
    n_head_kv: int
    n_ff: int
    biases: frozenset[str] = field(default_factory=frozenset)  # e.g. {"self_attn.o_proj", "mlp.down_proj"}


@dataclass
class Checkpoint:
    """What export needs of a checkpoint: config, family, widths, and a tensor reader."""

    directory: Path
    config: dict
    family: str
    head_dim: int
    layers: list[LayerShape]
    _files: dict[str, Path]

    @property
    def uniform(self) -> bool:
        """Whether every layer has the same widths (and the same set of biases)."""
        return all(layer == self.layers[0] for layer in self.layers)

    def has(self, name: str) -> bool:
        return name in self._files

    def tensor(self, name: str) -> torch.Tensor:
        """The stored tensor ``name`` as float32 on the CPU."""
        with safe_open(self._files[name], framework="pt") as f:
            return f.get_tensor(name).float()

    def shape(self, name: str) -> list[int]:
        """The stored shape of tensor ``name`` (read from the file's header, no data)."""
        with safe_open(self._files[name], framework="pt") as f:
            return list(f.get_slice(name).get_shape())

    def names(self) -> list[str]:
        return list(self._files)


def _weight_files(directory: Path) -> dict[str, Path]:
    from adapruner.models.load import check_weight_files

    check_weight_files(directory)
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise AdaprunerError(f"{directory} holds no *.safetensors weights; export reads safetensors checkpoints "
                             "(save with save_pretrained, or pass a directory written by adapruner)")
    where = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                where[name] = file
    return where


def _check_config(directory: Path) -> None:
    """The stored tensors against the widths config.json declares (the same check as loading)."""
    from transformers import AutoConfig

    from adapruner.models.load import check_against_config

    try:
        config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError, KeyError, TypeError):
        return  # a family transformers does not know is judged by export's own checks
    check_against_config(directory, config)


def read_checkpoint(directory: str | Path) -> Checkpoint:
    """Read the config and tensor index of ``directory``; a one-line error if it is not a checkpoint."""
    from adapruner.pruning.save import run_model_dir

    directory = run_model_dir(directory)
    if not (directory / "config.json").is_file():
        raise AdaprunerError(f"{directory} is not a checkpoint directory (no config.json); pass a directory written "
                             "by adapruner prune/search/finetune or a Hugging Face checkpoint")
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise AdaprunerError(f"cannot read {directory / 'config.json'} ({exc})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise AdaprunerError(f"{directory / 'config.json'} is not a model config (no model_type)")
    family = config.get("base_model_type") or config["model_type"]
    if family.startswith(PREFIX):
        family = family[len(PREFIX):]
    files = _weight_files(directory)
    _check_config(directory)
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    layers = []
    for i in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{i}."

        def rows(path: str) -> int:
            name = prefix + path + ".weight"
            if name not in files:
                return 0
            with safe_open(files[name], framework="pt") as f:
                return f.get_slice(name).get_shape()[0]

        biases = frozenset(name[len(prefix):-len(".bias")] for name in files
                           if name.startswith(prefix) and name.endswith(".bias"))
        layers.append(LayerShape(rows("self_attn.q_proj") // head_dim, rows("self_attn.k_proj") // head_dim,
                                 rows("mlp.gate_proj"), biases))
    return Checkpoint(directory, config, family, head_dim, layers, files)
