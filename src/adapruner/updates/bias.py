"""FLAP's bias compensation: what the removed input columns contributed on average, as a bias.

Removing input columns ``C`` of an output projection (o_proj's head columns, down_proj's channel
columns) changes its output from ``W x`` to ``W[:, K] x[K]``. FLAP (An et al., 2024) adds back
the removed columns' *mean* contribution over the calibration tokens,

    b = W[:, C] @ mean(x[C]),

so the projection's output keeps its calibration mean (exactly, on the calibration set, for the
first pruned layer; approximately after it). The families this engine supports have no bias on
these projections, so the compensated model gains one: masks add it with a forward hook, surgery
gives the rebuilt linear a bias, and a saved checkpoint lists the biased paths per layer in
``layer_widths[i]["output_bias"]`` (which makes it an ``adapruner_pruned_<family>`` checkpoint).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from adapruner.core.adapters import adapter_for
from adapruner.core.structure import LinearUpdate, PruningPlan
from adapruner.importance.needs import StatisticsNeeds
from adapruner.updates.base import Updates, WeightUpdate, register_update

# The mean input of every output projection: a forward over the samples, no backward.
INPUT_MEANS = StatisticsNeeds(samples=True)


@torch.no_grad()
def bias_compensation(model: nn.Module, plan: PruningPlan,
                      input_means: dict[int, dict[str, torch.Tensor]]) -> dict[int, dict[str, torch.Tensor]]:
    """The compensation bias of every output projection whose input columns ``plan`` removes.

    ``input_means[layer][member name]`` is the mean input (over calibration tokens) of the linear
    holding that member (``LayerStatistics.input_mean``). Returns ``{layer: {linear path: bias}}``
    in float32 on the weights' device; layers or linears that lose nothing are absent.
    """
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    out: dict[int, dict[str, torch.Tensor]] = {}
    for idx, layer_plan in sorted(plan.layers.items()):
        shape = adapter.layer_shape(model, idx)
        by_path: dict[str, list] = {}
        for member in adapter.members(shape):
            if member.axis == 1:
                by_path.setdefault(member.path, []).append(member)
        for path, members in by_path.items():
            linear = layers[idx].get_submodule(path)
            kept = torch.cat([m.index(layer_plan.kept(m.unit)) for m in members])
            removed = torch.ones(linear.in_features, dtype=torch.bool)
            removed[kept] = False
            if not removed.any():
                continue
            means = input_means.get(idx, {})
            mean = next((means[m.name] for m in members if m.name in means), None)
            if mean is None:
                raise ValueError(f"layer {idx}: no calibration input mean for {path}")
            w = linear.weight.detach().float()
            cols = removed.nonzero().squeeze(1).to(w.device)
            out.setdefault(idx, {})[path] = w.index_select(1, cols) @ mean.float().to(w.device).index_select(0, cols)
    return out


def input_means(model: nn.Module, calib: torch.Tensor, micro_batch: int | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Mean input of every output projection over the calibration tokens (one forward pass)."""
    from adapruner.importance.statistics import collect

    stats = collect(model, calib, INPUT_MEANS, micro_batch=micro_batch, progress=False)
    return {i: dict(ls.input_mean) for i, ls in stats.layers.items()}


@register_update
class BiasCompensation(WeightUpdate):
    """FLAP's bias compensation (module docstring); works with any metric."""

    name = "bias"
    full_space_order = 1
    help = "FLAP bias compensation: removed columns' mean contribution becomes an o_proj/down_proj bias"

    def statistics_needs(self, config):
        return INPUT_MEANS

    def compute(self, model, plan, calib, config, stats=None, micro_batch=None, cache=None) -> Updates:
        if stats is not None and stats.num_samples and all(ls.input_mean for ls in stats.layers.values()):
            means = {i: dict(ls.input_mean) for i, ls in stats.layers.items()}  # same calibration set
        else:
            means = input_means(model, calib, micro_batch)
        return {i: {path: LinearUpdate(bias=b) for path, b in biases.items()}
                for i, biases in bias_compensation(model, plan, means).items()}

    def layer_update(self, model, index, plan, inputs, config, stats=None):
        one = PruningPlan({index: plan.layers[index]})
        biases = bias_compensation(model, one, {index: dict(stats.layers[index].input_mean)}).get(index, {})
        return {path: LinearUpdate(bias=b) for path, b in biases.items()}
