"""Gemma-3: the text model (qk-norm, tied embeddings) and, for 4B and larger, the multimodal model
that AutoModelForCausalLM builds for model_type "gemma3", whose decoder sits under
model.language_model (only its text layers are pruned; it is scored and pruned, not saved)."""

from adapruner.core.family import Family, FamilyAdapter

UNSUPPORTED = "llama.cpp's gemma3 architecture has one width for all layers and deci lacks its extra norms"

FAMILIES = (
    Family(
        adapter=FamilyAdapter("gemma3", ("gemma3_text",), norms_per_head=("q_norm", "k_norm"),
                              example="Gemma-3 text (qk-norm, tied embeddings)"),
        pruned_type=("Gemma3TextConfig", "Gemma3ForCausalLM"),
        gguf_unsupported=UNSUPPORTED,
        tiny={"head_dim": 24},
    ),
    Family(
        adapter=FamilyAdapter("gemma3-multimodal", ("gemma3",), layers="model.language_model.layers",
                              norms_per_head=("q_norm", "k_norm"),
                              example="Gemma-3 4B+ (text layers of the multimodal model)"),
        gguf_unsupported=UNSUPPORTED,
    ),
)
