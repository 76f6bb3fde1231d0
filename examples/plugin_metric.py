"""A plugin importance metric: Wanda-sp blended with FLAP's fluctuation, in one file.

Use it from the command line by naming the module in ``ADAPRUNER_PLUGINS`` (the directory of this
file on ``PYTHONPATH``)::

    PYTHONPATH=examples ADAPRUNER_PLUGINS=plugin_metric \\
        adapruner prune --model smollm2-135m --ratio 0.2 --metric wanda-flap \\
        --metric-option mix=0.3 --update reconstruct --out runs/wanda-flap

It declares what its scores read (activation sums, no gradients: a forward pass over the
calibration windows and no backward pass) and a place in ``--space full``, so
``adapruner search`` chooses it among the built-in metrics with nothing else to edit.
"""

from __future__ import annotations

import torch

from adapruner.importance.aggregation import aggregate
from adapruner.importance.base import Metric, register_metric


@register_metric
class WandaFlap(Metric):
    """(1 - mix) * Wanda-sp + mix * fluctuation, each normalised to mean 1 within the layer."""

    name = "wanda-flap"
    help = "Wanda-sp blended with FLAP's fluctuation (example plugin)"
    needs_gradients = False  # the calibration pass runs forward only
    options = {"mix": (0.5, "weight of the fluctuation term (0 = Wanda-sp)")}
    full_space_order = 10  # after the built-in metrics in --space full

    def score(self, stats, layer, kind, config) -> torch.Tensor:
        mix = float(config.options.get("mix", self.options["mix"][0]))
        parts = []
        for name in ("wanda", "fluctuation"):
            value = aggregate([v.double() for _, v in stats.layers[layer].view(kind, name)], config.aggregation)
            parts.append(value / value.mean().clamp_min(1e-12))
        return (1 - mix) * parts[0] + mix * parts[1]
