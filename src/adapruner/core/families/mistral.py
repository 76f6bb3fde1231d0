"""Mistral: the Llama layout; llama.cpp reads it as llama."""

from adapruner.core.family import Family, FamilyAdapter, GGUFMapping

FAMILY = Family(
    adapter=FamilyAdapter("mistral", ("mistral",), example="Mistral-7B"),
    pruned_type=("MistralConfig", "MistralForCausalLM"),
    gguf=GGUFMapping("llama", interleaved=True, output_bias=True),
    tiny={"sliding_window": None},
)
