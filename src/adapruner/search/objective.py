"""The search objective h(f(theta, D, I, lambda), D_E) of paper Eq. (6).

One trial: calibration windows D -> importance statistics (one batched forward/backward) ->
scores for metric I -> allocation at the target ratio -> the pruned layers' smaller modules swapped
into the live model (:func:`~adapruner.pruning.surgery.swap_pruned`: the masks' function, at the
pruned model's cost) -> perplexity on small fixed subsets of the WikiText-2 and PTB *validation*
splits -> the model's own modules back. The objective is the mean of the two perplexities.

What does not change between trials is computed once:

* :class:`CachedEvaluator` keeps, for every evaluation batch, the dense hidden states entering
  the first pruned decoder layer together with the keyword arguments that every later layer
  receives (causal mask, rotary position embeddings ...), captured with forward pre-hooks during
  one dense forward. A trial then only runs the pruned range of layers, the final norm and the
  LM head. Layers before the pruned range are untouched by the plan, so the result is identical to
  a full forward (tested).
* the last calibration set's statistics (a trial that re-uses the same windows, e.g. every trial
  of ``--no-data-search`` or the metric phase of ``--sequential``, needs no new pass).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from adapruner.config import PruneConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.lm import TokenNLL, lm_logits
from adapruner.objectives.measure import PERPLEXITY, Measure, TrialResult  # noqa: F401  (TrialResult: part of this API)
from adapruner.objectives.perplexity import SCORE_CAP
from adapruner.core.structure import PruningPlan
from adapruner.errors import AdaprunerError
from adapruner.importance.needs import StatisticsNeeds
from adapruner.planning import plan_pruning, pool_windows, statistics_needs

EVAL_DATASETS = ("wikitext2", "ptb")

# A trial's validation forward: as the model is loaded, or its matrix products autocast to bfloat16.
TRIAL_PRECISIONS = ("model", "bfloat16")


def trial_autocast(model: nn.Module, precision: str):
    """The context a trial's validation forward runs in. ``bfloat16`` autocasts a float32 model's
    matrix products to bfloat16: on SmolLM2-135M at 20 % and CPUs with bfloat16 instructions the
    forward runs ~1.6x faster and trial values move by at most 0.5 %, their order among trials kept
    (docs/search.md), so a search screens with it and re-scores its best trials as loaded. ``model``,
    or a model already in 16-bit precision, runs as loaded."""
    import contextlib

    if precision not in TRIAL_PRECISIONS:
        raise AdaprunerError(f"unknown trial precision '{precision}'; choose one of {', '.join(TRIAL_PRECISIONS)}")
    param = next(model.parameters())
    if precision == "model" or param.dtype != torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=param.device.type, dtype=torch.bfloat16)




@dataclass
class ObjectiveProtocol:
    """The objective's evaluation data: ``windows`` windows of ``seq_len`` tokens per dataset,
    evenly spread over each validation split, scored in batches of ``batch_size``."""

    datasets: tuple[str, ...] = EVAL_DATASETS
    split: str = "valid"
    seq_len: int = 128
    windows: int = 16
    batch_size: int = 8


def spread_indices(length: int, count: int) -> list[int]:
    """The positions of ``count`` items evenly spaced over ``length`` (all of them if there are fewer)."""
    if count >= length:
        return list(range(length))
    return torch.linspace(0, length - 1, count).round().long().tolist()


def spread_windows(windows: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` windows evenly spaced over ``windows`` (all of them if there are fewer)."""
    if count >= len(windows):
        return windows
    return windows[spread_indices(len(windows), count)]


def load_eval_windows(tokenizer, data_dir, protocol: ObjectiveProtocol) -> dict[str, torch.Tensor]:
    """The fixed evaluation windows of every dataset of ``protocol`` (validation data only, see
    :data:`VALIDATION_SOURCES`), ``protocol.windows`` of them evenly spread over each."""
    if protocol.split == "test":
        raise ValueError("the search objective must never look at test splits")
    out = {}
    for name in protocol.datasets:
        if name not in VALIDATION_SOURCES:
            raise AdaprunerError(f"unknown validation data '{name}'; choose from {', '.join(VALIDATION_SOURCES)}")
        windows = VALIDATION_SOURCES[name](tokenizer, data_dir, protocol.split, protocol.seq_len)
        out[name] = spread_windows(windows, protocol.windows)
    return out


def _corpus(name: str):
    def windows(tokenizer, data_dir, split: str, seq_len: int) -> torch.Tensor:
        from adapruner.data.corpora import load_corpus
        from adapruner.eval.perplexity import corpus_windows

        return corpus_windows(tokenizer, load_corpus(name, split, data_dir), seq_len)
    return windows


def _books(tokenizer, data_dir, split: str, seq_len: int) -> torch.Tensor:
    from adapruner.data.books import held_back_windows

    return held_back_windows(tokenizer, data_dir, seq_len)


ALPACA_ANSWERS = "alpaca/alpaca_data_first1805.json"


