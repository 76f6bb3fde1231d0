"""Least-squares reconstruction: re-fit the kept input columns of every pruned output projection.

After the plan has removed input columns of o_proj (whole heads) and down_proj (MLP channels),
the kept columns S of each such projection are re-fitted so that it reproduces the *unpruned*
projection's output on calibration tokens:

    W'_S = W H[:, S] (H[S, S] + lam * mean(diag H[S, S]) I)^-1,    H = sum_t x_t x_t^T,

where x_t are the projection's inputs (all columns, before the mask) over the calibration tokens
and ``lam`` is a small ridge (``damping``, 0.01 like SparseGPT / SlimGPT). This is also the
structured OBS update for removing all of the plan's columns at once (ZipLM, SlimGPT): the OBS
weight correction for a removed set R, ``W -= W[:, R] [H^-1]_RR^-1 H^-1[R, :]``, leaves exactly
this least-squares solution on the kept columns. With ``bias: true`` an output bias is fitted
along with the weights (an intercept; it generalises FLAP's bias compensation).

Two ways to collect the inputs (``mode``):

* ``sequential`` (default; SparseGPT's order): layer by layer, the calibration hidden states are
  propagated through the already pruned and re-fitted layers before it; inside a layer o_proj is
  re-fitted first, then down_proj's inputs are taken with the new o_proj in place. Three passes
  of each pruned layer over the windows.
* ``oneshot``: every Gram matrix comes from one forward of the *dense* model. Cheaper (one pass,
  and a search caches the matrices for every trial because they do not depend on the plan), a
  little less accurate from the second pruned layer on.

The reconstruction windows are their own setting (``windows``, drawn from the calibration pool
with the run's calibration seed), not the importance samples.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn as nn

from adapruner.core.adapters import adapter_for
from adapruner.core.structure import LinearUpdate, PruningPlan
from adapruner.errors import AdaprunerError
from adapruner.importance.statistics import Gram
from adapruner.updates.base import Updates, WeightUpdate, register_update

MODES = ("sequential", "oneshot")


def output_paths(model: nn.Module, layer: int) -> list[str]:
    """The paths of ``layer``'s output projections (the linears whose input columns a plan removes)."""
    adapter = adapter_for(model)
    return sorted({m.path for m in adapter.members(adapter.layer_shape(model, layer)) if m.axis == 1})


def output_columns(model: nn.Module, plan: PruningPlan, layer: int) -> dict[str, torch.Tensor]:
    """``{linear path: kept input columns}`` of the output projections of ``layer`` that lose columns."""
    adapter = adapter_for(model)
    shape = adapter.layer_shape(model, layer)
    lp = plan.layers[layer]
    by_path: dict[str, list] = {}
    for m in adapter.members(shape):
        if m.axis == 1:
            by_path.setdefault(m.path, []).append(m)
    out = {}
    for path, members in by_path.items():
        if all(len(lp.kept(m.unit)) == m.count for m in members):
            continue
        out[path] = torch.sort(torch.cat([m.index(lp.kept(m.unit)) for m in members])).values
    return out


@torch.no_grad()
def refit(linear: nn.Linear, gram: Gram, kept: torch.Tensor, damping: float, fit_bias: bool) -> LinearUpdate:
    """The least-squares weight (and optionally bias) of ``linear`` on its ``kept`` input columns."""
    w = linear.weight.detach().double()
    h = gram.h.to(w.device)
    kept = kept.to(w.device)
    # Indexing rows and columns at once, and the ridge added in place: the largest solve (an 8B's
    # down_proj, ~11k kept columns) holds H, H_SS and the solver's factor, nothing more.
    if fit_bias:
        # Intercept: augment the inputs with a constant 1 (its Gram row is the input sum).
        s = gram.s.to(w.device)
        k = kept.numel()
        a = torch.empty(k + 1, k + 1, dtype=torch.float64, device=w.device)
        a[:k, :k] = h[kept[:, None], kept]
        a[:k, k] = a[k, :k] = s[kept]
        a[k, k] = float(gram.n)
        b = torch.cat([w @ h[:, kept], (w @ s)[:, None]], dim=1)
    else:
        a = h[kept[:, None], kept]
        b = w @ h[:, kept]
    diag = a.diagonal()[: kept.numel()]
    lam = damping * float(diag.mean()) if float(diag.mean()) > 0 else 1e-8
    a.diagonal().add_(lam)
    solution = torch.linalg.solve(a, b.T).T  # a is symmetric: x a = b  <=>  a x^T = b^T
    new = linear.weight.detach().clone()
    new[:, kept] = solution[:, : kept.numel()].to(new.dtype)
    bias = solution[:, kept.numel()].to(new.dtype) if fit_bias else None
    return LinearUpdate(weight=new, bias=bias)


