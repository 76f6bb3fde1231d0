"""Flags every command shares: model, device, dtype, seed, data directory, output directory."""

from __future__ import annotations

import argparse

from adapruner.api import seed_everything  # noqa: F401  (the commands seed through it)
from adapruner.catalogue import DTYPES


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``1e400`` overflows to infinity and is refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def nonempty(text: str) -> str:
    """An argparse type: a name or path that is not empty (an empty one would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_int(text: str) -> int:
    """An argparse type: a seed from 0 to 2**63 - 1 (what torch, numpy and Optuna all accept)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got '{text}'") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to 2**63 - 1, got {text}")
    return value


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--device, --dtype and --seed."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (auto: cuda if available, else cpu; large models spread over GPUs)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="weight dtype")
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed for every random choice")


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


def key_value(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE`` (VALUE read as JSON when it parses, e.g. 3, 0.5, true, [1,2]; else a string)."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_budget_args(parser: argparse.ArgumentParser) -> None:
    """``--ratio`` / ``--ratio-of`` / ``--target-params``: the budget in the user's terms (prune, search)."""
    parser.add_argument("--ratio", type=finite_float, default=None,
                        help="fraction to remove, e.g. 0.2: of ALL parameters (the paper's definition) unless --ratio-of")
    parser.add_argument("--ratio-of", default="total", choices=["total", "non-embedding", "layers"],
                        help="what --ratio is a share of: all parameters (default), the non-embedding ones, or those "
                             "of the prunable layer range")
    parser.add_argument("--target-params", default=None, metavar="N",
                        help="instead of --ratio: the parameters to keep, e.g. 100M or 1.5B")


def add_memory_args(parser: argparse.ArgumentParser, stream_help: str):
    """``--stream`` / ``--no-stream`` / ``--max-memory`` in a "memory" group (returned, for more flags)."""
    s = parser.add_argument_group("memory (streamed execution, one decoder layer at a time)")
    s.add_argument("--stream", dest="stream", action="store_true", default=None,
                   help=f"{stream_help} (default: when the in-memory path's predicted peak exceeds --max-memory)")
    s.add_argument("--no-stream", dest="stream", action="store_false", help="hold the whole model in memory")
    s.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory the run may use, e.g. 8G or 24GiB (default: 80%% of the free RAM, or of the "
                        "GPU's free memory on a GPU)")
    return s
