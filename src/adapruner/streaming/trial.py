"""The search objective of a model that does not fit in memory: a trial, one decoder layer at a time.

The same value as :class:`adapruner.search.objective.Objective` (the mean perplexity of the masked
model on the validation windows), computed in two streamed passes over the checkpoint:

1. **Scores.** The configuration's statistics on its calibration windows, streamed, each layer
   scored as soon as its statistics are complete (:func:`~adapruner.streaming.prune.streamed_scores`,
   the streamed prune's first pass without its staging), then the metric's step and the
   allocation over all layers: the plan.
2. **Evaluation.** Layer by layer (:func:`~adapruner.streaming.prune.layer_pass`): the weight
   update's step on the carried calibration inputs, then the validation windows' hidden states
   pushed through the layer with the plan's masks and updates on. The skeleton is never cut
   (masks, not surgery), so the next trial starts from the dense model again. After the last
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
from adapruner.search.objective import SCORE_CAP, TrialResult
from adapruner.streaming.layers import run_layer
from adapruner.streaming.model import StreamedModel


class StreamedObjective:
    """Evaluates pruning configurations of a :class:`StreamedModel` at one ratio, one layer at a time.

    ``pool`` are the calibration windows, ``windows`` the validation windows per dataset, as for
    the in-memory :class:`~adapruner.search.objective.Objective`, whose interface this shares.
    """

    def __init__(self, sm: StreamedModel, pool: torch.Tensor, windows: dict[str, torch.Tensor], ratio: float,
                 batch_size: int = 8, micro_batch: int | None = None):
        self.sm, self.pool, self.windows, self.ratio = sm, pool, windows, ratio
        self.batch_size, self.micro_batch = batch_size, micro_batch
        self.update_cache: dict = {}  # the in-memory objective's; a streamed trial solves each layer afresh
        self._dense: dict[str, float] | None = None
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
        """Mean validation perplexity of the model pruned (masked) with ``config``; ``report`` is
        not called (see the module docstring)."""
        from adapruner.planning import pool_windows
        from adapruner.pruning.masks import apply_masks
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
            masked = PruningPlan({i: plan.layers[i]}, {i: dict(updates)}) if i in plan.layers else PruningPlan({})
            with apply_masks(self.sm.model, masked):
                for name, batches in calls.items():
                    hidden[name] = [run_layer(layer, h, b.calls[i]) for h, b in zip(hidden[name], batches)]

        calib, update_calib = pool_windows(self.pool, config)
        with torch.no_grad():
            layer_pass(self.sm, config, plan, calib, update_calib, means, self.micro_batch, evaluate, surgery=False)
        ppl = self._score(hidden)
        if dense is not None:
            self._dense = self._score(dense)
        t2 = time.perf_counter()
        values = list(ppl.values())
        return TrialResult(value=sum(values) / len(values), ppl=ppl, seconds=t2 - t0,
                           timings={"plan_s": t1 - t0, "eval_s": t2 - t1})

    @torch.no_grad()
    def _score(self, hidden: dict[str, list[torch.Tensor]]) -> dict[str, float]:
        """Perplexity per dataset of the last layer's hidden states, through the final norm and head."""
        out = {}
        with self.sm.materialised(*self.sm.head_paths()) as (norm, _):
            for name, batches in hidden.items():
                nll = TokenNLL()
                for h, ids in zip(batches, self.windows[name].split(self.batch_size)):
                    nll.add(lm_logits(self.sm.model, norm(h)), ids.to(self.sm.device))
                out[name] = nll.ppl(cap=SCORE_CAP)
        return out
