"""Markdown report and plots from one or more :class:`~adapruner.report.collect.RunSummary`.

The first run is the reference ("dense" when you pass the dense model's evaluation first):
perplexity and accuracy deltas are relative to it. Plots (PNG, matplotlib Agg backend):
per-layer kept widths, PPL and zero-shot accuracy per run, and the search convergence
(best objective so far per trial) for runs that hold a trials.csv.
"""

from __future__ import annotations

from pathlib import Path

from adapruner.core.io import atomic_directory, write_text
from adapruner.errors import AdaprunerError
from adapruner.report.collect import RunSummary, collect_run


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_widths(runs: list[RunSummary], path: Path) -> bool:
    """Kept heads and MLP channels per layer, one line per run."""
    runs = [r for r in runs if r.layer_widths]
    if not runs:
        return False
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
    for r in runs:
        layers = [w["layer"] for w in r.layer_widths]
        a1.plot(layers, [w["heads"] for w in r.layer_widths], marker="o", ms=3, label=r.name)
        a2.plot(layers, [w["channels"] for w in r.layer_widths], marker="o", ms=3, label=r.name)
    a1.set(title="query heads kept", xlabel="layer")
    a2.set(title="MLP channels kept", xlabel="layer")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _bars(runs: list[RunSummary], attr: str, title: str, path: Path, ylabel: str) -> bool:
    keys: list[str] = []
    for r in runs:
        keys += [k for k in getattr(r, attr) if k not in keys]
    if not keys:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(keys) * max(1, len(runs)) ** 0.5), 3.6))
    width = 0.8 / len(runs)
    for i, r in enumerate(runs):
        vals = [getattr(r, attr).get(k, float("nan")) for k in keys]
        ax.bar([j + i * width for j in range(len(keys))], vals, width, label=r.name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], keys, rotation=20, fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_convergence(runs: list[RunSummary], path: Path) -> bool:
    """Best objective so far vs trial number for every run with a search."""
    runs = [r for r in runs if r.trials]
    if not runs:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in runs:
        best, ys = float("inf"), []
        for t in r.trials:
            best = min(best, t["value"])
            ys.append(best)
        ax.plot([t["number"] for t in r.trials], ys, label=r.name)
        ax.scatter([t["number"] for t in r.trials], [t["value"] for t in r.trials], s=6, alpha=0.4)
    ax.set(title="search convergence", xlabel="trial", ylabel="objective (mean PPL), best so far")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _fmt(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(runs: list[RunSummary], plots: dict[str, str]) -> str:
    """The report text; ``plots`` maps a plot kind to its file name next to the report."""
    ref = runs[0]
    lines = ["# adapruner report", "", f"Runs (the first, `{ref.name}`, is the reference for deltas):", ""]
    for r in runs:
        lines.append(f"- `{r.name}` ({r.path}): {', '.join(r.files)}")
    lines.append("")
    if any(r.parameters for r in runs):
        lines += ["## Size", "", "| run | parameters | vs reference |", "|---|---:|---:|"]
        for r in runs:
            rel = f"{r.parameters / ref.parameters:.3f}" if r.parameters and ref.parameters else "-"
            lines.append(f"| {r.name} | {r.parameters:,} | {rel} |" if r.parameters else f"| {r.name} | - | - |")
        lines.append("")
    datasets = [d for d in dict.fromkeys(k for r in runs for k in r.ppl)]
    if datasets:
        lines += ["## Perplexity", "", "| run | " + " | ".join(datasets) + " |",
                  "|---|" + "---:|" * len(datasets)]
        for r in runs:
            cells = []
            for d in datasets:
                v, base = r.ppl.get(d), ref.ppl.get(d)
                delta = f" ({v - base:+.2f})" if v is not None and base is not None and r is not ref else ""
                cells.append(_fmt(v) + delta)
            lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
        lines.append("")
    tasks = [t for t in dict.fromkeys(k for r in runs for k in r.zeroshot)]
    if tasks:
        limits = {r.zeroshot_limit for r in runs if r.zeroshot}
        lines += ["## Zero-shot accuracy (%)", "",
                  "acc_norm for piqa, hellaswag, arc_easy, arc_challenge, openbookqa; acc for boolq, winogrande "
                  f"(LLM-Pruner's convention); --limit {', '.join(str(x) for x in limits)}.", "",
                  "| run | " + " | ".join(tasks) + " | average |", "|---|" + "---:|" * (len(tasks) + 1)]
        for r in runs:
            cells = [_fmt(100 * r.zeroshot[t]) if t in r.zeroshot else "-" for t in tasks]
            avg = _fmt(100 * r.zeroshot_average) if r.zeroshot_average is not None else "-"
            if r is not ref and r.zeroshot_average is not None and ref.zeroshot_average is not None:
                avg += f" ({100 * (r.zeroshot_average - ref.zeroshot_average):+.2f})"
            lines.append(f"| {r.name} | " + " | ".join(cells) + f" | {avg} |")
        lines.append("")
    tuned = [r for r in runs if r.finetune]
    if tuned:
        lines += ["## Recovery fine-tuning", "", "| run | method | steps | val loss before | after | seconds |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in tuned:
            f = r.finetune
            lines.append(f"| {r.name} | {f.get('method')} | {f.get('steps')} | {_fmt(f.get('val_loss_before'), 4)} | "
                         f"{_fmt(f.get('val_loss_after'), 4)} | {_fmt(f.get('seconds'), 0)} |")
        lines.append("")
    with_stats = [r for r in runs if r.stats]
    if with_stats:
        lines += ["## Deployment statistics", "", "| run | model | parameters | MACs/token | peak memory | "
                  "prefill latency (ms) | decode tok/s |", "|---|---|---:|---:|---:|---:|---:|"]
        for r in with_stats:
            for name, m in r.stats["models"].items():
                lines.append(f"| {r.name} | {name} | {m['parameters']:,} | {m['macs_per_token']['total'] / 1e6:.1f} M | "
                             f"{m['peak_memory']['bytes'] / 2**20:.1f} MiB | {1e3 * m['prefill_latency_s']:.1f} | "
                             f"{m['decode_tokens_per_s']:.1f} |")
            for name, q in (r.stats.get("ratios") or {}).items():
                lines.append(f"\n`{r.name}`: {name} vs {q['vs']} measured in one process: prefill speed-up "
                             f"{q['prefill_speedup']:.2f}x, decode speed-up {q['decode_speedup']:.2f}x, "
                             f"parameters {q['parameters']:.3f}, MACs {q['macs_per_token']:.3f}.")
        lines.append("")
    titles = {"widths": "Per-layer kept widths", "ppl": "Perplexity", "accuracy": "Zero-shot accuracy",
              "convergence": "Search convergence"}
    for kind, file in plots.items():
        lines += [f"## {titles[kind]}", "", f"![{kind}]({file})", ""]
    samples = [(r.name, n, m["samples"]) for r in with_stats for n, m in r.stats["models"].items() if m.get("samples")]
    if samples:
        lines += ["## Sample generations (greedy)", ""]
        for run_name, name, ss in samples:
            for s in ss[:3]:
                text = (s["prompt"] + " **|** " + s["continuation"]).replace("\n", " ")
                lines.append(f"- `{name}`: {text}")
        lines.append("")
    return "\n".join(lines)


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Collect ``run_dirs`` and write ``out`` (a .md file; plots in ``<stem>_plots/`` next to it)."""
    if not run_dirs:
        raise AdaprunerError("no run directory given; pass one or more directories written by adapruner commands")
    runs = [collect_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    for i, r in enumerate(runs):  # same directory names in different places: disambiguate
        if names.count(r.name) > 1:
            r.name = f"{r.name}#{i + 1}"
    out = Path(out)
    if out.is_dir():
        out = out / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_dir_name = f"{out.stem}_plots"
    plots = {}
    with atomic_directory(out.parent / plot_dir_name, overwrite=True) as tmp_dir:
        if plot_widths(runs, tmp_dir / "widths.png"):
            plots["widths"] = f"{plot_dir_name}/widths.png"
        if _bars(runs, "ppl", "perplexity (lower is better)", tmp_dir / "ppl.png", "PPL"):
            plots["ppl"] = f"{plot_dir_name}/ppl.png"
        if _bars(runs, "zeroshot", "zero-shot accuracy", tmp_dir / "accuracy.png", "accuracy"):
            plots["accuracy"] = f"{plot_dir_name}/accuracy.png"
        if plot_convergence(runs, tmp_dir / "convergence.png"):
            plots["convergence"] = f"{plot_dir_name}/convergence.png"
    write_text(out, markdown(runs, plots) + "\n")
    return out
