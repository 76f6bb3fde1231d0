"""Random-weight checkpoints of real model configurations, for measuring memory and time at scale.

The configurations are the public ``config.json`` values of each model; the weights are seeded
random normals (std 0.02, norms 1) in bfloat16, written layer by layer straight to safetensors
shards (an 8B shape never exists in memory as a whole), with the SmolLM2 tokenizer (its ids all
fit every vocabulary here). Random weights measure memory and time only: correctness comes from
the equivalence tests (tests/test_streaming.py).

    python benchmarks/scale/shapes.py --shape llama-3.1-8b [--layers 4] [--cache DIR]

prints the checkpoint's directory (created once under ``$ADAPRUNER_SHAPES`` or
``~/.cache/adapruner/shapes``; never inside the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import zlib
from pathlib import Path

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}

SHAPES: dict[str, dict] = {
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True,
                         rope_theta=100000.0, max_position_embeddings=8192, rms_norm_eps=1e-5),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         rope_theta=1000000.0, max_position_embeddings=32768, rms_norm_eps=1e-6),
    "llama-3.2-1b": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                         tie_word_embeddings=True, rope_theta=500000.0, max_position_embeddings=131072,
                         rms_norm_eps=1e-5, rope_scaling={**LLAMA3_ROPE, "factor": 32.0}),
    "llama-3.2-3b": dict(model_type="llama", hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                         num_attention_heads=24, num_key_value_heads=8, head_dim=128, vocab_size=128256,
                         tie_word_embeddings=True, rope_theta=500000.0, max_position_embeddings=131072,
                         rms_norm_eps=1e-5, rope_scaling={**LLAMA3_ROPE, "factor": 32.0}),
    "llama-3.1-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False,
                         rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5,
                         rope_scaling=LLAMA3_ROPE),
    # The 70B's layer shape; the benchmark builds it with 2 decoder layers.
    "llama-3.1-70b": dict(model_type="llama", hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                          num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                          tie_word_embeddings=False, rope_theta=500000.0, max_position_embeddings=131072,
                          rms_norm_eps=1e-5, rope_scaling=LLAMA3_ROPE),
}


def cache_root() -> Path:
    return Path(os.environ.get("ADAPRUNER_SHAPES") or Path.home() / ".cache" / "adapruner" / "shapes")


def _tokenizer():
    """The SmolLM2 tokenizer of the bundled model (converted once by adapruner's GGUF cache); where
    that package is not installed (a lent GPU machine), a byte-level tokenizer built in memory."""
    from transformers import AutoTokenizer

    try:
        from adapruner.models.aliases import ALIASES, alias_gguf_path, package_version
        from adapruner.models.gguf_cache import ensure_converted

        path, _ = ensure_converted(alias_gguf_path("smollm2-135m"), alias="smollm2-135m",
                                   version=package_version(ALIASES["smollm2-135m"]))
        return AutoTokenizer.from_pretrained(path)
    except Exception:  # noqa: BLE001  (any missing piece of the bundled model: fall back)
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{chr(0x100 + b): 3 + b for b in range(256)}}
        tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tk.decoder = decoders.ByteLevel()
        return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build(shape: str, layers: int | None = None, cache: Path | None = None, seed: int = 0) -> Path:
    """The checkpoint directory of ``shape`` (with ``layers`` decoder layers if given), built once."""
    import torch
    import transformers
    from accelerate import init_empty_weights
    from safetensors.torch import save_file

    values = dict(SHAPES[shape])
    if layers is not None:
        values["num_hidden_layers"] = layers
    name = f"{shape}-{values['num_hidden_layers']}L-seed{seed}"
    target = (cache or cache_root()) / name
    if (target / "model.safetensors.index.json").is_file():
        return target
    model_type = values.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **values, bos_token_id=1, eos_token_id=2)
    config.dtype = torch.bfloat16
    with init_empty_weights():
        skeleton = transformers.AutoModelForCausalLM.from_config(config)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    groups: dict[str, list[tuple[str, tuple]]] = {}
    for key, param in skeleton.state_dict().items():
        if config.tie_word_embeddings and key == "lm_head.weight":
            continue
        parts = key.split(".")
        group = f"layer{int(parts[2]):05d}" if parts[1] == "layers" else "rest"
        groups.setdefault(group, []).append((key, tuple(param.shape)))
    weight_map, total = {}, 0
    for k, group in enumerate(sorted(groups), start=1):
        file = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for key, shape_ in groups[group]:
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
            if len(shape_) == 1:
                t = torch.ones(shape_, dtype=torch.bfloat16)
            else:
                t = (torch.randn(shape_, generator=g) * 0.02).to(torch.bfloat16)
            tensors[key] = t
            weight_map[key] = file
            total += t.numel() * 2
        save_file(tensors, str(tmp / file), metadata={"format": "pt"})
        del tensors
    (tmp / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    config.save_pretrained(tmp)
    _tokenizer().save_pretrained(tmp)
    os.replace(tmp, target)
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", required=True, choices=sorted(SHAPES))
    p.add_argument("--layers", type=int, default=None, help="decoder layers (default: the model's own)")
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(build(args.shape, args.layers, args.cache, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
