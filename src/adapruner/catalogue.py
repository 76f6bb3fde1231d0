"""What the command line offers, readable without importing torch, so that ``--help`` answers at once.

The registries (:mod:`adapruner.importance`, :mod:`adapruner.updates`, :mod:`adapruner.allocation`)
stay the source of truth: ``tests/test_cli.py`` checks this table against them, and an
implementation a plugin registered (plugins are imported before the parser is built) is listed
from its registry. The names alone decide nothing: every value is validated by its registry when
a command runs.
"""

from __future__ import annotations

import sys

METRICS = {
    "random": "uniform random scores (data-free baseline)",
    "l1": "L1 norm of the unit's weights (data-free)",
    "l2": "L2 norm of the unit's weights (data-free)",
    "vector": "LLM-Pruner vector-wise first-order Taylor |g.W|",
    "element1": "LLM-Pruner element-wise first-order Taylor sum|g*W|",
    "element2": "LLM-Pruner element-wise second-order Taylor (Fisher) sum|gW - FW^2/2|",
    "adapruner": "AdaPruner Eq. 5 blend alpha1*I_vec + alpha2*I_el (the searched metric)",
    "saap": "SAAP: vector- and element-wise scores fused by their calibration uncertainty",
    "wanda-sp": "structured Wanda: |W| x input activation norm (no gradients)",
    "flap": "FLAP fluctuation: input variance x column norm, standardised across layers (no gradients)",
    "obs": "structured OBS cost of removing the unit with the rest re-fitted (ZipLM/SlimGPT; no gradients)",
}
UPDATES = {
    "none": "keep the surviving weights as they are",
    "bias": "FLAP bias compensation: removed columns' mean contribution becomes an o_proj/down_proj bias",
    "reconstruct": "least-squares re-fit of the kept o_proj/down_proj columns on calibration tokens",
}
ALLOCATORS = {
    "uniform": "the same fraction in every layer of the range (paper)",
    "global": "greedy across layers by score per removed parameter (non-uniform widths)",
    "schedule": "fraction per layer from a depth schedule with a few knots (non-uniform; searchable)",
    "saap": "SAAP adaptive layer selection: less important, more fluctuating layers pruned more",
}
OBJECTIVES = {
    "ppl": "mean perplexity (paper Eq. 6)",
    "kl": "mean KL divergence of the pruned model's next-token distribution from the dense model's",
    "mix": "mean perplexity over four domains: WikiText-2 and PTB validation, held-back book windows, Alpaca answers",
}
ATTENTION_MODES = ("heads", "kv", "none")
DTYPES = ("bfloat16", "float16", "float32")
EXPORT_FORMATS = ("gguf",)
GGUF_OUTTYPES = ("f32", "f16", "q8_0")
SAMPLERS = ("tpe", "tpe-mv", "random")

# The registry behind each table: (module that defines it, its attribute).
_REGISTRIES = {"metric": ("adapruner.importance.base", "METRICS", METRICS),
               "update": ("adapruner.updates.base", "UPDATES", UPDATES),
               "allocation": ("adapruner.allocation.base", "ALLOCATORS", ALLOCATORS),
               "objective": ("adapruner.objectives.base", "OBJECTIVES", OBJECTIVES)}


def offered(kind: str) -> dict[str, str]:
    """``name -> one-line description`` of every ``kind`` ("metric", "update", "allocation",
    "objective"): the
    built-in ones, plus any a plugin has registered (read from the registry when its module has
    been imported, which never happens for the built-ins alone)."""
    module, attribute, builtin = _REGISTRIES[kind]
    table = dict(builtin)
    if module in sys.modules:
        registry = getattr(sys.modules[module], attribute)
        table.update({n: getattr(registry.get(n), "help", "") or n for n in registry.names()})
    return table


def describe(kind: str) -> str:
    """``name: description; ...`` of :func:`offered` (for ``--help`` texts)."""
    return "; ".join(f"{n}: {h}" for n, h in offered(kind).items())
