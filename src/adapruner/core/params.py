"""Counting parameters and checking a pruning ratio: the two numbers every command agrees on."""

from __future__ import annotations

import math

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


RATIO_OF = ("total", "non-embedding", "layers")


def parse_count(text: str) -> int:
    """``100M``, ``1.5B``, ``250k`` or ``123456`` as a parameter count; a one-line error otherwise."""
    units = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
    t = str(text).strip().lower().replace("_", "").replace(",", "")
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise AdaprunerError(f"--target-params must be a count like 100M, 1.5B or 250000 (got '{text}')") from None
    if not math.isfinite(value):
        raise AdaprunerError(f"--target-params must be a finite count like 100M, 1.5B or 250000 (got '{text}')")
    if value < 1:
        raise AdaprunerError(f"--target-params must be positive (got '{text}')")
    return int(value)


def total_ratio(model: nn.Module, layers: list[int], ratio: float | None = None, ratio_of: str = "total",
                target_params: int | None = None) -> float:
    """The share of *all* parameters to remove (the allocators' ratio) from the user's budget: a
    ``ratio`` of the ``total``, ``non-embedding`` or pruned-``layers`` parameters, or a
    ``target_params`` count to keep. One-line errors for an impossible budget."""
    views = parameter_views(model, layers)
    total = views["total"]
    if target_params is not None:
        if target_params >= total:
            raise AdaprunerError(f"--target-params {target_params:,} is not below the model's {total:,} parameters")
        return check_ratio(1 - target_params / total, "the ratio implied by --target-params")
    if ratio_of not in RATIO_OF:
        raise AdaprunerError(f"--ratio-of must be one of {', '.join(RATIO_OF)} (got '{ratio_of}')")
    ratio = check_ratio(ratio)
    base = {"total": total, "non-embedding": views["non_embedding"], "layers": views["in_layers"]}[ratio_of]
    return ratio * base / total


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
