"""Model loading: bundled aliases, local checkpoints, GGUF files (cached conversion), hub ids."""

from adapruner.models.load import LoadedModel, load_model

__all__ = ["LoadedModel", "load_model"]
