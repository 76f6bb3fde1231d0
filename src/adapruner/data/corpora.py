"""Evaluation corpora: WikiText-2 and Penn Treebank, as lists of rows.

Rows follow the Hugging Face datasets exactly, so perplexities match the published protocol:

- WikiText-2 ``test`` = ``wikitext2/wiki.test.raw`` (= ``wikitext-2-raw-v1`` test): one row per
  line, the line kept with its newline, blank lines as ``""`` (4358 rows).
- WikiText-2 ``valid`` = ``wikitext2/wiki.valid.tokens``, the *tokenized* validation split
  (``wikitext-2-v1``; contains ``<unk>``); the raw validation file is not in the offline data
  (3760 rows). Only the search objective uses it.
- PTB ``train``/``valid``/``test`` = ``ptb/ptb.{train,valid,test}.txt`` (= ``ptb_text_only``):
  one stripped sentence per line (42068 / 3370 / 3761 rows).

Joining: LLM-Pruner's released evaluation (``LLMPruner/datasets/ppl_dataset.py``) joins the rows
of *both* corpora with ``"\\n\\n"`` (SparseGPT/Wanda join PTB with ``" "`` instead), so
:data:`JOIN` is ``"\\n\\n"`` for both. Note that LLM-Pruner's "PTB" number is computed on the
validation split; we report the test split and keep validation for the search.

A file missing from the data directory is fetched through Hugging Face ``datasets`` when the hub
is reachable; otherwise the error names the missing file.
"""

from __future__ import annotations

from pathlib import Path

from adapruner.errors import AdaprunerError

CORPORA = ("wikitext2", "ptb")
SPLITS = ("train", "valid", "test")
JOIN = {"wikitext2": "\n\n", "ptb": "\n\n"}

# (relative file, HF dataset path, HF config, HF split, HF text field)
FILES = {
    ("wikitext2", "test"): ("wikitext2/wiki.test.raw", "wikitext", "wikitext-2-raw-v1", "test", "text"),
    ("wikitext2", "valid"): ("wikitext2/wiki.valid.tokens", "wikitext", "wikitext-2-v1", "validation", "text"),
    ("ptb", "train"): ("ptb/ptb.train.txt", "ptb_text_only", "penn_treebank", "train", "sentence"),
    ("ptb", "valid"): ("ptb/ptb.valid.txt", "ptb_text_only", "penn_treebank", "validation", "sentence"),
    ("ptb", "test"): ("ptb/ptb.test.txt", "ptb_text_only", "penn_treebank", "test", "sentence"),
}


def _wikitext_rows(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line if line.strip() else "" for line in f]


def _ptb_rows(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f]


def _from_hub(name: str, split: str, relative: str, hf: tuple[str, str, str, str]) -> list[str]:
    from adapruner.models import hub

    if not hub.hub_reachable():
        raise AdaprunerError(f"missing data file {relative} in the data directory and no network to fetch "
                             f"'{hf[0]}/{hf[1]}' from the Hugging Face hub; point --data-dir at the offline data")
    try:
        import datasets

        rows = datasets.load_dataset(hf[0], hf[1], split=hf[2])[hf[3]]
    except Exception as exc:  # the datasets library raises many unrelated types for one failure
        raise AdaprunerError(f"missing data file {relative} and fetching '{hf[0]}/{hf[1]}' from the hub failed: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return [r.strip() for r in rows] if name == "ptb" else list(rows)


def load_corpus(name: str, split: str, data_dir: str | Path) -> list[str]:
    """The rows of corpus ``name`` (wikitext2, ptb) and ``split`` (test, valid; ptb also train).

    Rows match the Hugging Face datasets (see the module docstring); join them with
    ``JOIN[name]`` before tokenizing. An empty file is an error, not an empty corpus.
    """
    if name not in CORPORA:
        raise AdaprunerError(f"unknown corpus '{name}'; choose from {', '.join(CORPORA)}")
    if (name, split) not in FILES:
        valid = [s for (n, s) in FILES if n == name]
        raise AdaprunerError(f"corpus {name} has no split '{split}'; choose from {', '.join(valid)}")
    relative, *hf = FILES[(name, split)]
    path = Path(data_dir) / relative
    if not path.is_file():
        return _from_hub(name, split, relative, tuple(hf))
    rows = _wikitext_rows(path) if name == "wikitext2" else _ptb_rows(path)
    if not any(r.strip() for r in rows):
        raise AdaprunerError(f"data file {path} is empty; restore it from the offline data or remove it "
                             "so that it is fetched from the hub")
    return rows


def load_wikitext2(data_dir: str | Path, split: str = "test") -> list[str]:
    """WikiText-2 rows (``test``: raw; ``valid``: tokenized), see :func:`load_corpus`."""
    return load_corpus("wikitext2", split, data_dir)


def load_ptb(data_dir: str | Path, split: str = "test") -> list[str]:
    """Penn Treebank rows (train, valid, test), see :func:`load_corpus`."""
    return load_corpus("ptb", split, data_dir)