def _alpaca(tokenizer, data_dir, split: str, seq_len: int) -> torch.Tensor:
    from adapruner.data.alpaca import load_alpaca
    from adapruner.eval.perplexity import corpus_windows

    path = Path(data_dir) / ALPACA_ANSWERS
    if not path.is_file():
        raise AdaprunerError(f"missing data file {ALPACA_ANSWERS} in the data directory; point --data-dir at the "
                             "offline data")
    return corpus_windows(tokenizer, [r["output"] for r in load_alpaca(path)], seq_len)


# Validation data a search objective may be scored on, by name: windows of ``seq_len`` tokens.
VALIDATION_SOURCES = {
    "wikitext2": _corpus("wikitext2"),  # WikiText-2 validation split
    "ptb": _corpus("ptb"),  # Penn Treebank validation split
    "books": _books,  # the book prose of the calibration pool, tokens no calibration set holds
    "alpaca": _alpaca,  # Alpaca answers (instruction-following prose), joined
}


def first_pruned_layer(plan: PruningPlan) -> int:
    """The lowest decoder layer a plan touches (layers below it keep their dense outputs)."""
    return min(plan.layers) if plan.layers else 0


@dataclass
class _Batch:
    ids: torch.Tensor
    hidden: torch.Tensor  # input of the first cached layer
    layer_args: list[tuple]  # positional args after hidden_states, per layer from `start`
    layer_kwargs: list[dict]  # keyword args per layer from `start`
    reference: object = None  # what the measure keeps of the dense model's outputs on this batch


class CachedEvaluator:
    """The objective ``measure`` (perplexity by default) of a (pruned) model on fixed windows,
    re-running only layers ``>= start``."""

    def __init__(self, model: nn.Module, windows: dict[str, torch.Tensor], start: int, batch_size: int = 8,
                 measure: Measure = PERPLEXITY):
        self.model = model
        self.start = start
        self.measure = measure
        self.adapter = adapter_for(model)
        self.layers = self.adapter.decoder_layers(model)
        self.norm = self.adapter.final_norm(model)
        self.device = next(model.parameters()).device
        self.batches: dict[str, list[_Batch]] = {}
        self.dense: dict[str, float] = {}
        for name, w in windows.items():
            self.batches[name], self.dense[name] = self._capture(w, batch_size)

    @torch.no_grad()
    def _capture(self, windows: torch.Tensor, batch_size: int) -> tuple[list[_Batch], float]:
        """One dense forward per batch, recording what enters each layer from ``start`` on."""
        batches, nll = [], TokenNLL()
        for chunk in windows.split(batch_size):
            ids = chunk.to(self.device)
            seen: dict[int, tuple] = {}
            hooks = [layer.register_forward_pre_hook(self._recorder(seen, i), with_kwargs=True)
                     for i, layer in enumerate(self.layers) if i >= self.start]
            try:
                logits = self.model(input_ids=ids, use_cache=False).logits
            finally:
                for h in hooks:
                    h.remove()
            nll.add(logits, ids)
            order = sorted(seen)
            batches.append(_Batch(ids=ids, hidden=seen[order[0]][0],
                                  layer_args=[seen[i][1] for i in order], layer_kwargs=[seen[i][2] for i in order],
                                  reference=self.measure.reference(logits, ids)))
        return batches, nll.ppl(cap=SCORE_CAP)

    @staticmethod
    def _recorder(store: dict, index: int):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            kw = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            store[index] = (hidden.detach(), tuple(args[1:]), kw)
        return hook

    @torch.no_grad()
    def logits(self, batch: _Batch) -> torch.Tensor:
        """Logits of one cached batch through layers ``start..`` of the current (pruned) model."""
        h = batch.hidden
        for layer, args, kwargs in zip(self.layers[self.start:], batch.layer_args, batch.layer_kwargs):
            out = layer(h, *args, **kwargs)
            h = out[0] if isinstance(out, tuple) else out
        return lm_logits(self.model, self.norm(h))

    def evaluate(self, report: Callable[[int, float], None] | None = None,
                 precision: str = "model") -> tuple[dict[str, float], dict[str, float]]:
        """The objective per dataset and the perplexity per dataset; ``report(step,
        running_objective)`` after every batch; the forward in ``precision`` (:func:`trial_autocast`).

        Batches of the datasets are interleaved so that the running objective (mean over the
        datasets seen so far of each one's value so far) is comparable between trials at equal steps.
        """
        scorer = self.measure.scorer()
        nll = {name: TokenNLL() for name in self.batches} if self.measure.name != "ppl" else None
        for step, (name, batch) in enumerate(_interleave(self.batches)):
            with trial_autocast(self.model, precision):
                logits = self.logits(batch)
            scorer.add(name, logits, batch.ids, batch.reference)
            if nll is not None:
                nll[name].add(logits, batch.ids)
            if report is not None:
                report(step, scorer.value())
        parts = scorer.per_dataset()
        return parts, ({name: v.ppl(cap=SCORE_CAP) for name, v in nll.items()} if nll is not None else dict(parts))


def _interleave(batches: dict[str, list]) -> list[tuple[str, object]]:
    out = []
    for i in range(max(len(v) for v in batches.values())):
        for name, v in batches.items():
            if i < len(v):
                out.append((name, v[i]))
    return out


