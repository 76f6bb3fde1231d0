"""Data: the data directory, corpus loaders (row counts of the data README) and the calibration pool."""

from __future__ import annotations

import shutil

import pytest
import torch

import adapruner.data.books as books
import adapruner.models.hub as hub
from adapruner.data.books import calibration_pool, load_pool, paragraphs, strip_gutenberg
from adapruner.data.corpora import load_corpus, load_ptb, load_wikitext2
from adapruner.data.paths import resolve_data_dir
from adapruner.errors import AdaprunerError
from tiny_tokenizer import char_tokenizer


@pytest.fixture
def offline(monkeypatch):
    """No hub: a missing data file must be an error, never a download."""
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty ADAPRUNER_CACHE and an empty in-memory pool cache."""
    monkeypatch.setenv("ADAPRUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(books, "_MEMORY", {})
    return tmp_path / "cache"


def one_line_error(call, fragment: str) -> str:
    with pytest.raises(AdaprunerError, match=fragment) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


# -- data directory ----------------------------------------------------------------------------
def test_data_dir_from_flag_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ADAPRUNER_DATA_DIR", raising=False)
    assert resolve_data_dir(str(tmp_path)) == tmp_path.resolve()
    monkeypatch.setenv("ADAPRUNER_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path.resolve()


def test_bad_data_dirs(tmp_path, monkeypatch):
    monkeypatch.delenv("ADAPRUNER_DATA_DIR", raising=False)
    one_line_error(lambda: resolve_data_dir(None), "--data-dir")
    one_line_error(lambda: resolve_data_dir(str(tmp_path / "nope")), "does not exist")
    (tmp_path / "f").write_text("x")
    one_line_error(lambda: resolve_data_dir(str(tmp_path / "f")), "not a directory")


# -- corpora -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,split,rows", [
    ("wikitext2", "test", 4358), ("wikitext2", "valid", 3760),
    ("ptb", "train", 42068), ("ptb", "valid", 3370), ("ptb", "test", 3761),
])
def test_row_counts_match_the_data_readme(data_dir, name, split, rows):
    assert len(load_corpus(name, split, data_dir)) == rows


def test_row_semantics_follow_hugging_face(data_dir):
    wiki = load_wikitext2(data_dir, "test")
    assert wiki[0] == "" and wiki[1] == " = Robert Boulter = \n"  # blank lines -> "", others keep "\n"
    assert all(r == "" or r.endswith("\n") for r in wiki)
    ptb = load_ptb(data_dir, "test")
    assert ptb[0] == "no it was n't black monday"  # stripped sentences
    assert "<unk>" in load_wikitext2(data_dir, "valid")[3]  # the tokenized validation split


def test_missing_file_without_network_names_the_file(tmp_path, offline):
    msg = one_line_error(lambda: load_corpus("ptb", "test", tmp_path), "missing data file")
    assert "ptb/ptb.test.txt" in msg and "no network" in msg


def test_empty_file_and_unknown_names(tmp_path):
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "wiki.test.raw").write_text("\n \n")
    one_line_error(lambda: load_corpus("wikitext2", "test", tmp_path), "is empty")
    one_line_error(lambda: load_corpus("c4", "test", tmp_path), "unknown corpus")
    one_line_error(lambda: load_corpus("wikitext2", "train", tmp_path), "no split 'train'")


# -- calibration pool --------------------------------------------------------------------------
def test_gutenberg_header_footer_and_crlf_are_stripped():
    text = ("Title page\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\nFirst line\r\nwrapped.\r\n\r\n"
            "Second para.\r\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nLicence text\r\n")
    body = strip_gutenberg(text)
    assert "\r" not in body and "Title" not in body and "Licence" not in body and "***" not in body
    assert paragraphs(body) == ["First line wrapped.", "Second para."]


def test_pool_windows_have_exactly_seq_len_tokens_of_one_long_paragraph(data_dir, fresh_cache):
    tok = char_tokenizer()
    pool = load_pool(tok, data_dir, seq_len=128, seed=0)
    assert pool.ids.shape[1] == 128 and pool.ids.shape[0] == len(pool.sources) > 1000
    # Each window is the start of a paragraph that itself has >= 128 tokens.
    texts = {f.name: paragraphs(books.read_book(f)) for f in books.book_files(data_dir)}
    for row, (name, j) in list(zip(pool.ids, pool.sources))[:50]:
        ids = tok(texts[name][j], add_special_tokens=False).input_ids
        assert len(ids) >= 128 and row.tolist() == ids[:128]
    assert pool.info["seq_len"] == 128 and pool.info["n_windows"] == len(pool.sources)


def test_pool_is_deterministic_per_seed_and_cached_on_disk(data_dir, fresh_cache):
    tok = char_tokenizer()
    a = calibration_pool(tok, data_dir, seq_len=64, seed=1)
    books._MEMORY.clear()
    assert list(fresh_cache.glob("pools/*.safetensors"))  # written to the disk cache
    b = calibration_pool(tok, data_dir, seq_len=64, seed=1)  # read back from disk
    assert torch.equal(a, b)
    c = calibration_pool(tok, data_dir, seq_len=64, seed=2)
    assert not torch.equal(a, c)  # another order ...
    assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, c.tolist()))  # ... of the same windows


def test_pool_follows_the_bos_convention(data_dir, fresh_cache):
    tok = char_tokenizer(add_bos=True)
    pool = calibration_pool(tok, data_dir, seq_len=32, seed=0)
    assert pool.shape[1] == 32 and (pool[:, 0] == tok.bos_token_id).all()
    assert (pool[:, 1:] != tok.bos_token_id).all()


def test_pool_errors(tmp_path, data_dir, fresh_cache):
    tok = char_tokenizer()
    one_line_error(lambda: calibration_pool(tok, tmp_path), "no calibration text")
    (tmp_path / "books").mkdir()
    shutil.copy(data_dir / "books" / "chesterton-brown.txt", tmp_path / "books")
    (tmp_path / "books" / "empty.txt").write_text("")
    one_line_error(lambda: calibration_pool(tok, tmp_path), "is empty")
    (tmp_path / "books" / "empty.txt").unlink()
    one_line_error(lambda: calibration_pool(tok, tmp_path, seq_len=1), "at least 2")
    one_line_error(lambda: calibration_pool(tok, tmp_path, seq_len=100_000), "shorter --seq-len")


@pytest.mark.slow
def test_smollm2_pool_windows_have_at_least_128_tokens(data_dir):
    from adapruner.models.load import load_model

    tok = load_model("smollm2-135m", device="cpu").tokenizer
    pool = load_pool(tok, data_dir, seq_len=128, seed=0)
    assert pool.ids.shape[1] == 128 and len(pool.sources) > 2000
    texts = {}
    for row, (name, j) in list(zip(pool.ids, pool.sources))[:40]:
        if name not in texts:
            texts[name] = paragraphs(books.read_book(data_dir / "books" / name))
        ids = tok(texts[name][j], add_special_tokens=False).input_ids
        assert len(ids) >= 128 and row.tolist() == ids[:128]
    again = calibration_pool(tok, data_dir, seq_len=128, seed=0)
    assert torch.equal(pool.ids, again)
