"""GGUF export: a pruned (or plain) checkpoint as a file llama.cpp runs, at any per-layer widths.

llama.cpp's ``llama`` and ``qwen2`` architectures take one head count and one FFN width for all
layers (their tensors and graph are built from layer 0's values), so a uniformly pruned model is
written as its family's own architecture (``qwen2`` moreover sizes the query projection as the
hidden size, so only models with all heads kept fit it). A model whose layers differ is written as ``deci``
(DeciLM / Nemotron-NAS, ``src/models/deci.cpp``), whose loader reads ``head_count``,
``head_count_kv`` and ``feed_forward_length`` as arrays of one value per layer and builds every
layer with its own widths (0 heads = an attention-free layer); the head dimension stays global.
``deci`` also loads the optional q/k/v, ``attn_output`` and ``ffn_down`` biases, which is where
FLAP-style compensation biases go, so a uniform model with biases its family's architecture
cannot hold is written as ``deci`` too.

Both ``llama`` and ``deci`` apply rotary embeddings to interleaved pairs, Hugging Face to the two
halves of each head, so the rows of ``q_proj`` / ``k_proj`` (and their biases) are permuted per
head exactly as llama.cpp's own converter does; ``qwen2`` uses the halves layout and takes them as
they are.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import torch

from adapruner.core.families import FAMILIES as ALL_FAMILIES
from adapruner.core.family import GGUFMapping
from adapruner.core.io import atomic_file, check_writable
from adapruner.core.versions import VERSION
from adapruner.errors import AdaprunerError, EnvironmentFault
from adapruner.export.checkpoint import Checkpoint, read_checkpoint
from adapruner.export.vocab import convert_tokenizer, copy_tokenizer, source_gguf

OUTTYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
PER_LAYER_ARCH = "deci"


# How each family maps onto llama.cpp, and why the others cannot be written (yet): declared in the
# family files (adapruner.core.families), keyed by the checkpoint's model_type.
FAMILIES: dict[str, GGUFMapping] = {f.model_type: f.gguf for f in ALL_FAMILIES if f.gguf}
UNSUPPORTED: dict[str, str] = {f.model_type: f.gguf_unsupported for f in ALL_FAMILIES if f.gguf_unsupported}

# Hugging Face layer tensor -> GGUF block tensor
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


@dataclass(frozen=True)
class ExportResult:
    """What was written: the file, its architecture, tensor types, and the tokenizer's origin."""

    path: Path
    arch: str
    outtype: str
    n_tensors: int
    fallback_f16: tuple[str, ...]  # q8_0 tensors whose rows are not a multiple of 32
    tokenizer: str
    bytes: int


def choose_arch(ckpt: Checkpoint) -> tuple[str, bool]:
    """``(architecture, permute q/k)`` for the checkpoint, or a one-line error naming why not."""
    if ckpt.family in UNSUPPORTED:
        raise AdaprunerError(f"cannot export a '{ckpt.family}' checkpoint to GGUF: {UNSUPPORTED[ckpt.family]}; "
                             f"supported families: {', '.join(FAMILIES)}")
    if ckpt.family not in FAMILIES:
        raise AdaprunerError(f"cannot export a '{ckpt.family}' checkpoint to GGUF; supported families: "
                             f"{', '.join(FAMILIES)}")
    family = FAMILIES[ckpt.family]
    output_bias = any(b in layer.biases for layer in ckpt.layers for b in ("self_attn.o_proj", "mlp.down_proj"))
    fits_q = ckpt.layers[0].n_head * ckpt.head_dim == ckpt.config["hidden_size"] or not family.full_width_q
    if ckpt.uniform and ckpt.layers[0].n_head > 0 and fits_q and (family.output_bias or not output_bias):
        return family.arch, family.interleaved
    for i, layer in enumerate(ckpt.layers):
        if layer.n_ff == 0 and layer.n_head > 0:
            # deci.cpp skips the rest of such a layer, dropping its attention output as well.
            raise AdaprunerError(f"layer {i} keeps attention but no MLP channel, which llama.cpp's deci "
                                 "architecture cannot run; prune with at least one MLP channel per layer")
        if layer.n_head == 0 and "self_attn.o_proj" in layer.biases:
            # deci.cpp passes an attention-free layer's input through, ignoring an o_proj bias.
            raise AdaprunerError(f"layer {i} has no attention head but an attention-output bias, which llama.cpp's "
                                 "deci architecture ignores; fold the bias into the next layer or keep one head")
        if layer.n_head > 0 and layer.n_head_kv == 0:
            raise AdaprunerError(f"layer {i} has {layer.n_head} query heads but no KV head; not a valid attention layer")
    return PER_LAYER_ARCH, True


