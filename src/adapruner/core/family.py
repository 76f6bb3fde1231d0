"""What a model family is, as data: its adapter (where its decoder keeps layers, heads, MLP
channels and norms), the transformers classes its pruned checkpoints subclass, how it maps onto
llama.cpp, and a tiny configuration for the tests. Each family is one file in :mod:`.families`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

from adapruner.core.structure import LayerShape, Member


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


@dataclass(frozen=True)
class GGUFMapping:
    """How a family maps onto llama.cpp.

    ``arch``: the family's own llama.cpp architecture (one width for all layers). ``interleaved``:
    that architecture ropes interleaved pairs (q/k rows are permuted). ``output_bias``: it loads
    biases on ``attn_output`` / ``ffn_down``. ``full_width_q``: it sizes ``attn_q`` / ``attn_output``
    as ``hidden_size`` (pruned heads do not fit it).
    """

    arch: str
    interleaved: bool
    output_bias: bool
    full_width_q: bool = False


@dataclass(frozen=True)
class Family:
    """One model family: its ``adapter``; ``pruned_type``, the transformers (config class,
    causal-LM class) that its ``adapruner_pruned_<model_type>`` checkpoints subclass (None: it
    cannot be saved, e.g. a multimodal wrapper); ``gguf``, its llama.cpp mapping, or
    ``gguf_unsupported``, why it has none; ``tiny``, keyword arguments that, with the tests'
    common widths, make a tiny random model of it (None: no tiny model)."""

    adapter: FamilyAdapter
    pruned_type: tuple[str, str] | None = None
    gguf: GGUFMapping | None = None
    gguf_unsupported: str | None = None
    tiny: dict | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def model_type(self) -> str:
        """The transformers ``model_type`` of its checkpoints (the first the adapter covers)."""
        return self.adapter.model_types[0]
