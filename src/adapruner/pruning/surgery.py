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

:func:`swap_pruned` does the same reversibly: the smaller modules stand in for the original ones
until its handle is removed, so a search trial runs its validation forward at the pruned model's
cost instead of the dense model's under masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from adapruner.core.adapters import FamilyAdapter, adapter_for
from adapruner.core.structure import LayerPlan, LayerShape, LinearUpdate, PruningPlan
from adapruner.pruning.masks import MaskHandle, update_hooks
from adapruner.pruning.modeling_pruned import layer_config


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


def _pruned_modules(layer: nn.Module, adapter: FamilyAdapter, base_cfg, idx: int, shape: LayerShape,
                    plan: LayerPlan, updates: dict[str, LinearUpdate]) -> dict[str, nn.Module]:
    """Layer ``idx``'s attention and MLP modules rebuilt at ``plan``'s widths through the family's
    own classes, holding the kept (or replacement) weights (attribute name -> module).

    They are built on the meta device and handed the gathered tensors, so no weight is initialised
    only to be overwritten. Tensors taken over without a gather (norms, output biases) are copied:
    the new modules never share storage with the old ones."""
    new_shape = plan.shape(shape)
    old_state = layer.state_dict()
    state = {k: v.clone() if v.data_ptr() == old_state[k].data_ptr() else v
             for k, v in _gathered_state(layer, adapter, shape, plan, updates).items()}
    cfg = layer_config(base_cfg, {"num_attention_heads": new_shape.num_heads,
                                  "num_key_value_heads": new_shape.num_kv_heads,
                                  "intermediate_size": new_shape.intermediate_size,
                                  "head_dim": new_shape.head_dim})
    built = {}
    for name in (adapter.attn, adapter.mlp):
        old = getattr(layer, name)
        with torch.device("meta"):
            new = type(old)(cfg, idx) if name == adapter.attn else type(old)(cfg)
        prefix = name + "."
        new.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                            strict=True, assign=True)
        # strict loading filled every parameter; a buffer outside the state dict would stay empty
        # (a streamed skeleton's layer is on the meta device anyway and stays there).
        held = dict(old.named_buffers())
        left = [n for n, b in new.named_buffers() if b.is_meta and not (n in held and held[n].is_meta)]
        if left:
            raise RuntimeError(f"layer {idx}: surgery left {name}'s buffers {left} without values")
        built[name] = new
    return built


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
        for name, module in _pruned_modules(layer, adapter, base_cfg, idx, shape, layer_plan, updates).items():
            setattr(layer, name, module)
    widths = layer_widths(model)
    for idx, updates in sorted(plan.updates.items()):
        biased = [path for path, u in updates.items() if u.bias is not None]
        for path in biased:
            add_bias(layers[idx].get_submodule(path), updates[path].bias)
        if biased:
            widths[idx]["output_bias"] = sorted(set(widths[idx].get("output_bias", [])) | set(biased))
    base_cfg.__dict__["layer_widths"] = widths
    return model


@dataclass
class _Swapped:
    """Modules standing in for a layer's own until :meth:`remove` puts the originals back."""

    layer: nn.Module
    originals: dict[str, nn.Module]

    def remove(self) -> None:
        for name, module in self.originals.items():
            setattr(self.layer, name, module)
        self.originals.clear()


@torch.no_grad()
def swap_pruned(model: nn.Module, plan: PruningPlan) -> MaskHandle:
    """Make ``model`` compute as if ``plan`` (with its weight updates) had been applied, by
    swapping physically pruned attention and MLP modules into the plan's layers until the returned
    handle is removed (use it as a context manager or call ``.remove()``).

    The same function as :func:`~adapruner.pruning.masks.apply_masks`, at the pruned model's cost:
    masks still run every dense product, the swapped modules only the kept ones. The price is a
    copy of the kept weights of the layers the plan narrows while the handle is held. Updates of
    layers the plan does not narrow act through hooks, as under masks. Not for autograd: the
    swapped modules are new leaves, so gradients never reach the model's own weights.
    """
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    base_cfg = adapter.text_config(model)
    handle = MaskHandle()
    try:
        for idx in sorted(set(plan.layers) | set(plan.updates)):
            updates = plan.updates.get(idx, {})
            shape = adapter.layer_shape(model, idx)
            layer_plan = plan.layers.get(idx) or LayerPlan.full(shape)
            layer_plan.validate(shape)
            if layer_plan.shape(shape) == shape:
                for path, update in updates.items():
                    handle.hooks += update_hooks(update, layers[idx].get_submodule(path))
                continue
            layer = layers[idx]
            built = _pruned_modules(layer, adapter, base_cfg, idx, shape, layer_plan, updates)
            handle.hooks.append(_Swapped(layer, {name: getattr(layer, name) for name in built}))
            for name, module in built.items():
                setattr(layer, name, module)
            for path, update in updates.items():
                if update.bias is not None:
                    add_bias(layer.get_submodule(path), update.bias)
    except Exception:
        handle.remove()
        raise
    return handle
