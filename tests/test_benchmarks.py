"""The paper-table benchmark scripts: row identity, plan order, caching and one real smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "benchmarks" / "paper"
sys.path[:0] = [str(PAPER), str(REPO / "benchmarks")]

import bench  # noqa: E402
import table1  # noqa: E402
from bench import Search, Tune, Variant  # noqa: E402


def test_slug_is_stable_and_distinguishes_every_setting():
    base = Variant(method="element1", ratio=0.2)
    assert base.slug() == Variant(method="element1", ratio=0.2).slug()
    others = [Variant(method="element1", ratio=0.5), Variant(method="element1", ratio=0.2, seed=1),
              Variant(method="element2", ratio=0.2), Variant(method="element1", ratio=0.2, tune=Tune()),
              Variant(method="adapruner", ratio=0.2, search=Search()),
              Variant(method="adapruner", ratio=0.2, search=Search(sampler="random")),
              Variant(method="adapruner", ratio=0.2, search=Search(ablation="nodata"))]
    slugs = {v.slug() for v in [base, *others]}
    assert len(slugs) == len(others) + 1
    assert base.slug().startswith("smollm2-135m_r20_element1_s0_notune-")
    assert Variant(method="element1", ratio=0.2, tune=Tune()).base() == base


def test_eval_tags_carry_the_protocol():
    full, quick = bench.EvalProtocol(dtype="float32"), bench.EvalProtocol(max_windows=4, limit=2, dtype="float32")
    assert full.tag("wikitext2") == "wikitext2-s128-full" and quick.tag("wikitext2") == "wikitext2-s128-w4"
    assert full.tag("zeroshot") != quick.tag("zeroshot")
    bf16 = bench.EvalProtocol()  # the default: evaluated in bfloat16, a different cache key
    assert bf16.tag("ptb") == "ptb-s128-full-bf16" and bf16.tag("zeroshot") != full.tag("zeroshot")


def test_table1_plan_puts_the_20_percent_untuned_rows_first():
    args = table1.build_parser().parse_args([])
    jobs = table1.plan(args)
    labels = [(v.method, v.ratio, v.tune is not None, v.seed) for v, _ in jobs]
    assert labels[0] == ("dense", 0.0, False, 0)
    first = labels[1:10]
    assert [m for m, *_ in first] == [*bench.BASELINES, "adapruner"]
    assert all(r == 0.2 and not t for _, r, t, _ in first)
    seeds = [(m, s) for (v, kinds), (m, r, t, s) in zip(jobs, labels) if s > 0 and r == 0.2]
    assert sorted(seeds) == sorted((m, s) for m in bench.GRADIENT_BASELINES for s in range(1, 5))
    assert all(kinds == ("wikitext2", "ptb") for v, kinds in jobs if v.seed > 0)
    # every 20 % job comes before any 50 % tuned job
    last20 = max(i for i, (m, r, t, s) in enumerate(labels) if r == 0.2)
    first50t = min(i for i, (m, r, t, s) in enumerate(labels) if r == 0.5 and t)
    assert last20 < first50t


def test_zeroshot_average_and_standard_error():
    zs = {t: {"acc": 0.5, "acc_stderr": 0.035, "acc_norm": 0.5, "acc_norm_stderr": 0.035, "average_metric": "acc"}
          for t in bench.ZEROSHOT_TASKS}
    zs["average"] = {"value": 0.5, "tasks": list(bench.ZEROSHOT_TASKS)}
    avg, se = bench.zeroshot_average({"zeroshot": zs})
    assert avg == pytest.approx(50.0)
    assert se == pytest.approx(100 * 0.035 * 7 ** 0.5 / 7)
    zs["boolq"]["acc"] = 0.8
    assert bench.zeroshot_average({"zeroshot": zs}, leave_out=("boolq",)) == pytest.approx(
        (50.0, 100 * 0.035 * 6 ** 0.5 / 6))


def test_zeroshot_breakdown_reads_the_recorded_evaluations(tmp_path, data_dir):
    """The breakdown of the recorded --limit 500 evaluations: the 7-task average each file
    records, BoolQ's constant answers on the same 500 documents."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality" / "zeroshot_breakdown.py"), "--data-dir",
                           str(data_dir), "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads((tmp_path / "rows.json").read_text())
    assert rec["limit"] == 500 and rec["boolq_yes_percent"] == pytest.approx(63.0)
    dense = next(r for r in rec["rows"] if r["model"] == "dense")
    assert dense["avg7"] == pytest.approx(43.77) and dense["tasks"]["boolq"] == pytest.approx(42.0)
    assert dense["avg6_without_boolq"] == pytest.approx((7 * 43.77 - 42.0) / 6, abs=0.01)
    missing = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality" / "zeroshot_breakdown.py"), "--model",
                              f"x={tmp_path / 'none.json'}", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr.strip().endswith("no such file (--model x=...)")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_llama_dir) -> Path:
    """The session's tiny Llama checkpoint (conftest)."""
    return tiny_llama_dir


