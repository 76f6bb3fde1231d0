"""Render the search's speed figures into ``docs/search.md`` from their results files:
``benchmarks/results/gradient_free_trial.json``, ``trial_forward.json``, ``gram_pass.json``, ``benchmarks/results/time_to_quality/`` (its
``samplers/`` and ``workers/`` hold the comparisons of samplers and of workers on one machine) and the 100-trial
searches of ``benchmarks/search/full_space.sh`` (``full_space_default/`` as a user runs it, against the recorded
``full_space/``).

    python benchmarks/search/render.py [--check]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rendering  # noqa: E402

RESULTS = rendering.REPO / "benchmarks" / "results"
SCRIPT = "benchmarks/search/render.py"
PAGE = rendering.REPO / "docs" / "search.md"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def trial_block(r: dict | None) -> str:
    if r is None:
        return "Measured by `python benchmarks/search/gradient_free_trial.py` (pending)."
    med, speed = r["median_trial_s"], r["speedup_planner_over_full_pass"]
    label = {"wanda-sp": "wanda-sp, no update", "flap": "FLAP + bias compensation"}
    rows = [f"| {label.get(m, m)} | {med[f'{m} / full pass']:.1f} s | {med[f'{m} / planner']:.1f} s | "
            f"**{speed[m]:.2f}x** |" for m in speed]
    same = "identical" if r["same_objective_values"] else "DIFFERENT"
    return _table(f"A search trial collects only what its configuration needs. On {r['model']} at {r['ratio']:.0%}, "
                  f"{r['trials']} trials of each metric with a new calibration set each, alternating, "
                  f"{r['threads']} threads (`{r['command']}`), objective values {same}:",
                  ["trial", "full gradient pass (every trial before)", "forward only (planner)", "faster"], rows)


def speed_block(r: dict | None) -> str:
    if r is None:
        return "Measured by `python benchmarks/search/trial_speed.py --data-dir DATA` (pending)."
    ours, theirs = r["ours_breakdown"], r["llm_pruner_breakdown"]
    check = r["same_ppl_check"]
    same = "the same" if all(abs(check["ours"][k] - check["llm_pruner_style"][k]) <= 1e-3 * check["ours"][k]
                             for k in check["ours"]) else "DIFFERENT"
    ppl = " / ".join(f"{v:.2f}" for v in check["ours"].values())
    return "\n".join([
        f"**Trial speed** (`{r['command']}`: the two kinds of trial alternate in one process, "
        f"{r['calibration_samples']} calibration windows, element2, {2 * r['eval_windows_per_dataset']} validation "
        f"windows, {r['threads']} threads, {r['device']}):",
        "",
        "| | seconds |",
        "|---|---|",
        f"| our trial, median (statistics + scores + allocation {ours['plan_s']:.1f} / evaluation "
        f"{ours['eval_s']:.1f}) | {r['ours_trial_s_median']:.2f} |",
        f"| our first trial (also builds the hidden-state cache) | {r['ours_first_trial_s']:.2f} |",
        f"| LLM-Pruner-style trial, median (deepcopy + {r['calibration_samples']} separate backward passes "
        f"{theirs['score_s']:.1f}, surgery {theirs['prune_s']:.1f}, evaluation {theirs['eval_s']:.1f}) | "
        f"{r['llm_pruner_trial_s']:.2f} |",
        f"| one evaluation forward of the physically pruned model | {r['pruned_eval_forward_s']:.2f} |",
        "",
        f"LLM-Pruner style / ours = **{r['speedup_vs_llm_pruner']:.2f}x**; ours / one evaluation forward = "
        f"**{r['ours_over_eval_forward']:.2f}x**. Both paths give {same} pruned model (validation PPL {ppl}).",
    ])


def _table(intro: str, columns: list[str], rows: list[str]) -> str:
    """A sentence, then a markdown table with ``columns`` and the ready-made ``rows``."""
    return "\n".join([intro, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows])


def _minutes(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isinf(value)) else f"{value:.1f}"


def _times(row: dict, factor: float) -> str:
    """The median minutes to ``factor`` x the reference, and each run's ("-": not within the run)."""
    runs = ", ".join(_minutes(t) for t in row[f"minutes_to_{factor}x"])
    return f"{_minutes(row[f'median_minutes_to_{factor}x'])} ({runs})"


