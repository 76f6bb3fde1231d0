"""Flags every command shares: model, device, dtype, seed, data directory, output directory."""

from __future__ import annotations

import argparse
import os
import random

import numpy as np
import torch

from adapruner.errors import AdaprunerError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--device, --dtype and --seed."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (auto: cuda if available, else cpu; large models spread over GPUs)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="weight dtype")
    parser.add_argument("--seed", type=int, default=0, help="random seed for every random choice")


def add_data_arg(parser: argparse.ArgumentParser) -> None:
    """--data-dir (falls back to $ADAPRUNER_DATA_DIR)."""
    parser.add_argument("--data-dir", default=None,
                        help="directory with wikitext2/, ptb/, books/, ... (default: $ADAPRUNER_DATA_DIR)")


def add_model_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--model: an alias, local directory, .gguf file or hub id."""
    parser.add_argument("--model", required=required,
                        help="alias (see `adapruner models`), local HF directory, .gguf file or hub id")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow model code shipped with a checkpoint (off unless you ask)")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so that a run is reproducible."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without a GPU is a clear error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise AdaprunerError("--device cuda was requested but no CUDA GPU is visible; use --device cpu")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    """Map a --dtype name to a torch dtype."""
    if name not in DTYPES:
        raise AdaprunerError(f"unknown dtype '{name}'; choose one of {', '.join(sorted(DTYPES))}")
    return DTYPES[name]


def env_default(value: str | None, var: str) -> str | None:
    """``value`` if given, else the environment variable ``var`` (None if neither)."""
    return value if value else os.environ.get(var) or None
