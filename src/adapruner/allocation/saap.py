"""``saap`` allocation: SAAP's adaptive layer selection, prune the least important layers more.

SAAP ranks "the importance of all modules to determine the specific layers that should be
pruned"; its formula is not public. Our reconstruction: every unit score is first divided by the
mean score of its kind over all layers of the range (heads, KV groups and channels then compare),
a layer's importance is the mean of its normalised unit scores *minus* their standard deviation
(a layer whose importance fluctuates across its units is less reliably important, mirroring
SAAP's use of uncertainty), and the layer's pruned fraction is proportional to
``exp(-strength * z_l)`` with ``z_l`` the standardised layer importance (:mod:`.weighted` meets
the budget). ``strength`` 0 is uniform; the default 0.5 moves fractions by about +-50 % over one
standard deviation. It needs scores on a common scale within each kind, which every metric gives.
"""

from __future__ import annotations

import math

import torch

from adapruner.allocation.base import Allocator, register_allocator
from adapruner.allocation.weighted import allocate_by_weights
from adapruner.errors import AdaprunerError


def layer_importance(budgets, scores) -> list[float]:
    """Mean minus standard deviation of each layer's normalised unit scores (module docstring)."""
    kinds = ("head", "channel")
    means = {k: float(torch.cat([scores[b.index][k].double() for b in budgets]).abs().mean()) or 1.0 for k in kinds}
    out = []
    for b in budgets:
        values = torch.cat([scores[b.index][k].double() / means[k] for k in kinds])
        out.append(float(values.mean() - values.std()) if values.numel() > 1 else float(values.mean()))
    return out


@register_allocator
class SaapLayers(Allocator):
    """Least important layers (by mean - std of normalised unit scores) pruned more."""

    name = "saap"
    help = "SAAP adaptive layer selection: less important, more fluctuating layers pruned more"
    options = {"strength": (0.5, "how strongly layer importance moves the per-layer fraction (0 = uniform)")}
    full_space_order = 2
    search_settings = {"strength_range": [0.0, 2.0]}

    def suggest_options(self, trial, settings):
        lo, hi = settings.get("strength_range", self.search_settings["strength_range"])
        return {"strength": trial.suggest_float("saap_strength", lo, hi)}

    def validate(self, config) -> None:
        s = self.option(config, "strength")
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0:
            raise AdaprunerError(f"saap strength must be a number >= 0, got {s!r}")

    def allocate(self, budgets, scores, target, config):
        imp = layer_importance(budgets, scores)
        mean = sum(imp) / len(imp)
        std = math.sqrt(sum((v - mean) ** 2 for v in imp) / max(len(imp) - 1, 1)) or 1.0
        strength = float(self.option(config, "strength"))
        return allocate_by_weights(budgets, scores, target, config,
                                   [math.exp(-strength * (v - mean) / std) for v in imp])
