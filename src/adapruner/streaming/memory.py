"""Peak memory and time of a prune, predicted from the model's shape before any weight is read,
and the choice between the in-memory and the streamed path.

The prediction is a sum of the tensors each path holds at its fullest moment, counted from the
config (widths, depth, vocabulary) and the run's sizes (windows, tokens, micro-batch):

* **in memory**: every weight; for gradient metrics the activations autograd keeps for the whole
  model's backward pass; for the one-shot reconstruction every layer's float64 Gram matrices
  (o_proj's and down_proj's inputs) at once;
* **streamed**: the largest of its stages: the embedding; one decoder layer with its
  activations, the statistics' weight-sized temporaries and its Gram matrices; the head with
  one sample's logits.

Both add the process's own footprint (Python, torch, transformers). Time is counted in
floating-point operations at a speed measured on the spot with a short matrix product, plus the
streamed path's reads of the checkpoint. ``benchmarks/scale`` checks both against measurements.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import torch

from adapruner.config import PruneConfig
from adapruner.errors import AdaprunerError

BASE_BYTES = 480 * 2**20  # the interpreter with torch and transformers imported, measured
GIB = 2**30
GRADIENT_OVERHEAD = 256 * 2**20  # a streamed backward pass's own footprint beyond its tensors, measured


def parse_size(text: str) -> int:
    """``8G``, ``8GiB``, ``512M``, ``24gb`` or a byte count as bytes; a one-line error otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not m:
        raise AdaprunerError(f"--max-memory must be a size such as 8G, 24GiB or 512M, got {text!r}")
    value = float(m[1]) * 1024 ** " kmgt".index(m[2] or " ")
    if value <= 0:
        raise AdaprunerError(f"--max-memory must be positive, got {text!r}")
    return int(value)


def free_memory(device: str) -> int:
    """Free memory of the device the run will use: the GPU's, else the RAM's (MemAvailable)."""
    if device in ("auto", "cuda") or device.startswith("cuda:"):
        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # not a hard dependency: only where /proc is missing

    return int(psutil.virtual_memory().available)


@dataclass
class Shape:
    """What the prediction needs of a model: widths, depth, vocabulary and parameter counts."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    parameters: int

    @property
    def layer_parameters(self) -> int:
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        return attn + 3 * self.hidden * self.intermediate + 2 * self.hidden

    @property
    def largest_linear(self) -> int:
        return self.hidden * self.intermediate

    @staticmethod
    def of(config) -> "Shape":
        cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        widths = getattr(cfg, "layer_widths", None) or []
        inter = max([w.get("intermediate_size", cfg.intermediate_size) for w in widths] or [cfg.intermediate_size])
        shape = Shape(layers=cfg.num_hidden_layers, hidden=cfg.hidden_size, intermediate=inter, heads=heads,
                      kv_heads=getattr(cfg, "num_key_value_heads", None) or heads, head_dim=head_dim,
                      vocab=cfg.vocab_size, tied=bool(getattr(cfg, "tie_word_embeddings", False)), parameters=0)
        embed = shape.vocab * shape.hidden * (1 if shape.tied else 2)
        shape.parameters = embed + shape.layers * shape.layer_parameters + shape.hidden
        return shape


@dataclass
class Prediction:
    """Predicted peak bytes and seconds of one path."""

    peak_bytes: int
    seconds: float
    parts: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"peak_gib": round(self.peak_bytes / GIB, 3), "seconds": round(self.seconds, 1),
                "parts_gib": {k: round(v / GIB, 3) for k, v in self.parts.items()}}


def _work(config: PruneConfig, micro_batch: int | None) -> dict:
    """The run's sizes and which statistics it needs."""
    from adapruner.planning import statistics_needs
    from adapruner.updates.base import validate_update

    needs, update = statistics_needs(config), validate_update(config.update)
    n = config.calibration.num_samples if needs.samples or update.needs_calibration else 0
    step = min(n, micro_batch) if micro_batch else n
    windows = update.calibration_windows(config.update) or 0
    mode = config.update.options.get("mode", "sequential") if config.update.name == "reconstruct" else None
    return {"n": n, "step": step, "t": config.calibration.seq_len, "gradients": needs.gradients,
            "calibrated": needs.samples, "gram": needs.gram, "windows": windows, "mode": mode}


