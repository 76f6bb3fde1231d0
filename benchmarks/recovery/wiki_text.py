"""Encyclopedic training text for distillation without a network: the Wikipedia articles of a
MediaWiki XML export, as plain paragraphs, with every article and paragraph that WikiText-2's
test or validation split holds removed.

Distillation works best on text like the teacher's pretraining data; for WikiText-2 that is
Wikipedia prose (what WikiText-103's train split gives a user with a network). The only
Wikipedia dump reachable here is the one gensim ships for its own tests: 106 articles of the
January-2017 English dump (page ids 10-30302, "Anarchism" to "Agriculture"), 5.7 MB of markup,
in the gensim wheel on PyPI::

    pip download --no-deps gensim==4.4.0 -d /tmp/wiki
    python benchmarks/recovery/wiki_text.py --source /tmp/wiki/gensim-4.4.0-*.whl --data-dir ../shared/data \\
        --out /tmp/wiki/enwiki-sample.txt

``--source`` also takes any ``.xml`` / ``.xml.bz2`` export. Markup is removed with
mwparserfromhell (``pip install -e ".[bench]"``; not needed by the library itself): templates,
tables, references, files and categories go, link texts stay. Then, against WikiText-2:

- an article whose title is an article of the test or validation split is dropped whole;
- a paragraph that shares any 13-word sequence (lowercase, punctuation removed, WikiText's
  ``@-@`` joins undone) with the test or validation split is dropped (GPT-3's test for
  contamination).

The output is one paragraph per line (adapruner's ``.txt`` rows) and a ``.json`` beside it with
the counts, what was dropped and the sha256 of source and output. The data stays outside the
repository, like the data directory itself.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

GENSIM_DUMP = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
NGRAM = 13
MIN_WORDS = 12  # shorter lines are list items, captions and headings, not prose


def read_export(source: Path) -> bytes:
    """The XML bytes of a MediaWiki export: inside a gensim wheel, bz2-compressed, or plain."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            if GENSIM_DUMP not in wheel.namelist():
                raise SystemExit(f"{source} holds no {GENSIM_DUMP}; pass the gensim wheel or an .xml(.bz2) export")
            return bz2.decompress(wheel.read(GENSIM_DUMP))
    raw = source.read_bytes()
    return bz2.decompress(raw) if source.suffix == ".bz2" else raw


def articles(xml: bytes) -> list[tuple[str, str]]:
    """(title, wikitext) of every main-namespace page that is not a redirect."""
    out = []
    for _, el in ET.iterparse(io.BytesIO(xml)):
        if not el.tag.endswith("}page"):
            continue
        field = {c.tag.rsplit("}", 1)[-1]: c for c in el.iter()}
        text = field["text"].text or ""
        if field["ns"].text == "0" and not text.lstrip().lower().startswith("#redirect"):
            out.append((field["title"].text, text))
        el.clear()
    return out


def plain_paragraphs(wikitext: str) -> list[str]:
    """The article's prose paragraphs, markup removed, one string each."""
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    for node in code.filter_tags(recursive=False):  # <ref>, <gallery>, tables ({| |} parse as tags)
        if str(node.tag).lower() in {"ref", "gallery", "table", "math", "timeline", "imagemap", "references"}:
            try:
                code.remove(node)
            except ValueError:
                pass
    for link in code.filter_wikilinks():
        if re.match(r"\s*(file|image|category|[a-z]{2,3}(-[a-z]+)?)\s*:", str(link.title), re.I):
            try:
                code.remove(link)
            except ValueError:
                pass
    text = code.strip_code(normalize=True, collapse=True)
    paragraphs = []
    for line in text.splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        if len(line.split()) >= MIN_WORDS and not line.startswith(("|", "!", "*", "#", "=")):
            paragraphs.append(line)
    return paragraphs


def words(text: str) -> list[str]:
    """Lowercase words, WikiText's ``@-@`` / ``@,@`` / ``@.@`` joins undone, punctuation removed."""
    text = re.sub(r" @(.)@ ", r"\1", text.lower())
    return re.findall(r"[a-z0-9]+", text)


def ngrams(tokens: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def wikitext_titles_and_ngrams(data_dir: Path) -> tuple[set[str], set[tuple[str, ...]]]:
    """The article titles (`` = Title = `` lines) and the 13-grams of WikiText-2 test + validation."""
    titles, grams = set(), set()
    for path in (data_dir / "wikitext2" / "wiki.test.raw", data_dir / "wikitext2" / "wiki.valid.tokens"):
        if not path.is_file():
            raise SystemExit(f"missing {path}: pass the data directory with --data-dir")
        text = path.read_text(encoding="utf-8")
        titles |= {m.strip().lower() for m in re.findall(r"^ = ([^=].*?) = $", text, re.M)}
        grams |= ngrams(words(text))
    return titles, grams


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, help="the gensim wheel, or a MediaWiki .xml / .xml.bz2 export")
    p.add_argument("--data-dir", required=True, help="the data directory (its WikiText-2 splits are held out)")
    p.add_argument("--out", required=True, help="the .txt to write (one paragraph per line)")
    args = p.parse_args()
    source, out = Path(args.source), Path(args.out)
    if not source.is_file():
        raise SystemExit(f"--source {source} does not exist; see `pip download --no-deps gensim==4.4.0` in this docstring")

    xml = read_export(source)
    titles, held_out = wikitext_titles_and_ngrams(Path(args.data_dir))
    kept, dropped_articles, dropped_paragraphs = [], [], 0
    pages = articles(xml)
    for title, wikitext in pages:
        if title.strip().lower() in titles:
            dropped_articles.append(title)
            continue
        for para in plain_paragraphs(wikitext):
            if ngrams(words(para)) & held_out:
                dropped_paragraphs += 1
            else:
                kept.append(para)
    body = "\n".join(kept) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)
    summary = {"source": str(source), "source_sha256": sha256(source.read_bytes()), "articles": len(pages),
               "dropped_articles_titled_as_wikitext2": dropped_articles,
               "dropped_paragraphs_sharing_a_13gram": dropped_paragraphs, "paragraphs": len(kept),
               "words": sum(len(k.split()) for k in kept), "bytes": len(body.encode()),
               "out_sha256": sha256(body.encode())}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "dropped_articles_titled_as_wikitext2"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
