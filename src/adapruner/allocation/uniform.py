"""``uniform`` allocation: every layer in the range loses the same fraction.

Heads are coarse, so the head steps per layer come from the fraction and MLP channels fill the
rest of the budget (the kept channel counts may differ by one ``round_to`` block between layers
so the total lands close to the target, unless the ``equal`` option asks for one width).
"""

from __future__ import annotations

from adapruner.allocation.base import Allocator, register_allocator
from adapruner.allocation.budget import LayerBudget, channel_options, layer_plan
from adapruner.config import AllocationConfig
from adapruner.core.structure import PruningPlan, Scores


def _equal_channels(budgets: list[LayerBudget], remaining: float, round_to: int) -> list[int] | None:
    """One kept channel count for every layer, removing as close to ``remaining`` as it can."""
    common = sorted(set.intersection(*(set(channel_options(b, round_to)) for b in budgets)))
    if not common:
        return None

    def error(k: int) -> float:
        return sum((b.shape.intermediate_size - k) * b.channel_cost for b in budgets) - remaining

    k = min(common, key=lambda o: (abs(error(o)), o))
    if error(k) < 0 and -error(k) > sum(b.channel_cost for b in budgets) * round_to:
        return None
    return [k] * len(budgets)


def _fill_channels(budgets: list[LayerBudget], remaining: float, round_to: int,
                   equal: bool = False) -> list[int] | None:
    """Kept channel counts that remove about ``remaining`` parameters spread evenly over the layers
    (with ``equal``, one count for all of them).

    Returns None when the MLPs cannot give that much (or ``remaining`` is negative).
    """
    if remaining < 0:
        return None
    if equal:
        return _equal_channels(budgets, remaining, round_to)
    mlp_total = sum(b.mlp_params for b in budgets)
    options = [channel_options(b, round_to) for b in budgets]
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
        kept = _fill_channels(budgets, remaining, config.round_to, bool(config.options.get("equal", False)))
        if kept is not None:
            break
        kept = [b.channel_min_keep if remaining > 0 else b.shape.intermediate_size for b in budgets]
        err = abs(remaining - sum((b.shape.intermediate_size - k) * b.channel_cost for b, k in zip(budgets, kept)))
        if fallback is None or err < fallback[0]:
            fallback = (err, st, kept)
    else:
        _, st, kept = fallback
    return PruningPlan({b.index: layer_plan(b, scores[b.index], config.attention, s, k)
                        for b, s, k in zip(budgets, st, kept)})


@register_allocator
class Uniform(Allocator):
    """The same pruned fraction in every layer of the range (the paper's setting)."""

    name = "uniform"
    full_space_order = 0
    help = "the same fraction in every layer of the range (paper)"
    options = {"equal": (False, "every pruned layer keeps exactly the same widths, so a range covering all layers "
                                "gives a plain checkpoint and a llama.cpp 'llama' GGUF; the total then lands within "
                                "one rounding block per layer of the target")}

    allocate = staticmethod(_uniform)  # (budgets, scores, target, config) -> PruningPlan
