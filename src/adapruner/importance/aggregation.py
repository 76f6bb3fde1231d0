"""Aggregating a unit's member scores into one score per unit (paper: I(G) = Agg_i I(theta_i)).

A head's members are its q_proj rows and o_proj columns; a KV group's are its k_proj and v_proj
rows plus the q rows and o columns of all its query heads; a channel's are its gate and up rows
and its down column. Members come in the adapter's order (q, k, v, o, gate, up, down), so
``last`` is the output-side member (o_proj or down_proj), as in LLM-Pruner.
"""

from __future__ import annotations

import torch

from adapruner.config import AGGREGATIONS
from adapruner.errors import AdaprunerError


def aggregate(member_scores: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Combine per-member scores (each one value per unit) with sum|mean|max|prod|last.

    Scores are combined in float64 so that ``prod`` of small values does not underflow to ties.
    """
    if mode not in AGGREGATIONS:
        raise AdaprunerError(f"unknown aggregation '{mode}'; choose one of {', '.join(AGGREGATIONS)}")
    if not member_scores:
        raise ValueError("a unit needs at least one member score")
    stacked = torch.stack([s.double() for s in member_scores])
    if mode == "sum":
        return stacked.sum(0)
    if mode == "mean":
        return stacked.mean(0)
    if mode == "max":
        return stacked.max(0).values
    if mode == "prod":
        return stacked.prod(0)
    return stacked[-1]
