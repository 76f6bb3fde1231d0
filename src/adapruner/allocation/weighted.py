"""Allocation by per-layer weights: layer l loses a fraction ``c * w_l`` of its parameters.

The shared engine of the non-uniform modes (:mod:`.schedule`, :mod:`.saap`): given one positive
weight per layer of the range, find the scale ``c`` (bisection) at which the layers' removals add
up to the target, turn each layer's fraction into GQA-valid attention steps and a kept-channel
count on the ``round_to`` grid, then move single channel blocks until the total removal is at
most the target and less than one block below it. A layer never goes beyond its removal limits
(``attn_max_steps``, ``channel_min_keep``), so the plan never exceeds the budget nor breaks GQA.
"""

from __future__ import annotations

from adapruner.allocation.budget import LayerBudget, channel_options, layer_plan
from adapruner.config import AllocationConfig
from adapruner.core.structure import PruningPlan, Scores


def _layer_choice(b: LayerBudget, fraction: float, round_to: int) -> tuple[int, int]:
    """(attention steps, kept channels) that remove about ``fraction`` of layer ``b``'s parameters."""
    fraction = min(max(fraction, 0.0), 1.0)
    steps = min(b.attn_max_steps, round(fraction * b.attn_full_steps)) if b.attn_step_cost else 0
    want = fraction * (b.attn_params + b.mlp_params) - steps * b.attn_step_cost
    keep = b.shape.intermediate_size - want / b.channel_cost
    opts = channel_options(b, round_to)
    kept = min(opts, key=lambda o: (abs(o - keep), o))
    return steps, kept


def _removed(b: LayerBudget, steps: int, kept: int) -> int:
    return steps * b.attn_step_cost + (b.shape.intermediate_size - kept) * b.channel_cost


def allocate_by_weights(budgets: list[LayerBudget], scores: Scores, target: float, config: AllocationConfig,
                        weights: list[float]) -> PruningPlan:
    """The plan where layer ``i`` of ``budgets`` loses a share proportional to ``weights[i]`` (> 0)."""
    weights = [max(float(w), 1e-6) for w in weights]
    rt = config.round_to

    def choices(c: float) -> list[tuple[int, int]]:
        return [_layer_choice(b, c * w, rt) for b, w in zip(budgets, weights)]

    def total(c: float) -> int:
        return sum(_removed(b, *ch) for b, ch in zip(budgets, choices(c)))

    lo, hi = 0.0, 1.0 / min(weights)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) <= target else (lo, mid)
    picked = [list(ch) for ch in choices(lo)]
    options = [channel_options(b, rt) for b in budgets]
    removed = sum(_removed(b, s, k) for b, (s, k) in zip(budgets, picked))
    by_weight = sorted(range(len(budgets)), key=lambda i: weights[i])
    # Over the target (rounding): give back a block where pruning was meant to be lightest.
    while removed > target:
        grow = [i for i in by_weight if picked[i][1] < options[i][-1]]
        if not grow:
            break
        i = grow[0]
        new = options[i][options[i].index(picked[i][1]) + 1]
        removed -= (new - picked[i][1]) * budgets[i].channel_cost
        picked[i][1] = new
    # Under by a whole block or more: take one where pruning was meant to be heaviest.
    while True:
        take = [i for i in reversed(by_weight) if options[i].index(picked[i][1]) > 0
                and removed + (picked[i][1] - options[i][options[i].index(picked[i][1]) - 1])
                * budgets[i].channel_cost <= target]
        if not take:
            break
        i = take[0]
        new = options[i][options[i].index(picked[i][1]) - 1]
        removed += (picked[i][1] - new) * budgets[i].channel_cost
        picked[i][1] = new
    return PruningPlan({b.index: layer_plan(b, scores[b.index], config.attention, s, k)
                        for b, (s, k) in zip(budgets, picked)})
