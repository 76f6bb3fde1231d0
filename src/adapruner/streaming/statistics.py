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
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from adapruner.errors import AdaprunerError
from adapruner.importance.needs import StatisticsNeeds
from adapruner.importance.loss import per_sample_nll_of_hidden
from adapruner.importance.statistics import (LayerStatistics, Statistics, _Collector, collected, validate_calibration,
                                             weight_statistics)
from adapruner.streaming.layers import ActivationStore, BatchCalls, layer_calls, run_layer
from adapruner.streaming.model import StreamedModel


def record_calls(sm: StreamedModel, windows: torch.Tensor, step: int) -> list[BatchCalls]:
    """Every layer's call and the first layer's input, for each batch of ``step`` windows."""
    with sm.materialised(sm.embedding_path()):
        return [layer_calls(sm.model, ids, sm.device) for ids in windows.split(step)]


def streamed_statistics(sm: StreamedModel, calib: torch.Tensor, needs: StatisticsNeeds,
                        micro_batch: int | None = None, store: ActivationStore | None = None,
                        on_layer: Callable[[int, Statistics], None] | None = None,
                        done: dict[int, LayerStatistics] | None = None, progress: bool = True) -> Statistics:
    """The statistics :func:`~adapruner.importance.statistics.collect` gives for ``needs``, streamed.

    ``store`` keeps the boundary hidden states (in memory when None); ``done`` holds layers whose
    statistics a killed run already finished (they are not collected again); ``on_layer(i, stats)``
    is called when layer ``i`` is complete.
    """
    calib = validate_calibration(calib, sm.model)
    n, t = calib.shape
    step = n if not micro_batch or micro_batch >= n else int(micro_batch)
    needs = collected(needs.gradients, needs.element_factors, needs.gram)
    gradients = needs.gradients
    run = _Run(sm, Statistics(layers=dict(done or {}), num_samples=n, seq_len=t, needs=needs),
               store or ActivationStore(), record_calls(sm, calib, step), needs.element_factors, needs.gram, step == n,
               on_layer)
    with tqdm(total=sm.num_layers * (2 if gradients else 1), desc="calibration statistics (streamed)",
              disable=not progress) as bar:
        run.forward(gradients, bar)
        if gradients:
            run.backward(run.loss_gradient(calib, step), bar)
    return run.stats


@dataclass
class _Run:
    """One streamed statistics pass: the model, what it collects, where the boundaries are kept."""

    sm: StreamedModel
    stats: Statistics
    store: ActivationStore
    batches: list[BatchCalls]
    element_factors: tuple[float, ...]
    gram: bool
    single_pass: bool
    on_layer: Callable[[int, Statistics], None] | None

    def forward(self, gradients: bool, bar) -> None:
        """Boundaries 0..L; without a backward pass the activation statistics are folded here."""
        if not self.store.has(0):
            self.store.put(0, [b.hidden for b in self.batches])
        for i in range(self.sm.num_layers):
            if self.store.has(i + 1) and (gradients or i in self.stats.layers):
                bar.update()
                continue
            hidden = self.store.get(i, self.sm.device)
            with self.sm.layer(i) as (layer,), torch.no_grad():
                if gradients:
                    out = [run_layer(layer, h, b.calls[i]) for h, b in zip(hidden, self.batches)]
                else:
                    out = self.layer_statistics(i, hidden, None)
            self.store.put(i + 1, out)
            if not gradients:
                self.finish(i)
            bar.update()

    def loss_gradient(self, calib: torch.Tensor, step: int) -> list[torch.Tensor]:
        """The summed per-sample loss on the last boundary and its gradient there (recomputed on a
        resumed run too: the report's mean loss comes from it)."""
        sm, grads, total = self.sm, [], 0.0
        top = self.store.get(sm.num_layers, sm.device)
        with sm.materialised(*sm.head_paths()) as (norm, _):
            for h, ids in zip(top, calib.split(step)):
                h = h.detach().requires_grad_(True)
                loss = per_sample_nll_of_hidden(sm.model, norm(h), ids.to(sm.device)).sum()
                if not torch.isfinite(loss):
                    raise AdaprunerError("the calibration loss is NaN/inf; the model weights or the --dtype are broken "
                                         "(try --dtype float32)")
                loss.backward()
                total += float(loss.detach())
                grads.append(h.grad)
        self.stats.mean_loss = total / self.stats.num_samples
        return grads

    def backward(self, grads: list[torch.Tensor], bar) -> None:
        """From the last layer down, each layer recomputed from its stored input. A resumed run
        starts below the layers it finished, from the gradient stored at that boundary."""
        grad_store, start = self.store.gradients(), self.sm.num_layers
        while start > 0 and (start - 1) in self.stats.layers and grad_store.has(start - 1):
            start -= 1
        if start < self.sm.num_layers:
            grads = grad_store.get(start, self.sm.device)
            bar.update(self.sm.num_layers - start)
        for i in reversed(range(start)):
            hidden = self.store.get(i, self.sm.device)
            with self.sm.layer(i):
                grads = self.layer_statistics(i, hidden, grads)
            grad_store.put(i, grads)
            self.finish(i)  # persisted there before the carry above it is dropped
            grad_store.drop(i + 1)
            bar.update()

    def finish(self, i: int) -> None:
        if self.on_layer is not None:
            self.on_layer(i, self.stats)

    def layer_statistics(self, i: int, hidden: list[torch.Tensor],
                         grads: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """Layer ``i``'s statistics from its inputs ``hidden``; returns its outputs (forward only,
        ``grads`` None) or the gradients at its input (``grads``: those at its output)."""
        model, stats = self.sm.model, self.stats
        layer = model.get_submodule(self.sm.layer_path(i))
        gradients = grads is not None
        stats.layers.update(weight_statistics(model, only={i}))
        out = []
        with _Collector(model, stats.layers, stats.num_samples, gradients, self.element_factors, None,
                        gram=self.gram, only={i}, track_embedding=False) as col:
            col.single_pass = self.single_pass
            for j, (h, b) in enumerate(zip(hidden, self.batches)):
                if not gradients:
                    out.append(run_layer(layer, h, b.calls[i]))
                    continue
                with torch.enable_grad():
                    x = h.detach().requires_grad_(True)
                    run_layer(layer, x, b.calls[i]).backward(grads[j])
                if col.bad:
                    raise AdaprunerError(
                        f"NaN/inf gradients at {col.bad}; the model overflows in this dtype, try --dtype float32")
                out.append(x.grad.detach())
                del x
            col.finish()
        return out