BATCH = 8  # windows per forward of the Gram passes unless --micro-batch says otherwise


def _batches(windows: torch.Tensor, micro_batch: int | None) -> list[torch.Tensor]:
    step = micro_batch or BATCH
    return list(windows.split(step))


class _Stop(Exception):
    """Raised by a hook to end a forward pass once it has given what a pass needs."""


def _forward_until_stop(model: nn.Module, windows: torch.Tensor, micro_batch: int | None) -> None:
    """Run ``model`` over every batch of ``windows``, each pass ending where a hook raises :class:`_Stop`."""
    device = model.get_input_embeddings().weight.device
    for ids in _batches(windows, micro_batch):
        try:
            model(input_ids=ids.to(device), use_cache=False)
        except _Stop:
            pass


@torch.no_grad()
def _layer_inputs(model: nn.Module, windows: torch.Tensor, start: int, micro_batch: int | None) -> list[tuple]:
    """(hidden, args, kwargs) entering decoder layer ``start`` for every batch of ``windows``."""
    layers = adapter_for(model).decoder_layers(model)
    out = []

    def pre(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        out.append((hidden.detach(), tuple(args[1:]), {k: v for k, v in kwargs.items() if k != "hidden_states"}))
        raise _Stop

    handle = layers[start].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        _forward_until_stop(model, windows, micro_batch)
    finally:
        handle.remove()
    return out


def _run_layer(layer: nn.Module, batches: list[tuple]) -> list[tuple]:
    new = []
    for hidden, args, kwargs in batches:
        h = layer(hidden, *args, **kwargs)
        new.append((h[0] if isinstance(h, tuple) else h, args, kwargs))
    return new


def _gram_pass(layer: nn.Module, paths: list[str], batches: list[tuple]) -> dict[str, Gram]:
    grams = {p: Gram() for p in paths}
    handles = [layer.get_submodule(p).register_forward_pre_hook(grams[p].hook(), prepend=True) for p in paths]
    try:
        for hidden, args, kwargs in batches:
            layer(hidden, *args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return grams


@torch.no_grad()
def sequential_updates(model: nn.Module, plan: PruningPlan, windows: torch.Tensor, damping: float,
                       fit_bias: bool, micro_batch: int | None = None) -> Updates:
    """Re-fit layer by layer, each layer's inputs taken from the already pruned layers before it."""
    from adapruner.pruning.masks import apply_masks

    if not plan.layers:
        return {}
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    start, end = min(plan.layers), max(plan.layers)
    batches = _layer_inputs(model, windows, start, micro_batch)
    updates: Updates = {}
    for i in range(start, end + 1):
        layer = layers[i]
        if i in plan.layers:
            done = sequential_layer(model, i, plan, batches, damping, fit_bias)
            if done:
                updates[i] = done
            if i < end:
                with apply_masks(model, PruningPlan({i: plan.layers[i]}, {i: dict(done)})):
                    batches = _run_layer(layer, batches)
        else:
            batches = _run_layer(layer, batches)
    return updates


@torch.no_grad()
def sequential_layer(model: nn.Module, i: int, plan: PruningPlan, batches: list[tuple], damping: float,
                     fit_bias: bool) -> dict[str, LinearUpdate]:
    """Re-fit layer ``i``'s output projections on its input ``batches``: o_proj first, then down_proj
    with the new o_proj (and the masks) in place."""
    from adapruner.pruning.masks import apply_masks

    adapter = adapter_for(model)
    layer = adapter.decoder_layers(model)[i]
    columns = output_columns(model, plan, i)
    ordered = sorted(columns, key=lambda p: (not p.startswith(adapter.attn), p))  # attention first
    done: dict = {}
    for path in ordered:
        with apply_masks(model, PruningPlan({i: plan.layers[i]}, {i: dict(done)})):
            gram = _gram_pass(layer, [path], batches)[path]
        done[path] = refit(layer.get_submodule(path), gram, columns[path], damping, fit_bias)
    return done


@torch.no_grad()
def dense_grams(model: nn.Module, windows: torch.Tensor, layers_paths: dict[int, list[str]],
                micro_batch: int | None = None) -> dict[tuple[int, str], Gram]:
    """Gram matrices of the named linears' inputs under the dense model, in one forward pass that
    ends after the last layer named (the LM head, a fifth of a small model's forward, is not run)."""
    decoder = adapter_for(model).decoder_layers(model)
    grams = {(i, p): Gram() for i, paths in layers_paths.items() for p in paths}
    handles = [decoder[i].get_submodule(p).register_forward_pre_hook(g.hook(), prepend=True)
               for (i, p), g in grams.items()]

    def stop(module, args, output):
        raise _Stop

    if grams:
        handles.append(decoder[max(i for i, _ in grams)].register_forward_hook(stop))
    try:
        _forward_until_stop(model, windows, micro_batch)
    finally:
        for h in handles:
            h.remove()
    return grams


@register_update
class Reconstruct(WeightUpdate):
    """Least-squares re-fit of the kept o_proj / down_proj columns (module docstring)."""

    name = "reconstruct"
    full_space_order = 2
    # One-shot in a search: its dense Grams are computed once per study and every trial re-uses them.
    search_settings = {"mode": "oneshot", "windows": 256}
    help = "least-squares re-fit of the kept o_proj/down_proj columns on calibration tokens"
    options = {
        "windows": (128, "calibration windows of the Gram matrices (drawn from the pool with the calibration seed)"),
        "mode": ("sequential", "sequential (inputs through the pruned layers before) or oneshot (dense Grams)"),
        "damping": (0.01, "ridge: lam * mean(diag H_SS) is added to H_SS"),
        "bias": (False, "also fit an output bias (an intercept; makes an adapruner_pruned checkpoint)"),
    }

    def calibration_windows(self, config) -> int | None:
        n = self.option(config, "windows")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise AdaprunerError(f"reconstruct option windows must be an integer >= 1, got {n!r}")
        return n

    def _settings(self, config) -> tuple[str, float, bool]:
        mode, damping = self.option(config, "mode"), self.option(config, "damping")
        if mode not in MODES:
            raise AdaprunerError(f"reconstruct option mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not isinstance(damping, (int, float)) or not damping > 0:
            raise AdaprunerError(f"reconstruct option damping must be a positive number, got {damping!r}")
        return mode, float(damping), bool(self.option(config, "bias"))

    def carry(self, config) -> str | None:
        return "pruned" if self._settings(config)[0] == "sequential" else "dense"

    def layer_update(self, model, index, plan, inputs, config, stats=None):
        mode, damping, fit_bias = self._settings(config)
        if mode == "sequential":
            return sequential_layer(model, index, plan, inputs, damping, fit_bias)
        layer = adapter_for(model).decoder_layers(model)[index]
        columns = output_columns(model, plan, index)
        grams = _gram_pass(layer, sorted(columns), inputs)
        return {path: refit(layer.get_submodule(path), grams[path], kept, damping, fit_bias)
                for path, kept in columns.items()}

    def compute(self, model, plan, calib, config, stats=None, micro_batch=None, cache=None) -> Updates:
        mode, damping, fit_bias = self._settings(config)
        if calib is None:
            raise AdaprunerError("reconstruction needs calibration text; pass --data-dir or set ADAPRUNER_DATA_DIR")
        if mode == "sequential":
            return sequential_updates(model, plan, calib, float(damping), fit_bias, micro_batch)
        layers = adapter_for(model).decoder_layers(model)
        columns = {i: output_columns(model, plan, i) for i in sorted(plan.layers)}
        key = ("reconstruct-dense-grams", hashlib.sha256(calib.cpu().numpy().tobytes()).hexdigest())
        grams = cache.get(key) if cache is not None else None
        if grams is None:
            grams = {}
            if cache is not None:
                cache.clear()  # one study, one set of windows: keep only the latest
                cache[key] = grams
        # Every output projection of every layer the plan covers (its whole layer range, pruned
        # or not): the same for every plan of a study, so a search computes them once. Layers
        # outside the range are never re-fitted and get no Gram; the pass stops after the last.
        needed = {i: output_paths(model, i) for i in sorted(plan.layers)}
        missing = {i: paths for i, paths in needed.items() if any((i, path) not in grams for path in paths)}
        if missing:
            grams.update(dense_grams(model, calib, missing, micro_batch))
        updates: Updates = {}
        for i, cols in columns.items():
            for path, kept in cols.items():
                updates.setdefault(i, {})[path] = refit(layers[i].get_submodule(path), grams[(i, path)], kept,
                                                        float(damping), fit_bias)
        return updates
