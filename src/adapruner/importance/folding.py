"""Folding element-wise tensors into per-unit sums.

Every importance statistic is first an element-wise quantity over a linear's weight (``|W|``,
``g*W``, ``F*W^2`` ...). A unit (head, KV head, channel) occupies a block of rows or columns of
that weight (:class:`~adapruner.core.structure.Member`); its statistic is the sum of the
elements in the block. Sums are additive, so a KV group's share of q_proj is the sum of its
query heads' shares: statistics are kept at the member's own unit granularity and grouped later.
"""

from __future__ import annotations

import torch

from adapruner.core.structure import Member


def fold(values: torch.Tensor, member: Member) -> torch.Tensor:
    """Sum ``values`` (shaped like the linear's weight, [out, in]) over each unit's rows or
    columns of ``member``; returns a tensor of ``member.count`` sums."""
    lo, hi = member.offset, member.offset + member.count * member.width
    if member.axis == 0:
        block = values[lo:hi]
        return block.reshape(member.count, -1).sum(dim=1)
    block = values[:, lo:hi]
    return block.reshape(block.shape[0], member.count, member.width).sum(dim=(0, 2))


def fold_columns(values: torch.Tensor, member: Member) -> torch.Tensor:
    """Sum a per-column vector (length = the linear's in_features) over each unit's columns of an
    ``axis=1`` member."""
    lo, hi = member.offset, member.offset + member.count * member.width
    return values[lo:hi].reshape(member.count, member.width).sum(dim=1)
