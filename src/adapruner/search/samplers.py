"""The sampler that proposes trials (TPE, the paper's BO-TPE, or random search, Fig. 4's baseline)
and the early-stopping rule for hopeless trials (``--early-stop``; Optuna calls it a pruner)."""

from __future__ import annotations

import optuna

from adapruner.errors import AdaprunerError

SAMPLERS = ("tpe", "random")
EARLY_STOPS = ("percentile", "median", "none")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (the paper's BO-TPE) or uniform random sampling (Fig. 4's baseline)."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise AdaprunerError(f"unknown sampler '{name}'; choose tpe or random")


def make_early_stop(name: str, warmup_steps: int = 2) -> optuna.pruners.BasePruner:
    """The early-stopping rule for hopeless trials (their running objective is reported per batch)."""
    if name == "percentile":
        return optuna.pruners.PercentilePruner(75.0, n_startup_trials=5, n_warmup_steps=warmup_steps)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_steps)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise AdaprunerError(f"unknown early-stop rule '{name}'; choose one of {', '.join(EARLY_STOPS)}")
