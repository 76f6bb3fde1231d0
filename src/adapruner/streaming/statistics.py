"""The importance statistics of a calibration set, one decoder layer at a time.

The same quantities as :func:`adapruner.importance.statistics.collect_statistics`, from the same
hooks (its ``_Collector``, restricted to one layer), with one decoder layer's weights in memory:

1. forward, layer by layer: each layer's output is the next one's input; the boundary hidden
   states are kept in an :class:`~adapruner.streaming.layers.ActivationStore`;
2. for gradient metrics, the loss: the final norm and the head on the last boundary, per-sample
   mean next-token NLL summed (as in memory), and its gradient with respect to that boundary;
3. backward, from the last layer down: each layer's forward is recomputed from its stored input
   with the collector's hooks on, and the boundary gradient is pushed through it. That is
   activation checkpointing at layer granularity: the hooks see exactly the inputs and output
   gradients of the in-memory backward pass, so the statistics are the same.

Without gradients the activation statistics are folded during the forward itself. Each layer is
handed to ``on_layer`` as soon as its statistics are complete (the pipeline scores it there and
drops what only scoring needs, such as OBS's Gram matrices).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from adapruner.errors import AdaprunerError
from adapruner.importance.coefficients import ELEMENT_FACTORS
from adapruner.importance.loss import per_sample_nll_of_hidden
from adapruner.importance.statistics import (LayerStatistics, Statistics, _Collector, validate_calibration,
                                             weight_statistics)
from adapruner.streaming.layers import ActivationStore, BatchCalls, layer_calls, run_layer
from adapruner.streaming.model import StreamedModel


def record_calls(sm: StreamedModel, windows: torch.Tensor, step: int) -> list[BatchCalls]:
    """Every layer's call and the first layer's input, for each batch of ``step`` windows."""
    with sm.materialised(sm.embedding_path()):
        return [layer_calls(sm.model, ids, sm.device) for ids in windows.split(step)]


def streamed_statistics(sm: StreamedModel, calib: torch.Tensor, gradients: bool = True,
                        micro_batch: int | None = None, element_factors: tuple[float, ...] = ELEMENT_FACTORS,
                        gram: bool = False, store: ActivationStore | None = None,
                        on_layer: Callable[[int, Statistics], None] | None = None,
                        done: dict[int, LayerStatistics] | None = None, progress: bool = True) -> Statistics:
    """The statistics :func:`~adapruner.importance.statistics.collect_statistics` gives, streamed.

    ``store`` keeps the boundary hidden states (in memory when None); ``done`` holds layers whose
    statistics a killed run already finished (they are not collected again); ``on_layer(i, stats)``
    is called when layer ``i`` is complete.
    """
    model = sm.model
    calib = validate_calibration(calib, model)
    n, t = calib.shape
    step = n if not micro_batch or micro_batch >= n else int(micro_batch)
    store = store or ActivationStore()
    stats = Statistics(layers=dict(done or {}), num_samples=n, seq_len=t, element_factors=tuple(element_factors),
                       has_gradients=gradients)
    batches = record_calls(sm, calib, step)
    num_layers = sm.num_layers
    # Forward: boundaries 0..L (activation statistics folded here when there is no backward).
    if not store.has(0):
        store.put(0, [b.hidden for b in batches])
    bar = tqdm(total=num_layers * (2 if gradients else 1), desc="calibration statistics (streamed)",
               disable=not progress)
    for i in range(num_layers):
        if store.has(i + 1) and (gradients or i in stats.layers):
            bar.update()
            continue
        hidden = store.get(i, sm.device)
        with sm.layer(i) as (layer,), torch.no_grad():
            if gradients:
                out = [run_layer(layer, h, b.calls[i]) for h, b in zip(hidden, batches)]
            else:
                out = _layer_statistics(sm, i, stats, hidden, batches, False, element_factors, gram, step == n)
        store.put(i + 1, out)
        if not gradients:
            _finish(i, stats, on_layer)
        del hidden, out
        bar.update()
    if not gradients:
        bar.close()
        stats.mean_loss = None
        return stats
    # Loss and its gradient at the last boundary (the loss is recomputed on a resumed run: the
    # report's mean loss comes from it).
    grad_store = store.gradients()
    top = store.get(num_layers, sm.device)
    grads, total = [], 0.0
    with sm.materialised(*sm.head_paths()) as (norm, _):
        for h, ids in zip(top, calib.split(step)):
            h = h.detach().requires_grad_(True)
            loss = per_sample_nll_of_hidden(model, norm(h), ids.to(sm.device)).sum()
            if not torch.isfinite(loss):
                raise AdaprunerError("the calibration loss is NaN/inf; the model weights or the --dtype are broken "
                                     "(try --dtype float32)")
            loss.backward()
            total += float(loss.detach())
            grads.append(h.grad)
    stats.mean_loss = total / n
    del top
    # Backward, from the last layer down, recomputing each layer from its stored input. A resumed
    # run starts below the layers it finished, from the gradient stored at that boundary.
    start = num_layers
    while start > 0 and (start - 1) in stats.layers and grad_store.has(start - 1):
        start -= 1
    if start < num_layers:
        grads = grad_store.get(start, sm.device)
        bar.update(num_layers - start)
    for i in reversed(range(start)):
        hidden = store.get(i, sm.device)
        with sm.layer(i):
            grads = _layer_statistics(sm, i, stats, hidden, batches, True, element_factors, gram, step == n, grads)
        grad_store.put(i, grads)
        _finish(i, stats, on_layer)  # persisted there before the carry above it is dropped
        grad_store.drop(i + 1)
        bar.update()
    bar.close()
    return stats


def _finish(i: int, stats: Statistics, on_layer) -> None:
    if on_layer is not None:
        on_layer(i, stats)


def _layer_statistics(sm: StreamedModel, i: int, stats: Statistics, hidden: list[torch.Tensor],
                      batches: list[BatchCalls], gradients: bool, element_factors, gram: bool, single_pass: bool,
                      grads: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Layer ``i``'s statistics from its inputs ``hidden``; returns its outputs (forward only) or the
    gradients at its input (with ``grads``, the gradients at its output)."""
    model = sm.model
    layer = sm.model.get_submodule(sm.layer_path(i))
    stats.layers.update(weight_statistics(model, only={i}))
    out = []
    with _Collector(model, stats.layers, stats.num_samples, gradients, tuple(element_factors), None, gram=gram,
                    only={i}, track_embedding=False) as col:
        col.single_pass = single_pass
        for j, (h, b) in enumerate(zip(hidden, batches)):
            if not gradients:
                out.append(run_layer(layer, h, b.calls[i]))
                continue
            with torch.enable_grad():
                x = h.detach().requires_grad_(True)
                y = run_layer(layer, x, b.calls[i])
                y.backward(grads[j])
            if col.bad:
                raise AdaprunerError(
                    f"NaN/inf gradients at {col.bad}; the model overflows in this dtype, try --dtype float32")
            out.append(x.grad.detach())
            del x, y
        col.finish()
    return out
