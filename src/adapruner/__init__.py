"""adapruner: structured pruning of LLMs with searched calibration data and importance metrics.

Importing the package registers the ``adapruner_pruned`` model type with transformers, so a pruned
checkpoint whose layers differ in width loads with a plain
``AutoModelForCausalLM.from_pretrained(path)``.
"""

from __future__ import annotations

import importlib.util
import sys

from adapruner.core.versions import VERSION as __version__  # noqa: E402
from adapruner.errors import AdaprunerError, EnvironmentFault  # noqa: E402

__all__ = ["AdaprunerError", "EnvironmentFault", "__version__", "evaluate", "load_model", "prune", "search"]


def __getattr__(name: str):
    """``adapruner.prune`` / ``search`` / ``evaluate`` are :mod:`adapruner.api`'s functions, imported
    on first use so that ``import adapruner`` stays cheap."""
    if name in ("prune", "search", "evaluate"):
        from adapruner import api

        return getattr(api, name)
    raise AttributeError(f"module 'adapruner' has no attribute '{name}'")


def load_model(*args, **kwargs):
    """Load a causal LM from an alias, local directory, GGUF file or hub id (see models.load)."""
    from adapruner.models.load import load_model as _load

    return _load(*args, **kwargs)


def _register_pruned_model_type() -> None:
    try:
        from adapruner.pruning import modeling_pruned  # noqa: F401  (registers on import)
    except ImportError:  # the engine module may not exist in partial installs
        pass


class _RegisterAfterTransformers:
    """Registers the pruned model types the moment transformers is imported, so that ``import
    adapruner`` costs milliseconds (``adapruner --help`` never loads torch) and a pruned
    checkpoint still loads whichever of the two a program imports first. A meta-path finder that
    wraps the loader of the one module it watches, then leaves ``sys.meta_path``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_pruned_model_type()

        spec.loader.exec_module = exec_then_register
        return spec


if "transformers" in sys.modules:
    _register_pruned_model_type()
elif not any(isinstance(f, _RegisterAfterTransformers) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTransformers())