def quality_block(s: dict | None, plot: str = "benchmarks/results/time_to_quality/time_to_quality.png") -> str:
    if s is None:
        return "Measured by `python benchmarks/search/time_to_quality.py` (pending)."
    p, ref = s["protocol"], s["reference"]
    names = [k for k in s if k not in ("reference", "reference_source", "protocol", "common_trials")]
    k = s.get("common_trials")
    rows = []
    for n in names:
        r = s[n]
        stopped = f" (+{r['median_stopped_early']:g} stopped)" if r.get("median_stopped_early") else ""
        rows.append(f"| {n} | {r['runs']} | {r['median_trials']:g}{stopped} | {_times(r, 1.01)} | {_times(r, 1.03)} | "
                    f"{r['median_best_at_half_time']:.2f} | {r['median_final_best']:.2f} |"
                    + (f" {r['median_best_after_common_trials']:.2f} |" if k else ""))
    return "\n".join([
        f"Time to quality on {p['model']} at {p['ratio']:.0%}, {p['space']}, {p['cpu']} CPU cores, runs of "
        f"{p['minutes_per_run']:g} minutes from the command's start (model loading included), seeds "
        f"{', '.join(map(str, p['seeds']))}, variants interleaved (`{p['command']}`). Reference objective "
        f"{ref:.2f}, {s['reference_source']} (1.01x = {1.01 * ref:.1f}, 1.03x = {1.03 * ref:.1f}); medians over "
        "seeds, each run's time in brackets (-: not reached within the run)"
        + (f"; the last column is the best after the {k} trials every run finished, search quality per trial "
           "whatever speed the machine ran each run at" if k else "") + ":",
        "",
        f"| variant | runs | trials finished | minutes to 1.01x | minutes to 1.03x | best after "
        f"{p['minutes_per_run'] / 2:g} min | best after {p['minutes_per_run']:g} min |"
        + (f" best after {k} trials |" if k else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if k else ""),
        *rows,
        "",
        f"The curves: `{plot}`.",
    ])


def gram_block(g: dict | None) -> str:
    if g is None:
        return "Measured by `python benchmarks/search/gram_pass.py` (pending)."
    rows = [f"| {name} | {g['median_seconds'][name]:.1f} s | {g['faster_than_all_layers'][name]:.2f}x |"
            for name in g["median_seconds"]]
    same = "the same matrices bit for bit" if g["identical"] else "**matrices differ**"
    return _table(f"The Gram pass of {g['model']} over {g['windows']} windows of {g['seq_len']} tokens "
                  f"({g['threads']} threads, median of {g['repeats']} interleaved runs, `{g['command']}`; layer range "
                  f"{g['layer_range'][0]}-{g['layer_range'][1] - 1} of {g['layers']}; {same}):",
                  ["Gram pass", "seconds", "faster"], rows)


# The limits the 100-trial default search is held to: no worse than the recorded search's best
# objective, and its delivered model's test perplexity within 2 % of the recorded model's.
TEST_TOLERANCE = 0.02


def _trials(directory: Path) -> list[dict] | None:
    """Every trial of a recorded study in number order (a stopped or failed one has no value)."""
    path = directory / "trials.csv"
    if not path.is_file():
        return None
    rows = sorted(csv.DictReader(path.open()), key=lambda r: int(r["number"]))
    return [{**r, "value": float(r["value"]) if r["state"] == "COMPLETE" and r["value"] else math.inf}
            for r in rows]


