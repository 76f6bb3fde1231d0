"""Allocation: turn per-unit scores and a target ratio into a :class:`PruningPlan`.

The ratio is the paper's: the share of the model's *total* parameters (embeddings included) that
is removed. Only decoder layers inside the layer range are touched; by default the range skips
the first and last layers like the paper (layers 4..29 of LLaMA-7B's 32), scaled to the model's
depth (first ``round(L/8)``, last ``round(L/16)``), so 30- and 32-layer models skip 4 and 2 and a
4-layer test model skips none.

Attention is removed in steps that keep a valid GQA layer:

* ``heads``: one query head from *every* KV group (each group keeps the same number of heads;
  with one head per group a head is its own group, so the step removes a whole group);
* ``kv``: one whole KV group (the KV head and the query heads that read it);
* ``none``: attention untouched.

MLP channels are removed individually, but the kept count is rounded to a multiple of
``round_to`` where the layer is wide enough, which keeps the matrices fast.

Two modes:

* ``uniform``: every layer in the range loses the same fraction. Heads are coarse, so the head
  steps per layer come from the fraction and MLP channels fill the rest of the budget (the kept
  channel counts may differ by one ``round_to`` block between layers so the total lands close to
  the target).
* ``global``: greedy across layers, always taking the removal step with the lowest score per
  removed parameter that still fits the budget.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch
import torch.nn as nn

from adapruner.config import AllocationConfig
from adapruner.errors import AdaprunerError
from adapruner.pruning.adapters import adapter_for
from adapruner.pruning.structure import LayerPlan, LayerShape, PruningPlan, Scores

MODES = ("uniform", "global")
ATTENTION_MODES = ("heads", "kv", "none")


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


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


def _unit_costs(layer: nn.Module, members) -> dict[str, int]:
    """Parameters that one unit of each kind owns in this layer (weights and biases)."""
    costs = {"head": 0, "kv": 0, "channel": 0}
    for m in members:
        linear = layer.get_submodule(m.path)
        other = linear.in_features if m.axis == 0 else linear.out_features
        costs[m.unit] += m.width * other + (m.width if m.axis == 0 and linear.bias is not None else 0)
    return costs


def _attention_steps_by_group(shape: LayerShape, attention: str) -> bool:
    """True when an attention step removes a whole KV group (kv mode, or one head per group)."""
    return attention == "kv" or shape.group_size == 1


def layer_budgets(model: nn.Module, layer_range: tuple[int, int], config: AllocationConfig) -> list[LayerBudget]:
    """The removal steps every layer in ``layer_range`` offers under ``config``."""
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    out = []
    for i in range(*layer_range):
        shape = adapter.layer_shape(model, i)
        costs = _unit_costs(layers[i], adapter.members(shape))
        g, nkv = shape.group_size, shape.num_kv_heads
        if config.attention == "none":
            step, max_steps, full = 0, 0, 1
        elif _attention_steps_by_group(shape, config.attention):
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

def _top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` highest scores, sorted by index (ties broken by lower index)."""
    if k >= scores.numel():
        return list(range(scores.numel()))
    order = torch.argsort(scores.detach().float().cpu(), descending=True, stable=True)
    return sorted(order[:k].tolist())


def _layer_plan(b: LayerBudget, s: dict[str, torch.Tensor], attention: str, attn_steps: int,
                kept_channels: int) -> LayerPlan:
    shape = b.shape
    g, nkv = shape.group_size, shape.num_kv_heads
    if attn_steps == 0:
        heads, kv = list(range(shape.num_heads)), list(range(nkv))
    elif _attention_steps_by_group(shape, attention):
        kv = _top(s["kv"], nkv - attn_steps)
        heads = [h for k in kv for h in range(k * g, (k + 1) * g)]
    else:
        kv, heads = list(range(nkv)), []
        for k in range(nkv):
            heads += [k * g + h for h in _top(s["head"][k * g:(k + 1) * g], g - attn_steps)]
    channels = _top(s["channel"], kept_channels) if kept_channels < shape.intermediate_size \
        else list(range(shape.intermediate_size))
    return LayerPlan(kept_heads=heads, kept_kv=kv, kept_channels=channels)


def _channel_options(b: LayerBudget, round_to: int) -> list[int]:
    """Allowed kept-channel counts, ascending: multiples of round_to, plus the full width."""
    inter = b.shape.intermediate_size
    opts = list(range(b.channel_min_keep, inter + 1, round_to)) if inter >= round_to else [inter]
    if opts[-1] != inter:
        opts.append(inter)
    return opts


# -- uniform ------------------------------------------------------------------------------------

