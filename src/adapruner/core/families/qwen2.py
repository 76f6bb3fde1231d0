"""Qwen2 / Qwen2.5: the Llama layout with q/k/v biases."""

from adapruner.core.family import Family, FamilyAdapter, GGUFMapping

FAMILY = Family(
    adapter=FamilyAdapter("qwen2", ("qwen2",), example="Qwen2, Qwen2.5 (q/k/v biases)"),
    pruned_type=("Qwen2Config", "Qwen2ForCausalLM"),
    gguf=GGUFMapping("qwen2", interleaved=False, output_bias=False, full_width_q=True),
    tiny={},
)
