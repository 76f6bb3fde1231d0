"""Tokenizer fix-ups every loaded model gets (a pad token, BOS/EOS from the config)."""

from __future__ import annotations


def fix_special_tokens(tokenizer, config=None) -> None:
    """Give ``tokenizer`` a pad token (its EOS) when it has none, and a BOS/EOS from ``config``.

    Padding is used only for batching and masked out of every loss, so EOS is a safe pad.
    """
    if config is not None:
        for role in ("bos", "eos"):
            token_id = getattr(config, f"{role}_token_id", None)
            if isinstance(token_id, list):
                token_id = token_id[0] if token_id else None
            if getattr(tokenizer, f"{role}_token", None) is None and token_id is not None:
                token = tokenizer.convert_ids_to_tokens(int(token_id))
                if token is not None:
                    setattr(tokenizer, f"{role}_token", token)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