def _test_ppl(directory: Path) -> dict | None:
    r = _load(directory / "eval_test.json")
    return None if r is None else {row["dataset"]: row["ppl"] for row in r["perplexity"]}


def _wall_minutes(directory: Path) -> float | None:
    """The search command's wall time from ``/usr/bin/time -v`` in its ``search_stderr.txt``."""
    path = directory / "search_stderr.txt"
    lines = [ln for ln in path.read_text().splitlines() if "Elapsed (wall clock)" in ln] if path.is_file() else []
    if not lines:
        return None
    parts = [float(x) for x in lines[0].rsplit(" ", 1)[1].split(":")]
    return sum(v * 60 ** (len(parts) - 2 - i) for i, v in enumerate(parts))


def _best_after(rows: list[dict], count: int) -> float:
    """The best objective among the first ``count`` trials, those stopped early included in the count."""
    return min(r["value"] for r in rows[:count])


def _first_reaching(rows: list[dict], limit: float) -> str:
    """The first trial (by number) whose objective is at most ``limit``, and the minutes since the first trial began."""
    from datetime import datetime

    start = datetime.fromisoformat(rows[0]["start"])
    for r in rows:
        if r["value"] <= limit:
            minutes = (datetime.fromisoformat(r["complete"]) - start).total_seconds() / 60
            return f"trial {r['number']} ({minutes:.1f} min)"
    return "-"


# The variants of the 100-trial search (full_space.sh's VARIANT and FLAGS), in the table's order.
HUNDRED_VARIANTS = {"refine2": "--refine-every 2", "bf16": "--trial-precision bfloat16",
                    "neighbour2": "--neighbour-every 2"}


def _as_loaded(directory: Path) -> tuple[int, float] | None:
    """A search that screened its trials in bfloat16: its delivered trial and that trial's
    objective as loaded (what its 3 best were re-scored to), else None."""
    report = _load(directory / "pruning_report.json")
    if not report or "rescored" not in report:
        return None
    return report["provenance"]["best_trial"], report["provenance"]["objective"]


