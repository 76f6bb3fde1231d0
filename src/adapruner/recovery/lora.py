"""LoRA recovery of a pruned model (LLM-Pruner's post-training, paper Sec. "fine-tuning").

A rank-``r`` adapter ``W + (alpha / r) B A`` is trained with PEFT on every linear projection of
the decoder layers (q, k, v, o, gate, up, down; Phi-3's fused qkv_proj / gate_up_proj; names come
from the family adapter, so pruned and unpruned models of any family work), then merged
(``merge_and_unload``): the result has exactly the widths of the input model and is saved like any
pruned model. Defaults: r=8, alpha=16, dropout 0.05, lr 1e-4, 2 epochs, cutoff 256 (LLM-Pruner /
the paper).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from adapruner.data.alpaca import split_train_val, tokenize_example
from adapruner.core.adapters import adapter_for
from adapruner.recovery.training import TrainConfig, train, validation_loss


@dataclass
class LoraSettings:
    """Adapter shape: rank, scaling numerator and dropout on the adapter input."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05


def target_modules(model) -> list[str]:
    """Leaf names of every linear projection in the decoder layers, from the family adapter."""
    a = adapter_for(model)
    attn = [a.qkv] if a.qkv else [a.q, a.k, a.v]
    mlp = [a.gate_up] if a.gate_up else [a.gate, a.up]
    return attn + [a.o] + mlp + [a.down]


def prepare_examples(tokenizer, rows: list[dict], config: TrainConfig) -> tuple[list[dict], list[dict]]:
    """Seeded train/validation split, tokenised with the Alpaca template and the loss mask."""
    val_size = min(config.val_size, max(1, len(rows) // 10))
    train_rows, val_rows = split_train_val(rows, val_size, config.seed)
    tok = [tokenize_example(tokenizer, r, config.cutoff, config.train_on_inputs) for r in train_rows]
    val = [tokenize_example(tokenizer, r, config.cutoff, config.train_on_inputs) for r in val_rows]
    return tok, val


def pad_id(tokenizer) -> int:
    """The padding id (EOS when the tokenizer has no pad token; padded positions are masked)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


def add_lora(model, settings: LoraSettings):
    """Wrap ``model`` with fresh LoRA adapters on every projection (a PEFT model)."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                     target_modules=target_modules(model), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def finetune_lora(model, tokenizer, rows: list[dict], config: TrainConfig | None = None,
                  settings: LoraSettings | None = None, progress: bool = True, keep_adapter: bool = False,
                  validate=None, eval_every: int | None = None):
    """Train LoRA on Alpaca ``rows`` and merge it; return ``(merged_model, report)``.

    The report holds the held-out validation loss before and after, the training loss curve and
    the full protocol. With ``keep_adapter`` the unmerged PEFT model is returned instead of the
    merged one (tests compare the two). ``validate`` / ``eval_every``: a validation perplexity
    curve over wall time (see :func:`~adapruner.recovery.training.train`).
    """
    import torch

    config = config or TrainConfig()
    settings = settings or LoraSettings()
    config.check()
    torch.manual_seed(config.seed)
    train_ex, val_ex = prepare_examples(tokenizer, rows, config)
    pid = pad_id(tokenizer)
    val_before = validation_loss(model, val_ex, pid, config.micro_batch_size, progress)
    peft_model = add_lora(model, settings)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    history = train(peft_model, train_ex, config, pid, progress, validate=validate, eval_every=eval_every)
    val_after = validation_loss(peft_model, val_ex, pid, config.micro_batch_size, progress)
    report = {
        "method": "lora", "lora": asdict(settings), "target_modules": target_modules(model),
        "trainable_parameters": trainable, "train": config.to_json(),
        "n_train": len(train_ex), "n_val": len(val_ex),
        "val_loss_before": val_before, "val_loss_after": val_after, **history,
        "loss_on": "full prompt and response" if config.train_on_inputs else "response tokens only",
        "template": "alpaca (LLM-Pruner / alpaca-lora)",
    }
    if keep_adapter:
        return peft_model, report
    merged = peft_model.merge_and_unload()
    merged.eval()
    return merged, report
