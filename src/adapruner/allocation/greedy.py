"""``global`` allocation: greedy across layers, always taking the removal step with the lowest
score per removed parameter that still fits the budget (layers end up with different widths)."""

from __future__ import annotations

import heapq

import torch

from adapruner.allocation.base import Allocator, register_allocator
from adapruner.allocation.budget import LayerBudget, attention_steps_by_group, layer_plan
from adapruner.config import AllocationConfig
from adapruner.core.structure import PruningPlan, Scores


def _global(budgets: list[LayerBudget], scores: Scores, target: float, config: AllocationConfig) -> PruningPlan:
    """Greedy: repeatedly take the cheapest step (score per parameter) that fits the budget."""
    state = {}
    heap: list[tuple[float, int, str]] = []

    def attn_step_score(b: LayerBudget, done: int) -> float:
        s = scores[b.index]
        shape = b.shape
        g, nkv = shape.group_size, shape.num_kv_heads
        if attention_steps_by_group(shape, config.attention):
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
    return PruningPlan({b.index: layer_plan(b, scores[b.index], config.attention, state[b.index]["attn"],
                                             state[b.index]["kept"]) for b in budgets})


@register_allocator
class Global(Allocator):
    """Cheapest step (score per parameter) first, across every layer of the range."""

    name = "global"
    help = "greedy across layers by score per removed parameter (non-uniform widths)"

    allocate = staticmethod(_global)  # (budgets, scores, target, config) -> PruningPlan