def hundred_block(results: Path) -> str:
    """The 100-trial search as a user runs it (recipes first, today's defaults) and its variants,
    against the recorded study."""
    command = "STARTS=recipes bash benchmarks/search/full_space.sh 100"
    recorded = results / "full_space"
    searches = {"default": (results / "full_space_default", command)}
    searches.update({name: (results / f"full_space_default_{name}",
                             f'STARTS=recipes VARIANT={name} FLAGS="{flags}" bash benchmarks/search/full_space.sh 100')
                     for name, flags in HUNDRED_VARIANTS.items()})
    runs = {name: (_trials(d), d) for name, (d, _) in searches.items()}
    runs = {name: run for name, run in runs.items() if run[0]}
    ref = _trials(recorded)
    if "default" not in runs or not ref:
        return f"Measured by `{command}` (pending)."
    reference = min(r["value"] for r in ref)
    ref_test = _test_ppl(recorded)
    counts = [c for c in (10, 20, 30, 50, 100) if c <= max(len(ref), *(len(t) for t, _ in runs.values()))]
    header = ["search", "trials", "wall minutes", *[f"best after {c}" for c in counts], "first <= 1.01x",
              "test WikiText-2 / PTB"]

    def row(name: str, trials: list[dict], ppl: dict | None, wall: float | None) -> str:
        cells = [f"{_best_after(trials, c):.2f}" if c <= len(trials) else "-" for c in counts]
        shown = " / ".join(f"{ppl[d]:.2f}" for d in ("wikitext2", "ptb")) if ppl else "pending"
        stopped = sum(r["state"] == "PRUNED" for r in trials)
        count = f"{len(trials)} ({stopped} stopped early)" if stopped else str(len(trials))
        shown_wall = f"{wall:.1f}" if wall is not None else "-"
        return (f"| {name} | {count} | {shown_wall} | {' | '.join(cells)} | "
                f"{_first_reaching(trials, 1.01 * reference)} | {shown} |")

    verdict = []
    for name, (trials, directory) in runs.items():
        best, test, parts = min(trials, key=lambda r: r["value"]), _test_ppl(directory), []
        loaded = _as_loaded(directory)
        if len(trials) >= len(ref) and loaded:
            ok = loaded[1] <= reference
            parts.append(f"its screened trials' 3 bests re-scored as loaded: best {loaded[1]:.2f} (trial {loaded[0]}), "
                         f"{'no worse than' if ok else '**worse than**'} the recorded {reference:.2f}")
        elif len(trials) >= len(ref):
            ok = best["value"] <= reference
            parts.append(f"best after {len(trials)} trials {best['value']:.2f} (trial {best['number']}), "
                         f"{'no worse than' if ok else '**worse than**'} the recorded {reference:.2f}")
        if test and ref_test:
            worst = max(test[d] / ref_test[d] - 1 for d in ("wikitext2", "ptb"))
            ok = worst <= TEST_TOLERANCE
            parts.append(f"its delivered model's test perplexity {'within' if ok else '**beyond**'} "
                         f"{100 * TEST_TOLERANCE:.0f} % of the recorded model's (worst split {worst:+.1%})")
        if parts:
            verdict.append(f"`{name}`: " + "; ".join(parts))
    variants = "".join(f"; `{name}`: `{searches[name][1]}`" for name in runs if name != "default")
    intro = (f"The full space at 20 % on smollm2-135m, seed 0, 2 CPU cores: `default` is the search as a user "
             f"runs it (the recipes first, the default early stop; `{command}`, outputs in "
             f"`benchmarks/results/full_space_default/`){variants}; `recorded` the reference study (no starting "
             f"points, the percentile early stop; `benchmarks/results/full_space/`). Best objective after N trials "
             f"(1.01x = {1.01 * reference:.1f} of the recorded best {reference:.2f}); minutes count from the "
             f"first trial's start; wall minutes are the whole command's (model loading included); the recorded "
             f"run's times are not comparable (its trials 31-100 shared the machine); test perplexity on the "
             f"full splits:")
    rows = [row(name, trials, _test_ppl(d), _wall_minutes(d)) for name, (trials, d) in runs.items()]
    text = _table(intro, header, [*rows, row("recorded", ref, ref_test, None)])
    return "\n\n".join([text, *(f"{v}." for v in verdict)])


def noise_block(r: dict | None, reference: float | None) -> str:
    """The objective's spread over calibration draws of the best configurations, against the
    1.01x / 1.03x margins of the search-speed goals."""
    if r is None:
        return "Measured by `python benchmarks/search/calibration_noise.py --data-dir DATA` (pending)."
    rows = []
    for name, c in r["configurations"].items():
        knots = ", ".join(f"{k:.2f}" for k in c["knots"]) if c.get("knots") else "-"
        rows.append(f"| {name} | {c['metric']} + {c['update']}, knots [{knots}] | {c['found_objective']:.2f} | "
                    f"{c['mean']:.2f} | {c['sd']:.2f} | {c['min']:.2f} - {c['max']:.2f} |")
    paired = "; ".join(f"{k}: {v['mean']:+.2f} (sd {v['sd']:.2f})" for k, v in r["paired_differences"].items())
    margin = (f" The 1.01x margin of the reference best is {0.01 * reference:.2f} points, the 1.03x margin "
              f"{0.03 * reference:.2f}." if reference else "")
    text = _table(f"Each search's best configuration re-scored with {r['draws']} random calibration sets of "
                  f"{r['calibration_windows']} windows (the same sets for every configuration; everything else "
                  f"kept), {r['model']} at {r['ratio']:.0%}, {r['threads']} threads (`{r['command']}`, "
                  f"{r['seconds'] / 60:.0f} min):",
                  ["search", "configuration", "its search's value (its own set)", "mean over draws", "sd",
                   "range"], rows)
    return text + f"\n\nPaired differences over the same draws: {paired}.{margin}"


