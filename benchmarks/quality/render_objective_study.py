"""The objective study's table and plots: how well each search objective ranks the models as the
zero-shot protocol and test perplexity do.

For every objective (validation perplexity, KL from the dense model with its top-512 and with the
whole vocabulary, the zero-shot proxy on the development splits): Spearman's rho and Kendall's
tau against the 6-task zero-shot mean (without BoolQ) and against the mean WikiText-2 / PTB test
perplexity, each with a 95 % bootstrap interval over the models, signed so that 1 means "ranks
the models exactly as the target does"; the scoring time an objective adds to a trial; one
scatter plot per objective; and the target's own noise (each model's SE, the paired SE of two
models' difference), which bounds how well any objective can agree with it.

    python benchmarks/quality/render_objective_study.py [--check]   # into docs/search.md
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import rendering  # noqa: E402

RESULTS = HERE.parents[1] / "benchmarks" / "results" / "objective_study"
PAGE = rendering.REPO / "docs" / "search.md"
SCRIPT = "benchmarks/quality/render_objective_study.py"
# A model enters the tables once it has these; test perplexity, the slowest step, may follow later.
STEPS = ("objectives", "proxy", "zeroshot", "mix")
# name -> (label, value of a row, True when lower is better)
OBJECTIVES = {
    "ppl": ("validation perplexity (the paper's)", lambda r: r["objectives"]["ppl"]["mean"], True),
    "kl512": ("KL from dense, top-512", lambda r: r["objectives"]["kl512"]["mean"], True),
    "kl_full": ("KL from dense, whole vocabulary", lambda r: r["objectives"]["kl_full"]["mean"], True),
    "mix": ("perplexity on four domains", lambda r: r["mix"]["mean"], True),
    "proxy": ("zero-shot proxy (dev splits, 3 x 200, accuracy)", lambda r: r["proxy"]["mean"]["value"], False),
}
TARGETS = {
    "zero-shot (6 tasks)": (lambda r: r["zeroshot"]["mean"]["value"], False),
    "test perplexity": (lambda r: (r["test_ppl"]["wikitext2"] + r["test_ppl"]["ptb"]) / 2
                        if "test_ppl" in r else None, True),
}
BOOTSTRAP = 2000


def agreement(xs: list[float], ys: list[float], x_lower: bool, y_lower: bool) -> dict:
    """Spearman's rho and Kendall's tau of two rankings, signed so that +1 is the same order of
    merit, with 95 % bootstrap intervals over the models."""
    import warnings

    from scipy.stats import kendalltau, spearmanr

    warnings.filterwarnings("ignore", message="An input array is constant")  # a resample of one repeated model
    sign = 1 if x_lower == y_lower else -1

    def both(ix):
        a, b = [xs[i] for i in ix], [ys[i] for i in ix]
        return sign * spearmanr(a, b).statistic, sign * kendalltau(a, b).statistic

    n = len(xs)
    rho, tau = both(range(n))
    rng = random.Random(0)
    draws = [both([rng.randrange(n) for _ in range(n)]) for _ in range(BOOTSTRAP)]
    out = {"n": n}
    for k, (name, value) in enumerate((("spearman", rho), ("kendall", tau))):
        values = sorted(d[k] for d in draws if d[k] == d[k])  # a resample of one repeated model has no rank
        out[name] = {"value": value, "low": values[int(0.025 * len(values))], "high": values[int(0.975 * len(values))]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--check", action="store_true", help="exit 1 when docs/search.md is stale")
    args = p.parse_args()
    rows_path = args.results / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    configs = args.results / "configs.json"
    planned = 1 + len(json.loads(configs.read_text())) if configs.is_file() else None
    complete = {k: r for k, r in rows.items() if all(s in r for s in STEPS)}
    pruned = {k: r for k, r in complete.items() if k != "dense"}
    lines = [protocol_text(len(complete), planned)]
    if len(pruned) >= 3:
        table, table_lines = agreement_table(pruned, args.results)
        lines += ["", *table_lines]
        if not args.check:
            (args.results / "table.md").write_text("\n".join(table_lines) + "\n")
            (args.results / "correlations.json").write_text(json.dumps(table, indent=1) + "\n")
            plot(pruned, complete.get("dense"), args.results / "scatter.png")
        lines += ["", *finalist_table(pruned), "", *model_table(complete),
                  "", "The scatter plots: `benchmarks/results/objective_study/scatter.png`."]
    else:
        lines += ["", f"{len(pruned)} pruned models are complete: the agreement table needs at least 3."]
    page = rendering.with_block(PAGE.read_text(), "objective-study", SCRIPT, "\n".join(lines))
    return rendering.write_or_check({PAGE: page}, args.check, f"python {SCRIPT}")


def protocol_text(done: int, planned: int | None) -> str:
    from objective_study import PROXY_COUNT, STUDY_COUNTS

    counts = ", ".join(f"{t} {n}" for t, n in STUDY_COUNTS.items())
    return (f"`python benchmarks/quality/objective_study.py --data-dir ../shared/data` (resumable; one row per model "
            f"in `benchmarks/results/objective_study/rows.json`, the per-example outcomes beside it): SmolLM2-135M "
            f"pruned by 20 % with every metric and recipe and 18 trials of the recorded full-space search, each "
            f"scored by every objective on the search's validation windows, by the zero-shot proxy (the first "
            f"{PROXY_COUNT} examples of each development split of ARC-e, ARC-c and OBQA), by the six-task zero-shot "
            f"mean without BoolQ on fixed leading subsets ({counts}; the full sets would take 2.4 hours per model "
            f"on 2 CPU cores) and by full-test WikiText-2 / PTB perplexity. "
            + (f"Models measured so far: {done} of {planned}." if planned else "Not run yet."))


def agreement_table(pruned: dict, results: Path) -> tuple[dict, list[str]]:
    """Every objective's rank agreement with each target, its cost, and the target's own noise."""
    table = {}
    with_test = sum("test_ppl" in r for r in pruned.values())
    lines = [f"{len(pruned)} pruned models ({with_test} with test perplexity so far); agreement with each "
             "target's ranking (1: the same order, 0: none), 95 % bootstrap intervals over the models; s / evaluation: the seconds one trial's evaluation takes with "
             "that objective (the model's forward on its windows and the scoring; the proxy: its three development "
             "tasks).", "",
             "| objective | " + " | ".join(f"{t}: Spearman | {t}: Kendall" for t in TARGETS) + " | s / evaluation |",
             "|---|" + "---|---|" * len(TARGETS) + "---|"]
    for name, (label, value, lower) in OBJECTIVES.items():
        cells = []
        for target, (tvalue, tlower) in TARGETS.items():
            have = [r for r in pruned.values() if tvalue(r) is not None]
            if len(have) < 3:
                cells += ["pending", "pending"]
                continue
            a = agreement([value(r) for r in have], [tvalue(r) for r in have], lower, tlower)
            table.setdefault(name, {})[target] = a
            cells += [f"{a[m]['value']:.2f} [{a[m]['low']:.2f}, {a[m]['high']:.2f}]" for m in ("spearman", "kendall")]
        seconds = ([r["seconds"]["proxy"] for r in pruned.values()] if name == "proxy" else
                   [r["mix"]["seconds"] for r in pruned.values()] if name == "mix" else
                   [r["objectives"]["seconds"]["forward"] + r["objectives"]["seconds"][name] for r in pruned.values()])
        cost = sum(seconds) / len(seconds)
        table.setdefault(name, {})["seconds_per_evaluation"] = cost
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {cost:.1f} |")
    lines += ["", *paired_lines(pruned, table)]
    lines += ["", *proxy_size_lines(pruned, results / "proxy", table)]
    noise = target_noise(results / "zeroshot", list(pruned))
    table["target_noise"] = noise
    lines += ["", f"The target's noise: a model's 6-task mean has SE {100 * noise['se_median']:.2f} points (median "
              f"over models); the difference of two models, paired on the same examples, SE "
              f"{100 * noise['paired_se_median']:.2f} (median over {noise['pairs']} pairs)."]
    return table, lines


FINALISTS = (3, 5)
# Smaller proxies, read from the per-example outcomes of the 200 scored (their leading subsets).
PROXY_SUBSETS = (50, 100)


def paired_lines(pruned: dict, table: dict) -> list[str]:
    """Each objective's Spearman agreement with the zero-shot target minus the paper's objective's,
    bootstrapped over the same resamples of models (the two rankings are scored on the same models,
    so their difference is much tighter than either interval)."""
    from scipy.stats import spearmanr

    tvalue, tlower = TARGETS["zero-shot (6 tasks)"]
    names = list(pruned)
    target = [tvalue(pruned[k]) for k in names]

    def rho(name: str, ix) -> float:
        _, value, lower = OBJECTIVES[name]
        sign = 1 if lower == tlower else -1
        return sign * spearmanr([value(pruned[names[i]]) for i in ix], [target[i] for i in ix]).statistic

    rng = random.Random(0)
    draws = [[rng.randrange(len(names)) for _ in names] for _ in range(BOOTSTRAP)]
    lines = ["Each objective's agreement with the 6-task zero-shot mean against the paper's objective's, on the same "
             "bootstrap resamples of the models (Spearman difference, 95 % interval):", "",
             "| objective | minus validation perplexity's |", "|---|---|"]
    for name, (label, _, _) in OBJECTIVES.items():
        if name == "ppl":
            continue
        diffs = sorted(d for d in (rho(name, ix) - rho("ppl", ix) for ix in draws) if d == d)
        diff = {"value": rho(name, range(len(names))) - rho("ppl", range(len(names))),
                "low": diffs[int(0.025 * len(diffs))], "high": diffs[int(0.975 * len(diffs))]}
        table.setdefault(name, {})["spearman_minus_ppl"] = diff
        lines.append(f"| {label} | {diff['value']:+.2f} [{diff['low']:+.2f}, {diff['high']:+.2f}] |")
    return lines


def proxy_subset(path: Path, n: int) -> float:
    """The proxy's mean accuracy over its tasks on the first ``n`` examples of each."""
    tasks = json.loads(path.read_text())["tasks"]
    return sum(sum(int(c) for c in t["correct"][:n]) / n for t in tasks.values()) / len(tasks)


