"""Llama: SmolLM2, TinyLlama, Vicuna, Llama-2/3 (the reference layout every other family varies)."""

from adapruner.core.family import Family, FamilyAdapter, GGUFMapping

FAMILY = Family(
    adapter=FamilyAdapter("llama", ("llama",), example="SmolLM2, TinyLlama, Vicuna, Llama-2/3"),
    pruned_type=("LlamaConfig", "LlamaForCausalLM"),
    gguf=GGUFMapping("llama", interleaved=True, output_bias=True),
    tiny={},
)
