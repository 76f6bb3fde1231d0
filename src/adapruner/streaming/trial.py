"""The search objective of a model that does not fit in memory: a trial, one decoder layer at a time.

The same value as :class:`adapruner.search.objective.Objective` (the mean perplexity of the pruned
model on the validation windows), computed in two streamed passes over the checkpoint:

1. **Scores.** The configuration's statistics on its calibration windows, streamed, each layer
   scored as soon as its statistics are complete (:func:`~adapruner.streaming.prune.streamed_scores`,
   the streamed prune's first pass without its staging), then the metric's step and the
   allocation over all layers: the plan.
2. **Evaluation.** Layer by layer (:func:`~adapruner.streaming.prune.layer_pass`): the weight
   update's step on the carried calibration inputs, then the validation windows' hidden states
   pushed through the layer with its pruned modules swapped in (the plan's units and updates;
   :func:`~adapruner.pruning.surgery.swap_pruned`). The skeleton keeps its own modules, so the
   next trial starts from the dense model again. After the last
   layer the final norm and the head score every window.

The validation windows' layer calls are recorded once, and the dense perplexity is measured
alongside the first trial's evaluation pass (the same layers are already in memory). A trial
reads the checkpoint twice (once for a gradient-free metric's weight statistics and once for the
evaluation), so its time is bounded by the disk and the compute of two passes; the memory by one
layer, the calibration set's boundary states and the validation windows' hidden states.

Early stopping needs a running value after each evaluation batch; here every batch is finished
only after the last layer, so a streamed trial reports nothing and is never stopped early.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from adapruner.config import PruneConfig
from adapruner.core.lm import TokenNLL, lm_logits
from adapruner.core.structure import PruningPlan
from adapruner.objectives.perplexity import SCORE_CAP
from adapruner.objectives.measure import PERPLEXITY, Measure, TrialResult
from adapruner.streaming.layers import run_layer
from adapruner.streaming.model import StreamedModel


class StreamedObjective:
    """Evaluates pruning configurations of a :class:`StreamedModel` at one ratio, one layer at a time.

    ``pool`` are the calibration windows, ``windows`` the validation windows per dataset, as for
    the in-memory :class:`~adapruner.search.objective.Objective`, whose interface this shares.
    """

    def __init__(self, sm: StreamedModel, pool: torch.Tensor, windows: dict[str, torch.Tensor], ratio: float,
                 batch_size: int = 8, micro_batch: int | None = None, measure: Measure = PERPLEXITY):
        self.sm, self.pool, self.windows, self.ratio = sm, pool, windows, ratio
        self.batch_size, self.micro_batch = batch_size, micro_batch
        self.measure = measure.resolved()
        self.update_cache: dict = {}  # the in-memory objective's; a streamed trial solves each layer afresh
        self._dense: dict[str, float] | None = None
        self._references: dict[str, list] = {}  # the measure's dense references, per dataset and batch
        self._calls: dict[str, list] | None = None

    @property
    def dense_ppl(self) -> dict[str, float] | None:
        """The dense model's perplexity per dataset on the windows (None before the first trial)."""
        return self._dense

    def _validation_calls(self) -> dict[str, list]:
        """Every validation batch's embedding output and layer calls (recorded once)."""
        from adapruner.streaming.statistics import record_calls

        if self._calls is None:
            self._calls = {name: record_calls(self.sm, w, self.batch_size) for name, w in self.windows.items()}
        return self._calls

    def plan_and_means(self, config: PruneConfig) -> tuple[PruningPlan, dict]:
        """The plan of ``config`` at this objective's ratio and every layer's input means."""
        from adapruner.planning import check_config, pool_windows
        from adapruner.streaming.prune import plan_from_scores, streamed_scores

        check_config(self.sm.model, config, self.ratio)
        calib, _ = pool_windows(self.pool, config)
        raw, means = streamed_scores(self.sm, config, calib, self.micro_batch, progress=False)
        return plan_from_scores(self.sm, config, self.ratio, raw), means

    def __call__(self, config: PruneConfig, report: Callable[[int, float], None] | None = None) -> TrialResult:
        """Mean validation perplexity of the model pruned with ``config`` (each layer's pruned
        modules swapped in for its pass); ``report`` is not called (see the module docstring)."""
        from adapruner.planning import pool_windows
        from adapruner.pruning.surgery import swap_pruned
        from adapruner.streaming.prune import layer_pass

        t0 = time.perf_counter()
        plan, means = self.plan_and_means(config)
        t1 = time.perf_counter()
        calls = self._validation_calls()
        hidden = {name: [b.hidden for b in batches] for name, batches in calls.items()}
        dense = {name: list(h) for name, h in hidden.items()} if self._dense is None else None

        def evaluate(i, layer, updates):
            if dense is not None:
                for name, batches in calls.items():
                    dense[name] = [run_layer(layer, h, b.calls[i]) for h, b in zip(dense[name], batches)]
            this_layer = PruningPlan({i: plan.layers[i]}, {i: dict(updates)}) if i in plan.layers else PruningPlan({})
            with swap_pruned(self.sm.model, this_layer):
                for name, batches in calls.items():
                    hidden[name] = [run_layer(layer, h, b.calls[i]) for h, b in zip(hidden[name], batches)]

        calib, update_calib = pool_windows(self.pool, config)
        with torch.no_grad():
            layer_pass(self.sm, config, plan, calib, update_calib, means, self.micro_batch, evaluate, surgery=False)
        if dense is not None:
            self._dense = self._score(dense, keep_references=True)[1]
        parts, ppl = self._score(hidden)
        t2 = time.perf_counter()
        values = list(parts.values())
        return TrialResult(value=sum(values) / len(values), ppl=ppl, seconds=t2 - t0, parts=parts,
                           timings={"plan_s": t1 - t0, "eval_s": t2 - t1})

    @torch.no_grad()
    def score(self, sm: StreamedModel) -> tuple[dict[str, float], dict[str, float]]:
        """The objective and the perplexity per dataset of another streamed model (the delivered
        checkpoint) on the validation windows, one layer at a time and without masks."""
        self.ensure_dense()
        return self._score(self._forward(sm), sm=sm)

    def ensure_dense(self) -> None:
        """The dense perplexity and the measure's references (a pass of their own when no trial
        measured them alongside its evaluation)."""
        if self._dense is None:
            self._dense = self._score(self._forward(self.sm), keep_references=True)[1]

    def _forward(self, sm: StreamedModel) -> dict[str, list[torch.Tensor]]:
        """The validation windows' hidden states after the last decoder layer of ``sm``."""
        from adapruner.streaming.statistics import record_calls

        out = {}
        for name, w in self.windows.items():
            batches = record_calls(sm, w, self.batch_size)
            hidden = [b.hidden for b in batches]
            for i in range(sm.num_layers):
                with sm.layer(i) as (layer,):
                    hidden = [run_layer(layer, h, b.calls[i]) for h, b in zip(hidden, batches)]
            out[name] = hidden
        return out

    @torch.no_grad()
    def _score(self, hidden: dict[str, list[torch.Tensor]], keep_references: bool = False,
               sm: StreamedModel | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """The objective and the perplexity per dataset of the last layer's hidden states, through
        the final norm and head (the dense model's, with ``keep_references``, are the references)."""
        sm = sm or self.sm
        # The paper's objective is the perplexity itself: no second pass over the logits for it.
        scorer = self.measure.scorer() if self.measure.name != "ppl" else None
        nll = {name: TokenNLL() for name in hidden}
        with sm.materialised(*sm.head_paths()) as (norm, _):
            for name, batches in hidden.items():
                for j, (h, ids) in enumerate(zip(batches, self.windows[name].split(self.batch_size))):
                    logits, ids = lm_logits(sm.model, norm(h)), ids.to(sm.device)
                    nll[name].add(logits, ids)
                    if keep_references:
                        self._references.setdefault(name, []).append(self.measure.reference(logits, ids))
                    elif scorer is not None:
                        scorer.add(name, logits, ids, self._references[name][j])
        ppl = {name: v.ppl(cap=SCORE_CAP) for name, v in nll.items()}
        return (ppl if keep_references or scorer is None else scorer.per_dataset()), ppl
