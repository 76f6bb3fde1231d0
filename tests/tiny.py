"""Tiny randomly initialised models of every supported family, for fast unit tests."""

from __future__ import annotations

import torch
import transformers as T

from adapruner.core.families import FAMILIES

COMMON = dict(hidden_size=96, intermediate_size=128, num_hidden_layers=4, num_attention_heads=6,
              num_key_value_heads=2, vocab_size=256, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)

def _config(family):
    config_cls = getattr(T, family.pruned_type[0])
    return lambda: config_cls(**COMMON, **family.tiny)


# Every family that declares a tiny configuration (adapruner.core.families), by family name.
CONFIGS = {f.name: _config(f) for f in FAMILIES if f.tiny is not None}


def tiny_model(family: str = "llama", seed: int = 0, dtype=torch.float32):
    """A tiny random causal LM of ``family`` in eval mode, with eager attention for exactness."""
    torch.manual_seed(seed)
    config = CONFIGS[family]()
    config._attn_implementation = "eager"
    model = T.AutoModelForCausalLM.from_config(config).to(dtype)
    # Random init makes logits nearly flat; larger weights make pruning differences visible.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    return model.eval()


def tiny_batch(n: int = 4, length: int = 32, vocab: int = 256, seed: int = 0) -> torch.Tensor:
    """Random token ids [n, length]."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n, length), generator=g)
