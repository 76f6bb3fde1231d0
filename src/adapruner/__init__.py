"""adapruner: structured pruning of LLMs with searched calibration data and importance metrics.

Importing the package registers the ``adapruner_pruned`` model type with transformers, so a pruned
checkpoint whose layers differ in width loads with a plain
``AutoModelForCausalLM.from_pretrained(path)``.
"""

from __future__ import annotations

from adapruner.core.versions import VERSION as __version__  # noqa: E402
from adapruner.errors import AdaprunerError  # noqa: E402

__all__ = ["AdaprunerError", "__version__", "load_model"]


def load_model(*args, **kwargs):
    """Load a causal LM from an alias, local directory, GGUF file or hub id (see models.load)."""
    from adapruner.models.load import load_model as _load

    return _load(*args, **kwargs)


def _register_pruned_model_type() -> None:
    try:
        from adapruner.pruning import modeling_pruned  # noqa: F401  (registers on import)
    except ImportError:  # the engine module may not exist in partial installs
        pass


_register_pruned_model_type()
