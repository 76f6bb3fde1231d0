"""The convergence plot of a search (paper Fig. 4): best objective so far vs trial."""

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


def plot_convergence(curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "") -> Path:
    """Draw every curve (e.g. TPE and random studies) on the same axes and save a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in sorted(curves.items()):
        xs, ys = best_so_far(points)
        ax.step(xs, ys, where="post", label=label)
    ax.set_xlabel("trial")
    ax.set_ylabel("best objective so far (mean validation PPL)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend()
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
