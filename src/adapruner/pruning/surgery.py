"""Physical pruning: replace every pruned layer's linears with smaller dense ones.

For each pruned layer the attention and MLP modules are rebuilt through the family's own classes
from a per-layer copy of the config (so derived attributes such as ``num_key_value_groups`` are
right), and their weights are the kept rows/columns of the old ones, gathered member by member
with :meth:`Member.index`. Members that share a linear (Phi-3's fused qkv_proj / gate_up_proj)
are concatenated in member order, which is their order inside the fused weight. Biases follow
their rows; per-head-dim norms (q_norm/k_norm) are shared by all heads and are copied unchanged.
The plan's weight updates (:class:`~adapruner.core.structure.LinearUpdate`) are applied on the
way: a replacement weight is gathered instead of the old one, an added bias becomes the linear's
bias (recorded per layer in ``layer_widths[i]["output_bias"]``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from adapruner.core.adapters import FamilyAdapter, adapter_for
from adapruner.core.structure import LayerPlan, LayerShape, LinearUpdate, PruningPlan
from adapruner.pruning.modeling_pruned import layer_config, rebuild_layer


def add_bias(linear: nn.Linear, bias: torch.Tensor) -> None:
    """Add ``bias`` to ``linear``'s output, creating its bias parameter when it has none."""
    bias = bias.to(device=linear.weight.device, dtype=linear.weight.dtype)
    if linear.bias is None:
        linear.bias = nn.Parameter(bias.clone(), requires_grad=linear.weight.requires_grad)
    else:
        linear.bias.data += bias


def _gathered_state(layer: nn.Module, adapter: FamilyAdapter, shape: LayerShape, plan: LayerPlan,
                    updates: dict[str, LinearUpdate]) -> dict:
    """State dict (relative to the layer) of the pruned attention and MLP modules, with the
    replacement weights of ``updates`` gathered like the originals."""
    state = {k: v for k, v in layer.state_dict().items() if k.startswith((adapter.attn + ".", adapter.mlp + "."))}
    for path, update in updates.items():
        if update.weight is not None:
            old = state[f"{path}.weight"]
            state[f"{path}.weight"] = update.weight.to(dtype=old.dtype, device=old.device)
    by_path: dict[str, list] = {}
    for member in adapter.members(shape):
        by_path.setdefault(member.path, []).append(member)
    for path, members in by_path.items():
        linear = layer.get_submodule(path)
        for axis in (0, 1):
            parts = [m.index(plan.kept(m.unit)) for m in members if m.axis == axis]
            if not parts:
                continue
            idx = torch.cat(parts).to(linear.weight.device)
            state[f"{path}.weight"] = state[f"{path}.weight"].index_select(axis, idx)
            if axis == 0 and linear.bias is not None:
                state[f"{path}.bias"] = state[f"{path}.bias"].index_select(0, idx)
    return state


def layer_widths(model: nn.Module) -> list[dict]:
    """Current widths of every decoder layer, as recorded in a pruned checkpoint's config."""
    adapter = adapter_for(model)
    recorded = adapter.text_config(model).__dict__.get("layer_widths") or []
    widths = []
    for i in range(len(adapter.decoder_layers(model))):
        s = adapter.layer_shape(model, i)
        w = {"num_attention_heads": s.num_heads, "num_key_value_heads": s.num_kv_heads,
             "intermediate_size": s.intermediate_size, "head_dim": s.head_dim}
        # Compensation biases added by an earlier pruning (the config is their only record: a
        # family configured with e.g. attention_bias has biases that are not ours to list).
        if i < len(recorded) and recorded[i].get("output_bias"):
            w["output_bias"] = list(recorded[i]["output_bias"])
        widths.append(w)
    return widths


@torch.no_grad()
def prune_model(model: nn.Module, plan: PruningPlan) -> nn.Module:
    """Remove the structures ``plan`` drops, in place, and return the (now smaller) model.

    Every layer in the plan gets new, smaller ``nn.Linear`` modules; nothing else changes. The
    per-layer widths are recorded on ``model.config.layer_widths`` so that saving (and anyone
    inspecting the config) sees them. Masks must be removed before calling this.
    """
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    base_cfg = adapter.text_config(model)
    for idx, layer_plan in sorted(plan.layers.items()):
        shape = adapter.layer_shape(model, idx)
        layer_plan.validate(shape)
        new_shape = layer_plan.shape(shape)
        updates = plan.updates.get(idx, {})
        layer = layers[idx]
        if new_shape == shape:
            for path, update in updates.items():
                if update.weight is not None:
                    linear = layer.get_submodule(path)
                    linear.weight.data.copy_(update.weight.to(linear.weight.dtype))
            continue
        state = _gathered_state(layer, adapter, shape, layer_plan, updates)
        cfg = layer_config(base_cfg, {"num_attention_heads": new_shape.num_heads,
                                      "num_key_value_heads": new_shape.num_kv_heads,
                                      "intermediate_size": new_shape.intermediate_size,
                                      "head_dim": new_shape.head_dim})
        rebuild_layer(layer, cfg, idx, attn_name=adapter.attn, mlp_name=adapter.mlp)
        missing, unexpected = layer.load_state_dict(state, strict=False)
        # Only the untouched norms of the decoder layer itself may be absent from ``state``.
        missing = [k for k in missing if k.startswith((adapter.attn + ".", adapter.mlp + "."))]
        if missing or unexpected:
            raise RuntimeError(f"layer {idx}: surgery left missing={missing} unexpected={unexpected}")
    widths = layer_widths(model)
    for idx, updates in sorted(plan.updates.items()):
        biased = [path for path, u in updates.items() if u.bias is not None]
        for path in biased:
            add_bias(layers[idx].get_submodule(path), updates[path].bias)
        if biased:
            widths[idx]["output_bias"] = sorted(set(widths[idx].get("output_bias", [])) | set(biased))
    base_cfg.__dict__["layer_widths"] = widths
    return model
