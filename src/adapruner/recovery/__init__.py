"""Recovery fine-tuning of pruned models: LoRA (:mod:`.lora`) and SAAP-style group-wise tuning
(:mod:`.group`), sharing one training loop (:mod:`.training`)."""
