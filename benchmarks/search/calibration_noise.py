"""How much of a full-space trial's objective is the luck of its calibration draw?

A trial's calibration set is ten windows drawn from the book pool (the paper's data search), so
two trials with the same metric, update and knots but different windows score differently. This
benchmark takes the best configurations of the 100-trial full-space searches (the recorded one and
those run as a user runs them, ``full_space.sh``), keeps everything but the calibration windows,
and scores each on the same ``--draws`` random calibration sets (seeded, the same sets for every
configuration, so their differences are paired) plus the set its search found. It prints the
spread of the objective over draws, against the margins the search-speed goals are stated in
(1.01x and 1.03x of the reference best).

    python benchmarks/search/calibration_noise.py --data-dir ../shared/data --draws 8

``--windows 10,32,64 --configs recorded`` instead scores one configuration on random sets of
each size (what a larger calibration set buys: a smaller spread, a different mean, a slower
trial), into ``benchmarks/results/calibration_noise_windows.json``:

    python benchmarks/search/calibration_noise.py --data-dir ../shared/data --draws 8 --windows 10,32,64 --configs recorded

``--heldout N`` also scores every model on N validation windows per dataset that the objective
never sees (evenly spread over the rest of each split): whether the found set's lead over random
draws holds on data the search did not select on, into
``benchmarks/results/calibration_noise_heldout.json``:

    python benchmarks/search/calibration_noise.py --data-dir ../shared/data --draws 8 --heldout 128 --configs recorded

``--mutate 1,2,4`` instead scores, for each count k, ``--draws`` neighbours of the set the search
found, each with k of its windows replaced by random pool windows: whether sets near a good set are
good (a local move in the data dimension can then improve on a found set) or as good as random
ones, into ``benchmarks/results/calibration_noise_mutants.json``:

    python benchmarks/search/calibration_noise.py --data-dir ../shared/data --draws 8 --mutate 1,2,4 --configs recorded

Results: ``benchmarks/results/calibration_noise.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
# The searches whose best configuration is re-scored (name -> results directory).
SEARCHES = {"recorded": "full_space", "default": "full_space_default", "refine2": "full_space_default_refine2"}


def main() -> int:
    import torch

    from adapruner.config import PruneConfig
    from adapruner.core.io import write_json
    from adapruner.core.versions import versions
    from adapruner.data.books import calibration_pool
    from adapruner.models.load import load_model
    from adapruner.search.objective import Objective, ObjectiveProtocol, load_eval_windows
    from adapruner.search.space import SearchSpace

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--draws", type=int, default=8, help="random calibration sets per configuration")
    p.add_argument("--windows", default=None,
                   help="comma-separated calibration set sizes to compare (default: each search's own size)")
    p.add_argument("--configs", default=",".join(SEARCHES), help=f"which searches' best configurations ({', '.join(SEARCHES)})")
    p.add_argument("--heldout", type=int, default=None,
                   help="also score on this many held-out validation windows per dataset")
    p.add_argument("--mutate", default=None,
                   help="comma-separated counts of the found set's windows to replace (neighbours of the found set)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    wanted = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(wanted) - set(SEARCHES)
    if unknown:
        p.error(f"unknown --configs {sorted(unknown)}; choose from {', '.join(SEARCHES)}")
    sizes = [int(n) for n in args.windows.split(",")] if args.windows else None
    mutations = [int(n) for n in args.mutate.split(",")] if args.mutate else None
    if sum(map(bool, (sizes, args.heldout, mutations))) > 1:
        p.error("--windows, --heldout and --mutate are separate studies: choose one")
    suffix = "_windows" if sizes else "_heldout" if args.heldout else "_mutants" if mutations else ""
    out = Path(args.out or RESULTS / f"calibration_noise{suffix}.json")

    configs = {}
    for name in wanted:
        path = RESULTS / SEARCHES[name] / "best_config.json"
        if path.is_file():
            recorded = json.loads(path.read_text())
            configs[name] = (PruneConfig.from_json(recorded["config"]), recorded["provenance"]["objective"])
    if not configs:
        p.error("no best_config.json of the chosen searches under benchmarks/results; run benchmarks/search/full_space.sh first")
    loaded = load_model(args.model, device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    pool = calibration_pool(tok, args.data_dir)
    windows = load_eval_windows(tok, args.data_dir, ObjectiveProtocol())
    factors = SearchSpace.load("full").element_factors()
    objective = Objective(model, pool, windows, args.ratio, element_factors=factors)
    heldout = None
    if args.heldout:
        heldout = Objective(model, pool, heldout_windows(tok, args.data_dir, ObjectiveProtocol(), args.heldout),
                            args.ratio, element_factors=factors)
        heldout.update_cache = objective.update_cache  # the dense Grams do not depend on the windows scored
    t0 = time.perf_counter()
    if sizes:
        result = window_counts(objective, configs, len(pool), sizes, args.draws)
    elif mutations:
        result = neighbours(objective, configs, len(pool), mutations, args.draws)
    else:
        result = draw_spread(objective, configs, len(pool), args.draws, heldout)
    if args.heldout:
        result["heldout_windows"] = args.heldout
    result.update({"model": args.model, "ratio": args.ratio, "draws": args.draws,
                   "command": f"python benchmarks/search/calibration_noise.py --data-dir DATA --draws {args.draws}"
                              + (f" --windows {args.windows}" if sizes else "")
                              + (f" --heldout {args.heldout}" if args.heldout else "")
                              + (f" --mutate {args.mutate}" if mutations else "")
                              + (f" --configs {args.configs}" if args.configs != ",".join(SEARCHES) else ""),
                   "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads(),
                   "versions": versions("optuna")})
    write_json(out, result)
    return 0


def heldout_windows(tokenizer, data_dir, protocol, count: int) -> dict:
    """``count`` validation windows per dataset of ``protocol``, evenly spread over those the
    objective does not use (the same split, disjoint windows)."""
    from adapruner.search.objective import load_eval_windows, spread_indices, spread_windows

    every = load_eval_windows(tokenizer, data_dir, replace(protocol, windows=10 ** 9))
    out = {}
    for name, windows in every.items():
        used = set(spread_indices(len(windows), protocol.windows))
        rest = windows[[i for i in range(len(windows)) if i not in used]]
        out[name] = spread_windows(rest, count)
    return out


def _draws(pool_size: int, size: int, count: int) -> list[list[int]]:
    """``count`` random calibration sets of ``size`` windows, the same for every configuration."""
    rng = random.Random(0)
    return [sorted(rng.sample(range(pool_size), size)) for _ in range(count)]


def _score(objective, config, indices: list[int]) -> tuple[float, float]:
    """The objective of ``config`` with its calibration set replaced, and its seconds."""
    config.calibration.indices = list(indices)
    config.calibration.num_samples = len(indices)
    start = time.perf_counter()
    value = objective(config).value
    return value, time.perf_counter() - start


def _stats(values: list[float]) -> dict:
    return {"draws": values, "mean": statistics.mean(values), "sd": statistics.stdev(values),
            "min": min(values), "max": max(values)}


def draw_spread(objective, configs: dict, pool_size: int, count: int, heldout=None) -> dict:
    """Each configuration on the same random sets of its own size, paired across configurations
    (and, with ``heldout``, each model also on the held-out windows)."""
    size = len(next(iter(configs.values()))[0].calibration.indices)
    draws = _draws(pool_size, size, count)
    rows = {}
    for name, (config, found) in configs.items():
        own_set = list(config.calibration.indices)
        own = objective(config).value  # the set its search found (reproduces the search's value)
        values, held = [], []
        for indices in draws:
            values.append(_score(objective, config, indices)[0])
            if heldout is not None:
                held.append(heldout(config).value)
            print(f"{name}: draw {len(values)}: {values[-1]:.2f}" + (f", held out {held[-1]:.2f}" if held else ""),
                  flush=True)
        rows[name] = {"found_objective": found, "rescored_with_its_set": own, **_stats(values),
                      "knots": config.allocation.options.get("knots"), "metric": config.metric.name,
                      "update": config.update.name}
        if heldout is not None:
            config.calibration.indices = own_set
            rows[name]["heldout"] = {"its_set": heldout(config).value, **_stats(held)}
            print(f"{name}: held out: its set {rows[name]['heldout']['its_set']:.2f}; draws mean "
                  f"{rows[name]['heldout']['mean']:.2f} sd {rows[name]['heldout']['sd']:.2f}", flush=True)
        print(f"{name}: its set {own:.2f}; {count} draws mean {rows[name]['mean']:.2f} sd {rows[name]['sd']:.2f} "
              f"[{rows[name]['min']:.2f}, {rows[name]['max']:.2f}]", flush=True)
    names = list(rows)
    paired = {f"{a} - {b}": [x - y for x, y in zip(rows[a]["draws"], rows[b]["draws"])]
              for i, a in enumerate(names) for b in names[i + 1:]}
    print(json.dumps({k: round(statistics.mean(v), 2) for k, v in paired.items()}), flush=True)
    return {"calibration_windows": size, "configurations": rows,
            "paired_differences": {k: {"mean": statistics.mean(v), "sd": statistics.stdev(v)} for k, v in paired.items()}}


def window_counts(objective, configs: dict, pool_size: int, sizes: list[int], count: int) -> dict:
    """Each configuration on ``count`` random sets of every size in ``sizes``, with each trial's seconds."""
    rows: dict = {}
    for name, (config, _found) in configs.items():
        rows[name] = {}
        for size in sizes:
            values, seconds = [], []
            for indices in _draws(pool_size, size, count):
                value, took = _score(objective, config, indices)
                values.append(value)
                seconds.append(took)
                print(f"{name}: {size} windows, draw {len(values)}: {value:.2f} ({took:.1f} s)", flush=True)
            rows[name][str(size)] = {**_stats(values), "seconds_median": statistics.median(seconds)}
            r = rows[name][str(size)]
            print(f"{name}: {size} windows: mean {r['mean']:.2f} sd {r['sd']:.2f} [{r['min']:.2f}, {r['max']:.2f}], "
                  f"{r['seconds_median']:.1f} s / trial", flush=True)
        rows[name]["knots"] = config.allocation.options.get("knots")
        rows[name]["metric"], rows[name]["update"] = config.metric.name, config.update.name
    return {"window_counts": sizes, "configurations": rows}


