"""The ``none`` update: the kept weights stay as they are (LLM-Pruner, the paper)."""

from __future__ import annotations

from adapruner.updates.base import Updates, WeightUpdate, register_update


@register_update
class NoUpdate(WeightUpdate):
    """Keep the surviving weights unchanged."""

    name = "none"
    full_space_order = 0
    help = "keep the surviving weights as they are"
    needs_calibration = False

    def compute(self, model, plan, calib, config, stats=None, micro_batch=None, cache=None) -> Updates:
        return {}

    def layer_update(self, model, index, plan, inputs, config, stats=None):
        return {}
