"""The software versions that decide a number, recorded in every report."""

from __future__ import annotations

import platform

# The package version (pyproject.toml reads it from here).
VERSION = "0.2.0"


def versions(*extra: str) -> dict:
    """Versions of python, torch, transformers and adapruner, plus the named ``extra`` packages
    (e.g. ``"optuna"``, ``"peft"``, ``"lm_eval"``) when installed."""
    import importlib
    import importlib.metadata

    import torch
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "adapruner": VERSION}
    for name in extra:
        try:
            out[name] = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            try:
                out[name] = importlib.metadata.version(name.replace("_", "-"))
            except importlib.metadata.PackageNotFoundError:
                out[name] = None
    return out
