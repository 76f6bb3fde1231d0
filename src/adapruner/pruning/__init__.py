"""The pruning engine: structure vocabulary, family adapters, allocation, masks, surgery, saving.

Stages, in the order a run uses them: :mod:`.adapters` (where each family keeps its units),
:mod:`.allocation` (scores + ratio -> :class:`~.structure.PruningPlan`), :mod:`.masks` (apply a
plan without copying weights, for trials) or :mod:`.surgery` (apply it physically), and
:mod:`.save` (safetensors checkpoint that reloads with ``from_pretrained``).
"""
