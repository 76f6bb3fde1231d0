"""Qwen3: per-head q/k norms (shared by all heads, so pruning heads leaves them as they are)."""

from adapruner.core.family import Family, FamilyAdapter

FAMILY = Family(
    adapter=FamilyAdapter("qwen3", ("qwen3",), norms_per_head=("q_norm", "k_norm"), example="Qwen3"),
    pruned_type=("Qwen3Config", "Qwen3ForCausalLM"),
    gguf_unsupported="its q/k norms exist in llama.cpp's qwen3 architecture only, which has one width for all layers",
    tiny={"head_dim": 16},
)
