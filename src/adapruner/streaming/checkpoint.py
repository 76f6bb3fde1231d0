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
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
CHUNK = 64 * 2**20  # bytes read and converted at a time
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
        """The tensors ``names`` (converted to ``dtype`` when given, on ``device``).

        Read with plain file reads in chunks, not through a memory map: the only memory a tensor
        takes is its converted result, never its stored copy as well, and nothing of the shard
        stays mapped into the process afterwards.
        """
        missing = [n for n in names if n not in self.files]
        if missing:
            raise AdaprunerError(f"the checkpoint in {self.directory} has no tensor {missing[0]} (and "
                                 f"{len(missing) - 1} more missing); is it complete and of this model's family?")
        by_file: dict[str, list[str]] = defaultdict(list)
        for n in names:
            by_file[self.files[n]].append(n)
        out = {}
        for file, group in by_file.items():
            path = self.directory / file
            header, start = read_header(path)
            with open(path, "rb", buffering=0) as f:
                for n in group:
                    t = _read_tensor(f, header[n], start, dtype, path, n)
                    out[n] = t if torch.device(device).type == "cpu" else t.to(device)
        return out

    def dtype(self) -> torch.dtype:
        """The dtype the checkpoint's first tensor is stored in."""
        first = next(iter(sorted(set(self.files.values()))))
        header, _ = read_header(self.directory / first)
        return DTYPES.get(next(iter(header.values()))["dtype"], torch.float32)

    def nbytes(self) -> int:
        """Bytes of all tensors on disk (the shards' sizes)."""
        return sum((self.directory / f).stat().st_size for f in set(self.files.values()))


def write_index(directory: Path, shards: list[Path]) -> Path:
    """``model.safetensors.index.json`` of ``shards`` (their tensors and total size, from headers)."""
    weight_map, size = {}, 0
    for shard in shards:
        header, _ = read_header(shard)
        for name, entry in header.items():
            weight_map[name] = shard.name
            size += entry["data_offsets"][1] - entry["data_offsets"][0]
    index = {"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))}
    path = directory / INDEX_NAME
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path


def read_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's table of tensors (name -> dtype, shape, byte range) and where its data
    starts; a one-line error for a file that is not one."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 2**31:
                raise ValueError(f"header of {n} bytes")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise AdaprunerError(f"{path} is not a readable safetensors file ({exc}); restore or re-create it") from None
    header.pop("__metadata__", None)
    return header, 8 + n


def _read_tensor(f, entry: dict, start: int, dtype: torch.dtype | None, path: Path, name: str) -> torch.Tensor:
    """One tensor read chunk by chunk into its (converted) result."""
    stored = DTYPES.get(entry.get("dtype"))
    begin, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if stored is None:
        raise AdaprunerError(f"{path}: tensor {name} has dtype {entry.get('dtype')}, which adapruner cannot read")
    size = torch.empty((), dtype=stored).element_size()
    count = 1
    for d in shape:
        count *= d
    if count * size != end - begin:
        raise AdaprunerError(f"{path}: tensor {name} declares shape {list(shape)} but holds {end - begin} bytes; "
                             "the file is corrupt")
    out = torch.empty(count, dtype=dtype or stored)
    f.seek(start + begin)
    step = max(1, CHUNK // size)
    buffer = torch.empty(min(count, step) * size, dtype=torch.uint8) if out.dtype != stored else None
    for lo in range(0, count, step):
        hi = min(count, lo + step)
        if buffer is None:
            target = out[lo:hi].view(torch.uint8).numpy()
        else:
            target = buffer[: (hi - lo) * size].numpy()
        view = memoryview(target)
        got = 0
        while got < len(view):
            k = f.readinto(view[got:])
            if not k:
                raise AdaprunerError(f"{path} ends inside tensor {name}; the file is truncated")
            got += k
        if buffer is not None:
            out[lo:hi].copy_(buffer[: (hi - lo) * size].view(stored))
    return out.reshape(shape)
