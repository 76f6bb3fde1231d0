"""A checkpoint's tensors read a few at a time from its safetensors shards.

The streamed path never holds a whole model: :class:`CheckpointTensors` maps every tensor name
to the shard that stores it (``model.safetensors.index.json``, or the one ``model.safetensors``)
and reads just the names asked for. Each read opens the shard with ``safe_open`` and closes it
again, so the memory map of a finished layer is released and its pages stop counting against
the process (a long-lived mapping of a 16 GB checkpoint would otherwise grow the resident set
to the checkpoint's size as layers are read).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch

from adapruner.errors import AdaprunerError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class CheckpointTensors:
    """Name -> shard table of one checkpoint directory, and reads of named tensors."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index = self.directory / INDEX_NAME
        if index.is_file():
            try:
                self.files = dict(json.loads(index.read_text())["weight_map"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise AdaprunerError(f"{index} is not a safetensors index ({exc}); restore or re-create the "
                                     "checkpoint") from None
        elif (self.directory / SINGLE_NAME).is_file():
            from safetensors import safe_open

            with safe_open(str(self.directory / SINGLE_NAME), "pt") as f:
                self.files = {name: SINGLE_NAME for name in f.keys()}
        else:
            raise AdaprunerError(f"{self.directory} has no safetensors weights ({SINGLE_NAME} or {INDEX_NAME}); "
                                 "the streamed path reads safetensors checkpoints only (save the model with "
                                 "save_pretrained, or pass --no-stream)")

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def names(self, prefix: str = "") -> list[str]:
        """Every tensor name that starts with ``prefix``."""
        return sorted(n for n in self.files if n.startswith(prefix))

    def read(self, names: list[str], dtype: torch.dtype | None = None,
             device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The tensors ``names`` (converted to ``dtype`` when given, on ``device``), each shard opened
        once and closed before returning."""
        from safetensors import safe_open

        missing = [n for n in names if n not in self.files]
        if missing:
            raise AdaprunerError(f"the checkpoint in {self.directory} has no tensor {missing[0]} (and "
                                 f"{len(missing) - 1} more missing); is it complete and of this model's family?")
        by_file: dict[str, list[str]] = defaultdict(list)
        for n in names:
            by_file[self.files[n]].append(n)
        out = {}
        for file, group in by_file.items():
            with safe_open(str(self.directory / file), "pt", device="cpu") as f:
                for n in group:
                    t = f.get_tensor(n)
                    # A copy that owns its memory: the shard's mapping is closed on leaving.
                    out[n] = t.to(device=device, dtype=dtype or t.dtype, copy=True)
                    del t
        return out

    def dtype(self) -> torch.dtype:
        """The dtype most of the checkpoint's floating-point tensors are stored in."""
        from safetensors import safe_open

        first = next(iter(sorted(set(self.files.values()))))
        with safe_open(str(self.directory / first), "pt", device="cpu") as f:
            for n in f.keys():
                t = f.get_slice(n)
                kind = t.get_dtype()
                return {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}.get(kind, torch.float32)
        return torch.float32

    def nbytes(self) -> int:
        """Bytes of all tensors on disk (the shards' sizes)."""
        return sum((self.directory / f).stat().st_size for f in set(self.files.values()))
