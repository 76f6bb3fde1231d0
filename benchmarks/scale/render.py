"""Render the memory and time of pruning at scale from ``benchmarks/results/scale/runs.json``:
``benchmarks/scale/README.md``, the plot beside the results, and the table in ``docs/streaming.md``
between its ``scale`` markers.

    python benchmarks/scale/render.py          # write
    python benchmarks/scale/render.py --check  # exit 1 when a rendered file differs (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNS = REPO / "benchmarks" / "results" / "scale" / "runs.json"
PLOT = REPO / "benchmarks" / "results" / "scale" / "peak_memory.png"
DOCS = REPO / "docs" / "streaming.md"
sys.path.insert(0, str(REPO / "benchmarks"))

import rendering  # noqa: E402


RESUMED = "streamed, killed and resumed"
NOTES = REPO / "benchmarks" / "results" / "scale" / "notes.json"  # conditions of single runs, by row key


def _rows(data: dict) -> list[dict]:
    order = {"smollm2-135m-real": 0, "qwen2.5-0.5b": 1, "llama-3.2-1b": 2, "llama-3.2-3b": 3, "llama-3.1-8b": 4,
             "llama-3.1-70b": 5}
    notes = json.loads(NOTES.read_text()) if NOTES.is_file() else {}
    rows = [{**r, **({"note": notes[k]} if k in notes else {})} for k, r in data["runs"].items()
            if r.get("exit") == 0 and r["path"] != RESUMED]
    # Rows measured with the runner's own pages in the child's high-water mark: upper bounds,
    # shown only where no clean measurement of the same run exists.
    rows += [{**r, "upper": True} for k, r in data.get("upper_bounds", {}).items()
             if r.get("exit") == 0 and data["runs"].get(k, {}).get("exit") != 0]
    return sorted(rows, key=lambda r: (order.get(r["shape"], 9), r["layers"] or 0, r["method"], r["path"]))


def _name(r: dict) -> str:
    name = "SmolLM2-135M (pretrained)" if r["shape"] == "smollm2-135m-real" else r["shape"]
    return f"{name}, {r['layers']} layers" if r["layers"] else name


def _predicted(r: dict, path: str) -> float | None:
    p = r.get("predicted", {}).get(path.replace("-", "_"))
    return p["peak_gib"] if p else None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def main_table(rows: list[dict]) -> list[str]:
    lines = ["| model | parameters | method | path | peak RSS | predicted (÷ measured) | in memory, predicted | wall time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pred = _predicted(r, r["path"])
        ratio = f" ({pred / r['peak_rss_gib']:.2f}x)" if pred else ""
        mem = _predicted(r, "in-memory")
        lines.append(f"| {_name(r)} | {r['parameters_before'] / 1e9:.2f}B | {r['method']} | {r['path']} | "
                     f"**{'≤ ' if r.get('upper') else ''}{r['peak_rss_gib']:.2f} GiB** | {pred:.2f} GiB{ratio} | "
                     f"{mem:.1f} GiB | "
                     f"{_minutes(r['wall_s'])} |")
    return lines


def ratios(rows: list[dict]) -> list[str]:
    """Streamed against in memory, same model and method, side by side in one run."""
    by = {(r["shape"], r["layers"], r["method"], r["path"]): r for r in rows}
    lines = ["| model | method | time streamed / in memory | peak streamed / in memory |", "|---|---|---|---|"]
    for (shape, layers, method, path), r in by.items():
        other = by.get((shape, layers, method, "in-memory"))
        if path != "streamed" or other is None:
            continue
        shared = "*" if r.get("note") or other.get("note") else ""
        lines.append(f"| {_name(r)} | {method} | {r['wall_s'] / other['wall_s']:.2f}x{shared} | "
                     f"{r['peak_rss_gib'] / other['peak_rss_gib']:.2f}x |")
    if any(line.count("x*") for line in lines):
        lines += ["", "\\* other jobs shared the cores during one of the two runs (see the notes below): that time "
                      "ratio is not a fair one."]
    return lines


def depth(rows: list[dict]) -> list[str]:
    deep = sorted((r for r in rows if r["shape"] == "llama-3.1-8b" and r["method"] == "element1"
                   and r["path"] == "streamed"), key=lambda r: r["layers"])
    if not deep:
        return []
    clean = [r for r in deep if not r.get("upper")]
    peaks = [r["peak_rss_gib"] for r in clean]
    lines = ["| decoder layers | parameters | peak RSS | wall time |", "|---|---|---|---|"]
    lines += [f"| {r['layers']} | {r['parameters_before'] / 1e9:.2f}B | {'≤ ' if r.get('upper') else ''}"
              f"{r['peak_rss_gib']:.2f} GiB | {_minutes(r['wall_s'])} |" for r in deep]
    lines.append("")
    if len(clean) > 1:
        lines.append(f"Largest over smallest peak: **{max(peaks) / min(peaks):.3f}x** over "
                     f"{clean[0]['layers']}-{clean[-1]['layers']} layers (upper bounds left out).")
    return lines


def resumed(data: dict) -> list[str]:
    """The kill -9 and resume rows: where the run was killed, what the resumed run said and did."""
    out = []
    notes = json.loads(NOTES.read_text()) if NOTES.is_file() else {}
    for k, r in data["runs"].items():
        if r["path"] != RESUMED or r.get("exit") != 0:
            continue
        r = {**r, **({"note": notes[k]} if k in notes else {})}
        same = {True: "**the same weights** (sha256 of the shards)", False: "**different weights**",
                None: "no uninterrupted run to compare with"}[r.get("same_weights_as_uninterrupted")]
        out += [f"## A kill -9 is not a restart ({_name(r)}, {r['method']})", "",
                f"The command of the streamed row, killed with SIGKILL after {_minutes(r['killed_after_s'])} "
                f"({r['scored_layers_when_killed']} of {r['layers']} layers scored), then started again: the second "
                f"run took {_minutes(r['wall_s'])} at a peak of {r['peak_rss_gib']:.2f} GiB and wrote {same} as the "
                f"uninterrupted run. It said:", "", "```", *r.get("resume_log", []), "```", "",
                *([f"({r['note']}.)", ""] if r.get("note") else [])]
    return out


def exports(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        e = r.get("export")
        if not e:
            continue
        lc = e.get("llama_cpp", {})
        out += [f"## The pruned {_name(r)} ({r['method']}) in llama.cpp", "",
                f"`{e['command']}`: exit {e['exit']}, {_minutes(e['wall_s'])}, peak RSS {e['peak_rss_gib']:.2f} GiB "
                f"(one tensor at a time), a {e.get('gguf_gib', 0):.2f} GiB file; llama-cpp-python loaded it and "
                f"scored three tokens (exit {lc.get('exit')}, {_minutes(lc.get('wall_s', 0))}, peak RSS "
                f"{lc.get('peak_rss_gib', 0):.2f} GiB, the file memory-mapped): \"{lc.get('output', '')}\".", ""]
    return out


def seventy_b(rows: list[dict]) -> list[str]:
    """What the 2-layer 70B shape predicts for the whole model."""
    two = next((r for r in rows if r["shape"] == "llama-3.1-70b" and r["layers"] == 2 and r["path"] == "streamed"
                and r["method"] == "element1"), None)
    deep = sorted((r for r in rows if r["shape"] == "llama-3.1-8b" and r["method"] == "element1"
                   and r["path"] == "streamed" and not r.get("upper")), key=lambda r: r["layers"])
    if two is None or len(deep) < 2:
        return []
    growth = max(r["peak_rss_gib"] for r in deep) / min(r["peak_rss_gib"] for r in deep)
    stage = two["predicted"]["streamed"]["parts_gib"]
    device = sum(v for k, v in stage.items() if k != "runtime")
    hours = two["wall_s"] / two["layers"] * 80 / 3600
    return ["## What the 70B's layer shape predicts", "",
            f"Streamed, the peak is one decoder layer's stage or the embedding and head, not the depth: the 8B "
            f"shape's peak moves by {growth:.2f}x from {deep[0]['layers']} to {deep[-1]['layers']} layers. The "
            f"2-layer Llama-3.1-70B shape (element1) peaked at {two['peak_rss_gib']:.2f} GiB here, so the whole "
            f"80-layer model is predicted to prune within about that on this 24 GiB machine, in at most "
            f"~{hours:.1f} h on its 2 cores (the 2-layer run's time per layer x 80; its embedding and head are "
            f"counted in it, so this over-estimates). On one 80 GB GPU (`--device cuda`) the device holds one "
            f"layer with its activations and temporaries, {device:.1f} GiB by the streamed prediction's parts "
            "(everything but the process runtime), far inside 80 GB; the host then needs about the measured peak.",
            ""]


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for path, marker in (("streamed", "o"), ("in-memory", "s")):
        pts = [(r["parameters_before"], r["peak_rss_gib"]) for r in rows if r["path"] == path]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label=f"{path}, measured")
    pred = sorted({(r["parameters_before"], _predicted(r, "in-memory")) for r in rows if _predicted(r, "in-memory")})
    if pred:
        ax.plot(*zip(*pred), "k--", lw=1, label="in memory, predicted")
    ax.axhline(24, color="grey", lw=0.8, ls=":")
    ax.annotate("this machine's RAM (24 GiB)", (0.02, 24), xycoords=("axes fraction", "data"),
                xytext=(0, 2), textcoords="offset points", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("peak RSS (GiB)")
    ax.set_title("adapruner prune --ratio 0.2: peak memory", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def render(data: dict) -> tuple[str, str]:
    rows = _rows(data)
    machine = data.get("machine", {})
    where = f"{machine.get('cores', '?')} CPU cores ({machine.get('cpu', '?')}), 24 GiB RAM, no GPU"
    table = main_table(rows)
    page = [
        "# Pruning at scale: memory and time",
        "",
        "`adapruner prune --ratio 0.2` on random-weight checkpoints of real configurations (bfloat16 on disk,",
        "made by `shapes.py`; random weights measure memory and time, the equivalence tests in",
        "`tests/test_streaming.py` show the streamed and in-memory paths write the same checkpoint) and on",
        "the pretrained SmolLM2-135M. Peak RSS is the kernel's figure for the child process (`wait4`'s",
        "`ru_maxrss`, what `/usr/bin/time -f %M` prints); *predicted* is what `prune --dry-run` prints for",
        "the row's command before any weight is read (`streaming/memory.py`, refreshed for every row with",
        "`run.py --refresh-predictions` when the model changes), for its own path and for the in-memory one. Computation",
        f"in float32, weights saved in bfloat16. Measured on {where}.",
        "",
        "```bash",
        "python benchmarks/scale/run.py --data-dir ../shared/data --load-check   # resumable: skips finished rows",
        "python benchmarks/scale/run.py --data-dir ../shared/data --refresh-predictions",
        "python benchmarks/scale/render.py",
        "```",
        "",
        *table,
        "",
        "![peak memory against parameters](../results/scale/peak_memory.png)",
        "",
        "## Streamed against in memory, side by side",
        "",
        *ratios(rows),
        "",
        "## Memory does not grow with depth (Llama-3.1-8B shape, element1, streamed)",
        "",
        *depth(rows),
        "",
    ]
    page += resumed(data) + exports(rows) + seventy_b(rows)
    loads = [r for r in rows if r.get("loads")]
    if loads:
        page += ["## The pruned 8B loads", ""]
        for r in loads:
            lc = r["loads"]
            page.append(f"- {_name(r)}, {r['method']}: `AutoModelForCausalLM.from_pretrained(..., dtype=torch.bfloat16)` "
                        f"exit {lc['exit']}, {_minutes(lc['wall_s'])}, peak RSS {lc['peak_rss_gib']:.2f} GiB.")
        page.append("")
    notes = [f"- {_name(r)}, {r['method']}, {r['path']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        page += ["Notes on single rows:", "", *notes, ""]
    if any(r.get("upper") for r in rows):
        page += ["A peak marked ≤ was measured while the benchmark's own process had built the checkpoint in",
                 "memory before starting the run: a forked child's high-water mark counts its parent's pages, so",
                 "the figure is an upper bound. The other rows are measured through `/usr/bin/time`, started by",
                 "a process that holds no model.", ""]
    page += ["Every row's exact command is in `benchmarks/results/scale/runs.json`.", ""]
    block = "\n".join([*table, "", f"Measured on {where}; commands, depth and ratios in "
                       "`benchmarks/scale/README.md`."])
    return "\n".join(page), block


README = REPO / "README.md"


def readme_block(data: dict) -> str:
    """The README's short table: the largest shapes pruned here, streamed, against the in-memory prediction."""
    rows = [r for r in _rows(data) if r["path"] == "streamed" and not r.get("upper")
            and r["shape"] != "smollm2-135m-real"]
    full = [r for r in rows if r["shape"] != "llama-3.1-8b" or r["layers"] == 32]
    machine = data.get("machine", {})
    lines = ["| model (random weights, real shape) | parameters | method | peak RSS, streamed | in memory (predicted) "
             "| time |", "|---|---|---|---|---|---|"]
    lines += [f"| {_name(r)} | {r['parameters_before'] / 1e9:.2f}B | {r['method']} | **{r['peak_rss_gib']:.2f} GiB** "
              f"| {_predicted(r, 'in-memory'):.1f} GiB | {_minutes(r['wall_s'])} |" for r in full]
    return "\n".join([*lines, "", f"On {machine.get('cores', '?')} CPU cores and 24 GiB of RAM, no GPU; the peak does "
                       "not grow with depth, so a model prunes when one decoder layer fits "
                       "([docs/streaming.md](docs/streaming.md), `benchmarks/scale`)."])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when a rendered file differs from the results")
    args = p.parse_args()
    data = json.loads(RUNS.read_text())
    page, block = render(data)
    pages = {HERE / "README.md": page,
             DOCS: rendering.with_block(DOCS.read_text(), "scale", "benchmarks/scale/render.py", block),
             README: rendering.with_block(README.read_text(), "scale-summary", "benchmarks/scale/render.py",
                                          readme_block(data))}
    status = rendering.write_or_check(pages, args.check, "python benchmarks/scale/render.py")
    if not args.check:
        plot(_rows(data))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