def _permute(t: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Rows of each head from halves order (HF) to interleaved pairs (llama.cpp NORM rope)."""
    shape = t.shape
    return t.reshape(-1, 2, head_dim // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _rope(config: dict) -> tuple[float, dict]:
    """The rope base and scaling parameters, from transformers 5's ``rope_parameters`` or the older keys."""
    params = dict(config.get("rope_parameters") or {})
    params.update({k: v for k, v in (config.get("rope_scaling") or {}).items() if k not in params})
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    kind = params.get("rope_type", params.get("type", "default")) or "default"
    params["rope_type"] = kind
    return float(theta), params


def _llama3_factors(theta: float, dim: int, p: dict) -> np.ndarray:
    """Per-frequency divisors of Llama-3's rope scaling (as llama.cpp's converter writes them)."""
    freqs = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    factor, low, high = p.get("factor", 8.0), p.get("low_freq_factor", 1.0), p.get("high_freq_factor", 4.0)
    old = p.get("original_max_position_embeddings", 8192)
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _write_hparams(w: gguf.GGUFWriter, ckpt: Checkpoint, arch: str, ftype, n_vocab: int) -> list[tuple[str, np.ndarray]]:
    """Model hyper-parameters; returns extra tensors they need (rope frequency factors)."""
    c = ckpt.config
    per_layer = arch == PER_LAYER_ARCH

    def value(attr: str):
        values = [getattr(layer, attr) for layer in ckpt.layers]
        return values if per_layer else values[0]

    w.add_name(Path(c.get("_name_or_path") or ckpt.directory.name).name or ckpt.directory.name)
    w.add_context_length(int(c.get("max_position_embeddings", 2048)))
    w.add_embedding_length(int(c["hidden_size"]))
    w.add_block_count(len(ckpt.layers))
    w.add_feed_forward_length(value("n_ff"))
    w.add_head_count(value("n_head"))
    w.add_head_count_kv(value("n_head_kv"))
    w.add_key_length(ckpt.head_dim)
    w.add_value_length(ckpt.head_dim)
    w.add_rope_dimension_count(ckpt.head_dim)
    w.add_layer_norm_rms_eps(float(c.get("rms_norm_eps", 1e-6)))
    w.add_vocab_size(n_vocab)
    w.add_file_type(ftype)
    theta, rope = _rope(c)
    w.add_rope_freq_base(theta)
    extra = []
    kind = rope["rope_type"]
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "llama3":
        extra.append(("rope_freqs.weight", _llama3_factors(theta, ckpt.head_dim, rope)))
    elif kind != "default":
        raise AdaprunerError(f"rope scaling '{kind}' is not supported by the GGUF export yet (default, linear and "
                             "llama3 are)")
    w.add_string("adapruner.version", VERSION)
    return extra


def _add(w: gguf.GGUFWriter, name: str, t: np.ndarray, qtype, fallback: list[str]) -> None:
    """Add one tensor: 1-D tensors stay f32; matrices take ``qtype`` (q8_0 needs rows of 32k values)."""
    t = np.ascontiguousarray(t, dtype=np.float32)
    if t.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
        w.add_tensor(name, t)
    elif qtype == gguf.GGMLQuantizationType.F16:
        w.add_tensor(name, t.astype(np.float16))
    elif t.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] != 0:
        fallback.append(name)  # as llama.cpp's own converter does
        w.add_tensor(name, t.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(t, qtype), raw_dtype=qtype)


def resolve_checkpoint(spec: str) -> Path:
    """The checkpoint directory of ``spec``: a directory as is, an alias or ``.gguf`` via the conversion cache."""
    from adapruner.models.gguf_cache import ensure_converted
    from adapruner.models.load import resolve_spec
    from adapruner.models.aliases import alias_gguf_path

    kind, value = resolve_spec(spec)
    if kind == "directory":
        return Path(value)
    if kind == "alias":
        return ensure_converted(alias_gguf_path(value), alias=value)[0]
    if kind == "gguf":
        return ensure_converted(Path(value))[0]
    raise AdaprunerError(f"export reads a local checkpoint; '{spec}' looks like a hub id: download it first "
                         "(e.g. hf download) and pass the directory")


