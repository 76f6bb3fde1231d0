"""Pruned checkpoints whose decoder layers differ in width: the ``adapruner_pruned_<family>`` types.

A standard transformers config has one ``num_attention_heads``, ``num_key_value_heads`` and
``intermediate_size`` for every layer. After non-uniform pruning each layer has its own widths,
so a pruned checkpoint records them in ``layer_widths`` (one dict per decoder layer) and uses a
model type derived from its family: ``adapruner_pruned_llama``, ``adapruner_pruned_qwen3``, ...
The config class subclasses the family's config (the global widths stay the original, valid
ones) and the model class subclasses the family's causal LM; after building the ordinary model it
rebuilds each layer's attention and MLP from a per-layer copy of the config. Forward, generation,
caching and weight tying are therefore exactly the family's own code.

This file imports only torch and transformers on purpose: ``save_pruned`` copies it next to the
weights and writes an ``auto_map``, so ``from_pretrained(dir, trust_remote_code=True)`` works where
adapruner is not installed. Importing :mod:`adapruner` registers the types with the Auto classes,
so there a plain ``from_pretrained(dir)`` works too.
"""

from __future__ import annotations

import copy

import torch.nn as nn
import transformers

# Width keys a layer may override; head_dim is always written so that no family falls back to
# hidden_size // num_attention_heads (wrong once heads are removed).
WIDTH_KEYS = ("num_attention_heads", "num_key_value_heads", "intermediate_size", "head_dim")
# Besides widths, a layer's entry may list ``output_bias``: paths of linears (o_proj, down_proj)
# that carry a bias the family's config does not give them (FLAP's bias compensation).

# base model_type -> (config class, causal-LM class) in transformers, from the family files
# (adapruner.core.families). A copy shipped next to the weights, where adapruner may be missing,
# carries its checkpoint's family in SHIPPED_FAMILIES (written by adapruner.pruning.save).
SHIPPED_FAMILIES: dict[str, tuple[str, str]] = {}
try:
    from adapruner.core.families import pruned_types as _pruned_types

    FAMILIES: dict[str, tuple[str, str]] = _pruned_types()
except ImportError:
    FAMILIES = dict(SHIPPED_FAMILIES)

# Where the decoder keeps its layers and a layer its attention and MLP; a checkpoint of a family
# laid out otherwise records its own in ``layer_layout``.
DEFAULT_LAYOUT = {"layers": "model.layers", "attn": "self_attn", "mlp": "mlp"}

PREFIX = "adapruner_pruned_"


def layer_config(config, widths: dict):
    """A private copy of ``config`` carrying one layer's widths.

    The values are written into ``__dict__`` directly because transformers 5 configs validate on
    setattr (``hidden_size % num_attention_heads``), which a pruned layer rarely satisfies and
    does not need to: every attention module reads ``head_dim`` explicitly. Being a copy, it
    does not follow a later ``model.set_attn_implementation``; choose the implementation when
    loading (``from_pretrained(..., attn_implementation=...)``) instead.
    """
    cfg = copy.deepcopy(config)
    for key in WIDTH_KEYS:
        if key in widths and widths[key] is not None:
            cfg.__dict__[key] = int(widths[key])
    return cfg


def rebuild_layer(layer: nn.Module, cfg, layer_idx: int, attn_name: str = "self_attn", mlp_name: str = "mlp") -> None:
    """Replace the layer's attention and MLP modules with fresh ones built from ``cfg``.

    Building through the family's own classes keeps every derived attribute right
    (``num_key_value_groups``, Phi-3's ``config.num_attention_heads`` in forward, sliding windows).
    The new modules are created on the old ones' device and dtype; their weights are
    uninitialised until the caller copies or loads them.
    """
    old_attn, old_mlp = getattr(layer, attn_name), getattr(layer, mlp_name)
    ref = next(old_attn.parameters())
    attn = type(old_attn)(cfg, layer_idx)
    mlp = type(old_mlp)(cfg)
    setattr(layer, attn_name, attn.to(device=ref.device, dtype=ref.dtype))
    setattr(layer, mlp_name, mlp.to(device=ref.device, dtype=ref.dtype))


def add_output_biases(layer: nn.Module, paths: list[str]) -> None:
    """Give the linears at ``paths`` (relative to the layer) a bias if they have none; their
    values come with the checkpoint (FLAP-style bias compensation, see ``output_bias``)."""
    for path in paths or []:
        linear = layer.get_submodule(path)
        if linear.bias is None:
            linear.bias = nn.Parameter(linear.weight.new_zeros(linear.out_features))