def _fill_channels(budgets: list[LayerBudget], remaining: float, round_to: int) -> list[int] | None:
    """Kept channel counts that remove about ``remaining`` parameters spread evenly over the layers.

    Returns None when the MLPs cannot give that much (or ``remaining`` is negative).
    """
    if remaining < 0:
        return None
    mlp_total = sum(b.mlp_params for b in budgets)
    options = [_channel_options(b, round_to) for b in budgets]
    kept = []
    for b, opts in zip(budgets, options):
        want = b.shape.intermediate_size - remaining * (b.mlp_params / mlp_total) / b.channel_cost
        kept.append(min(opts, key=lambda o: (abs(o - want), o)))
    pos = [opts.index(k) for opts, k in zip(options, kept)]

    def error() -> float:
        return sum((b.shape.intermediate_size - k) * b.channel_cost for b, k in zip(budgets, kept)) - remaining

    # Move one block at a time (widest layer gives first, narrowest takes back first) while it helps.
    while True:
        e = error()
        if e < 0:
            cands = [i for i in range(len(kept)) if pos[i] > 0]
            if not cands:
                return None if -e > budgets[0].channel_cost * round_to else kept
            i = max(cands, key=lambda j: (kept[j], -j))
            step = -1
        elif e > 0:
            cands = [i for i in range(len(kept)) if pos[i] < len(options[i]) - 1]
            if not cands:
                return kept
            i = min(cands, key=lambda j: (kept[j], j))
            step = 1
        else:
            return kept
        new = options[i][pos[i] + step]
        new_e = e + (kept[i] - new) * budgets[i].channel_cost
        if abs(new_e) >= abs(e):
            return kept
        kept[i], pos[i] = new, pos[i] + step


def _uniform(budgets: list[LayerBudget], scores: Scores, target: float, config: AllocationConfig) -> PruningPlan:
    prunable = sum(b.attn_params + b.mlp_params for b in budgets)
    frac = target / prunable

    def steps(delta: int) -> list[int]:
        return [max(0, min(b.attn_max_steps, round(frac * b.attn_full_steps) + delta)) for b in budgets]

    # Start from the fraction; add attention steps while the MLPs cannot cover the rest, remove
    # them while attention alone overshoots. If no step count fits exactly (coarse heads near the
    # maximum ratio), take the closest total.
    span = max((b.attn_full_steps for b in budgets), default=0)
    fallback = None
    for delta in sorted(range(-span, span + 1), key=lambda d: (abs(d), -d)):
        st = steps(delta)
        remaining = target - sum(s * b.attn_step_cost for s, b in zip(st, budgets))
        kept = _fill_channels(budgets, remaining, config.round_to)
        if kept is not None:
            break
        kept = [b.channel_min_keep if remaining > 0 else b.shape.intermediate_size for b in budgets]
        err = abs(remaining - sum((b.shape.intermediate_size - k) * b.channel_cost for b, k in zip(budgets, kept)))
        if fallback is None or err < fallback[0]:
            fallback = (err, st, kept)
    else:
        _, st, kept = fallback
    return PruningPlan({b.index: _layer_plan(b, scores[b.index], config.attention, s, k)
                        for b, s, k in zip(budgets, st, kept)})


# -- global -------------------------------------------------------------------------------------

def _global(budgets: list[LayerBudget], scores: Scores, target: float, config: AllocationConfig) -> PruningPlan:
    """Greedy: repeatedly take the cheapest step (score per parameter) that fits the budget."""
    state = {}
    heap: list[tuple[float, int, str]] = []

    def attn_step_score(b: LayerBudget, done: int) -> float:
        s = scores[b.index]
        shape = b.shape
        g, nkv = shape.group_size, shape.num_kv_heads
        if _attention_steps_by_group(shape, config.attention):
            return float(torch.sort(s["kv"].float().cpu()).values[done])
        # the next head removed in every group is each group's (done)-th lowest
        per_group = torch.sort(s["head"].float().cpu().reshape(nkv, g), dim=1).values
        return float(per_group[:, done].sum())

    chan_sorted = {b.index: torch.sort(scores[b.index]["channel"].float().cpu()).values for b in budgets}

    def chan_step(b: LayerBudget, kept: int) -> tuple[int, float] | None:
        # next allowed count below ``kept``: the multiple of round_to under it (see _channel_options)
        new = (kept - 1) // config.round_to * config.round_to
        if new < b.channel_min_keep:
            return None
        removed_sorted = chan_sorted[b.index]
        done = b.shape.intermediate_size - kept
        score = float(removed_sorted[done:done + kept - new].sum())
        return kept - new, score

    def push(b: LayerBudget, kind: str) -> None:
        st = state[b.index]
        if kind == "attn" and st["attn"] < b.attn_max_steps and b.attn_step_cost > 0:
            heapq.heappush(heap, (attn_step_score(b, st["attn"]) / b.attn_step_cost, b.index, "attn"))
        elif kind == "chan":
            nxt = chan_step(b, st["kept"])
            if nxt is not None:
                n, score = nxt
                heapq.heappush(heap, (score / (n * b.channel_cost), b.index, "chan"))

    by_index = {b.index: b for b in budgets}
    for b in budgets:
        state[b.index] = {"attn": 0, "kept": b.shape.intermediate_size}
        push(b, "attn")
        push(b, "chan")
    removed = 0.0
    while heap:
        _, i, kind = heapq.heappop(heap)
        b, st = by_index[i], state[i]
        if kind == "attn":
            cost = b.attn_step_cost
        else:
            n, _ = chan_step(b, st["kept"])
            cost = n * b.channel_cost
        if removed + cost > target + 0.5 * config.round_to * b.channel_cost:
            continue  # would overshoot: this layer's next step of this kind is out of the budget
        removed += cost
        if kind == "attn":
            st["attn"] += 1
        else:
            st["kept"] -= n
        push(b, kind)
    return PruningPlan({b.index: _layer_plan(b, scores[b.index], config.attention, state[b.index]["attn"],
                                             state[b.index]["kept"]) for b in budgets})