def proxy_size_lines(pruned: dict, outcomes: Path, table: dict) -> list[str]:
    """How the proxy's agreement with the zero-shot target falls with fewer examples per task (what
    ``--finalist-examples`` trades), each smaller proxy a leading subset of the scored one."""
    from objective_study import PROXY_COUNT

    tvalue, tlower = TARGETS["zero-shot (6 tasks)"]
    have = [k for k in pruned if (outcomes / f"{k}.json").is_file()]
    if len(have) < 3:
        return []
    seconds = sum(pruned[k]["seconds"]["proxy"] for k in have) / len(have)
    lines = ["The proxy's size (`--finalist-examples N`: the first N examples of each development split; the "
             "smaller proxies are leading subsets of the scored one, their seconds in proportion), agreement with "
             "the 6-task zero-shot mean:", "",
             "| examples per task | Spearman | Kendall | s / evaluation |", "|---|---|---|---|"]
    for n in (*PROXY_SUBSETS, PROXY_COUNT):
        a = agreement([proxy_subset(outcomes / f"{k}.json", n) for k in have], [tvalue(pruned[k]) for k in have],
                      False, tlower)
        table.setdefault("proxy_sizes", {})[str(n)] = a
        lines.append(f"| {n} | " + " | ".join(f"{a[m]['value']:.2f} [{a[m]['low']:.2f}, {a[m]['high']:.2f}]"
                                              for m in ("spearman", "kendall")) + f" | {seconds * n / PROXY_COUNT:.0f} |")
    return lines


