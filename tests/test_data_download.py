"""``adapruner data download`` against a fake hub serving the offline copy's rows: the files it
writes read back exactly like the offline ones; without a network it is one line and writes nothing."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from adapruner.cli import main
from adapruner.data import download as dl
from adapruner.data.corpora import load_corpus
from adapruner.data.zeroshot import SOURCES, convert_ai2, convert_boolq, convert_hellaswag, convert_piqa, \
    convert_winogrande, source_files
from test_bad_input import one_line_error


def fake_hub(data_dir):
    """``_load_dataset`` serving the offline files in the hub's row schema."""
    z = data_dir / "zeroshot"
    split = {"validation": "valid", "test": "test", "train": "train"}

    def load(path, name, hub_split):
        if path == "wikitext":
            return [{"text": r} for r in load_corpus("wikitext2", split[hub_split], data_dir)]
        if path == "ptb_text_only":
            return [{"sentence": r} for r in load_corpus("ptb", split[hub_split], data_dir)]
        if path == "tatsu-lab/alpaca":
            return json.loads((data_dir / "alpaca" / "alpaca_data_first1805.json").read_text())
        if path == "yahma/alpaca-cleaned":
            return json.loads((data_dir / "alpaca" / "alpaca_cleaned_sample2000.json").read_text())
        if path == "super_glue":
            return [{**r, "label": int(r["label"])} for r in convert_boolq(z / "boolq" / "val.jsonl")]
        if path == "baber/piqa":
            return convert_piqa(z / "piqa" / "valid.jsonl", z / "piqa" / "valid-labels.lst")
        if path == "Rowan/hellaswag":
            return convert_hellaswag(z / "hellaswag" / "hellaswag_val_full.txt")
        if path == "allenai/winogrande":
            return convert_winogrande(z / "winogrande" / "dev.jsonl", z / "winogrande" / "dev-labels.lst")
        if path == "allenai/ai2_arc":
            return convert_ai2(z / name.lower().replace("-", "_") / f"{name}-{'Test' if hub_split == 'test' else 'Dev'}.jsonl")
        if path == "allenai/openbookqa":
            return convert_ai2(z / "openbookqa" / f"{'test' if hub_split == 'test' else 'dev'}.jsonl")
        raise AssertionError(f"unexpected data set {path}")

    return load


def books_zip(data_dir) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in dl.BOOKS:
            zf.writestr(f"gutenberg/{name}", (data_dir / "books" / name).read_bytes())
    return buf.getvalue()


def test_download_rebuilds_the_offline_layout(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("adapruner.models.hub.hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(dl, "_load_dataset", fake_hub(data_dir))
    archive = books_zip(data_dir)
    monkeypatch.setattr(dl, "_fetch_url", lambda url: archive)
    monkeypatch.setattr(dl, "BOOKS_ZIP_SHA256", hashlib.sha256(archive).hexdigest())
    out = tmp_path / "data"
    assert main(["data", "download", "--to", str(out)]) == 0
    assert "data directory ready" in capsys.readouterr().out
    for name, splits in (("wikitext2", ("test", "valid")), ("ptb", ("train", "valid", "test"))):
        for s in splits:
            assert load_corpus(name, s, out) == load_corpus(name, s, data_dir), (name, s)
    for book in dl.BOOKS:
        assert (out / "books" / book).read_bytes() == (data_dir / "books" / book).read_bytes()
    first = json.loads((data_dir / "alpaca" / "alpaca_data_first1805.json").read_text())
    assert json.loads((out / "alpaca" / "alpaca_data_first1805.json").read_text()) == first
    for task, source in SOURCES.items():
        rows = source.convert(*source_files(task, out))
        assert len(rows) == source.rows
        if task != "hellaswag":  # rebuilt with klosax's text cleaning: the same items, counted
            assert rows == source.convert(*source_files(task, data_dir)), task
    assert not list(out.glob(".download-*"))

    # A second run finds everything in place and fetches nothing.
    monkeypatch.setattr(dl, "_load_dataset", lambda *a: pytest.fail("fetched again"))
    assert main(["data", "download", "--to", str(out)]) == 0


def test_download_without_network_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("adapruner.models.hub.hub_reachable", lambda timeout=3.0: False)
    one_line_error(capsys, ["data", "download", "--to", str(tmp_path / "data")], "not reachable")
    assert not (tmp_path / "data").exists()
    one_line_error(capsys, ["data", "download", "--to", str(tmp_path / "data"), "--only", "wikitext3"],
                   "unknown data set")


def test_a_download_that_does_not_match_the_readme_is_refused(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("adapruner.models.hub.hub_reachable", lambda timeout=3.0: True)
    hub = fake_hub(data_dir)
    monkeypatch.setattr(dl, "_load_dataset", lambda p, n, s: hub(p, n, s)[:-1])  # one row short
    one_line_error(capsys, ["data", "download", "--to", str(tmp_path / "data"), "--only", "wikitext2"],
                   "do not match the data README")
    assert not list((tmp_path / "data").rglob("*.raw"))