def windows_block(r: dict | None) -> str:
    """What a larger calibration set does to a configuration's objective: its spread over random
    draws, its mean and a trial's seconds, per set size."""
    if r is None:
        return ("Measured by `python benchmarks/search/calibration_noise.py --data-dir DATA --draws 8 "
                "--windows 10,32,64 --configs recorded` (pending).")
    rows = []
    for name, c in r["configurations"].items():
        for size in r["window_counts"]:
            w = c[str(size)]
            rows.append(f"| {name} ({c['metric']} + {c['update']}) | {size} | {w['mean']:.2f} | {w['sd']:.2f} | "
                        f"{w['min']:.2f} - {w['max']:.2f} | {w['seconds_median']:.1f} |")
    return _table(f"The best configuration re-scored with {r['draws']} random calibration sets of each size "
                  f"(everything else kept), {r['model']} at {r['ratio']:.0%}, {r['threads']} threads "
                  f"(`{r['command']}`, {r['seconds'] / 60:.0f} min):",
                  ["configuration", "calibration windows", "mean over draws", "sd", "range", "s / trial (median)"],
                  rows)


def heldout_block(r: dict | None) -> str:
    """Whether a search's found calibration set keeps its lead over random draws on validation
    windows the objective never saw."""
    if r is None:
        return ("Measured by `python benchmarks/search/calibration_noise.py --data-dir DATA --draws 8 "
                "--heldout 128 --configs recorded` (pending).")
    rows = []
    for name, c in r["configurations"].items():
        h = c["heldout"]
        lead, held_lead = c["mean"] - c["rescored_with_its_set"], h["mean"] - h["its_set"]
        rows.append(f"| {name} | {c['rescored_with_its_set']:.2f} | {c['mean']:.2f} (sd {c['sd']:.2f}) | "
                    f"{lead:+.2f} ({lead / c['sd']:.1f} sd) | {h['its_set']:.2f} | {h['mean']:.2f} (sd {h['sd']:.2f}) | "
                    f"{held_lead:+.2f} ({held_lead / h['sd']:.1f} sd) |")
    return _table(f"The best configuration with its search's calibration set and with {r['draws']} random sets of "
                  f"{r['calibration_windows']} windows, scored by the objective (its 16 windows per dataset) and on "
                  f"{r['heldout_windows']} other validation windows per dataset that no trial saw, {r['model']} at "
                  f"{r['ratio']:.0%} (`{r['command']}`, {r['seconds'] / 60:.0f} min):",
                  ["search", "objective: its set", "objective: random sets", "its set's lead",
                   "held out: its set", "held out: random sets", "its set's lead held out"], rows)


def matching_block(r: dict | None, noise: dict | None) -> str:
    """A calibration set chosen by matching activation norms, against random sets and the found set."""
    if r is None:
        return "Measured by `python benchmarks/search/calibration_matching.py --data-dir DATA` (pending)."
    text = (f"Matched set ({r['windows']} of {r['candidates']} random pool windows, chosen in "
            f"{r['selection_seconds']:.0f} s at {r['threads']} thread(s); `{r['command']}`): objective "
            f"**{r['objective']:.2f}**, held out **{r['heldout']:.2f}**")
    c = (noise or {}).get("configurations", {}).get(r["configuration"])
    if c and "heldout" in c:
        text += (f"; random sets {c['mean']:.2f} (sd {c['sd']:.2f}) / {c['heldout']['mean']:.2f} "
                 f"(sd {c['heldout']['sd']:.2f}), the search's found set {c['rescored_with_its_set']:.2f} / "
                 f"{c['heldout']['its_set']:.2f}")
    return text + "."