def _base_type(config) -> str:
    return getattr(config, "base_model_type", None) or config.model_type


def _make_classes(base_type: str, config_name: str, model_name: str):
    base_config = getattr(transformers, config_name)
    base_model = getattr(transformers, model_name)
    stem = base_model.__name__.replace("ForCausalLM", "")

    config_cls = type(
        f"AdaprunerPruned{stem}Config",
        (base_config,),
        {
            "__module__": __name__,
            "__doc__": f"{config_name} plus per-layer widths (``layer_widths``) of a pruned model.",
            "model_type": PREFIX + base_type,
            "__annotations__": {"layer_widths": "list | None", "base_model_type": "str"},
            "layer_widths": None,
            "base_model_type": base_type,
        },
    )

    def __init__(self, config):
        base_model.__init__(self, config)
        widths = getattr(config, "layer_widths", None) or []
        layout = {**DEFAULT_LAYOUT, **(getattr(config, "layer_layout", None) or {})}
        layers = self.get_submodule(layout["layers"])
        if widths and len(widths) != len(layers):
            raise ValueError(f"layer_widths has {len(widths)} entries but the model has {len(layers)} layers")
        for i, w in enumerate(widths):
            rebuild_layer(layers[i], layer_config(config, w), i, layout["attn"], layout["mlp"])
            add_output_biases(layers[i], w.get("output_bias"))
        # Again, so that the rebuilt modules are initialised and registered like the originals.
        self.post_init()

    model_cls = type(
        f"AdaprunerPruned{stem}ForCausalLM",
        (base_model,),
        {"__module__": __name__, "config_class": config_cls, "__init__": __init__,
         "__doc__": f"{model_name} whose decoder layers have the widths in ``config.layer_widths``."},
    )
    # A plain ``model.save_pretrained(dir)`` then also ships this file and writes ``auto_map``.
    config_cls.register_for_auto_class()
    model_cls.register_for_auto_class("AutoModelForCausalLM")
    return config_cls, model_cls


CONFIG_CLASSES: dict[str, type] = {}
MODEL_CLASSES: dict[str, type] = {}
for _base, (_cfg_name, _model_name) in FAMILIES.items():
    _cfg_cls, _model_cls = _make_classes(_base, _cfg_name, _model_name)
    CONFIG_CLASSES[_base], MODEL_CLASSES[_base] = _cfg_cls, _model_cls
    # Module-level names so that ``auto_map`` entries ("modeling_pruned.<Name>") resolve.
    globals()[_cfg_cls.__name__] = _cfg_cls
    globals()[_model_cls.__name__] = _model_cls


def pruned_config(config, layer_widths: list[dict]):
    """The config of a pruned model: ``config``'s family type with per-layer ``layer_widths``.

    ``config`` is the original (or an already pruned) config; the global widths keep their
    original values so that the family's validation still holds.
    """
    base = _base_type(config)
    if base not in CONFIG_CLASSES:
        raise ValueError(f"no pruned model type for '{base}'; supported: {', '.join(sorted(FAMILIES))}")
    data = config.to_dict()
    for key in ("model_type", "auto_map", "architectures", "transformers_version"):
        data.pop(key, None)
    data["layer_widths"] = [{k: (list(v) if k == "output_bias" else int(v)) for k, v in w.items()}
                            for w in layer_widths]
    data["base_model_type"] = base
    cfg = CONFIG_CLASSES[base].from_dict(data)
    cfg.architectures = [MODEL_CLASSES[base].__name__]
    cfg._attn_implementation = getattr(config, "_attn_implementation", None)
    return cfg


def auto_map(base_type: str) -> dict:
    """``auto_map`` entries that point the Auto classes at this file shipped next to weights."""
    return {
        "AutoConfig": f"modeling_pruned.{CONFIG_CLASSES[base_type].__name__}",
        "AutoModelForCausalLM": f"modeling_pruned.{MODEL_CLASSES[base_type].__name__}",
    }


def register() -> None:
    """Register every pruned type with AutoConfig / AutoModelForCausalLM (idempotent)."""
    for base, cfg_cls in CONFIG_CLASSES.items():
        transformers.AutoConfig.register(cfg_cls.model_type, cfg_cls, exist_ok=True)
        transformers.AutoModelForCausalLM.register(cfg_cls, MODEL_CLASSES[base], exist_ok=True)


register()