def _activations(s: Shape, tokens: int, t: int, gradients: bool, dtype_bytes: int) -> int:
    """What one decoder layer keeps for ``tokens`` tokens: inputs of its linears, norms, attention
    probabilities and MLP products (for a backward pass), or its live temporaries (forward only)."""
    per_token = 6 * s.hidden + 4 * s.intermediate + s.heads * t
    return tokens * per_token * (dtype_bytes if gradients else dtype_bytes // 2 + 1)


def predict(s: Shape, config: PruneConfig, dtype_bytes: int = 4, micro_batch: int | None = None,
            flops_per_s: float = 5e10, read_bytes_per_s: float = 1e9, disk_dtype_bytes: int = 2,
            trial_ratio: float | None = None) -> dict[str, Prediction]:
    """Predicted peak memory and time of the in-memory and the streamed prune; with ``trial_ratio``,
    of a search trial at that ratio, whose validation forward also holds the kept weights of the
    layers it narrows (:func:`~adapruner.pruning.surgery.swap_pruned`)."""
    w = _work(config, micro_batch)
    weights = s.parameters * dtype_bytes
    layer = s.layer_parameters * dtype_bytes
    embed = s.vocab * s.hidden * dtype_bytes
    tokens = w["step"] * w["t"]
    temporaries = 5 * s.largest_linear * 4 if w["gradients"] else 2 * s.largest_linear * 4
    logits = 3 * w["t"] * s.vocab * 4 if w["calibrated"] else 0
    gram_layer = (s.hidden ** 2 + s.intermediate ** 2) * 8 if (w["windows"] or w["gram"]) else 0
    # The largest solve holds H_SS and its factor beside H (S ~ 0.8 of the columns at 20 %).
    solve = int(2 * 0.64 * s.intermediate ** 2 * 8) if w["windows"] else 0
    window_tokens = min(w["windows"], 8) * w["t"]
    carry = 2 * w["windows"] * w["t"] * s.hidden * dtype_bytes
    # In memory.
    if w["gradients"]:
        acts = s.layers * _activations(s, tokens, w["t"], True, dtype_bytes)
    elif w["calibrated"]:
        # Forward-only statistics fold float64 copies of the output projections' inputs in every
        # layer; the allocator keeps their high-water mark (measured on SmolLM2 and the 1B shape).
        acts = s.layers * tokens * (2 * s.hidden + 2 * s.intermediate) * 8
    else:
        acts = 0
    grams = s.layers * gram_layer if (w["mode"] == "oneshot" or w["gram"]) else gram_layer
    in_parts = {"weights": weights, "activations": acts, "statistics temporaries": temporaries,
                "logits": logits, "gram matrices": grams + solve, "windows": carry, "runtime": BASE_BYTES}
    # A trial's pruned copy of every narrowed layer (bounded by all of them at the kept fraction)
    # lives after its statistics pass has freed the activations: the peak holds the larger.
    kept_layer = int((1 - trial_ratio) * layer) if trial_ratio is not None else 0
    if kept_layer and s.layers * kept_layer > acts + temporaries:
        del in_parts["activations"], in_parts["statistics temporaries"]
        in_parts["pruned layers of a trial"] = s.layers * kept_layer
    # Streamed: the fullest stage.
    stages = {
        "layer": layer + _activations(s, tokens, w["t"], w["gradients"], dtype_bytes) + temporaries + gram_layer
        + solve + carry + _activations(s, window_tokens, w["t"], False, dtype_bytes) + kept_layer,
        # The loss reads the head alone (the embedding was freed after the first layer's inputs);
        # writing the output reads embedding and head together, in the saved dtype.
        "head": embed + logits + tokens * s.hidden * dtype_bytes * 2,
        "output": embed * (1 if s.tied else 2) // dtype_bytes * 2,
    }
    worst = max(stages, key=stages.get)
    st_parts = {f"{worst} stage": stages[worst], "runtime": BASE_BYTES}
    if w["gradients"]:
        st_parts["autograd and allocator"] = GRADIENT_OVERHEAD
    # Time: forward 2 flops per weight and token; backward (with recompute) 3x more, plus the
    # per-sample weight gradients; Gram passes; reads of the checkpoint.
    layer_flops = 2 * s.layer_parameters * w["n"] * w["t"]
    flops = s.layers * layer_flops * (5 if w["gradients"] else 1)
    flops += 2 * s.vocab * s.hidden * w["n"] * w["t"] * (3 if w["gradients"] else 1)
    passes = {"sequential": 3, "oneshot": 1}.get(w["mode"], 0)
    flops += s.layers * passes * (2 * s.layer_parameters * w["windows"] * w["t"]
                                  + 2 * (s.hidden ** 2 + s.intermediate ** 2) * w["windows"] * w["t"]
                                  + (s.intermediate ** 3 + s.hidden ** 3) / 3 * 4)
    compute_s = flops / flops_per_s
    disk = s.parameters * disk_dtype_bytes
    reads = 2 + (1 if w["gradients"] else 0)
    return {"in_memory": Prediction(sum(in_parts.values()), compute_s + disk / read_bytes_per_s, in_parts),
            "streamed": Prediction(sum(st_parts.values()), compute_s * 1.1 + reads * disk / read_bytes_per_s,
                                   st_parts)}


def measured_flops(seconds: float = 0.2) -> float:
    """This machine's float32 matrix-product speed, measured for about ``seconds``."""
    a = torch.randn(512, 512)
    b = torch.randn(512, 512)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return count * 2 * 512 ** 3 / (time.perf_counter() - start)


@dataclass
class PathChoice:
    """Which path a prune takes, why, and the predictions it was chosen from."""

    streamed: bool
    reason: str
    budget: int | None = None
    predictions: dict = field(default_factory=dict)

    def summary(self, times: bool = True) -> str:
        """The path and why, with each path's predicted peak (and time, with ``times``)."""
        lines = [f"execution: {'streamed, one decoder layer at a time' if self.streamed else 'in memory'} "
                 f"({self.reason})"]
        for name, p in self.predictions.items():
            lines.append(f"  predicted {name.replace('_', '-')}: peak {p.peak_bytes / GIB:.2f} GiB"
                         + (f", ~{_duration(p.seconds)}" if times else ""))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"streamed": self.streamed, "reason": self.reason,
                "max_memory_gib": round(self.budget / GIB, 3) if self.budget else None,
                "predicted": {k: v.to_json() for k, v in self.predictions.items()}}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def model_shape(spec: str, trust_remote_code: bool = False) -> Shape | None:
    """The :class:`Shape` of ``spec`` from its config.json alone (None when it cannot be read cheaply)."""
    from adapruner.models.load import peek_config

    data = peek_config(spec)
    if not data:
        return None
    try:
        from transformers import AutoConfig

        import adapruner.pruning.modeling_pruned  # noqa: F401  (registers the pruned types)

        cfg = AutoConfig.for_model(**data) if "model_type" in data else None
        return Shape.of(cfg) if cfg is not None else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def choose_path(spec: str, config: PruneConfig, stream: bool | None, max_memory: str | None, device: str,
                dtype: str, micro_batch: int | None, trust_remote_code: bool = False,
                trial_ratio: float | None = None) -> PathChoice:
    """In memory or streamed: as asked (``stream``), else streamed when the in-memory path's
    predicted peak exceeds ``max_memory`` (default 80 % of the free memory); ``trial_ratio``
    predicts a search trial's peak at that ratio instead of a prune's (:func:`predict`)."""
    budget = parse_size(max_memory) if max_memory is not None else int(0.8 * free_memory(device))
    shape = model_shape(spec, trust_remote_code)
    predictions = {}
    if shape is not None:
        size = torch.empty((), dtype={"float32": torch.float32, "bfloat16": torch.bfloat16,
                                      "float16": torch.float16}.get(dtype, torch.float32)).element_size()
        predictions = predict(shape, config, size, micro_batch, flops_per_s=measured_flops(),
                              trial_ratio=trial_ratio)
    if stream is not None:
        return PathChoice(stream, "--stream" if stream else "--no-stream", budget, predictions)
    if not predictions:
        return PathChoice(False, "model size unknown before loading; --stream bounds memory by one layer",
                          budget, predictions)
    need = predictions["in_memory"].peak_bytes
    if need > budget:
        return PathChoice(True, f"in memory would need ~{need / GIB:.1f} GiB, over the {budget / GIB:.1f} GiB "
                                "allowed (--max-memory)", budget, predictions)
    return PathChoice(False, f"fits: ~{need / GIB:.1f} GiB of {budget / GIB:.1f} GiB allowed", budget, predictions)
