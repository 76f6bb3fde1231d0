"""Deployment statistics of a (pruned) model: size, compute, memory, speed, sample generations.

These are the numbers of the paper's Table 9 (parameters, MACs, memory, latency) and Table 10
(greedy generations):

* parameters: exact count of unique parameter tensors (tied embeddings counted once);
* MACs per token: analytic from the actual layer widths, ``linear`` (every projection and the
  LM head) plus ``attention`` (QK^T and AV for one new token attending to ``context`` tokens);
* weight memory: bytes of parameters and buffers;
* peak memory of one prefill forward: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the
  process resident set size (RSS) sampled every millisecond during the forward, reported as
  weights + the largest RSS increase (an estimate: the CPU allocator has no peak counter);
* prefill latency: batch 1, ``context`` (64) tokens, median over repeats after warm-up;
* decode tokens/s: greedy steps with the KV cache after a ``context``-token prefill.

With several models the timed repeats are interleaved (A, B, A, B, ...) in one process so that
the ratios are not skewed by load from other processes drifting over time.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import torch

from adapruner.core.adapters import adapter_for
from adapruner.core.params import count_parameters  # noqa: F401  (part of the stats API)

SAMPLE_PROMPTS = (
    "The universe is the entirety of space, time, matter, and energy that exists",  # paper Table 10
    "Neural network pruning is",
    "The best way to learn a new language is",
)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes held by parameters and buffers."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) + \
        sum(b.numel() * b.element_size() for b in model.buffers())


def macs_per_token(model: torch.nn.Module, context: int = 64) -> dict:
    """Analytic multiply-accumulates for one token, from the model's current layer widths.

    ``linear`` counts q/k/v/o, gate/up/down of every decoder layer and the LM head;
    ``attention`` counts the score (QK^T) and value (AV) products of one token over ``context``
    positions. Norms, activations and the embedding lookup are ignored (negligible).
    """
    adapter = adapter_for(model)
    cfg = adapter.text_config(model)
    hidden = cfg.hidden_size
    linear = attention = 0
    for i in range(len(adapter.decoder_layers(model))):
        s = adapter.layer_shape(model, i)
        q, kv = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        linear += hidden * (q + 2 * kv) + q * hidden + 3 * hidden * s.intermediate_size
        attention += 2 * q * context
    head = model.get_output_embeddings()
    lm_head = head.in_features * head.out_features if head is not None else hidden * cfg.vocab_size
    linear += lm_head
    return {"total": linear + attention, "linear": linear, "attention": attention, "context": context}


def layer_widths(model: torch.nn.Module) -> list[dict]:
    """Per-layer kept widths (heads, KV heads, MLP channels), for reports."""
    adapter = adapter_for(model)
    out = []
    for i in range(len(adapter.decoder_layers(model))):
        s = adapter.layer_shape(model, i)
        out.append({"layer": i, "heads": s.num_heads, "kv_heads": s.num_kv_heads,
                    "head_dim": s.head_dim, "channels": s.intermediate_size})
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class _RssSampler:
    """Samples the process RSS every millisecond in a thread; ``peak`` is the maximum seen."""

    def __enter__(self):
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prompt_ids(model, context: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    vocab = model.get_input_embeddings().num_embeddings
    return torch.randint(3, vocab, (1, context), generator=g).to(_device(model))


@torch.no_grad()
def peak_forward_memory(model, context: int = 64) -> dict:
    """Peak memory of one batch-1 prefill forward of ``context`` tokens (see module docstring)."""
    ids = _prompt_ids(model, context)
    device = _device(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        model(ids)
        _sync(device)
        return {"bytes": int(torch.cuda.max_memory_allocated(device)), "method": "torch.cuda.max_memory_allocated"}
    model(ids)  # warm-up so one-off allocations (kernels, caches) do not count as activations
    with _RssSampler() as s:
        model(ids)
    return {"bytes": weight_bytes(model) + max(0, s.peak - s.base),
            "method": "cpu: weight bytes + peak RSS increase during the forward (sampled every 1 ms)"}


@torch.no_grad()
def _time_prefill(model, ids) -> float:
    device = _device(model)
    _sync(device)
    t = time.perf_counter()
    model(ids, use_cache=False)
    _sync(device)
    return time.perf_counter() - t


@torch.no_grad()
def _time_decode(model, ids, steps: int) -> float:
    """Seconds for ``steps`` greedy one-token forwards with the KV cache after a prefill."""
    device = _device(model)
    out = model(ids, use_cache=True)
    past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        out = model(nxt, past_key_values=past, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    _sync(device)
    return time.perf_counter() - t


@torch.no_grad()
def generate_samples(model, tokenizer, prompts=SAMPLE_PROMPTS, max_new_tokens: int = 48) -> list[dict]:
    """Greedy continuations of fixed prompts (paper Table 10)."""
    out = []
    for p in prompts:
        enc = tokenizer(p, return_tensors="pt").to(_device(model))
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        out.append({"prompt": p, "continuation": tokenizer.decode(ids[0, enc["input_ids"].shape[1]:],
                                                                  skip_special_tokens=True)})
    return out


@dataclass
class TimingProtocol:
    """How latency is measured: batch 1, ``context`` prompt tokens, ``decode_steps`` new tokens,
    ``warmup`` untimed runs, then ``repeats`` timed runs per model (interleaved), median reported."""

    context: int = 64
    decode_steps: int = 32
    warmup: int = 2
    repeats: int = 10
    seed: int = 0


def measure(models: dict[str, tuple], protocol: TimingProtocol | None = None, samples: bool = True,
            max_new_tokens: int = 48, progress: bool = True) -> dict:
    """Statistics of each ``name -> (model, tokenizer)``; with two or more models also the ratios
    of every model to the first one, timed in the same process with interleaved repeats."""
    from tqdm import tqdm

    protocol = protocol or TimingProtocol()
    names = list(models)
    result: dict = {"models": {}, "protocol": {**protocol.__dict__, "torch": torch.__version__,
                                               "threads": torch.get_num_threads()}}
    for name, (model, tok) in models.items():
        model.eval()
        result["models"][name] = {
            "parameters": count_parameters(model), "macs_per_token": macs_per_token(model, protocol.context),
            "weight_bytes": weight_bytes(model), "peak_memory": peak_forward_memory(model, protocol.context),
            "device": str(_device(model)), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "layers": layer_widths(model),
        }
    ids = {n: _prompt_ids(m, protocol.context, protocol.seed) for n, (m, _) in models.items()}
    prefill: dict[str, list[float]] = {n: [] for n in names}
    decode: dict[str, list[float]] = {n: [] for n in names}
    for n, (m, _) in models.items():
        for _ in range(protocol.warmup):
            _time_prefill(m, ids[n])
            _time_decode(m, ids[n], min(4, protocol.decode_steps))
    for _ in tqdm(range(protocol.repeats), desc="timing", disable=not progress):
        for n, (m, _) in models.items():  # interleaved: every repeat times each model once
            prefill[n].append(_time_prefill(m, ids[n]))
            decode[n].append(_time_decode(m, ids[n], protocol.decode_steps))
    for n in names:
        r = result["models"][n]
        r["prefill_latency_s"] = statistics.median(prefill[n])
        r["prefill_latency_all_s"] = prefill[n]
        r["decode_tokens_per_s"] = protocol.decode_steps / statistics.median(decode[n])
        if samples:
            r["samples"] = generate_samples(models[n][0], models[n][1], max_new_tokens=max_new_tokens)
    if len(names) > 1:
        base = result["models"][names[0]]
        result["ratios"] = {}
        for n in names[1:]:
            r = result["models"][n]
            result["ratios"][n] = {
                "vs": names[0],
                "parameters": r["parameters"] / base["parameters"],
                "macs_per_token": r["macs_per_token"]["total"] / base["macs_per_token"]["total"],
                "weight_bytes": r["weight_bytes"] / base["weight_bytes"],
                "peak_memory": r["peak_memory"]["bytes"] / base["peak_memory"]["bytes"],
                "prefill_speedup": base["prefill_latency_s"] / r["prefill_latency_s"],
                "decode_speedup": r["decode_tokens_per_s"] / base["decode_tokens_per_s"],
            }
    return result
