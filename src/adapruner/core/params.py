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


def parameter_views(model: nn.Module, layers: list[int]) -> dict[str, int]:
    """Three views of the model's size: ``total``; ``non_embedding`` (without the input and, when
    untied, output embeddings); ``in_layers`` (the parameters of decoder ``layers``)."""
    from adapruner.core.adapters import adapter_for

    embedding = {id(p): p.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings())
                 if m is not None for p in m.parameters()}
    decoder = adapter_for(model).decoder_layers(model)
    return {"total": count_parameters(model),
            "non_embedding": count_parameters(model) - sum(embedding.values()),
            "in_layers": sum(p.numel() for i in layers for p in decoder[i].parameters())}


def removed_views(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """The share of each view of :func:`parameter_views` that a pruning removed."""
    return {k: (before[k] - after[k]) / before[k] if before[k] else 0.0 for k in before}
