"""Pruning one decoder layer at a time: memory bounded by one layer, resumable after a kill.

SparseGPT's loop, for every metric, update and allocation adapruner has. Two passes over the
layers of a :class:`~adapruner.streaming.model.StreamedModel`:

1. **Scores.** The metric's statistics, streamed (:mod:`adapruner.streaming.statistics`); each
   layer is scored as soon as its statistics are complete and only its scores (and the input
   means FLAP's bias compensation needs) are kept. Then the metric's step over all layers and
   the allocation, exactly as in memory: the plan.
2. **Prune.** Layer by layer: the weight update's step (:meth:`WeightUpdate.layer_update`) on the
   hidden states it asks for (:meth:`WeightUpdate.carry`: the dense model's, or those of the
   layers already pruned), surgery, and the layer's tensors written as one shard of the output
   checkpoint.

Everything a layer finishes goes to a staging directory beside ``--out`` (``.OUT.partial``):
per-layer scores, the boundary hidden states and gradients, the plan, each pruned layer's
shard. A killed run started again with the same command finds them, says from where it
resumes, and gives the same checkpoint as an uninterrupted run; a manifest holds the digest of
everything that decides the result (model, configuration with its calibration windows, ratio,
dtype, batching), so a different run never reuses them. The staging directory is renamed into
``--out`` at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adapruner.config import PruneConfig
from adapruner.core.adapters import adapter_for
from adapruner.core.structure import LayerPlan, LinearUpdate, PruningPlan
from adapruner.errors import AdaprunerError
from adapruner.streaming.checkpoint import write_index
from adapruner.streaming.layers import ActivationStore, run_layer
from adapruner.streaming.model import StreamedModel

FAULT_ENV = "ADAPRUNER_FAULT_KILL_AFTER"  # fault injection for tests: "scores:I" or "layer:I" -> SIGKILL


@dataclass
class StreamedPrune:
    """What :func:`prune_streamed` did: the plan, the staged run directory and what was resumed."""

    plan: PruningPlan
    staged: Path
    views_before: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    resumed: dict = field(default_factory=dict)


def staging_dir(out: Path) -> Path:
    """Where a streamed run into ``out`` keeps its finished work until it completes."""
    return out.parent / f".{out.name}.partial"


def run_digest(sm: StreamedModel, config: PruneConfig, ratio: float, micro_batch: int | None,
               save_dtype: torch.dtype | None = None) -> str:
    """The digest of everything that decides a streamed run's result."""
    from adapruner.core.versions import VERSION

    key = {"model": str(Path(sm.path).resolve()), "config": config.to_json(), "ratio": round(float(ratio), 12),
           "dtype": str(sm.dtype), "device": sm.device.type, "micro_batch": micro_batch, "version": VERSION,
           "save_dtype": str(save_dtype)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _fault(stage: str, index: int) -> None:
    if os.environ.get(FAULT_ENV) == f"{stage}:{index}":
        os.kill(os.getpid(), signal.SIGKILL)


def _save(tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None = None) -> None:
    """Write ``tensors`` as one safetensors file, floating-point ones in ``dtype`` when given."""
    from safetensors.torch import save_file

    from adapruner.core.io import atomic_file

    def cast(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().cpu()
        return (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()

    with atomic_file(path) as tmp:
        save_file({k: cast(v) for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})


def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


class Staging:
    """The staging directory of one streamed run: ``work/`` (scores, carries, plan) and ``run/``
    (the run directory as it will be renamed into ``--out``)."""

    def __init__(self, out: Path, digest: str, log=print):
        self.root = staging_dir(out)
        manifest = self.root / "manifest.json"
        if self.root.exists():
            try:
                same = json.loads(manifest.read_text()).get("digest") == digest
            except (OSError, ValueError):
                same = False
            if not same:
                log(f"discarding the unfinished work of a different run in {self.root}")
                shutil.rmtree(self.root)
        self.resuming = self.root.exists()
        self.work, self.run = self.root / "work", self.root / "run"
        self.model = self.run / "model"
        for d in (self.work / "scores", self.model):
            d.mkdir(parents=True, exist_ok=True)
        if not manifest.exists():
            manifest.write_text(json.dumps({"digest": digest}) + "\n")

    def scores_file(self, i: int) -> Path:
        return self.work / "scores" / f"layer-{i:05d}.safetensors"

    def shard(self, k: int, total: int) -> Path:
        return self.model / f"model-{k:05d}-of-{total:05d}.safetensors"


def _pass_scores(sm: StreamedModel, config: PruneConfig, calib: torch.Tensor | None, staging: Staging,
                 micro_batch: int | None, progress: bool, log) -> tuple[dict, dict]:
    """Raw per-layer scores and input means of every layer, from disk where a killed run left
    them and streamed for the rest."""
    from adapruner.core.structure import UNIT_KINDS

    raw, means = {}, {}
    for i in range(sm.num_layers):
        if staging.scores_file(i).is_file():
            data = _load(staging.scores_file(i))
            raw[i] = {k: data[f"score.{k}"] for k in UNIT_KINDS}
            means[i] = {k[5:]: v for k, v in data.items() if k.startswith("mean.")}
    if raw:
        log(f"resuming: the scores of {len(raw)} of {sm.num_layers} layers are already computed")

    def on_scored(i, scores, layer_means):
        _save({**{f"score.{k}": v for k, v in scores.items()}, **{f"mean.{k}": v for k, v in layer_means.items()}},
              staging.scores_file(i))
        _fault("scores", i)

    streamed_scores(sm, config, calib, micro_batch, progress, raw, means,
                    store=ActivationStore(staging.work / "boundaries"), on_scored=on_scored)
    shutil.rmtree(staging.work / "boundaries", ignore_errors=True)
    return raw, means


def streamed_scores(sm: StreamedModel, config: PruneConfig, calib: torch.Tensor | None, micro_batch: int | None,
                    progress: bool, raw: dict | None = None, means: dict | None = None,
                    store: ActivationStore | None = None, on_scored=None) -> tuple[dict, dict]:
    """The metric's raw scores and the input means of every decoder layer, one layer at a time.

    Layers already in ``raw`` / ``means`` (a resumed run's) are not scored again; the others are
    scored as soon as their statistics are complete, handed to ``on_scored(i, scores, means)``,
    and only their scores and means are kept (a layer's Gram matrices and per-unit sums go).
    ``store`` holds the boundary hidden states (in memory when None).
    """
    from adapruner.importance.metrics import layer_scores
    from adapruner.importance.statistics import LayerStatistics
    from adapruner.planning import statistics_needs
    from adapruner.streaming.statistics import streamed_statistics

    adapter = adapter_for(sm.model)
    raw = {} if raw is None else raw
    means = {} if means is None else means

    def on_layer(i, stats):
        ls = stats.layers[i]
        raw[i] = layer_scores(stats, i, config.metric)
        means[i] = dict(ls.input_mean)
        stats.layers[i] = LayerStatistics(shape=ls.shape, input_mean=means[i])
        if on_scored is not None:
            on_scored(i, raw[i], means[i])

    needs = statistics_needs(config)
    if len(raw) < sm.num_layers:
        if needs.samples:
            done = {i: LayerStatistics(shape=adapter.layer_shape(sm.model, i), input_mean=means[i]) for i in raw}
            streamed_statistics(sm, calib, needs, micro_batch=micro_batch, store=store, on_layer=on_layer, done=done,
                                progress=progress)
        else:
            from adapruner.importance.statistics import Statistics, weight_statistics

            stats = Statistics(layers={}, num_samples=0, seq_len=0)
            for i in range(sm.num_layers):
                if i not in raw:
                    with sm.layer(i):
                        stats.layers.update(weight_statistics(sm.model, only={i}))
                    on_layer(i, stats)
    return raw, means


def plan_from_scores(sm: StreamedModel, config: PruneConfig, ratio: float, raw: dict) -> PruningPlan:
    """The plan of ``config`` from every layer's raw scores: the metric's step over all layers and
    the allocation, exactly as in memory."""
    from adapruner.allocation import allocate
    from adapruner.importance.metrics import finish_scores

    scores = finish_scores({i: raw[i] for i in sorted(raw)}, config.metric)
    return allocate(sm.model, scores, ratio, config.allocation)


def _plan(sm: StreamedModel, config: PruneConfig, ratio: float, raw: dict, staging: Staging) -> PruningPlan:
    path = staging.work / "plan.json"
    if path.is_file():
        return PruningPlan.from_json(json.loads(path.read_text()))
    plan = plan_from_scores(sm, config, ratio, raw)
    from adapruner.core.io import write_json

    write_json(path, plan.to_json())
    return plan


def _meta_surgery(sm: StreamedModel, i: int, layer_plan: LayerPlan, shard: Path) -> None:
    """Give the skeleton's layer ``i`` the pruned shape of a layer a killed run already wrote, with
    the output biases its shard holds, so widths and counts are as if it had been pruned now."""
    from adapruner.pruning.surgery import prune_model
    from adapruner.streaming.checkpoint import read_header

    prefix = sm.layer_path(i) + "."
    layer = sm.model.get_submodule(sm.layer_path(i))
    names = set(read_header(shard)[0])
    updates = {}
    for path, module in layer.named_modules():
        if isinstance(module, torch.nn.Linear) and module.bias is None and f"{prefix}{path}.bias" in names:
            updates[path] = LinearUpdate(bias=torch.empty(module.out_features, device="meta"))
    prune_model(sm.model, PruningPlan({i: layer_plan}, {i: updates}))


def _pass_prune(sm: StreamedModel, config: PruneConfig, plan: PruningPlan, calib, update_calib,
                means: dict, staging: Staging, micro_batch: int | None, progress: bool, log,
                save_dtype: torch.dtype | None = None) -> None:
    """Update, surgery and one output shard per decoder layer."""
    n = sm.num_layers
    total = shard_count(sm)
    done = [i for i in range(n) if staging.shard(i + 2, total).is_file()]
    for i in done:
        if i in plan.layers:
            _meta_surgery(sm, i, plan.layers[i], staging.shard(i + 2, total))
    if done:
        log(f"resuming: {len(done)} of {n} pruned layers already written (up to layer {max(done)}); "
            f"continuing from layer {min(set(range(n)) - set(done), default=n)}")

    def write(i, layer, updates):
        prefix = sm.layer_path(i) + "."
        _save({prefix + k: v for k, v in layer.state_dict().items()}, staging.shard(i + 2, total), save_dtype)

    layer_pass(sm, config, plan, calib, update_calib, means, micro_batch, write, done=set(done), surgery=True,
               carry_dir=staging.work / "carry", progress=progress, desc="pruning layers (streamed)")
    shutil.rmtree(staging.work / "carry", ignore_errors=True)


def layer_pass(sm: StreamedModel, config: PruneConfig, plan: PruningPlan, calib, update_calib, means: dict,
               micro_batch: int | None, on_layer, done: set[int] = frozenset(), surgery: bool = True,
               carry_dir: Path | None = None, progress: bool = False, desc: str = "layers (streamed)") -> None:
    """Each decoder layer not in ``done``, in order, materialised once: the weight update's step on
    the carried calibration inputs, surgery (with ``surgery``), then ``on_layer(i, layer, updates)``
    while the layer's weights are in memory. Carried hidden states live in ``carry_dir`` (on disk,
    for a resumable run) or in memory."""
    from tqdm.auto import tqdm

    from adapruner.importance.statistics import LayerStatistics, Statistics
    from adapruner.streaming.statistics import record_calls
    from adapruner.updates.base import validate_update
    from adapruner.updates.reconstruct import BATCH

    model, n = sm.model, sm.num_layers
    adapter = adapter_for(model)
    update = validate_update(config.update)
    carry = update.carry(config.update) if plan.layers else None
    windows = update_calib if update.calibration_windows(config.update) is not None else calib
    last = max(plan.layers) if plan.layers else -1
    stats = Statistics(layers={i: LayerStatistics(shape=adapter.layer_shape(model, i), input_mean=m)
                               for i, m in means.items()}, num_samples=0, seq_len=0)
    store = ActivationStore(carry_dir) if carry else None
    calls = None
    if carry:
        step = micro_batch or BATCH
        calls = record_calls(sm, windows, step)
        if not store.has(0):
            store.put(0, [b.hidden for b in calls])
    with tqdm(total=n, initial=len(done), desc=desc, disable=not progress) as bar:
        for i in range(n):
            if i in done:
                continue
            if carry is not None and i <= last and not store.has(i):
                raise AdaprunerError(f"the staged work in {carry_dir} lacks the hidden states entering layer {i}; "
                                     "delete it and run again")
            with sm.layer(i), torch.no_grad():
                updates = _layer_step(sm, i, plan, update, config, carry if i <= last else None, i < last, store,
                                      calls, stats, surgery)
                on_layer(i, model.get_submodule(sm.layer_path(i)), updates)  # surgery rebuilt its modules
            del updates
            if store is not None:
                store.drop(i)
            bar.update()
            _fault("layer", i)


def _layer_step(sm: StreamedModel, i: int, plan: PruningPlan, update, config: PruneConfig, carry: str | None,
                propagate: bool, store: ActivationStore | None, calls, stats, surgery: bool = True) -> dict:
    """Decoder layer ``i`` (materialised): its update on the carried inputs, the carry for the next
    layer (through the masked and updated layer when the update wants pruned inputs), surgery."""
    from adapruner.pruning.masks import apply_masks
    from adapruner.pruning.surgery import prune_model

    model = sm.model
    layer = model.get_submodule(sm.layer_path(i))
    layer_plan = plan.layers.get(i)
    hidden = store.get(i, sm.device) if carry else None
    inputs = [(h, b.calls[i].args, b.calls[i].kwargs) for h, b in zip(hidden, calls)] if carry else None
    updates = update.layer_update(model, i, plan, inputs, config.update, stats=stats) if layer_plan else {}
    if carry and propagate:
        masked = PruningPlan({i: layer_plan}, {i: dict(updates)}) if carry == "pruned" and layer_plan else PruningPlan({})
        with apply_masks(model, masked):
            store.put(i + 1, [run_layer(layer, h, b.calls[i]) for h, b in zip(hidden, calls)])
    if surgery and layer_plan is not None:
        prune_model(model, PruningPlan({i: layer_plan}, {i: updates}))
    return updates


def shard_count(sm: StreamedModel) -> int:
    """Shards of the output: the embedding (with the final norm), one per decoder layer, and an
    untied head on its own (so the two largest tensors are never in memory together)."""
    return sm.num_layers + 1 + (0 if getattr(sm.model.config, "tie_word_embeddings", False) else 1)


def _write_rest(sm: StreamedModel, staging: Staging, save_dtype: torch.dtype | None = None) -> None:
    """The non-layer tensors (embedding and final norm first, an untied head last) and the index."""

    model = sm.model
    total = shard_count(sm)
    layers_prefix = adapter_for(model).layers + "."
    head = sm.head_paths()[1] + ".weight"
    tied = getattr(model.config, "tie_word_embeddings", False)
    # A tied head is the embedding: saved once, under the embedding's name (as save_pretrained does).
    names = [k for k in model.state_dict() if not k.startswith(layers_prefix) and k != head]
    groups = [(1, names)] + ([] if tied else [(total, [head])])
    for k, group in groups:
        # Read straight into the saved dtype (a float32 detour is exact, and twice the memory).
        keys = {name: sm.source_key(name) for name in group}
        values = sm.tensors.read(sorted(set(keys.values())), dtype=save_dtype or sm.dtype)
        _save({name: values[key] for name, key in keys.items()}, staging.shard(k, total), save_dtype)
        del values
    write_index(staging.model, [staging.shard(k, total) for k in range(1, total + 1)])



def prune_streamed(sm: StreamedModel, config: PruneConfig, ratio: float, calib: torch.Tensor | None,
                   update_calib: torch.Tensor | None, out: Path, micro_batch: int | None = None,
                   progress: bool = True, log=print, save_dtype: torch.dtype | None = None) -> StreamedPrune:
    """Prune ``sm`` with ``config`` to remove ``ratio`` of its parameters, one layer at a time.

    ``calib`` are the importance samples and ``update_calib`` the update's own windows, as for
    :func:`adapruner.planning.plan_pruning`. The pruned weights are written to the staging run
    directory (returned in :attr:`StreamedPrune.staged`, checkpoint in ``staged/model``); the
    caller adds the report and metadata (:func:`finish_streamed`). A run killed earlier with the
    same inputs resumes from its last finished layer.
    """
    from adapruner.planning import check_config

    check_config(sm.model, config, ratio)
    staging = Staging(out, run_digest(sm, config, ratio, micro_batch, save_dtype), log=log)
    timings = {}
    t = time.perf_counter()
    raw, means = _pass_scores(sm, config, calib, staging, micro_batch, progress, log)
    plan = _plan(sm, config, ratio, raw, staging)
    timings["plan_s"] = time.perf_counter() - t
    from adapruner.core.params import parameter_views

    views_before = parameter_views(sm.model, sorted(plan.layers))
    t = time.perf_counter()
    _pass_prune(sm, config, plan, calib, update_calib, means, staging, micro_batch, progress, log, save_dtype)
    _write_rest(sm, staging, save_dtype)
    timings["surgery_s"] = time.perf_counter() - t
    return StreamedPrune(plan=plan, staged=staging.run, views_before=views_before, timings=timings,
                         resumed={"resumed": staging.resuming})


def finish_streamed(sm: StreamedModel, result: StreamedPrune, report: dict, out: Path, overwrite: bool,
                    save_dtype: torch.dtype | None = None) -> Path:
    """Write the checkpoint's config, tokenizer, report and card into the staged run directory and
    rename it into ``out`` (an existing ``out`` is replaced only with ``overwrite``)."""
    from adapruner.core.io import install_directory
    from adapruner.pruning.save import MODEL_DIR, REPORT_NAME, write_checkpoint_files

    run = result.staged
    write_checkpoint_files(sm.model, sm.tokenizer, run / MODEL_DIR, report, dtype=save_dtype)
    gen = getattr(sm.model, "generation_config", None)
    if gen is not None and sm.model.can_generate():
        gen.save_pretrained(run / MODEL_DIR)
    shutil.copyfile(run / MODEL_DIR / REPORT_NAME, run / REPORT_NAME)
    install_directory(run, out, overwrite)
    shutil.rmtree(staging_dir(out), ignore_errors=True)
    return out
