"""Counting parameters and checking a pruning ratio: the two numbers every command agrees on."""

from __future__ import annotations

import torch.nn as nn

from adapruner.errors import AdaprunerError


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters; a tensor shared by two modules (tied embeddings) counts once."""
    return sum(p.numel() for p in model.parameters())


def check_ratio(ratio: float, flag: str = "--ratio") -> float:
    """``ratio`` as a float strictly between 0 and 1, else a one-line error naming ``flag``."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise AdaprunerError(f"{flag} must be a number strictly between 0 and 1 (e.g. 0.2), got {ratio!r}") from None
    if not 0.0 < value < 1.0:
        raise AdaprunerError(f"{flag} must be a fraction strictly between 0 and 1 (e.g. 0.2), got {ratio}")
    return value
