"""The sampler that proposes trials (TPE, the paper's BO-TPE, or random search, Fig. 4's baseline)
and the early-stopping rule for hopeless trials (``--early-stop``; Optuna calls it a pruner).

Seeding. A seeded Optuna sampler draws from one random stream that starts again at every process
start, so a resumed study, or a second worker on the same storage, would propose exactly the
trials it proposed before (random start-up trials replayed). :class:`PerTrialSeed` instead gives
every trial its own stream, derived from ``(seed, trial number)``: trial numbers are unique in a
study, so no two trials share a draw, and a study stays reproducible however often it is killed
and resumed. TPE still conditions on every stored trial.

Refinement (``--refine-every K``). In a conditional space TPE keeps spreading its proposals over
every categorical choice it has seen do well, long after one combination leads (in one 100-trial
full-space search, 45 of the 54 trials after the best went to a metric that never beat it).
:class:`RefineBest` makes every K-th trial after the start-up a refinement of the best finished
trial: its categorical choices (metric, update, allocation, factor choices) are kept and only its
numeric parameters (calibration windows, knots, coefficients) are proposed by the sampler. The
other trials search the whole space as before, so a better combination can still take the lead.

Neighbours (``--neighbour-every K``). A calibration set's value is a property of the set as a
whole: ten random windows move a good configuration's objective by a standard deviation of 4-6
points, while replacing one window of a good set moves it by about half that
(``benchmarks/search/calibration_noise.py --mutate``). TPE models each window index on its own, and
the pool is shuffled, so its proposals near a good set's indices are other windows: it keeps no
set. :class:`NeighbourOfBest` makes every K-th trial after the start-up a neighbour of the best
finished trial: all its parameters kept, one or two of its calibration windows swapped for random
pool windows, a local move in the data dimension that the sampler cannot make. It is off by
default: in 8-minute searches it did worse than plain TPE (docs/search.md, "Neighbours"), since
the neighbours of an early best are rarely better than it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler

from adapruner.errors import AdaprunerError
from adapruner.search.results import best_trial

SAMPLERS = ("tpe", "tpe-mv", "random")
EARLY_STOPS = ("halving", "percentile", "median", "none")


def trial_seed(seed: int, number: int) -> int:
    """The random seed of trial ``number`` of a study seeded with ``seed`` (32 bits)."""
    return int(hashlib.sha256(f"adapruner:{seed}:{number}".encode()).hexdigest()[:8], 16)


class PerTrialSeed(BaseSampler):
    """Wraps a sampler so that each trial draws from its own stream seeded by ``(seed, number)``."""

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int):
        self._factory, self._seed = factory, seed
        self._inner = factory(seed)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()

    def before_trial(self, study, trial) -> None:
        self._inner = self._factory(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)


def _admits(distribution, value) -> bool:
    """Whether ``value`` is a valid value of ``distribution`` (a categorical's unknown choice is not)."""
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


class FixedParams(BaseSampler):
    """Wraps a sampler so that some trials take some of their parameters from a rule, :meth:`fix`,
    and the rest from the wrapped sampler."""

    def __init__(self, inner: BaseSampler):
        self._inner = inner
        self._fixed: dict = {}

    def fix(self, study, trial) -> dict:
        """The parameters ``trial`` takes as they are (none by default)."""
        return {}

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()

    def before_trial(self, study, trial) -> None:
        self._fixed = self.fix(study, trial)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        space = self._inner.infer_relative_search_space(study, trial)
        return {name: d for name, d in space.items() if name not in self._fixed}

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        if param_name in self._fixed and _admits(param_distribution, self._fixed[param_name]):
            return self._fixed[param_name]
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)


def _every(every: int, start: int, number: int) -> bool:
    """Whether trial ``number`` is one of every ``every``-th from ``start`` on (a rule of the number
    alone, so resumed studies and parallel workers agree)."""
    return every > 0 and number >= start and (number - start) % every == 0


class RefineBest(FixedParams):
    """Wraps a sampler so that every ``every``-th trial from trial ``start`` on keeps the best
    finished trial's categorical choices and samples only the rest (module docstring)."""

    def __init__(self, inner: BaseSampler, every: int, start: int):
        super().__init__(inner)
        self._every, self._start = every, start

    def refines(self, number: int) -> bool:
        """Whether trial ``number`` is a refinement."""
        return _every(self._every, self._start, number)

    def fix(self, study, trial) -> dict:
        best = best_trial(study, required=False) if self.refines(trial.number) else None
        if best is None:
            return {}
        # recorded as Optuna's own samplers record their state (a system attribute of the trial)
        study._storage.set_trial_system_attr(trial._trial_id, "refines", best.number)
        return {name: value for name, value in best.params.items()
                if isinstance(best.distributions[name], CategoricalDistribution)}