class Objective:
    """Evaluates pruning configurations on one loaded model at one ratio (no copies of it).

    ``pool`` are the calibration windows (``calibration_pool``), ``windows`` the evaluation
    windows per dataset. A trial's plan comes from :func:`adapruner.planning.plan_pruning`, the
    same function that plans the delivered model. Its statistics are what the configuration needs
    (:func:`~adapruner.planning.statistics_needs`: a gradient-free metric pays no backward
    pass), those of the last calibration set kept for the next trial. A gradient pass folds every
    second-order factor the space may suggest (``element_factors``), so another factor on the same
    set needs no new pass. ``statistics_fn(model, calib, needs)`` replaces the collection (tests
    count its calls). ``precision``: what a trial's validation forward runs in (:func:`trial_autocast`;
    a call may ask for another, e.g. to re-score a trial as loaded).
    """

    def __init__(self, model: nn.Module, pool: torch.Tensor, windows: dict[str, torch.Tensor], ratio: float,
                 batch_size: int = 8, statistics_fn=None, element_factors: tuple[float, ...] | None = None,
                 measure: Measure = PERPLEXITY, precision: str = "model"):
        from adapruner.importance import ELEMENT_FACTORS
        from adapruner.importance.statistics import collect

        self.model, self.pool, self.windows, self.ratio, self.batch_size = model, pool, windows, ratio, batch_size
        trial_autocast(model, precision)  # an unknown precision fails here, before any trial
        self.precision = precision
        self.measure = measure.resolved()
        self.factors = tuple(element_factors) if element_factors is not None else ELEMENT_FACTORS
        self.statistics_fn = statistics_fn or (lambda model, calib, needs: collect(model, calib, needs, progress=False))
        self.update_cache: dict = {}  # the weight update's plan-independent work (e.g. dense Grams)
        self.evaluator: CachedEvaluator | None = None
        self._stats_key: tuple | None = None
        self._stats = None

    @property
    def dense_ppl(self) -> dict[str, float] | None:
        """The dense model's perplexity per dataset on the windows (None before the first trial)."""
        return self.evaluator.dense if self.evaluator is not None else None

    def evaluator_for(self, plan: PruningPlan) -> CachedEvaluator:
        """The cached evaluator, rebuilt (once) if a plan touches a layer below its cache."""
        start = first_pruned_layer(plan)
        if self.evaluator is None or start < self.evaluator.start:
            self.evaluator = CachedEvaluator(self.model, self.windows, start, self.batch_size, self.measure)
        return self.evaluator

    def needs(self, config: PruneConfig) -> StatisticsNeeds:
        """What a trial of ``config`` collects: the configuration's needs, with every factor of the
        space when it runs backward."""
        needs = statistics_needs(config)
        return needs | StatisticsNeeds(element_factors=self.factors) if needs.gradients else needs

    def statistics(self, indices: list[int], needs: StatisticsNeeds):
        """Statistics with ``needs`` of a calibration set (the last set's are kept and re-used when
        they hold enough; a set collected again keeps what it held)."""
        key = tuple(sorted(indices))
        if key == self._stats_key and self._stats.needs.covers(needs):
            return self._stats
        if key == self._stats_key:
            needs = needs | self._stats.needs
        self._stats = None  # free the previous set before computing the next
        self._stats = self.statistics_fn(self.model, self.pool[list(key)], needs)
        self._stats_key = key
        return self._stats

    def plan(self, config: PruneConfig) -> PruningPlan:
        """The pruning plan of ``config`` at this objective's ratio (the delivered model's plan)."""
        indices = config.calibration.indices
        calib, update_calib = pool_windows(self.pool, config)
        stats = self.statistics(indices, self.needs(config)) if indices is not None else None
        return plan_pruning(self.model, calib, config, self.ratio, stats=stats, progress=False,
                            update_calib=update_calib, cache=self.update_cache).plan

    def __call__(self, config: PruneConfig, report: Callable[[int, float], None] | None = None,
                 precision: str | None = None) -> TrialResult:
        """Mean validation perplexity of the model pruned with ``config``, the forward in
        ``precision`` (default: the objective's), on physically pruned modules swapped in for the
        trial (:func:`~adapruner.pruning.surgery.swap_pruned`: the masks' function at the pruned
        model's cost)."""
        from adapruner.pruning.surgery import swap_pruned

        t0 = time.perf_counter()
        plan = self.plan(config)
        t1 = time.perf_counter()
        evaluator = self.evaluator_for(plan)
        t2 = time.perf_counter()
        handle = swap_pruned(self.model, plan)
        try:
            parts, ppl = evaluator.evaluate(report, precision or self.precision)
        finally:
            handle.remove()
        t3 = time.perf_counter()
        values = list(parts.values())
        value = sum(values) / len(values)
        return TrialResult(value=value, ppl=ppl, seconds=t3 - t0, parts=parts,
                           timings={"plan_s": t1 - t0, "cache_s": t2 - t1, "eval_s": t3 - t2})