def features_block(r: dict | None) -> str:
    """How much of a calibration set's value simple window features explain, beyond its configuration."""
    if r is None:
        return "Measured by `python benchmarks/search/calibration_features.py --data-dir DATA` (pending)."
    rows = [f"| configuration only | {r['configuration_only']:.4f} | - |"]
    for name, f in r["features"].items():
        corr = "-" if f["residual_correlation"] is None else f"{f['residual_correlation']:+.2f}"
        rows.append(f"| + {name} | {f['cv_rmse']:.4f} | {corr} |")
    return _table(f"{r['trials']} complete wanda-sp + reconstruct trials of the three 100-trial searches at 20 % "
                  f"({r['windows']} distinct windows), log objective (sd {r['value_sd_log']:.4f}) regressed on the "
                  f"configuration (allocation mode, knots) with and without one feature of the set, {r['folds']}-fold "
                  f"held-out error; r: the feature's correlation with what the configuration leaves unexplained "
                  f"(`{r['command']}`, {r['seconds'] / 60:.0f} min):",
                  ["model of the log objective", "held-out RMSE", "r with the residual"], rows)


def neighbours_block(r: dict | None, noise: dict | None) -> str:
    """How good the neighbours of a found calibration set are (k of its windows replaced), against
    the found set and random sets."""
    if r is None:
        return ("Measured by `python benchmarks/search/calibration_noise.py --data-dir DATA --draws 8 "
                "--mutate 1,2,4 --configs recorded` (pending).")
    rows = []
    for name, c in r["configurations"].items():
        own = c["rescored_with_its_set"]
        rows.append(f"| {name} | its set | {own:.2f} | - | - | - |")
        for k in sorted((key for key in c if key.isdigit()), key=int):
            m = c[k]
            better = sum(v < own for v in m["draws"])
            rows.append(f"| {name} | {k} of {r['calibration_windows']} replaced | {m['mean']:.2f} | {m['sd']:.2f} | "
                        f"{m['min']:.2f} - {m['max']:.2f} | {better} of {len(m['draws'])} |")
        random_sets = (noise or {}).get("configurations", {}).get(name)
        if random_sets:
            better = sum(v < own for v in random_sets["draws"])
            rows.append(f"| {name} | random sets (above) | {random_sets['mean']:.2f} | {random_sets['sd']:.2f} | "
                        f"{random_sets['min']:.2f} - {random_sets['max']:.2f} | {better} of "
                        f"{len(random_sets['draws'])} |")
    return _table(f"The best configuration with its search's calibration set, and with {r['draws']} neighbours of "
                  f"that set for each count of windows replaced by random pool windows (everything else kept), "
                  f"{r['model']} at {r['ratio']:.0%}, {r['threads']} threads (`{r['command']}`, "
                  f"{r['seconds'] / 60:.0f} min):",
                  ["search", "calibration set", "mean", "sd", "range", "better than its set"], rows)


def fidelity_block(r: dict | None) -> str:
    """A configuration's objective and cost at each count of reconstruction windows."""
    if r is None:
        return "Measured by `python benchmarks/search/reconstruction_fidelity.py --data-dir DATA` (pending)."
    full = max(r["counts"])
    rows = [f"| {count} | {x['mean']:.2f} | {x['mean_shift']:+.2f} | {x['spearman_with_full']:.2f} | "
            f"{x['gram_seconds']:.0f} s | {x['trial_seconds']:.1f} s |"
            for count in r["counts"] for x in [r["rows"][str(count)]]]
    return _table(f"The recorded best configuration ({r['configuration']['metric']} + {r['configuration']['update']}) "
                  f"on {r['sets']} calibration sets (its own and {r['sets'] - 1} random ones), its reconstruction "
                  f"fitted on Grams of each count of windows, {r['model']} at {r['ratio']:.0%}, {r['threads']} "
                  f"threads (`{r['command']}`, {r['seconds'] / 60:.0f} min):",
                  ["reconstruction windows", "mean objective", f"against {full}, paired", f"Spearman with {full}",
                   "Gram pass", "trial"], rows)