def finalist_table(pruned: dict) -> list[str]:
    """What a search would deliver among these models: the best by each objective, and the most
    accurate on the proxy among its K best (``search --finalists K``), each with its 6-task
    zero-shot mean and test perplexity."""
    zs, test = TARGETS["zero-shot (6 tasks)"][0], TARGETS["test perplexity"][0]
    proxy = OBJECTIVES["proxy"][1]

    def cell(name: str) -> str:
        r = pruned[name]
        t = test(r)
        return f"{100 * zs(r):.2f} / {'pending' if t is None else f'{t:.1f}'} ({name})"

    lines = ["Delivered among these models (6-task zero-shot mean / mean test perplexity): the best by each "
             "objective, and the most accurate on the proxy among its K best (`--finalists K`).", "",
             "| objective | its best | " + " | ".join(f"finalists {k}" for k in FINALISTS) + " |",
             "|---|---|" + "---|" * len(FINALISTS)]
    for name, (label, value, lower) in OBJECTIVES.items():
        if name == "proxy":
            continue
        ranked = sorted(pruned, key=lambda k: value(pruned[k]) if lower else -value(pruned[k]))
        picks = [max(ranked[:k], key=lambda m: proxy(pruned[m])) for k in FINALISTS]
        lines.append(f"| {label} | {cell(ranked[0])} | " + " | ".join(cell(m) for m in picks) + " |")
    oracle = max(pruned, key=lambda k: zs(pruned[k]))
    lines += ["", f"The most accurate of all: {cell(oracle)}."]
    return lines