def test_smoke_run_caches_rows_and_render_lists_pending(tiny_checkpoint, tmp_path, data_dir):
    scratch, results = tmp_path / "scratch", tmp_path / "results"
    cmd = [sys.executable, str(PAPER / "table1.py"), "--smoke", "--model", str(tiny_checkpoint), "--device", "cpu",
           "--scratch", str(scratch), "--results", str(results), "--data-dir", str(data_dir),
           "--ratios", "0.2", "--methods", "l2", "--tune", "no", "--evals", "wikitext2", "--seeds", "1"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "1 to run" in first.stdout
    records = list((results / "variants").glob("*.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    entry = rec["evals"]["wikitext2-s128-w4-bf16"]
    assert entry["command"].startswith("adapruner eval --model ") and "--max-windows 4" in entry["command"] \
        and "--dtype bfloat16" in entry["command"]
    assert entry["perplexity"]["n_windows"] == 4 and entry["perplexity"]["ppl"] > 1
    assert rec["build"]["steps"][0]["command"].startswith("adapruner prune ") and "--metric l2" in rec["build"]["steps"][0]["command"]
    assert 0.15 < rec["build"]["ratio_achieved"] < 0.25 and rec["build"]["weights_sha256"]
    assert rec["evals"]["wikitext2-s128-w4-bf16"]["device"].startswith(("cpu", "cuda"))

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0 and "0 to run" in again.stdout and "$ adapruner" not in again.stdout

    readme = tmp_path / "README.md"
    render = subprocess.run([sys.executable, str(PAPER / "render.py"), "--smoke", "--model", str(tiny_checkpoint),
                             "--results", str(results), "--scratch", str(scratch), "--readme", str(readme)],
                            capture_output=True, text=True, cwd=REPO)
    assert render.returncode == 0, render.stderr[-2000:]
    text = readme.read_text()
    l2_row = next(line for line in text.splitlines() if line.startswith("| l2 |"))
    ppl = f"{entry['perplexity']['ppl']:.2f}"
    assert ppl in l2_row or f"{entry['perplexity']['ppl']:,.0f}" in l2_row
    assert "## Pending rows" in text and "element1" in text.split("## Pending rows")[1]


@pytest.mark.parametrize("path", sorted((REPO / "benchmarks" / "search" / "spaces").glob("*.json")), ids=lambda p: p.name)
def test_benchmark_space_files_are_valid_search_spaces(path):
    from adapruner.search.space import SearchSpace

    space = SearchSpace.load(path)  # unknown keys or unregistered names would be one-line errors here
    assert SearchSpace.from_dict(space.to_json()).digest() == space.digest()


@pytest.mark.parametrize("mixes, error", [("books+alpaca,nope", "unknown mix nope; choose from books, books+alpaca"),
                                          ("wiki", "a 'wiki' mix needs --wiki FILE")])
def test_text_pilots_refuse_bad_mixes_in_one_line(tmp_path, mixes, error):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "recovery" / "text_pilots.py"), "--data-dir",
                           str(tmp_path), "--model", str(tmp_path), "--work", str(tmp_path / "w"), "--mixes", mixes],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0 and not (tmp_path / "w").exists()
    assert proc.stderr.strip().splitlines()[-1].startswith(error)


EXPORT = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
<page><title>Anarchism</title><ns>0</ns><revision><text>'''Anarchism''' is a [[political philosophy]] that \
advocates self-governed societies based on voluntary institutions, as this made-up test paragraph says at length.{{citation needed}}&lt;ref&gt;A source.&lt;/ref&gt;

Robert Boulter is an English film, television and theatre actor. He had a guest-starring role on the television \
series The Bill in 2000.

[[Category:Political ideologies]]</text></revision></page>
<page><title>Robert Boulter</title><ns>0</ns><revision><text>An article WikiText-2 tests on, with a long enough \
first paragraph to be kept were it anything else.</text></revision></page>
<page><title>AccessibleComputing</title><ns>0</ns><revision><text>#REDIRECT [[Computer accessibility]]</text>\
</revision></page>
<page><title>Talk:Anarchism</title><ns>1</ns><revision><text>A talk page, which is not an article, however long \
its paragraphs happen to be.</text></revision></page>
</mediawiki>
"""


def test_wiki_text_holds_out_wikitext2_articles_and_paragraphs(tmp_path, data_dir):
    """The Wikipedia training text drops WikiText-2's own articles (by title) and any paragraph
    that shares a 13-word sequence with its test split; markup, redirects and talk pages go."""
    pytest.importorskip("mwparserfromhell")
    export = tmp_path / "export.xml"
    export.write_text(EXPORT)
    out = tmp_path / "wiki.txt"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "recovery" / "wiki_text.py"), "--source", str(export),
                    "--data-dir", str(data_dir), "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    assert out.read_text().splitlines() == [
        "Anarchism is a political philosophy that advocates self-governed societies based on voluntary institutions, "
        "as this made-up test paragraph says at length."]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["dropped_articles_titled_as_wikitext2"] == ["Robert Boulter"]
    assert summary["dropped_paragraphs_sharing_a_13gram"] == 1 and summary["articles"] == 2


def test_scale_tables_are_rendered_from_the_results_and_checked(tmp_path, monkeypatch):
    """The docs' memory table is what render.py makes of runs.json: --check passes on the
    committed files and fails once a result changes without re-rendering."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("scale_render", REPO / "benchmarks" / "scale" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    assert subprocess.run([sys.executable, str(REPO / "benchmarks" / "scale" / "render.py"), "--check"]).returncode == 0
    runs = json.loads(render.RUNS.read_text())
    page, block = render.render(runs)
    row = next(r for r in runs["runs"].values() if r.get("exit") == 0)
    assert f"{row['peak_rss_gib']:.2f} GiB" in block and f"{row['peak_rss_gib']:.2f} GiB" in page
    # A changed result without a re-render: --check fails and names the stale files.
    copy = tmp_path / "repo"
    for part in ("README.md", "docs/streaming.md", "benchmarks/rendering.py", "benchmarks/scale",
                 "benchmarks/results/scale"):
        src, dst = REPO / part, copy / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    changed = json.loads((copy / "benchmarks/results/scale/runs.json").read_text())
    next(r for r in changed["runs"].values() if r.get("exit") == 0)["peak_rss_gib"] += 1
    (copy / "benchmarks/results/scale/runs.json").write_text(json.dumps(changed))
    check = subprocess.run([sys.executable, str(copy / "benchmarks/scale/render.py"), "--check"], capture_output=True,
                           text=True)
    assert check.returncode == 1 and "stale" in check.stderr and "docs/streaming.md" in check.stderr