def forward_block(r: dict | None) -> str:
    """A trial's validation forward under masks against on swapped-in pruned modules."""
    if r is None:
        return "Measured by `python benchmarks/search/trial_forward.py --data-dir DATA` (pending)."
    rows = [f"| {x['ratio']:.0%} | {x['configuration']} | {x['masks_s']:.2f} s | {x['swap_s']:.2f} s | "
            f"**{x['speedup']:.2f}x** | {x['objective_masks']:.3f} / {x['objective_swap']:.3f} | "
            f"{x['relative_difference']:.0e} |" for x in r["rows"]]
    return _table(f"One plan per row evaluated {r['repeats']} times each way, alternating, on {r['model']} with the "
                  f"search's 32 validation windows, {r['threads']} threads (`{r['command']}`, "
                  f"{r['seconds'] / 60:.0f} min); medians, the swap's building and removal included:",
                  ["ratio", "configuration", "masks", "swapped-in pruned modules", "faster",
                   "objective (masks / swap)", "relative difference"], rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    page = PAGE.read_text()
    page = rendering.with_block(page, "trial-cost", SCRIPT, trial_block(_load(RESULTS / "gradient_free_trial.json")))
    page = rendering.with_block(page, "trial-speed", SCRIPT, speed_block(_load(RESULTS / "trial_speed.json")))
    page = rendering.with_block(page, "trial-forward", SCRIPT, forward_block(_load(RESULTS / "trial_forward.json")))
    page = rendering.with_block(page, "time-to-quality", SCRIPT,
                                quality_block(_load(RESULTS / "time_to_quality" / "summary.json")))
    page = rendering.with_block(page, "gram-pass", SCRIPT, gram_block(_load(RESULTS / "gram_pass.json")))
    page = rendering.with_block(page, "full-space-default", SCRIPT,
                                hundred_block(RESULTS))
    recorded = _trials(RESULTS / "full_space")
    page = rendering.with_block(page, "calibration-noise", SCRIPT,
                                noise_block(_load(RESULTS / "calibration_noise.json"),
                                            min(r["value"] for r in recorded) if recorded else None))
    page = rendering.with_block(page, "calibration-windows", SCRIPT,
                                windows_block(_load(RESULTS / "calibration_noise_windows.json")))
    page = rendering.with_block(page, "calibration-heldout", SCRIPT,
                                heldout_block(_load(RESULTS / "calibration_noise_heldout.json")))
    page = rendering.with_block(page, "reconstruction-fidelity", SCRIPT,
                                fidelity_block(_load(RESULTS / "reconstruction_fidelity.json")))
    page = rendering.with_block(page, "calibration-neighbours", SCRIPT,
                                neighbours_block(_load(RESULTS / "calibration_noise_mutants.json"),
                                                 _load(RESULTS / "calibration_noise.json")))
    page = rendering.with_block(page, "calibration-matching", SCRIPT,
                                matching_block(_load(RESULTS / "calibration_matching.json"),
                                               _load(RESULTS / "calibration_noise_heldout.json")))
    page = rendering.with_block(page, "calibration-features", SCRIPT,
                                features_block(_load(RESULTS / "calibration_features.json")))
    for part in ("samplers", "workers", "precision", "neighbour", "swap"):
        page = rendering.with_block(page, f"time-to-quality-{part}", SCRIPT,
                                    quality_block(_load(RESULTS / "time_to_quality" / part / "summary.json"),
                                                  f"benchmarks/results/time_to_quality/{part}/time_to_quality.png"))
    return rendering.write_or_check({PAGE: page}, args.check, f"python {SCRIPT}")


if __name__ == "__main__":
    sys.exit(main())
