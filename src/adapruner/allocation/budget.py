"""The removal steps each layer offers: parameter costs, GQA-valid attention steps, channel counts.

Shared by every allocator (:mod:`adapruner.allocation.base`). Attention is removed in steps that
keep a valid GQA layer:

* ``heads``: one query head from *every* KV group (each group keeps the same number of heads;
  with one head per group a head is its own group, so the step removes a whole group);
* ``kv``: one whole KV group (the KV head and the query heads that read it);
* ``none``: attention untouched.

MLP channels are removed individually, but the kept count is rounded to a multiple of
``round_to`` where the layer is wide enough, which keeps the matrices fast.

The default layer range skips the first and last layers like the paper (layers 4..29 of
LLaMA-7B's 32), scaled to the model's depth (first ``round(L/8)``, last ``round(L/16)``), so 30-
and 32-layer models skip 4 and 2 and a 4-layer test model skips none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from adapruner.config import AllocationConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.params import count_parameters
from adapruner.core.structure import LayerPlan, LayerShape, PruningPlan
from adapruner.errors import AdaprunerError

ATTENTION_MODES = ("heads", "kv", "none")


def default_layer_range(num_layers: int) -> tuple[int, int]:
    """The paper's range (skip 4 first and 2 last of 32 layers) scaled to ``num_layers``."""
    return round(num_layers / 8), num_layers - round(num_layers / 16)


def resolve_layer_range(num_layers: int, layers: list[int] | tuple[int, int] | None) -> tuple[int, int]:
    """Validate ``[first, last)`` against the model depth (None = :func:`default_layer_range`)."""
    if layers is None:
        return default_layer_range(num_layers)
    if len(layers) != 2:
        raise AdaprunerError(f"layer range must be two numbers [first, last), got {list(layers)}")
    a, b = int(layers[0]), int(layers[1])
    if not (0 <= a < b <= num_layers):
        raise AdaprunerError(
            f"layer range [{a}, {b}) is empty or outside the model's {num_layers} layers; "
            f"use 0 <= first < last <= {num_layers}, e.g. --layers {default_layer_range(num_layers)[0]}:"
            f"{default_layer_range(num_layers)[1]}")
    return a, b


@dataclass
class LayerBudget:
    """What one layer can give: parameter cost of each removal step and how many steps it allows."""

    index: int
    shape: LayerShape
    attn_step_cost: int  # parameters removed by one attention step (0 if attention is not pruned)
    attn_max_steps: int
    attn_full_steps: int  # steps that would remove all attention (for the uniform fraction)
    channel_cost: int  # parameters per MLP channel
    channel_min_keep: int
    attn_params: int
    mlp_params: int

    @property
    def max_removable(self) -> int:
        return self.attn_step_cost * self.attn_max_steps + self.channel_cost * (
            self.shape.intermediate_size - self.channel_min_keep)


def unit_costs(layer: nn.Module, members) -> dict[str, int]:
    """Parameters that one unit of each kind owns in this layer (weights and biases)."""
    costs = {"head": 0, "kv": 0, "channel": 0}
    for m in members:
        linear = layer.get_submodule(m.path)
        other = linear.in_features if m.axis == 0 else linear.out_features
        costs[m.unit] += m.width * other + (m.width if m.axis == 0 and linear.bias is not None else 0)
    return costs


def attention_steps_by_group(shape: LayerShape, attention: str) -> bool:
    """True when an attention step removes a whole KV group (kv mode, or one head per group)."""
    return attention == "kv" or shape.group_size == 1


def layer_budgets(model: nn.Module, layer_range: tuple[int, int], config: AllocationConfig) -> list[LayerBudget]:
    """The removal steps every layer in ``layer_range`` offers under ``config``."""
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    out = []
    for i in range(*layer_range):
        shape = adapter.layer_shape(model, i)
        costs = unit_costs(layers[i], adapter.members(shape))
        g, nkv = shape.group_size, shape.num_kv_heads
        if config.attention == "none":
            step, max_steps, full = 0, 0, 1
        elif attention_steps_by_group(shape, config.attention):
            step, max_steps, full = costs["kv"] + g * costs["head"], nkv - 1, nkv
        else:
            step, max_steps, full = nkv * costs["head"], g - 1, g
        out.append(LayerBudget(
            index=i, shape=shape, attn_step_cost=step, attn_max_steps=max_steps, attn_full_steps=full,
            channel_cost=costs["channel"], channel_min_keep=min(config.round_to, shape.intermediate_size),
            attn_params=shape.num_heads * costs["head"] + nkv * costs["kv"],
            mlp_params=shape.intermediate_size * costs["channel"],
        ))
    return out


def max_reachable_ratio(model: nn.Module, config: AllocationConfig) -> float:
    """The largest ratio that the layer range and attention mode of ``config`` allow."""
    n = len(adapter_for(model).decoder_layers(model))
    budgets = layer_budgets(model, resolve_layer_range(n, config.layers), config)
    return sum(b.max_removable for b in budgets) / count_parameters(model)


# -- turning step counts into kept units ------------------------------------------------------

def top_units(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` highest scores, sorted by index (ties broken by lower index)."""
    if k >= scores.numel():
        return list(range(scores.numel()))
    order = torch.argsort(scores.detach().float().cpu(), descending=True, stable=True)
    return sorted(order[:k].tolist())


def layer_plan(b: LayerBudget, s: dict[str, torch.Tensor], attention: str, attn_steps: int,
                kept_channels: int) -> LayerPlan:
    shape = b.shape
    g, nkv = shape.group_size, shape.num_kv_heads
    if attn_steps == 0:
        heads, kv = list(range(shape.num_heads)), list(range(nkv))
    elif attention_steps_by_group(shape, attention):
        kv = top_units(s["kv"], nkv - attn_steps)
        heads = [h for k in kv for h in range(k * g, (k + 1) * g)]
    else:
        kv, heads = list(range(nkv)), []
        for k in range(nkv):
            heads += [k * g + h for h in top_units(s["head"][k * g:(k + 1) * g], g - attn_steps)]
    channels = top_units(s["channel"], kept_channels) if kept_channels < shape.intermediate_size \
        else list(range(shape.intermediate_size))
    return LayerPlan(kept_heads=heads, kept_kv=kv, kept_channels=channels)


def channel_options(b: LayerBudget, round_to: int) -> list[int]:
    """Allowed kept-channel counts, ascending: multiples of round_to, plus the full width."""
    inter = b.shape.intermediate_size
    opts = list(range(b.channel_min_keep, inter + 1, round_to)) if inter >= round_to else [inter]
    if opts[-1] != inter:
        opts.append(inter)
    return opts



def removed_parameters(model: nn.Module, plan: PruningPlan) -> int:
    """Parameters that applying ``plan`` to ``model`` removes (computed, no surgery needed)."""
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    removed = 0
    for i, p in plan.layers.items():
        shape = adapter.layer_shape(model, i)
        costs = unit_costs(layers[i], adapter.members(shape))
        removed += (shape.num_heads - len(p.kept_heads)) * costs["head"]
        removed += (shape.num_kv_heads - len(p.kept_kv)) * costs["kv"]
        removed += (shape.intermediate_size - len(p.kept_channels)) * costs["channel"]
    return removed