def model_table(rows: dict) -> list[str]:
    """Every complete model's objectives and targets."""
    zs = TARGETS["zero-shot (6 tasks)"][0]
    lines = ["| model | " + " | ".join(label for label, _, _ in OBJECTIVES.values())
             + " | 6-task zero-shot (SE) | WikiText-2 / PTB test |",
             "|---|" + "---|" * (len(OBJECTIVES) + 2)]
    for name, r in sorted(rows.items(), key=lambda kv: -zs(kv[1])):
        values = [value(r) for _, value, _ in OBJECTIVES.values()]
        cells = [f"{v:.1f}" if v > 10 else f"{v:.3f}" for v in values]
        se = r["zeroshot"]["mean"]["se"]
        test = f"{r['test_ppl']['wikitext2']:.1f} / {r['test_ppl']['ptb']:.1f}" if "test_ppl" in r else "pending"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * zs(r):.2f} ({100 * se:.2f}) | {test} |")
    return lines


def load_outcomes(path: Path) -> dict[str, dict]:
    """Per-task results with their 0/1 outcomes (kept as a string of digits) as a list again."""
    tasks = json.loads(path.read_text())["tasks"]
    return {t: {**r, "correct": [int(c) for c in r["correct"]]} for t, r in tasks.items()}


def target_noise(outcomes: Path, names: list[str]) -> dict:
    """Median SE of a model's 6-task mean and median paired SE of two models' difference, from the
    per-example outcomes the study keeps."""
    import statistics

    from adapruner.eval.significance import compare, summarise

    results = {n: load_outcomes(outcomes / f"{n}.json") for n in names if (outcomes / f"{n}.json").is_file()}
    ses = [summarise(r)["mean"]["se"] for r in results.values()]
    keys = sorted(results)
    paired = [compare(results[a], results[b])["mean"]["se"] for i, a in enumerate(keys) for b in keys[i + 1:]]
    return {"se_median": statistics.median(ses), "paired_se_median": statistics.median(paired), "pairs": len(paired)}


def plot(rows: dict, dense: dict | None, path: Path) -> None:
    """One panel per objective: its value against the 6-task zero-shot mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zs = TARGETS["zero-shot (6 tasks)"][0]
    fig, axes = plt.subplots(1, len(OBJECTIVES), figsize=(4.2 * len(OBJECTIVES), 3.6))
    for ax, (name, (label, value, lower)) in zip(axes, OBJECTIVES.items()):
        ax.scatter([value(r) for r in rows.values()], [100 * zs(r) for r in rows.values()], s=14)
        if dense is not None:
            ax.axhline(100 * zs(dense), color="grey", lw=0.8, ls="--", label="dense")
        if name in ("ppl",):
            ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("6-task zero-shot mean (%)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
