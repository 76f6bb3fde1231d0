"""Masked pruning: zero the removed structures without copying a weight.

A removed query head contributes to the layer output only through its columns of o_proj, and a
removed MLP channel only through its column of down_proj. Multiplying the *input* of those
output-side linears by a 0/1 vector therefore gives exactly the function of the physically
pruned layer (the rows of q/k/v/gate/up that feed only removed structures become dead). The
masks are forward pre-hooks: applying and removing them is instant, so a search can evaluate many
trial plans on one model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from adapruner.core.adapters import adapter_for
from adapruner.core.structure import LinearUpdate, PruningPlan


@dataclass
class MaskHandle:
    """The hooks of one :func:`apply_masks` call; ``remove()`` (or leaving a ``with``) undoes them."""

    hooks: list = field(default_factory=list)

    def remove(self) -> None:
        """Detach every mask hook (idempotent)."""
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()

    def __enter__(self) -> "MaskHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _input_mask_hook(mask: torch.Tensor):
    def hook(module, args):
        return (args[0] * mask.to(dtype=args[0].dtype, device=args[0].device),) + tuple(args[1:])

    return hook


def update_hooks(update: LinearUpdate, module: nn.Linear) -> list:
    """Hooks that make ``module`` compute with ``update``: its replacement weight on the (already
    masked) input, then its added bias. Without autograd the replacement weight is swapped in for
    the duration of the call (a pre-hook swaps, an always-called forward hook swaps back), so the
    projection is computed once, and the weight the module holds at call time (a streamed layer's
    is loaded only for its call) is restored. With autograd, which keeps the module's weight for
    the backward pass, the output is recomputed with the replacement instead."""
    ref = module.weight
    weight = update.weight.to(dtype=ref.dtype, device=ref.device) if update.weight is not None else None
    bias = update.bias.to(dtype=ref.dtype, device=ref.device) if update.bias is not None else None
    held: list[torch.Tensor] = []

    def swap_in(mod, args):
        if not torch.is_grad_enabled():
            held.append(mod.weight.data)
            mod.weight.data = weight

    def finish(mod, args, output):
        if held:
            mod.weight.data = held.pop()
        elif weight is not None:
            output = F.linear(args[0], weight, mod.bias)
        return output + bias if bias is not None else output

    hooks = [module.register_forward_pre_hook(swap_in)] if weight is not None else []
    return hooks + [module.register_forward_hook(finish, always_call=True)]


def apply_masks(model: nn.Module, plan: PruningPlan) -> MaskHandle:
    """Make ``model`` compute as if ``plan`` had been applied, by masking output-side inputs
    (and applying the plan's weight updates to those projections).

    Returns a :class:`MaskHandle`; use it as a context manager or call ``.remove()``.
    """
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    handle = MaskHandle()
    try:
        for idx, layer_plan in sorted(plan.layers.items()):
            shape = adapter.layer_shape(model, idx)
            layer_plan.validate(shape)
            for member in adapter.members(shape):
                if member.axis != 1 or len(layer_plan.kept(member.unit)) == member.count:
                    continue
                linear = layers[idx].get_submodule(member.path)
                mask = torch.zeros(linear.in_features, device=linear.weight.device, dtype=linear.weight.dtype)
                mask[member.index(layer_plan.kept(member.unit)).to(mask.device)] = 1
                handle.hooks.append(linear.register_forward_pre_hook(_input_mask_hook(mask)))
        for idx, updates in sorted(plan.updates.items()):
            for path, update in updates.items():
                handle.hooks += update_hooks(update, layers[idx].get_submodule(path))
    except Exception:
        handle.remove()
        raise
    return handle
