"""The tokenizer of a GGUF file: copied from the base model's GGUF, or converted from ``tokenizer.json``.

llama.cpp tokenizes with its own implementation, configured by the ``tokenizer.ggml.*`` keys: the
token list, token types, BPE merges or SentencePiece scores, special token ids, the chat template,
and for byte-level BPE the name of the *pre-tokenizer* (the regex split before merging), which
llama.cpp knows only by name. Two ways to fill them, in this order:

1. **Copy** from a GGUF of the same base model (``--tokenizer-from``, or found automatically when
   the checkpoint was pruned from a GGUF file or a bundled alias, see :func:`source_gguf`). Pruning
   never changes the tokenizer, so this is exact.
2. **Convert** the checkpoint's Hugging Face tokenizer the way llama.cpp's own
   ``convert_hf_to_gguf.py`` does: byte-level BPE (GPT-2 style, Llama-3, Qwen2, SmolLM) as model
   ``gpt2`` with the pre-tokenizer recognised from the hash of a fixed probe text (the table in
   ``pretokenizers.json`` is llama.cpp's); SentencePiece-style BPE with byte fallback (Llama-2,
   TinyLlama, Mistral v0.1) as model ``llama`` with scores, via ``gguf.LlamaHfVocab``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from hashlib import sha256
from importlib import resources
from pathlib import Path

import gguf

from adapruner.errors import AdaprunerError


@lru_cache(maxsize=1)
def _pretokenizer_table() -> dict:
    return json.loads(resources.files("adapruner.export").joinpath("pretokenizers.json").read_text(encoding="utf-8"))


def copy_tokenizer(writer: gguf.GGUFWriter, source: Path, vocab_size: int) -> None:
    """Copy every ``tokenizer.*`` key of the GGUF file ``source`` into ``writer``."""
    try:
        reader = gguf.GGUFReader(str(source))
    except Exception as exc:  # noqa: BLE001 - the reader raises bare ValueErrors on damaged files
        raise AdaprunerError(f"cannot read the tokenizer GGUF {source} ({exc}); pass another --tokenizer-from") from None
    fields = {name: f for name, f in reader.fields.items() if name.startswith("tokenizer.")}
    tokens = fields.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise AdaprunerError(f"{source} holds no tokenizer (no tokenizer.ggml.tokens); pass another --tokenizer-from")
    if len(tokens.data) != vocab_size:
        raise AdaprunerError(f"the tokenizer of {source} has {len(tokens.data)} tokens but the model's vocabulary has "
                             f"{vocab_size}; it is not this model's tokenizer: pass the base model's GGUF as --tokenizer-from")
    for name, field in fields.items():
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)


def _tokenizer_model(directory: Path) -> dict:
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise AdaprunerError(f"{directory} has no tokenizer.json; pass the base model's GGUF as --tokenizer-from")
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model") or {}
    except (OSError, ValueError) as exc:
        raise AdaprunerError(f"cannot read {path} ({exc}); pass the base model's GGUF as --tokenizer-from") from None


def bpe_pretokenizer(tokenizer) -> str:
    """llama.cpp's name for the BPE pre-tokenizer of the transformers ``tokenizer``.

    The same probe as ``convert_hf_to_gguf.py``: encode a fixed text that exercises whitespace,
    digits, emoji and scripts, and look the hash of the ids up in llama.cpp's table.
    """
    table = _pretokenizer_table()
    digest = sha256(str(tokenizer.encode(table["check_text"])).encode()).hexdigest()
    if digest not in table["hashes"]:
        raise AdaprunerError(
            f"llama.cpp does not know this tokenizer's pre-tokenizer (probe hash {digest[:16]}...); pass a GGUF of the "
            "base model as --tokenizer-from to copy its tokenizer")
    return table["hashes"][digest]


def _looks_special(token: str) -> bool:
    """Added tokens some models forget to mark special (llama.cpp's ``does_token_look_special``)."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
            or (token.startswith("<unused") and token.endswith(">")))


def _add_bos_as_transformers(writer: gguf.GGUFWriter, tokenizer) -> None:
    """Make llama.cpp prepend BOS exactly when the transformers tokenizer does (where the
    tokenizer config does not say, llama.cpp's default depends on the vocabulary type)."""
    if "tokenizer.ggml.add_bos_token" in writer.kv_data[0]:
        return
    bos = tokenizer.bos_token_id
    writer.add_add_bos_token(bos is not None and tokenizer.encode("a")[:1] == [bos])


def _gpt2_vocab(writer: gguf.GGUFWriter, directory: Path, vocab_size: int) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        if token in added:
            # llama.cpp expects added tokens in their normalised form.
            if not decoder[i].normalized:
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            special = decoder[i].special or _looks_special(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(bpe_pretokenizer(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(directory, load_merges=True, n_vocab=vocab_size).add_to_gguf(writer, quiet=True)
    _add_bos_as_transformers(writer, tokenizer)


def _sentencepiece_vocab(writer: gguf.GGUFWriter, directory: Path, vocab_size: int) -> None:
    vocab = gguf.LlamaHfVocab(directory)
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    if len(tokens) != vocab_size:
        raise AdaprunerError(f"the tokenizer in {directory} has {len(tokens)} tokens but the model's vocabulary has "
                             f"{vocab_size}; pass the base model's GGUF as --tokenizer-from")
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    gguf.SpecialVocab(directory, n_vocab=vocab_size).add_to_gguf(writer, quiet=True)
    from transformers import AutoTokenizer

    _add_bos_as_transformers(writer, AutoTokenizer.from_pretrained(directory))


def convert_tokenizer(writer: gguf.GGUFWriter, directory: Path, vocab_size: int) -> str:
    """Write the tokenizer of the checkpoint ``directory``; returns ``gpt2`` or ``llama`` (the GGUF model)."""
    model = _tokenizer_model(directory)
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        _sentencepiece_vocab(writer, directory, vocab_size)
        return "llama"
    if model.get("type") == "BPE":
        _gpt2_vocab(writer, directory, vocab_size)
        return "gpt2"
    raise AdaprunerError(f"cannot convert a '{model.get('type')}' tokenizer (tokenizer.json in {directory}) to GGUF; "
                         "pass the base model's GGUF as --tokenizer-from")


def source_gguf(directory: Path) -> Path | None:
    """The GGUF file the checkpoint in ``directory`` was made from, if any.

    Found through the pruning report's ``model`` record (an alias or a ``.gguf`` path, or a GGUF
    cache entry, which records its source) or the cache marker of a converted GGUF itself.
    """
    from adapruner.models.aliases import ALIASES, alias_gguf_path
    from adapruner.models.gguf_cache import cache_source

    candidates: list[str] = []
    report = directory / "pruning_report.json"
    if report.is_file():
        try:
            model = json.loads(report.read_text()).get("model")
        except (OSError, ValueError):
            model = None
        if isinstance(model, dict):
            candidates += [str(model.get(k)) for k in ("spec", "path") if model.get(k)]
        elif isinstance(model, str):
            candidates.append(model)
    candidates.append(str(directory))
    for item in candidates:
        if item in ALIASES:
            try:
                return alias_gguf_path(item)
            except AdaprunerError:
                continue
        path = Path(item)
        if path.suffix == ".gguf" and path.is_file():
            return path
        if path.is_dir() and (found := cache_source(path)) is not None:
            return found
    return None
