"""A character-level fast tokenizer built in memory (no download), for data and perplexity tests.

Ids: 0 <pad>, 1 <s> (BOS), 2 </s> (EOS), 3 <unk>, then printable ASCII and newline, so every id
fits the 256-token vocabulary of the tiny models in tests/tiny.py.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARS = sorted(set(string.printable) - set("\r\x0b\x0c\t")) + ["\t"]


def char_tokenizer(add_bos: bool = False, pad: bool = True) -> PreTrainedTokenizerFast:
    """One token per character; with ``add_bos`` every encoded text starts with <s> (like Llama)."""
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                          special_tokens=[("<s>", 1)])
    kwargs = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if pad:
        kwargs["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=tk, **kwargs)
