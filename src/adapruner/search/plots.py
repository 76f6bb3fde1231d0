"""The convergence plot of a search (paper Fig. 4): every trial, the best so far, the dense model."""

from __future__ import annotations

from pathlib import Path

from adapruner.core.io import atomic_file


def best_so_far(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    """Running minimum of (trial number, value) pairs, in trial order."""
    xs, ys, best = [], [], float("inf")
    for number, value in sorted(points):
        best = min(best, value)
        xs.append(number)
        ys.append(best)
    return xs, ys


def plot_convergence(curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "",
                     stopped: dict[str, list[tuple[int, float]]] | None = None,
                     dense: float | None = None) -> Path:
    """Draw every study's trials (dots; early-stopped ones as crosses at their last running value)
    and best-so-far line on one log axis with plain-number ticks, plus the dense model's objective
    as a reference line; save a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, points) in enumerate(sorted(curves.items())):
        color = colors[k % len(colors)]
        xs, ys = best_so_far(points)
        ax.step(xs, ys, where="post", color=color, label=f"{label}: best so far")
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=12, color=color, alpha=0.45,
                   label=f"{label}: trials")
        halted = (stopped or {}).get(label) or []
        if halted:
            ax.scatter([p[0] for p in halted], [p[1] for p in halted], s=18, marker="x", color=color, alpha=0.6,
                       label=f"{label}: early-stopped")
    if dense:
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label=f"dense model ({dense:.1f})")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective: mean validation PPL (log scale)")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    if curves or dense:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