def export_gguf(checkpoint: str | Path, out: str | Path, outtype: str = "f32", overwrite: bool = False,
                tokenizer_from: str | Path | None = None, progress: bool = False) -> ExportResult:
    """Write the checkpoint directory ``checkpoint`` to the GGUF file ``out``.

    ``outtype`` is ``f32``, ``f16`` or ``q8_0`` (matrices; norms, biases and rope factors stay
    f32). The tokenizer is copied from ``tokenizer_from`` (a GGUF of the base model), else from
    the GGUF the checkpoint was made from if known, else converted from its ``tokenizer.json``.
    The file appears complete under ``out`` or not at all; an existing ``out`` is refused unless
    ``overwrite``. Every problem is an :class:`AdaprunerError` raised before anything is written.
    """
    if outtype not in OUTTYPES:
        raise AdaprunerError(f"unknown --outtype '{outtype}'; choose one of {', '.join(OUTTYPES)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise AdaprunerError(f"{out} already exists; pass --overwrite or choose another --out")
    if out.is_dir():
        raise AdaprunerError(f"{out} is a directory; --out names the .gguf file to write")
    check_writable(out)
    ckpt = read_checkpoint(checkpoint)
    arch, permute = choose_arch(ckpt)
    qtype, ftype = OUTTYPES[outtype]
    n_vocab = ckpt.shape("model.embed_tokens.weight")[0]
    tok_source = Path(tokenizer_from) if tokenizer_from else source_gguf(ckpt.directory)
    if tokenizer_from and not tok_source.is_file():
        raise AdaprunerError(f"--tokenizer-from {tok_source} does not exist; pass the base model's .gguf file")

    # Tensors go to a spooled file beside the output as they are converted (kept in memory up to
    # 256 MiB), so a model of any size is exported holding one tensor at a time.
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(path=None, arch=arch, use_temp_file=True)
    w.temp_file = tempfile.SpooledTemporaryFile(mode="w+b", max_size=256 * 2**20, dir=out.parent)
    try:
        return _write_gguf(w, ckpt, arch, permute, qtype, ftype, n_vocab, tok_source, out, outtype, progress)
    except OSError as exc:
        raise EnvironmentFault(f"writing {out} failed ({exc.strerror or exc}); nothing was left behind: free space or "
                             "choose another --out") from None
    finally:
        w.temp_file.close()


def _write_gguf(w: gguf.GGUFWriter, ckpt: Checkpoint, arch: str, permute: bool, qtype, ftype, n_vocab: int,
                tok_source: Path | None, out: Path, outtype: str, progress: bool) -> ExportResult:
    """Metadata, then every tensor converted one at a time, then the file (staged and renamed)."""
    extra = _write_hparams(w, ckpt, arch, ftype, n_vocab)
    if tok_source is not None:
        copy_tokenizer(w, tok_source, n_vocab)
        tokenizer = f"copied from {tok_source}"
    else:
        tokenizer = f"converted from tokenizer.json ({convert_tokenizer(w, ckpt.directory, n_vocab)})"
    if qtype != gguf.GGMLQuantizationType.F32:
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    fallback: list[str] = []
    _add(w, "token_embd.weight", ckpt.tensor("model.embed_tokens.weight").numpy(), qtype, fallback)
    for name, t in extra:
        w.add_tensor(name, t)
    hd = ckpt.head_dim
    for i, layer in enumerate(ckpt.layers):
        prefix = f"model.layers.{i}."
        for hf, gg in LAYER_TENSORS.items():
            for suffix in ((".weight", ".bias") if not hf.endswith(".weight") else ("",)):
                name = prefix + hf + suffix
                if not ckpt.has(name):
                    continue
                t = ckpt.tensor(name)
                if t.numel() == 0 or (hf == "input_layernorm.weight" and layer.n_head == 0):
                    continue  # an attention-free layer has no attention tensors in deci
                if permute and hf in ("self_attn.q_proj", "self_attn.k_proj"):
                    t = _permute(t, hd)
                _add(w, f"blk.{i}.{gg}{suffix}", t.numpy(), qtype, fallback)
    _add(w, "output_norm.weight", ckpt.tensor("model.norm.weight").numpy(), qtype, fallback)
    tied = ckpt.config.get("tie_word_embeddings", False) or not ckpt.has("lm_head.weight")
    if not tied:
        _add(w, "output.weight", ckpt.tensor("lm_head.weight").numpy(), qtype, fallback)

    n_tensors = len(w.tensors[0]) if w.tensors else 0
    with atomic_file(out) as tmp:
        w.path = tmp
        w.write_header_to_file(path=tmp)
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=progress)
        w.close()
    return ExportResult(out, arch, outtype, n_tensors, tuple(fallback), tokenizer, out.stat().st_size)