def neighbours(objective, configs: dict, pool_size: int, counts: list[int], draws: int) -> dict:
    """Each configuration with ``draws`` neighbours of its found set for every k in ``counts``: k of
    its windows (chosen at random) replaced by random pool windows outside the set."""
    rows: dict = {}
    for name, (config, found) in configs.items():
        own = list(config.calibration.indices)
        rows[name] = {"found_objective": found, "rescored_with_its_set": objective(config).value}
        rng = random.Random(0)
        outside = sorted(set(range(pool_size)) - set(own))
        for k in counts:
            values = []
            for _ in range(draws):
                kept = rng.sample(own, len(own) - k)
                added = rng.sample(outside, k)
                values.append(_score(objective, config, sorted(kept + added))[0])
                print(f"{name}: {k} replaced, neighbour {len(values)}: {values[-1]:.2f}", flush=True)
            rows[name][str(k)] = _stats(values)
            r = rows[name][str(k)]
            print(f"{name}: {k} replaced: mean {r['mean']:.2f} sd {r['sd']:.2f} [{r['min']:.2f}, {r['max']:.2f}]",
                  flush=True)
        config.calibration.indices = own
    return {"calibration_windows": len(next(iter(configs.values()))[0].calibration.indices),
            "configurations": rows}


if __name__ == "__main__":
    sys.exit(main())

