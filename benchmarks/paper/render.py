"""Render benchmarks/README.md (tables, plots, commands, pending rows) from benchmarks/results/.

Reads only the cached JSON records (nothing is recomputed): the planned rows come from each table
script's ``plan()`` with its default flags, so a row without a result is listed as pending.
Plots are written as small PNGs next to the results.

    python benchmarks/paper/render.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import bench  # noqa: E402
import fig4  # noqa: E402
import metrics  # noqa: E402
import table1  # noqa: E402
import table2  # noqa: E402
import table9  # noqa: E402
import table10  # noqa: E402
from bench import ZEROSHOT_TASKS, Variant  # noqa: E402

TASK_HEAD = {"boolq": "BoolQ", "piqa": "PIQA", "hellaswag": "HellaSw.", "winogrande": "WinoG.",
             "arc_easy": "ARC-e", "arc_challenge": "ARC-c", "openbookqa": "OBQA"}
HERE = Path(__file__).resolve().parent
SEARCH_BUDGETS = (30, 50, 100)  # trial budgets the scripts are run with (see run_all.sh)


class Results:
    """Lookup of cached evaluations under one evaluation protocol."""

    def __init__(self, ctx: bench.Context):
        self.ctx = ctx
        self.pending: list[str] = []
        self.grouped: dict[str, list[str]] = {}

    def add_pending(self, where: str, v: Variant, what: str) -> None:
        """Note a missing evaluation (grouped per row in the README's pending list)."""
        key = f"{where}: {v.label()} (`{v.slug()}`)"
        if key not in self.grouped:
            self.grouped[key] = []
            self.pending.append(key)
        self.grouped[key].append(what)

    def pending_lines(self) -> list[str]:
        return [f"- {k}" + (f": {', '.join(self.grouped[k])}" if self.grouped.get(k) else "") for k in self.pending]

    def resolve(self, v: Variant) -> Variant:
        """``v`` itself when it has results; for a searched row without them, the same study with
        the largest smaller trial budget that has run (CPU runs use 30-trial studies where the
        tables plan 100; the row's label then names its budget)."""
        if self.record(v) or not v.search:
            return v
        for trials in sorted((b for b in SEARCH_BUDGETS if b < v.search.trials), reverse=True):
            w = replace(v, search=replace(v.search, trials=trials))
            if self.record(w):
                return w
        return v

    def record(self, v: Variant) -> dict:
        return bench.read_json(self.ctx.record_path(v)) or {}

    def eval(self, v: Variant, kind: str) -> dict | None:
        e = self.record(v).get("evals", {}).get(self.ctx.protocol.tag(kind))
        return e

    def ppl(self, v: Variant, kind: str) -> float | None:
        e = self.eval(v, kind)
        return e["perplexity"]["ppl"] if e else None

    def params(self, v: Variant) -> int | None:
        rec = self.record(v)
        p = (rec.get("build") or {}).get("parameters")
        if p is None:
            for e in rec.get("evals", {}).values():
                p = p or e.get("parameters")
        return p

    def devices(self, v: Variant) -> set[str]:
        rec = self.record(v)
        devs = {e.get("device") for e in rec.get("evals", {}).values()}
        return {d for d in devs if d}


def software_line(res: Results, dense: Variant) -> str:
    """Versions and zero-shot splits as recorded by the dense model's evaluations."""
    evals = res.record(dense).get("evals", {})
    zs = (evals.get(res.ctx.protocol.tag("zeroshot")) or {}).get("zeroshot", {}).get("protocol", {})
    vers = next((e.get("versions") for e in evals.values() if e.get("versions")), {})
    if not zs and not vers:
        return ""
    splits = ", ".join(f"{TASK_HEAD.get(t, t)} {s}" for t, s in zs.get("splits", {}).items())
    soft = ", ".join(f"{k} {v}" for k, v in vers.items())
    return (f"Software: lm-evaluation-harness {zs.get('lm_eval_version', '?')} ({zs.get('num_fewshot', 0)}-shot; "
            f"splits: {splits}), {soft}. Seeds: calibration / search / evaluation seed 0 unless a row says "
            "otherwise (`--seed` in its commands).")


def fmt(x, digits=2) -> str:
    if x is None:
        return "pending"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def short_device(devs: set[str]) -> str:
    if not devs:
        return ""
    return ", ".join(sorted("GPU " + d.split(":", 1)[1].strip() if d.startswith("cuda") else "CPU" for d in devs))


def comparison_table(res: Results, rows: list[Variant], title_pending: str) -> list[str]:
    """Markdown rows: method, params, PPLs, seven accuracies, average +- se, device."""
    head = ["method", "params (M)", "WikiText-2", "PTB", *[TASK_HEAD[t] for t in ZEROSHOT_TASKS], "avg ± se", "device"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in rows:
        cells = [v.label()]
        p = res.params(v)
        cells.append(f"{p / 1e6:.1f}" if p else "pending")
        for kind in ("wikitext2", "ptb"):
            x = res.ppl(v, kind)
            cells.append(fmt(x))
            if x is None:
                res.add_pending(title_pending, v, kind)
        zs = res.eval(v, "zeroshot")
        if zs:
            z = zs["zeroshot"]
            cells += [f"{100 * z[t][z[t]['average_metric']]:.1f}" for t in ZEROSHOT_TASKS]
            avg, se = bench.zeroshot_average(zs)
            cells.append(f"{avg:.1f} ± {se:.1f}")
        else:
            cells += ["pending"] * (len(ZEROSHOT_TASKS) + 1)
            res.add_pending(title_pending, v, "zero-shot")
        cells.append(short_device(res.devices(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


MODEL2_NOTE = "# --model2 directories: built by the commands of Table 1 (20 %, without recovery) above"  # Tables 9 and 10 reuse Table 1's models


def origin_steps(build: dict) -> list[dict]:
    """The steps that first built a variant's current weights. A model directory lost with its
    scratch space is rebuilt from the search's recorded best configuration (``prune --config``),
    which reproduces the same weights (digest checked) but names a file outside the repository;
    the command worth citing is the original ``search``, kept in the build history."""
    for entry in [*build.get("history", []), build]:
        if entry.get("weights_sha256") == build.get("weights_sha256") and entry.get("steps"):
            return entry["steps"]
    return build.get("steps", [])


def commands_block(res: Results, rows: list[Variant]) -> list[str]:
    """A collapsed list of the exact product commands behind each row."""
    out = ["<details><summary>exact commands of every row (from the result records)</summary>", "", "```bash"]
    for v in rows:
        rec = res.record(v)
        if not rec:
            continue
        out.append(f"# {v.label()}  ({v.slug()})")
        builds = ([res.record(v.base())] if v.tune else []) + [rec]
        for r in builds:
            build = r.get("build") or {}
            out += [f"{step['command']}   # {step.get('wall_s', '?')} s on {build.get('device') or '?'}"
                    for step in origin_steps(build)]
        wanted = {res.ctx.protocol.tag(k) for k in ("wikitext2", "ptb", "zeroshot")}
        for tag, e in sorted(rec.get("evals", {}).items()):
            if tag in wanted:
                out.append(f"{e['command']}   # {e.get('wall_s', '?')} s on {e.get('device', '?')}, "
                           f"adapruner rev {e.get('source', '?')}")
    out += ["```", "", "</details>", ""]
    return out


def metrics_section(res: Results, args) -> list[str]:
    """Every importance metric at one ratio: perplexities, scoring time, parameters."""
    m = metrics.build_parser().parse_args(["--model", args.model, *(["--smoke"] if args.smoke else [])])
    rows = [v for v, _ in metrics.plan(m)]
    head = ["metric", "params (M)", "removed", "WikiText-2", "PTB", "scoring s", "device"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in rows:
        build = res.record(v).get("build") or {}
        p = res.params(v)
        cells = [v.label(), f"{p / 1e6:.1f}" if p else "pending",
                 f"{build['ratio_achieved']:.1%}" if build.get("ratio_achieved") is not None else "-"]
        for kind in ("wikitext2", "ptb"):
            x = res.ppl(v, kind)
            cells.append(fmt(x))
            if x is None:
                res.add_pending("metrics", v, kind)
        plan_s = (build.get("timings") or {}).get("plan_s")
        cells += [f"{plan_s:.1f}" if plan_s is not None else "-", short_device(res.devices(v))]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", *dtype_crosscheck(res, rows[0])]
    return out + ["", "Command: `python benchmarks/paper/metrics.py`; 'scoring s' is `adapruner prune`'s "
                  "`plan_s` (calibration, statistics, scores and allocation; loading and surgery excluded).", ""] \
        + commands_block(res, rows)


def dtype_crosscheck(res: Results, dense: Variant) -> list[str]:
    """The dense model's perplexities under the table protocol next to any float32 evaluations
    of the same split and window count (evidence that evaluating in bfloat16 changes nothing)."""
    evals = res.record(dense).get("evals", {})
    fp32 = replace(res.ctx.protocol, dtype="float32")
    cells = []
    for kind in ("wikitext2", "ptb"):
        a, b = evals.get(res.ctx.protocol.tag(kind)), evals.get(fp32.tag(kind))
        if a and b and res.ctx.protocol.dtype != "float32":
            pa, pb = a["perplexity"]["ppl"], b["perplexity"]["ppl"]
            cells.append(f"{kind} {pa:.3f} ({res.ctx.protocol.dtype}) vs {pb:.3f} (float32), "
                         f"{100 * (pa - pb) / pb:+.2f} %")
    return [f"Dense model, evaluation dtype cross-check: {'; '.join(cells)}."] if cells else []


def table1_section(res: Results, args) -> list[str]:
    t1 = table1.build_parser().parse_args(["--model", args.model, *(["--smoke"] if args.smoke else [])])
    out = []
    ratios = [float(r) for r in t1.ratios.split(",")]
    dense = table1.variant(t1, "dense", 0.0)
    pruned = [m for m in table1.METHODS if m != "dense"]
    for ratio in ratios:
        for tuned in (False, True):
            rows = [dense] + [res.resolve(table1.variant(t1, m, ratio, tuned=tuned)) for m in pruned]
            title = f"{ratio:.0%} of parameters removed, " + ("with LoRA recovery" if tuned else "without recovery")
            out += [f"### Table 1: {title}", ""]
            out += comparison_table(res, rows, f"Table 1 {ratio:.0%} {'tuned' if tuned else 'untuned'}")
            out += [""] + commands_block(res, rows)
        png = args.plots / f"table1_r{round(ratio * 100):02d}.png"
        if _plot_table1(res, [dense] + [res.resolve(table1.variant(t1, m, ratio)) for m in pruned],
                        [dense] + [res.resolve(table1.variant(t1, m, ratio, tuned=True)) for m in pruned], ratio, png):
            out += [f"![Table 1 at {ratio:.0%}]({png.relative_to(args.readme.parent)})", ""]
    return out


def _plot_table1(res: Results, untuned: list[Variant], tuned: list[Variant], ratio: float, png: Path) -> bool:
    """Bars per method: WikiText-2 / PTB test PPL (log) and zero-shot average, without/with tuning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def column(rows, kind):
        if kind == "zeroshot":
            return [bench.zeroshot_average(e)[0] if (e := res.eval(v, kind)) else None for v in rows]
        return [res.ppl(v, kind) for v in rows]

    panels = [("wikitext2", "WikiText-2 test PPL"), ("ptb", "PTB test PPL"), ("zeroshot", "zero-shot average (%)")]
    if not any(x is not None for rows in (untuned, tuned) for k, _ in panels for x in column(rows, k)):
        return False
    labels = [v.label() for v in untuned]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (kind, title) in zip(axes, panels):
        for j, (rows, name) in enumerate(((untuned, "w/o tune"), (tuned, "w/ tune"))):
            ys = column(rows, kind)
            xs = [i + (j - 0.5) * 0.4 for i in range(len(rows))]
            ax.bar([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None], width=0.4,
                   label=name, color=f"C{j}")
        if kind != "zeroshot" and any(column(untuned, kind) + column(tuned, kind)):
            ax.set_yscale("log")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{title}, {ratio:.0%} removed", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return True


def seeds_section(res: Results, args, plots: Path) -> list[str]:
    """PPL of the gradient baselines over 5 calibration seeds, next to the searched AdaPruner."""
    t1 = table1.build_parser().parse_args(["--model", args.model, *(["--smoke"] if args.smoke else [])])
    out = ["| ratio | method | seeds done | WikiText-2 mean ± std | PTB mean ± std | WikiText-2 range | PTB range |",
           "|---|---|---|---|---|---|---|"]
    points = {}
    for ratio in [float(r) for r in t1.ratios.split(",")]:
        for m in bench.GRADIENT_BASELINES:
            vs = [table1.variant(t1, m, ratio, seed=s) for s in range(t1.seeds)]
            w = [x for x in (res.ppl(v, "wikitext2") for v in vs) if x is not None]
            p = [x for x in (res.ppl(v, "ptb") for v in vs) if x is not None]
            points[(ratio, m)] = (w, p)

            def ms(xs):
                if not xs:
                    return "pending"
                return f"{fmt(statistics.mean(xs))} ± {fmt(statistics.stdev(xs))}" if len(xs) > 1 else fmt(xs[0])

            def rng(xs):
                return f"{fmt(min(xs))} – {fmt(max(xs))}" if xs else ""

            out.append(f"| {ratio:.0%} | {m} | {min(len(w), len(p))}/{t1.seeds} | {ms(w)} | {ms(p)} | {rng(w)} | {rng(p)} |")
        a = res.resolve(table1.variant(t1, "adapruner", ratio))
        w, p = res.ppl(a, "wikitext2"), res.ppl(a, "ptb")
        points[(ratio, "adapruner")] = ([w] if w else [], [p] if p else [])
        out.append(f"| {ratio:.0%} | {a.label()} (searched, 1 run) | {1 if w and p else 0}/1 | {fmt(w)} | {fmt(p)} | | |")
    png = plots / "seeds_ppl.png"
    if _plot_seeds(points, png):
        out += ["", f"![PPL over calibration seeds]({png.relative_to(args.readme.parent)})"]
    return out


def _plot_seeds(points: dict, png: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = sorted({r for (r, _), (w, p) in points.items() if w or p})
    if not ratios:
        return False
    fig, axes = plt.subplots(len(ratios), 2, figsize=(8, 3 * len(ratios)), squeeze=False)
    for i, r in enumerate(ratios):
        methods = [m for (rr, m) in points if rr == r]
        for j, name in enumerate(("WikiText-2", "PTB")):
            ax = axes[i][j]
            for k, m in enumerate(methods):
                ys = points[(r, m)][j]
                ax.scatter([k] * len(ys), ys, color="C3" if m == "adapruner" else "C0", s=18)
            ax.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
            if any(points[(r, m)][j] for m in methods):
                ax.set_yscale("log")
            ax.set_title(f"{name} test PPL, {r:.0%} removed", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return True


def table2_section(res: Results, args) -> list[str]:
    t2 = table2.build_parser().parse_args(["--model", args.model, "--table8", *(["--smoke"] if args.smoke else [])])
    planned = [v for v, _ in table2.plan(t2)]
    # One table per trial budget that has ablation results (never a mixed-budget comparison).
    budgets = [b for b in sorted(set(SEARCH_BUDGETS) | {t2.trials}, reverse=True)
               if any(res.record(replace(v, search=replace(v.search, trials=b)))
                      for v in planned if v.search.ablation != "full")] or [t2.trials]
    out = []
    for b in budgets:
        rows = [replace(v, search=replace(v.search, trials=b)) for v in planned]
        out += [f"**Budget: {b} finished trials per study.**", "", *_table2_budget(res, rows)]
    return out


def _table2_budget(res: Results, rows: list[Variant]) -> list[str]:
    out = comparison_table(res, rows, "Table 2")
    out += ["", "| study | trials finished (complete / pruned) | best validation objective | best trial | "
                "median trial s |", "|---|---|---|---|---|"]
    for v in rows:
        s = (res.record(v).get("search") or {})
        rep = (s.get("report") or {}).get("study") or {}
        states = rep.get("states", {})
        out.append(f"| {v.label()} | {states.get('COMPLETE', 0)} / {states.get('PRUNED', 0)} | "
                   f"{fmt(rep.get('best_value'))} | {rep.get('best_trial', '')} | {fmt(rep.get('median_trial_seconds'), 1)} |"
                   if s else f"| {v.label()} | pending | | | |")
    return out + [""] + commands_block(res, rows)


def fig4_section(res: Results, args, plots: Path) -> list[str]:
    f4 = fig4.build_parser().parse_args(["--model", args.model, *(["--smoke"] if args.smoke else [])])
    curves, lines = {}, []
    checkpoints = [c for c in (10, 25, 50, 100, 150, 200, 300) if c <= f4.trials]
    lines += ["| study | trials | " + " | ".join(f"best @ {c}" for c in checkpoints) + " | final best |",
              "|---|---|" + "---|" * (len(checkpoints) + 1)]
    for v, _ in fig4.plan(f4):
        v = res.resolve(v)
        s = res.record(v).get("search")
        name = f"{v.search.sampler} seed {v.search.seed}"
        if not s:
            lines.append(f"| {name} | pending | " + " | ".join("" for _ in checkpoints) + " | |")
            res.add_pending("Fig. 4", v, f"study {name}")
            continue
        # x = finished trials (the budget's unit); FAILED trials (killed workers) spend no budget.
        best, curve = float("inf"), []
        for t in sorted(s["trials"], key=lambda t: t["number"]):
            if t["state"] not in ("COMPLETE", "PRUNED"):
                continue
            if t["state"] == "COMPLETE" and t["value"] is not None:
                best = min(best, t["value"])
            curve.append((len(curve) + 1, best))
        curves[name] = curve

        def at(n):
            vals = [b for k, b in curve if k <= n and b < float("inf")]
            return fmt(vals[-1]) if vals else ""

        lines.append(f"| {name} | {len(curve)} | " + " | ".join(at(c) for c in checkpoints) + f" | {at(10**9)} |")
    png = plots / "fig4_convergence.png"
    if curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, (name, curve) in enumerate(sorted(curves.items())):
            xs = [k for k, b in curve if b < float("inf")]
            ys = [b for k, b in curve if b < float("inf")]
            ax.step(xs, ys, where="post", label=name, color=("C0" if name.startswith("tpe") else "C1"),
                    linestyle="-" if name.endswith("0") else "--")
        ax.set_xlabel("finished trials")
        ax.set_ylabel("best objective (mean val PPL)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        fig.tight_layout()
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=80)
        plt.close(fig)
        lines += ["", f"![TPE vs random search]({png.relative_to(args.readme.parent)})"]
    return lines


def table9_section(res: Results, args) -> list[str]:
    t9 = table9.build_parser().parse_args(["--model", args.model, *(["--smoke"] if args.smoke else [])])
    out = ["| model | params | MACs/token | weights | peak memory | prefill latency (64 tok) | decode tok/s | device |",
           "|---|---|---|---|---|---|---|---|"]
    ratio_lines, cmds = [], []
    for v in table9.plan(t9):
        row = bench.read_json(res.ctx.results / "table9" / f"{v.slug()}.json")
        if not row:
            out.append(f"| {v.label()} {t9.ratio:.0%} | pending | | | | | | |")
            res.add_pending("Table 9", v, "stats")
            continue
        r = row["result"]
        names = list(r["models"])
        dev = short_device({row["device"]})
        for n, label in zip(names, [f"dense (same run as {v.label()})", f"{v.label()} {t9.ratio:.0%}"]):
            m = r["models"][n]
            out.append(f"| {label} | {m['parameters'] / 1e6:.1f} M | {m['macs_per_token']['total'] / 1e6:.1f} M | "
                       f"{m['weight_bytes'] / 2**20:.0f} MiB | {m['peak_memory']['bytes'] / 2**20:.0f} MiB | "
                       f"{m['prefill_latency_s'] * 1e3:.1f} ms | {m['decode_tokens_per_s']:.1f} | {dev} |")
        q = r["ratios"][names[1]]
        ratio_lines.append(f"| {v.label()} / dense | {q['parameters']:.3f} | {q['macs_per_token']:.3f} | "
                           f"{q['weight_bytes']:.3f} | {q['peak_memory']:.3f} | {q['prefill_speedup']:.2f}x | "
                           f"{q['decode_speedup']:.2f}x |")
        cmds.append(row["command"])
    if ratio_lines:
        out += ["", "Ratios measured in the same process (pruned / dense; speed-ups = dense time / pruned time):", "",
                "| pair | params | MACs | weights | peak memory | prefill speed-up | decode speed-up |",
                "|---|---|---|---|---|---|---|", *ratio_lines]
    if cmds:
        out += ["", "```bash", MODEL2_NOTE, *cmds, "```"]
    return out


def table10_section(res: Results, args) -> list[str]:
    t10 = table10.build_parser().parse_args(["--model", args.model, *(["--smoke"] if args.smoke else [])])
    samples: dict[str, list[dict]] = {}
    cmds = []
    for v in table10.plan(t10):
        row = bench.read_json(res.ctx.results / "table10" / f"{v.slug()}.json")
        if not row:
            res.add_pending("Table 10", v, "generations")
            continue
        names = list(row["result"]["models"])
        samples.setdefault("dense", row["result"]["models"][names[0]].get("samples", []))
        samples[f"{v.label()} {t10.ratio:.0%}"] = row["result"]["models"][names[1]].get("samples", [])
        cmds.append(row["command"])
    if not samples:
        return ["(pending)"]
    out = []
    prompts = [s["prompt"] for s in samples["dense"]]
    for i, prompt in enumerate(prompts):
        out += [f"**Prompt:** {prompt}", "", "| model | greedy continuation |", "|---|---|"]
        for name, ss in samples.items():
            text = ss[i]["continuation"] if i < len(ss) else "pending"
            out.append(f"| {name} | {' '.join(text.split()).replace('|', '/')} |")
        out.append("")
    return out + ["```bash", MODEL2_NOTE, *cmds, "```"]


def _cell(v) -> str:
    return f"{v:,.1f}" if isinstance(v, (int, float)) else "-"


def quality_section(results: Path) -> list[str]:
    """Every metric x weight update (benchmarks/quality/updates_table.py), the trial cost of the full
    space (benchmarks/search/trial_cost.py), and the hand-written notes in quality.md."""
    lines = []
    notes = HERE / "quality.md"
    rows_path = results / "updates" / "rows.json"
    if rows_path.is_file():
        import json as _json

        rows = _json.loads(rows_path.read_text())
        proto = _json.loads((results / "updates" / "protocol.json").read_text()) \
            if (results / "updates" / "protocol.json").is_file() else {}
        updates = []
        for key in rows:
            if " | " in key and key.split(" | ", 1)[1] not in updates:
                updates.append(key.split(" | ", 1)[1])
        metrics = []
        for key in rows:
            if " | " in key and key.split(" | ", 1)[0] not in metrics:
                metrics.append(key.split(" | ", 1)[0])
        label = {u: ("reconstruct (sequential, 128 windows)" if u.startswith("reconstruct") and "sequential" in u
                     else "bias compensation" if u == "bias" else "no update" if u == "none" else u) for u in updates}
        windows = proto.get("max_windows", "?")
        lines += [f"SmolLM2-135M, {proto.get('ratio', 0.2):.0%} of all parameters removed, uniform allocation, the "
                  f"same 10 calibration windows for every metric; perplexity on the first {windows} windows of the "
                  "WikiText-2 / PTB **test** splits (seq 128), masked model (masks apply the updates). "
                  f"Dense on these windows: WikiText-2 {rows['dense']['wikitext2']:.2f} / PTB {rows['dense']['ptb']:.2f}. "
                  "Times on 2 CPU cores in one process (scoring = statistics + scores; update = the weight update).", "",
                  "```bash", f"python benchmarks/quality/updates_table.py --data-dir ../shared/data --max-windows {windows} "
                  "--updates \"none;bias;reconstruct:mode=sequential,windows=128\"", "```", "",
                  "| metric | " + " | ".join(f"{label[u]}: WT2 / PTB" for u in updates) + " | scoring s | " +
                  " | ".join(f"{label[u]} s" for u in updates if u != "none") + " |",
                  "|---|" + "---|" * (len(updates) + 1 + len([u for u in updates if u != "none"]))]
        for m in metrics:
            cells = []
            for u in updates:
                r = rows.get(f"{m} | {u}")
                cells.append(f"{_cell(r['wikitext2'])} / {_cell(r['ptb'])}" if r else "-")
            # The "none" row's planning time is scoring too (scores, e.g. OBS's inverses, and allocation);
            # an update's own time is its row's planning time minus that.
            first = rows.get(f"{m} | none") or {}
            base = first.get("update_s", 0.0)
            scoring = first.get("scoring_s", 0.0) + base if first else None
            times = [_cell(max((rows.get(f"{m} | {u}") or {}).get("update_s", float("nan")) - base, 0.0))
                     for u in updates if u != "none"]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {_cell(scoring)} | " + " | ".join(times) + " |")
        extra = [k for k in rows if " | " in k and k.split(" | ", 1)[1] not in updates]
        lines.append("")
        del extra
    cost = results / "trial_cost.json"
    if cost.is_file():
        import json as _json

        c = _json.loads(cost.read_text())
        lines += [f"**Trial cost** (`python benchmarks/search/trial_cost.py --data-dir ../shared/data --trials {c['trials']}`, "
                  "both spaces on one loaded model, trials alternating): median "
                  f"{c['median_trial_s']['full']:.1f} s per full-space trial vs {c['median_trial_s']['paper']:.1f} s "
                  f"per paper-space trial, **{c['ratio_full_over_paper']:.2f}x** (mean {c['mean_trial_s']['full']:.1f} "
                  f"vs {c['mean_trial_s']['paper']:.1f} s); the study's first reconstruction trial, which also computes "
                  f"the dense Gram matrices once for the whole study, took {c['first_reconstruct_trial_s']:.1f} s.", ""]
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    return lines


def llamacpp_section(results: Path) -> list[str]:
    """llama.cpp speed and fidelity of exported GGUF files (benchmarks/deployment/llamacpp_speed.py)."""
    table = results / "llamacpp" / "speed.md"
    if not table.is_file():
        return ["- not measured yet: `python benchmarks/deployment/llamacpp_speed.py --data-dir ../shared/data`", ""]
    import json as _json

    rec = _json.loads((results / "llamacpp" / "speed.json").read_text())
    proto = rec["protocol"]
    return [f"SmolLM2-135M dense vs pruned 20 % (FLAP + bias compensation, `--round-to 32`; uniform = `--layers 0:30 "
            "--allocation-option equal=true`, llama.cpp architecture `llama`; global = `--mode global`, per-layer "
            f"widths, architecture `deci`), exported with `adapruner export`, run in llama.cpp "
            f"(llama-cpp-python {rec['versions'].get('llama_cpp')}) on {proto['threads']} CPU threads; all six files "
            f"in one process, {proto['rounds']} interleaved rounds, medians; prefill of a {proto['prompt_tokens']}-token "
            f"prompt, greedy decode of {proto['decode_tokens']} tokens; NLL of {proto['nll_windows']} WikiText-2 test "
            f"windows (seq {proto['seq_len']}, KV cache {proto['kv_cache']}) against transformers on the same ids.", "",
            "```bash", "python benchmarks/deployment/llamacpp_speed.py --data-dir ../shared/data", "```", "",
            table.read_text().strip(), ""]


# Extra runs of benchmarks/recovery/equal_time.py (its --out), newest first, each under a heading;
# the earlier 8-minute float32 run in results/recovery/ comes last.
RECOVERY_RUNS = (
    ("recovery/equal_time_20min_searched_wiki_lm_side_by_side",
     "20 minutes per method on the searched 20 % model, both rerun side by side, distillation with the KL + 0.5 x "
     "next-token loss fused into the chunked KL, zero-shot of all three (AMD EPYC)"),
    ("recovery/equal_time_20min_wiki_lm_r50",
     "20 minutes per method on element1-50, distillation on books + Alpaca + PTB *train* + "
     "the Wikipedia sample, next-token loss at weight 0.5, at peak rate 5e-4, zero-shot of all three (AMD EPYC)"),
    ("recovery/equal_time_20min_wiki_lm",
     "20 minutes per method on element1-20, distillation on books + Alpaca + PTB *train* + the Wikipedia sample "
     "with the next-token loss at weight 0.5, LoRA rerun beside it, zero-shot of all three (AMD EPYC)"),
    ("recovery/equal_time_20min_searched_wiki_lm",
     "20 minutes per method on the searched 20 % model, distillation as below plus the next-token loss at weight "
     "0.5 (--distill-lm-weight 0.5), LoRA's run reused from below (AMD EPYC)"),
    ("recovery/equal_time_20min_searched_wiki",
     "20 minutes per method on the searched 20 % model, distillation on books + Alpaca + PTB *train* + a "
     "Wikipedia sample held out against WikiText-2 (benchmarks/recovery/wiki_text.py) (AMD EPYC)"),
    ("recovery/equal_time_20min_searched_pooled_ptb",
     "20 minutes per method on the searched 20 % model (wanda-sp, searched schedule, reconstruction), distillation "
     "on books + Alpaca + PTB *train* at peak rate 2e-4 (AMD EPYC)"),
    ("recovery/equal_time_20min_bf16_pooled_ptb",
     "20 minutes per method, distillation on books + Alpaca + PTB *train* (PTB test is in-domain for it; "
     "compare WikiText-2) (AMD EPYC)"),
    ("recovery/equal_time_20min_bf16_chunked_kl",
     "20 minutes per method, bfloat16 autocast, distillation on books + Alpaca with frozen embeddings, the chunked KL "
     "and checkpoints by the clock (AMD EPYC)"),
    ("recovery/equal_time_20min_bf16_frozen_pooled",
     "20 minutes per method, bfloat16 autocast, distillation with frozen embeddings on books + Alpaca (AMD EPYC)"),
    ("recovery/equal_time_20min_bf16_frozen",
     "20 minutes per method, bfloat16 autocast, distillation with frozen embeddings on Alpaca (AMD EPYC)"),
    ("recovery/equal_time_20min_bf16", "20 minutes per method, bfloat16 autocast (Intel Xeon)"),
)


def _equal_time_block(results: Path, sub: str) -> list[str]:
    """One run of benchmarks/recovery/equal_time.py (its rows.json, table and plot in
    results/SUB): the protocol in words, the command that reproduces it, the table and the plot."""
    import json as _json

    here = results / sub
    rec = _json.loads((here / "rows.json").read_text())
    names = list(dict.fromkeys(r["model"] for r in rec["rows"].values()))
    ratios = ",".join(f"{int(n.split('-')[1]) / 100:g}" for n in names if n.startswith("element1-"))
    extras = [n for n in names if not n.startswith("element1-")]
    windows = rec["test_windows"]
    amp = rec.get("mixed_precision", "no")
    lines = [f"Each pruned SmolLM2-135M model gets {rec['minutes']:g} minutes of wall time per recovery method on 2 CPU "
             "cores, validation included, one run at a time"
             + (", both methods under bfloat16 autocast" if amp == "bf16" else "") + ": LoRA (r 8, cleaned-Alpaca "
             f"sample, batch 8, cutoff 128, peak rate {rec['lora_lr']}) and distillation from the dense model (KL at "
             f"temperature {rec.get('distill_temperature', '2')}, "
             + ("all weights but the embedding / output head, " if rec.get("distill_freeze_embeddings") else "all weights, ")
             + ("book texts" if rec.get("distill_data", "books") == "books"
                else " + ".join("the book texts" if d == "books" else Path(d).name for d in rec["distill_data"].split())
                + f" (field {rec.get('distill_text_field', 'text')})")
             + f", batch {rec.get('distill_batch_size', '8')} windows of 128 tokens, peak rate {rec['distill_lr']}); "
             "both warm up for 10 steps and decay linearly to zero when the time budget ends. Perplexity on "
             + ("the full test splits" if windows == "all" else f"the first {windows} windows of each test split")
             + (f", zero-shot (7 tasks, limit {rec['zeroshot_limit']}) where shown." if rec.get("zeroshot_limit") else ".")
             , "",
             "```bash", "python benchmarks/recovery/equal_time.py --data-dir ../shared/data --minutes "
             f"{rec['minutes']:g}" + (" --ratios " + (ratios or '""') if ratios != "0.2,0.5" else "")
             + "".join(f" --extra {n}=RUN_DIR" for n in extras)
             + (f" --max-windows {windows}" if windows != "all" else "")
             + (f" --mixed-precision {amp}" if amp != "no" else "")
             + (f" --lora-lr {rec['lora_lr']}" if rec["lora_lr"] != "1e-3" else "")
             + (f" --distill-lr {rec['distill_lr']}" if rec["distill_lr"] != "5e-4" else "")
             + (f" --eval-every {rec['eval_every']}" if rec.get("eval_every", 10) != 10 else "")
             + (f" --limit {rec['zeroshot_limit']}" if rec.get("zeroshot_limit") else "")
             # runs before the key was recorded scored the searched model only
             + (f" --zeroshot-models {rec.get('zeroshot_models', 'searched20')}"
                if rec.get("zeroshot_limit") and rec.get("zeroshot_models", "searched20") else "")
             + "".join(f" {f}" for f in rec.get("distill_flags", []))
             + ("" if sub == "recovery" else f" --out benchmarks/results/{sub}"), "```", "",
             (here / "table.md").read_text().strip(), "",
             f"![validation PPL vs wall time](results/{sub}/validation_vs_time.png)", ""]
    return lines


def recovery_section(results: Path) -> list[str]:
    """Distillation vs LoRA at the same wall-clock budget (benchmarks/recovery/equal_time.py: the
    runs of RECOVERY_RUNS first, then the earlier 8-minute one) and the hand-written
    notes in recovery.md (the pilots, what the numbers mean)."""
    notes = HERE / "recovery.md"
    if not (results / "recovery" / "table.md").is_file():
        return ["- not measured yet: `python benchmarks/recovery/equal_time.py --data-dir ../shared/data`", ""]
    lines = []
    for sub, heading in RECOVERY_RUNS:
        if (results / sub / "table.md").is_file():
            lines += [f"### {heading}", "", *_equal_time_block(results, sub)]
    if lines:
        lines += ["### 8 minutes per method, float32", ""]
    lines += _equal_time_block(results, "recovery")
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_common_args(p)
    p.add_argument("--readme", default=str(bench.REPO / "benchmarks" / "README.md"))
    p.add_argument("--check", action="store_true", help="exit 1 when the README differs from what the results render to")
    args = p.parse_args()
    args.readme = Path(args.readme).resolve()
    ctx = bench.context_from_args(args)
    res = Results(ctx)
    plots = args.plots = ctx.results
    proto = ctx.protocol
    intro = (HERE / "intro.md").read_text() if (HERE / "intro.md").is_file() else ""
    discussion = (HERE / "discussion.md").read_text() if (HERE / "discussion.md").is_file() else "(to be written)"
    t1 = table1_section(res, args)
    mt = metrics_section(res, args)
    seeds = seeds_section(res, args, plots)
    t2 = table2_section(res, args)
    f4 = fig4_section(res, args, plots)
    t9 = table9_section(res, args)
    t10 = table10_section(res, args)
    ppl_protocol = "full test split" if proto.max_windows is None else f"first {proto.max_windows} windows"
    doc = [
        "<!-- generated by benchmarks/paper/render.py from benchmarks/results/; do not edit by hand -->",
        "# Benchmarks: the AdaPruner paper's tables in miniature (SmolLM2-135M-Instruct)", "",
        intro.strip(), "",
        f"Protocol of every table below: perplexity on the WikiText-2 and PTB **test** splits, "
        f"{proto.seq_len}-token windows, {ppl_protocol} (LLM-Pruner's protocol, see the main README); "
        f"zero-shot accuracy on seven tasks through lm-evaluation-harness with `--limit {proto.limit}` "
        "documents per task (acc_norm for PIQA, HellaSwag, ARC-e, ARC-c, OBQA, acc for BoolQ and WinoGrande; "
        "'avg ± se' is the mean of the seven and its standard error). Models are pruned and scored in float32 "
        f"and evaluated with their weights cast to {proto.dtype} (`--eval-dtype`; on the dense model bfloat16 "
        "moves perplexity by < 0.1 %, see the dense float32 cross-check below). Every row records its exact commands, "
        "wall times, device and software versions in `benchmarks/results/variants/<row>.json`.", "",
        software_line(res, Variant(model=args.model)), "",
        "## Table 1 / 4 analogue: comparison of pruning methods", "", *t1,
        "## Every importance metric at 20 % (same 10 calibration windows)", "", *mt,
        "## Spread over random calibration sets (gradient baselines, 5 seeds)", "", *seeds, "",
        "## Table 2 analogue: search ablations (20 %, same trial budget)", "", *t2,
        "## Fig. 4 analogue: TPE vs random search", "", *f4, "",
        "## Table 9 analogue: deployment statistics", "", *t9, "",
        "## Beyond the paper: weight updates, OBS, non-uniform allocation, the full search space", "",
        *quality_section(plots),
        "## Recovery at equal wall time: distillation vs LoRA", "", *recovery_section(plots),
        "## Deployment in llama.cpp: exported GGUF files", "", *llamacpp_section(plots),
        "## Table 10 analogue: generations (greedy)", "", *t10, "",
        "## Discussion", "", discussion.strip(), "",
        "## Pending rows", "",
        *res.pending_lines(), *(["- none"] if not res.pending else []), "",
    ]
    import rendering

    return rendering.write_or_check({args.readme: "\n".join(doc) + "\n"}, args.check,
                                    "python benchmarks/paper/render.py")


if __name__ == "__main__":
    sys.exit(main())