class NeighbourOfBest(FixedParams):
    """Wraps a sampler so that every ``every``-th trial from trial ``start`` on repeats the best
    finished trial with one or two of its calibration windows (``sample_i``) redrawn at random
    (module docstring). The swap is drawn from ``(seed, trial number)``, so resumes agree."""

    def __init__(self, inner: BaseSampler, every: int, start: int, seed: int):
        super().__init__(inner)
        self._every, self._start, self._seed = every, start, seed

    def moves(self, number: int) -> bool:
        """Whether trial ``number`` is a neighbour of the best."""
        return _every(self._every, self._start, number)

    def fix(self, study, trial) -> dict:
        best = best_trial(study, required=False) if self.moves(trial.number) else None
        windows = sorted(name for name in (best.params if best else {}) if name.startswith("sample_"))
        if not windows:
            return {}
        rng = random.Random(trial_seed(self._seed, trial.number))
        fixed = dict(best.params)
        for name in rng.sample(windows, min(len(windows), rng.choice((1, 2)))):
            d = best.distributions[name]
            while fixed[name] == best.params[name] and d.high > d.low:
                fixed[name] = rng.randint(d.low, d.high)
        study._storage.set_trial_system_attr(trial._trial_id, "neighbour_of", best.number)
        return fixed


# Optuna's TPE draws its first 10 finished trials at random (a study's recipes count among them).
# Fewer (the recipes and 2 random draws) finished more trials in the time-to-quality benchmark but
# explored less and found worse models there, so 10 stays the default; --startup-trials changes it.
TPE_STARTUP = 10


def _tpe_multivariate(seed: int, startup: int = TPE_STARTUP) -> optuna.samplers.BaseSampler:
    from adapruner.search.storage import quiet_experimental

    with quiet_experimental():  # Optuna marks multivariate and group experimental
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True, group=True,
                                          n_startup_trials=startup)


def make_sampler(name: str, seed: int, startup: int = TPE_STARTUP,
                 refine_every: int = 0, neighbour_every: int = 0) -> optuna.samplers.BaseSampler:
    """TPE (the paper's BO-TPE), TPE over the joint distribution of each group of parameters that
    trials share (``tpe-mv``: Optuna's ``multivariate=True, group=True``, made for conditional
    spaces such as the full one, where a schedule's knots exist only when it is chosen), or uniform
    random sampling (Fig. 4's baseline); seeded per trial. ``startup``: the finished trials TPE
    waits for before it models the study (Optuna's 10 by default). ``refine_every`` K > 0: every
    K-th trial from the end of the start-up on refines the best trial (:class:`RefineBest`);
    ``neighbour_every`` K > 0: every K-th trial from then on swaps one or two of the best trial's
    calibration windows and keeps the rest of it (:class:`NeighbourOfBest`)."""
    factories = {"tpe": lambda s: optuna.samplers.TPESampler(seed=s, constant_liar=True, n_startup_trials=startup),
                 "tpe-mv": lambda s: _tpe_multivariate(s, startup),
                 "random": lambda s: optuna.samplers.RandomSampler(seed=s)}
    if name not in factories:
        raise AdaprunerError(f"unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)}")
    sampler = PerTrialSeed(factories[name], seed)
    if refine_every > 0:
        sampler = RefineBest(sampler, refine_every, startup)
    if neighbour_every > 0:
        sampler = NeighbourOfBest(sampler, neighbour_every, startup, seed)
    return sampler


def early_stop_for(starting_points: int) -> str:
    """The default early-stopping rule: ``halving`` in a study that starts from recipes, the
    ``percentile`` rule the paper's space has always used otherwise (its searches stay as they were)."""
    return "halving" if starting_points else "percentile"


def make_early_stop(name: str, warmup_steps: int = 2, datasets: int = 2) -> optuna.pruners.BasePruner:
    """The early-stopping rule for hopeless trials (their running objective is reported per batch).

    ``halving`` stops a trial halfway, once every one of the ``datasets`` has given a batch, when
    its running objective is worse than the median of the finished trials' at that step: half the
    evaluation of every trial below the median is saved. Trials stopped this way do not enter the
    median, so it tightens as the search improves (successive halving against the survivors). On
    the full space's study of the quick start, the running value at that step ranks the trials like
    their final value (Spearman 0.98; 0.94 among those within 20 % of the best)."""
    if name == "halving":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=datasets - 1)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(75.0, n_startup_trials=5, n_warmup_steps=warmup_steps)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_steps)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise AdaprunerError(f"unknown early-stop rule '{name}'; choose one of {', '.join(EARLY_STOPS)}")
