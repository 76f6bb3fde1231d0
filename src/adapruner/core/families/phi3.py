"""Phi-3: fused q/k/v and gate/up projections."""

from adapruner.core.family import Family, FamilyAdapter

FAMILY = Family(
    adapter=FamilyAdapter("phi3", ("phi3",), qkv="qkv_proj", gate_up="gate_up_proj",
                          example="Phi-3 (fused qkv, gate_up)"),
    pruned_type=("Phi3Config", "Phi3ForCausalLM"),
    gguf_unsupported="llama.cpp's phi3 architecture has one width for all layers and fused projections deci "
                     "cannot hold",
    tiny={},
)
