"""Render the recipes table (``benchmarks/results/recipes/table.md``, the block in ``docs/results.md``)
and check that ``prune``'s default recipe is the table's best.

    python benchmarks/recipes/render.py           # write
    python benchmarks/recipes/render.py --check   # exit 1 when a page is stale or the default is not the best
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench  # noqa: E402
import rendering  # noqa: E402
from bench import Variant  # noqa: E402
from run import DOMAINS, RATIOS, RECIPES, SEARCHED  # noqa: E402

from adapruner.recipes import DEFAULT_RECIPE  # noqa: E402

SCRIPT = "benchmarks/recipes/render.py"
PROTOCOL = bench.EvalProtocol(max_windows=128, dtype="float32")
# The benchmark's rows that are product recipes (``prune --recipe NAME``).
PRODUCT = {m: m.removeprefix("recipe-") for m in RECIPES if m.startswith("recipe-")}
DOMAIN_LABELS = {"wikitext2": "WikiText-2", "ptb": "PTB", "alpaca": "Alpaca"}


def ppl(record: dict, kind: str) -> float | None:
    entry = record.get("evals", {}).get(PROTOCOL.tag(kind))
    return entry["perplexity"]["ppl"] if entry else None


def measured(results: Path) -> dict[tuple[str, float], dict[str, float]]:
    """``(recipe, ratio) -> {domain: PPL}`` for every finished row (``("dense", 0.0)`` for the dense model)."""
    ctx = bench.Context(results=results, protocol=PROTOCOL)
    rows = {}
    for method, ratio in [("dense", 0.0), (SEARCHED.method, SEARCHED.ratio)] + [(m, r) for r in RATIOS for m in RECIPES]:
        record = bench.read_json(ctx.record_path(Variant(method=method, ratio=ratio))) or {}
        values = {d: ppl(record, d) for d in DOMAINS}
        if all(v is not None for v in values.values()):
            rows[(method, ratio)] = values
    return rows


def score(rows, method: str) -> float | None:
    """Geometric mean of a recipe's perplexities over every domain and ratio (lower is better)."""
    values = [rows[(method, r)][d] for r in RATIOS for d in DOMAINS if (method, r) in rows]
    return math.exp(sum(map(math.log, values)) / len(values)) if len(values) == len(RATIOS) * len(DOMAINS) else None


def best(rows) -> str | None:
    scored = {m: score(rows, m) for m in RECIPES}
    finished = {m: s for m, s in scored.items() if s is not None}
    return min(finished, key=finished.get) if len(finished) == len(RECIPES) else None


def table(rows) -> str:
    head = "| recipe | `prune --recipe` | " + " | ".join(
        f"{DOMAIN_LABELS[d]} {round(r * 100)} %" for r in RATIOS for d in DOMAINS) + " | geometric mean |"
    lines = [head, "|---|---|" + "---:|" * (len(RATIOS) * len(DOMAINS) + 1)]
    dense = rows.get(("dense", 0.0))
    if dense:
        lines.append("| dense | | " + " | ".join(f"{dense[d]:.2f}" for _ in RATIOS for d in DOMAINS) + " | |")
    winner = best(rows)
    for m in RECIPES:
        cells = [f"{rows[(m, r)][d]:,.2f}" if (m, r) in rows else "pending" for r in RATIOS for d in DOMAINS]
        s = score(rows, m)
        label = Variant(method=m).label()
        name = f"**{label}**" if m == winner else label
        lines.append(f"| {name} | {PRODUCT.get(m, '')} | " + " | ".join(cells) + f" | {f'{s:,.2f}' if s else ''} |")
    return "\n".join(lines)


def headline(rows) -> str:
    """The README's table: 20 %, the dense model, the paper's baseline, FLAP + bias compensation,
    prune's default and the full-space search."""
    lines = ["| SmolLM2-135M, 20 % removed | command | WikiText-2 | PTB | Alpaca |", "|---|---|---:|---:|---:|"]
    entries = [("dense model", "", ("dense", 0.0)),
               ("element1 (LLM-Pruner; the paper's baseline)", "`prune --recipe element1`", ("recipe-element1", 0.2)),
               ("FLAP + bias compensation", "`prune --recipe flap-bias`", ("recipe-flap-bias", 0.2)),
               ("**default, no search** (wanda-sp + re-fit)", "`prune`", (f"recipe-{DEFAULT_RECIPE}", 0.2)),
               ("**searched** (full space, 100 trials)", "`search`", (SEARCHED.method, SEARCHED.ratio))]
    for label, command, key in entries:
        values = rows.get(key)
        cells = [f"{values[d]:.1f}" for d in DOMAINS] if values else ["pending"] * len(DOMAINS)
        lines.append(f"| {label} | {command} | " + " | ".join(cells) + " |")
    full = bench.read_json(bench.RESULTS / "full_space" / "eval_test.json") or {"perplexity": []}
    full = {r["dataset"]: r["ppl"] for r in full["perplexity"]}
    lines += ["", "First 128 windows of 128 tokens of each test set, float32 (`benchmarks/recipes`)."
              + (f" On the full WikiText-2 / PTB test splits the searched model scores {full['wikitext2']:.1f} / "
                 f"{full['ptb']:.1f} (`benchmarks/results/full_space/eval_test.json`)." if full else "")]
    return "\n".join(lines)


def render(results: Path) -> tuple[str, str, str | None, str]:
    rows = measured(results)
    block = "\n".join([
        "SmolLM2-135M-Instruct, perplexity of the first 128 test windows of 128 tokens (WikiText-2, PTB) and of the "
        "first 128 windows of the Alpaca responses (a domain neither calibration nor any objective sees), float32, "
        "10 book windows of `--seed 0`, every other setting at its default. The best geometric mean over the six "
        "columns (bold) is `prune`'s default recipe.", "",
        table(rows), "",
        "```bash",
        "python benchmarks/recipes/run.py --eval-dtype float32 --max-windows 128   # resumable",
        "python benchmarks/recipes/render.py",
        "```"])
    page = "# Recipes that need no search\n\n" + block + "\n"
    return page, block, best(rows), headline(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    p.add_argument("--results", default=str(bench.RESULTS))
    args = p.parse_args()
    page, block, winner, head = render(Path(args.results))
    docs, readme = rendering.REPO / "docs" / "results.md", rendering.REPO / "README.md"
    pages = {Path(args.results) / "recipes" / "table.md": page,
             docs: rendering.with_block(docs.read_text(), "recipes", SCRIPT, block),
             readme: rendering.with_block(readme.read_text(), "headline", SCRIPT, head)}
    (Path(args.results) / "recipes").mkdir(exist_ok=True)
    status = rendering.write_or_check(pages, args.check, f"python {SCRIPT}")
    if winner is not None and PRODUCT.get(winner) != DEFAULT_RECIPE:
        print(f"the measured best recipe is {winner} ({PRODUCT.get(winner) or 'not a product recipe'}) but "
              f"adapruner.recipes.DEFAULT_RECIPE is {DEFAULT_RECIPE}: make it the default", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
