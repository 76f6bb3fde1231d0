"""Family adapters: where each model family keeps its decoder layers, heads, MLP channels and norm.

An adapter is pure data. Everything else (importance, masks, surgery, saving) asks the adapter
for the decoder layers, a layer's :class:`~adapruner.core.structure.LayerShape` and its
:class:`~adapruner.core.structure.Member` list, so a new family is one more entry in
:data:`ADAPTERS`, never an ``if model_type == ...`` elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from adapruner.core.structure import LayerShape, Member
from adapruner.errors import AdaprunerError


def text_config(model: nn.Module):
    """The config that holds the decoder's widths: the text sub-config of multimodal wrappers,
    else the model's own config (works for any transformers model, supported or not)."""
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


@dataclass(frozen=True)
class FamilyAdapter:
    """Declarative description of one model family's decoder layer.

    ``qkv`` names a fused q/k/v projection (Phi-3) instead of separate ``q``/``k``/``v``;
    ``gate_up`` names a fused gate/up projection instead of separate ``gate``/``up``.
    ``norms_per_head`` lists per-head-dim norms (Qwen3, Gemma3 q_norm/k_norm): they act on
    ``head_dim`` and are shared by all heads, so pruning heads leaves them untouched.
    """

    name: str
    model_types: tuple[str, ...]
    layers: str = "model.layers"
    norm: str | None = None  # the final norm after the decoder layers (None: "<parent of layers>.norm")
    attn: str = "self_attn"
    mlp: str = "mlp"
    q: str = "q_proj"
    k: str = "k_proj"
    v: str = "v_proj"
    o: str = "o_proj"
    qkv: str | None = None
    gate: str = "gate_proj"
    up: str = "up_proj"
    down: str = "down_proj"
    gate_up: str | None = None
    norms_per_head: tuple[str, ...] = ()
    example: str = ""  # a model of this family, for documentation and `adapruner models`

    # -- navigation -------------------------------------------------------------------------
    def decoder_layers(self, model: nn.Module) -> nn.ModuleList:
        """The model's list of decoder layers."""
        return model.get_submodule(self.layers)

    def final_norm(self, model: nn.Module) -> nn.Module:
        """The norm applied to the last decoder layer's output before the LM head."""
        return model.get_submodule(self.norm or self.layers.rsplit(".", 1)[0] + ".norm")

    def text_config(self, model: nn.Module):
        """The config that holds layer widths (the text sub-config for multimodal wrappers)."""
        return text_config(model)

    def layer_shape(self, model: nn.Module, index: int) -> LayerShape:
        """Current widths of decoder layer ``index`` (read from the modules, not the config)."""
        layer = self.decoder_layers(model)[index]
        cfg = self.text_config(model)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        attn = layer.get_submodule(self.attn)
        if self.qkv:
            nkv = getattr(attn, "num_key_value_heads", None) or getattr(attn.config, "num_key_value_heads")
            out = attn.get_submodule(self.qkv).out_features
            nq = out // head_dim - 2 * nkv
        else:
            nq = attn.get_submodule(self.q).out_features // head_dim
            nkv = attn.get_submodule(self.k).out_features // head_dim
        mlp = layer.get_submodule(self.mlp)
        inter = mlp.get_submodule(self.down).in_features
        return LayerShape(num_heads=nq, num_kv_heads=nkv, head_dim=head_dim, intermediate_size=inter)

    def members(self, shape: LayerShape) -> list[Member]:
        """Every (linear, slice) that a unit of a layer with ``shape`` occupies."""
        hd, nq, nkv, inter = shape.head_dim, shape.num_heads, shape.num_kv_heads, shape.intermediate_size
        a, m = self.attn, self.mlp
        if self.qkv:
            qkv = f"{a}.{self.qkv}"
            attn = [
                Member("q", qkv, "head", 0, 0, hd, nq),
                Member("k", qkv, "kv", 0, nq * hd, hd, nkv),
                Member("v", qkv, "kv", 0, (nq + nkv) * hd, hd, nkv),
            ]
        else:
            attn = [
                Member("q", f"{a}.{self.q}", "head", 0, 0, hd, nq),
                Member("k", f"{a}.{self.k}", "kv", 0, 0, hd, nkv),
                Member("v", f"{a}.{self.v}", "kv", 0, 0, hd, nkv),
            ]
        attn.append(Member("o", f"{a}.{self.o}", "head", 1, 0, hd, nq))
        if self.gate_up:
            gu = f"{m}.{self.gate_up}"
            mlp = [Member("gate", gu, "channel", 0, 0, 1, inter), Member("up", gu, "channel", 0, inter, 1, inter)]
        else:
            mlp = [
                Member("gate", f"{m}.{self.gate}", "channel", 0, 0, 1, inter),
                Member("up", f"{m}.{self.up}", "channel", 0, 0, 1, inter),
            ]
        mlp.append(Member("down", f"{m}.{self.down}", "channel", 1, 0, 1, inter))
        return attn + mlp


ADAPTERS: tuple[FamilyAdapter, ...] = (
    FamilyAdapter("llama", ("llama",), example="SmolLM2, TinyLlama, Vicuna, Llama-2/3"),
    FamilyAdapter("mistral", ("mistral",), example="Mistral-7B"),
    FamilyAdapter("qwen2", ("qwen2",), example="Qwen2, Qwen2.5 (q/k/v biases)"),
    FamilyAdapter("qwen3", ("qwen3",), norms_per_head=("q_norm", "k_norm"), example="Qwen3"),
    FamilyAdapter("gemma2", ("gemma2",), example="Gemma-2 (head_dim != hidden/heads, sandwich norms)"),
    FamilyAdapter(
        "gemma3", ("gemma3_text",), norms_per_head=("q_norm", "k_norm"),
        example="Gemma-3 text (qk-norm, tied embeddings)",
    ),
    # The multimodal Gemma-3 (what AutoModelForCausalLM builds for model_type "gemma3") keeps
    # its decoder under model.language_model; only its text layers are pruned.
    FamilyAdapter(
        "gemma3-multimodal", ("gemma3",), layers="model.language_model.layers",
        norms_per_head=("q_norm", "k_norm"), example="Gemma-3 4B+ (text layers of the multimodal model)",
    ),
    FamilyAdapter("phi3", ("phi3",), qkv="qkv_proj", gate_up="gate_up_proj", example="Phi-3 (fused qkv, gate_up)"),
)


def supported_model_types() -> list[str]:
    """All transformers ``model_type`` values the engine can prune."""
    return sorted(t for a in ADAPTERS for t in a.model_types)


def adapter_for(model_or_type) -> FamilyAdapter:
    """The adapter for a model (or a ``model_type`` string); a clear error if unsupported."""
    if isinstance(model_or_type, str):
        model_type = model_or_type
    else:
        cfg = model_or_type.config
        # A pruned checkpoint records the family it came from.
        model_type = getattr(cfg, "base_model_type", None) or cfg.model_type
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise AdaprunerError(
        f"unsupported architecture '{model_type}'; supported model types: {', '.join(supported_model_types())}"
    )