# -- entry point --------------------------------------------------------------------------------

def validate_allocation(config: AllocationConfig) -> None:
    """Reject unknown modes and bad rounding with a one-line error."""
    if config.mode not in MODES:
        raise AdaprunerError(f"unknown allocation mode '{config.mode}'; choose one of {', '.join(MODES)}")
    if config.attention not in ATTENTION_MODES:
        raise AdaprunerError(
            f"unknown attention mode '{config.attention}'; choose one of {', '.join(ATTENTION_MODES)}")
    if int(config.round_to) < 1:
        raise AdaprunerError(f"round_to must be >= 1, got {config.round_to}")


def check_allocation(model: nn.Module, ratio: float, config: AllocationConfig) -> list[LayerBudget]:
    """Validate ``ratio`` and ``config`` against ``model`` before any scoring work.

    Raises :class:`AdaprunerError` for a ratio outside (0, 1), an unknown mode, a bad layer
    range, or a ratio beyond the maximum reachable one (the message states that maximum).
    Returns the layer budgets of the range.
    """
    if not (0.0 < float(ratio) < 1.0):
        raise AdaprunerError(f"--ratio must be a fraction strictly between 0 and 1 (e.g. 0.2), got {ratio}")
    validate_allocation(config)
    n = len(adapter_for(model).decoder_layers(model))
    layer_range = resolve_layer_range(n, config.layers)
    budgets = layer_budgets(model, layer_range, config)
    reachable = sum(b.max_removable for b in budgets) / count_parameters(model)
    if ratio > reachable + 1e-9:
        raise AdaprunerError(
            f"ratio {ratio:g} cannot be reached: with layers [{layer_range[0]}, {layer_range[1]}) and attention "
            f"'{config.attention}' at most {reachable:.4f} of the parameters can be removed; lower --ratio, "
            f"widen --layers or prune attention")
    return budgets


def allocate(model: nn.Module, scores: Scores, ratio: float, config: AllocationConfig) -> PruningPlan:
    """Decide which heads/KV groups/channels every layer keeps so ``ratio`` of all parameters go.

    ``scores`` (higher = keep) must cover every layer of the range. The removed share lands
    within about one ``round_to`` block of MLP channels of ``ratio`` (see the module docstring);
    errors as in :func:`check_allocation`.
    """
    budgets = check_allocation(model, ratio, config)
    missing = [b.index for b in budgets if b.index not in scores]
    if missing:
        raise AdaprunerError(f"importance scores lack layers {missing}; compute scores for every layer in the range")
    target = ratio * count_parameters(model)
    if config.mode == "uniform":
        return _uniform(budgets, scores, target, config)
    return _global(budgets, scores, target, config)


def removed_parameters(model: nn.Module, plan: PruningPlan) -> int:
    """Parameters that applying ``plan`` to ``model`` removes (computed, no surgery needed)."""
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    removed = 0
    for i, p in plan.layers.items():
        shape = adapter.layer_shape(model, i)
        costs = _unit_costs(layers[i], adapter.members(shape))
        removed += (shape.num_heads - len(p.kept_heads)) * costs["head"]
        removed += (shape.num_kv_heads - len(p.kept_kv)) * costs["kv"]
        removed += (shape.intermediate_size - len(p.kept_channels)) * costs["channel"]
    return removed
