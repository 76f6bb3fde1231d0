"""Running a model one decoder layer at a time: the inputs each layer is called with, and the
hidden states carried from one layer to the next.

The family's own forward decides what a decoder layer receives besides its hidden states: the
rotary position embeddings, the causal (or sliding-window) mask of that layer's type. Rather than
re-deriving any of it, :func:`layer_calls` runs the model's decoder once with every decoder layer
replaced by a stand-in that records its call and passes the hidden states through, and stops at
the last one. That costs the embedding lookup only, and gives the embedding output (the first
layer's input) and every layer's keyword arguments, per batch, for any family.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from adapruner.core.adapters import adapter_for


@dataclass
class LayerCall:
    """What the decoder passes a layer besides its hidden states, for one batch."""

    args: tuple
    kwargs: dict


@dataclass
class BatchCalls:
    """One batch: the first layer's input and the call of every layer (index = layer)."""

    hidden: torch.Tensor
    calls: list[LayerCall]


class _Stop(Exception):
    pass


class _StandIn(nn.Module):
    """Takes a decoder layer's place: records its call, passes the hidden states through."""

    def __init__(self, index: int, last: bool, record, original: nn.Module):
        super().__init__()
        self.index, self.last, self.record = index, last, record
        for attr in ("attention_type", "is_sliding", "sliding_window"):  # read by some families' loops
            if hasattr(original, attr):
                setattr(self, attr, getattr(original, attr))

    def forward(self, hidden_states, *args, **kwargs):
        self.record(self.index, hidden_states, args, kwargs)
        if self.last:
            raise _Stop
        return hidden_states


@contextlib.contextmanager
def stand_ins(model: nn.Module, record) -> Iterator[None]:
    """Replace every decoder layer of ``model`` by a recording stand-in, restoring them on leaving."""
    layers = adapter_for(model).decoder_layers(model)
    originals = list(layers)
    try:
        for i, layer in enumerate(originals):
            layers[i] = _StandIn(i, i == len(originals) - 1, record, layer)
        yield
    finally:
        for i, layer in enumerate(originals):
            layers[i] = layer


@torch.no_grad()
def layer_calls(model: nn.Module, ids: torch.Tensor, device: torch.device) -> BatchCalls:
    """The embedding output of ``ids`` and the call of every decoder layer (the model's input
    embedding must be materialised; the layers may be on the meta device)."""
    hidden, calls = None, []

    def record(index, h, args, kwargs):
        nonlocal hidden
        if index == 0:
            hidden = h.detach()
        calls.append(LayerCall(args=tuple(args), kwargs={k: v for k, v in kwargs.items() if k != "hidden_states"}))

    with stand_ins(model, record):
        try:
            model.get_decoder()(input_ids=ids.to(device), use_cache=False)
        except _Stop:
            pass
    return BatchCalls(hidden=hidden, calls=calls)


def run_layer(layer: nn.Module, hidden: torch.Tensor, call: LayerCall) -> torch.Tensor:
    """One decoder layer on ``hidden`` with the call the model would make."""
    out = layer(hidden, *call.args, **call.kwargs)
    return out[0] if isinstance(out, tuple) else out


class ActivationStore:
    """The hidden states at each layer boundary, per batch: on disk under ``directory`` (safetensors,
    one file per boundary, so a resumed run finds them), or in memory when ``directory`` is None."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else None
        self.memory: dict[int, list[torch.Tensor]] = {}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def gradients(self) -> "ActivationStore":
        """A store beside this one for the gradients at the boundaries (the backward pass's carry)."""
        return ActivationStore(self.directory / "gradients" if self.directory is not None else None)

    def _file(self, boundary: int) -> Path:
        return self.directory / f"boundary-{boundary:05d}.safetensors"

    def has(self, boundary: int) -> bool:
        return boundary in self.memory if self.directory is None else self._file(boundary).is_file()

    def put(self, boundary: int, batches: list[torch.Tensor]) -> None:
        if self.directory is None:
            self.memory[boundary] = [b.detach() for b in batches]
            return
        from safetensors.torch import save_file

        from adapruner.core.io import atomic_file

        with atomic_file(self._file(boundary)) as tmp:
            save_file({f"batch{j}": b.detach().contiguous().cpu() for j, b in enumerate(batches)}, str(tmp))

    def get(self, boundary: int, device: torch.device) -> list[torch.Tensor]:
        if self.directory is None:
            return [b.to(device) for b in self.memory[boundary]]
        from safetensors import safe_open

        with safe_open(str(self._file(boundary)), "pt", device="cpu") as f:
            names = sorted(f.keys(), key=lambda n: int(n[5:]))
            return [f.get_tensor(n).to(device, copy=True) for n in names]

    def drop(self, boundary: int) -> None:
        """Forget a boundary no step needs any more."""
        self.memory.pop(boundary, None)
        if self.directory is not None:
            self._file(boundary).unlink(missing_ok=True)
