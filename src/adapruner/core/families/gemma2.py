"""Gemma-2: head_dim independent of hidden / heads, sandwich norms, final logit soft-capping."""

from adapruner.core.family import Family, FamilyAdapter

FAMILY = Family(
    adapter=FamilyAdapter("gemma2", ("gemma2",), example="Gemma-2 (head_dim != hidden/heads, sandwich norms)"),
    pruned_type=("Gemma2Config", "Gemma2ForCausalLM"),
    gguf_unsupported="llama.cpp's gemma2 architecture has one width for all layers and deci lacks its extra norms "
                     "and soft-capping",
    tiny={"head_dim": 24},
)
