"""Structured OBS (ZipLM, SlimGPT): the loss of removing a unit when the rest is re-fitted.

For an output projection with input Gram matrix ``H = sum_t x_t x_t^T`` (damped by 0.01 of its
mean diagonal, like both papers), removing the input columns S of one unit (a head's ``head_dim``
columns of o_proj, a channel's column of down_proj) and re-fitting all other columns optimally
raises the squared output error by

    cost(S) = tr(W_S [H^-1]_SS^-1 W_S^T),      W_S = W[:, S].

That cost is the unit's score (higher = keep). A KV group's cost is that of all its query
heads' columns at once. Scores are computed for every unit against the full layer (removal in
one block, not greedily with down-dated inverses: SlimGPT's greedy order changes little at
these ratios and would tie scoring to allocation). The matching weight update is
``--update reconstruct``: the OBS correction for removing the chosen set jointly is exactly the
least-squares re-fit of the kept columns (see :mod:`adapruner.updates.reconstruct`).
"""

from __future__ import annotations

import torch

from adapruner.config import MetricConfig
from adapruner.errors import AdaprunerError
from adapruner.importance.base import Metric, register_metric
from adapruner.importance.statistics import Statistics

DAMPING = 0.01


def damped_inverse(h: torch.Tensor, damping: float = DAMPING) -> torch.Tensor:
    """``(H + damping * mean(diag H) I)^-1`` in float64."""
    h = h.double()
    lam = damping * float(h.diagonal().mean()) or 1e-8
    return torch.linalg.inv(h + lam * torch.eye(h.shape[0], dtype=h.dtype, device=h.device))


def group_costs(w: torch.Tensor, hinv: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """OBS cost of each group of columns ``groups [G, k]`` (indices into ``w``'s columns)."""
    w = w.double()
    costs = []
    for cols in groups:
        ws = w[:, cols]
        block = hinv[cols][:, cols]
        costs.append(torch.trace(ws @ torch.linalg.solve(block, ws.T)))
    return torch.stack(costs)


@register_metric
class ObsMetric(Metric):
    """tr(W_S [H^-1]_SS^-1 W_S^T) of each unit's o_proj / down_proj columns (module docstring)."""

    name = "obs"
    full_space_order = 5
    help = "structured OBS cost of removing the unit with the rest re-fitted (ZipLM/SlimGPT; no gradients)"
    needs_gram = True
    params = ()

    def score(self, stats: Statistics, layer: int, kind: str, config: MetricConfig) -> torch.Tensor:
        ls = stats.layers[layer]
        member_name = "down" if kind == "channel" else "o"
        if member_name not in ls.gram or member_name not in ls.weights:
            raise AdaprunerError("the obs metric needs the input Gram matrices; collect statistics with gram=True")
        member = ls.members[member_name].member
        w = ls.weights[member_name]
        key = ("obs-inverse", member_name)
        if key not in ls.derived:
            ls.derived[key] = damped_inverse(ls.gram[member_name])
        hinv = ls.derived[key]
        units = torch.arange(member.count)
        groups = torch.stack([member.index([u]) for u in units]) if kind != "kv" else None
        if kind == "kv":
            g = ls.shape.group_size
            groups = torch.stack([member.index(list(range(k * g, (k + 1) * g))) for k in range(ls.shape.num_kv_heads)])
        return group_costs(w, hinv, groups)
