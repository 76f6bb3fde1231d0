"""Which search objective predicts zero-shot accuracy? Every objective against the zero-shot protocol
and test perplexity, over >= 30 pruned SmolLM2-135M models at 20 %.

The models: every built-in metric with its defaults and the recipes (the configurations a search
starts from or a user types), and 18 trials of the recorded full-space search
(``benchmarks/results/full_space/trials.csv``, rebuilt from their parameters with the same space):
the best of every (metric, update) pair it tried and the rest evenly over the ranks of their
objective, so that good, middling and poor models all enter.
For each model, resumable step by step (one row per model in ``rows.json``, committed as it lands):

1. ``adapruner prune --config`` of the configuration (the delivered model of that trial);
2. the objectives on the search's validation windows (16 per dataset of WikiText-2 and PTB valid,
   128 tokens, what a trial sees): ``ppl`` (the paper's), ``kl`` with the dense top-512 kept and
   with the whole vocabulary, each with the seconds its scoring took; and (step ``mix``, last)
   ``mix``, perplexity over four domains (adds held-back book windows and Alpaca answers);
3. the zero-shot proxy: the first 200 examples of each of the ARC-e, ARC-c and OBQA development
   splits (never reported; per-example outcomes kept, so smaller proxies are subsets of them);
4. the zero-shot target: the six tasks without BoolQ on fixed leading subsets (``STUDY_COUNTS``,
   2,900 examples, per-example outcomes kept, compactly). Their sizes follow from this machine's
   cost per example (2 cores, float32: HellaSwag 0.53 s, ARC 0.35 s, PIQA 0.21 s, OBQA 0.17 s,
   WinoGrande 0.16 s; the full sets would take 2.4 hours per model) and give every model's
   six-task mean an SE of ~0.9 points and the difference of two models a paired SE of ~0.8
   (0.79 between the best full-space trial and element1; 0.5 would take ~2.5x the examples);
5. WikiText-2 and PTB test perplexity (LLM-Pruner's protocol, the full test sets), the slowest step,
   run once every model has steps 2-4.

    python benchmarks/quality/objective_study.py --data-dir ../shared/data            # resumable
    python benchmarks/quality/objective_study.py --data-dir ../shared/data --max-models 2 --zeroshot-limit 20  # smoke

``render_objective_study.py`` turns the rows into the correlation table and scatter plots.
Results: ``benchmarks/results/objective_study/`` (``rows.json``, ``zeroshot/<model>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "benchmarks" / "results" / "objective_study"
sys.path.insert(0, str(REPO / "benchmarks"))
import bench  # noqa: E402
TRIALS = REPO / "benchmarks" / "results" / "full_space" / "trials.csv"
MODEL = "smollm2-135m"
RATIO = 0.2
# Configurations that need no search: each metric with its defaults, and the recipes.
BASELINES = {
    "element1": {"metric": {"name": "element1"}},
    "element2": {"metric": {"name": "element2"}},
    "vector": {"metric": {"name": "vector"}},
    "l1": {"metric": {"name": "l1"}},
    "l2": {"metric": {"name": "l2"}},
    "adapruner-eq5": {"metric": {"name": "adapruner"}},
    "saap": {"metric": {"name": "saap"}, "allocation": {"mode": "saap"}},
    "wanda-sp": {"metric": {"name": "wanda-sp"}},
    "flap": {"metric": {"name": "flap"}},
    "obs": {"metric": {"name": "obs"}},
    "flap-bias": "flap-bias",
    "wanda-sp-reconstruct": "wanda-sp-reconstruct",
}
SEARCH_TRIALS = 18
PROXY_TASKS = ("arc_easy_dev", "arc_challenge_dev", "openbookqa_dev")
PROXY_COUNT = 200
# The target: the six tasks without BoolQ (whose "yes" majority hides differences), first n of each.
STUDY_COUNTS = {"piqa": 500, "hellaswag": 400, "winogrande": 500, "arc_easy": 500, "arc_challenge": 500,
                "openbookqa": 500}
# Models alternate between baselines and search trials of spread ranks, so that the first sittings'
# rows already span the range of quality.
FIRST = ("dense", "element1", "trial-best", "flap-bias", "l2", "wanda-sp-reconstruct", "trial-mid")


def configurations(data_dir: Path, trials: int) -> dict[str, dict]:
    """Name -> PruneConfig JSON of every model of the study (baselines first, then search trials)."""
    from adapruner.config import PruneConfig
    from adapruner.recipes import get_recipe

    out = {}
    for name, spec in BASELINES.items():
        cfg = get_recipe(spec).config() if isinstance(spec, str) else PruneConfig.from_json(spec)
        out[name] = cfg.to_json()
    out.update(search_trial_configs(data_dir, trials))
    return out


def search_trial_configs(data_dir: Path, count: int) -> dict[str, dict]:
    """``count`` trials of the recorded full-space search, rebuilt from their parameters
    (``optuna.trial.FixedTrial`` through the same space): the best trial of every (metric, update)
    pair the search tried, then trials evenly over the ranks of the rest, so that both the space's
    breadth and the near-optimal candidates a search must tell apart enter."""
    import optuna

    rows, space, pool_size = bench.recorded_trials(TRIALS, MODEL, data_dir)
    rows.sort(key=lambda r: float(r["value"]))
    picks, seen = [], set()
    for r in rows:
        pair = (r["params"]["metric"], r["params"].get("update"))
        if pair not in seen and len(picks) < count:
            seen.add(pair)
            picks.append(r)
    rest = [r for r in rows if r not in picks]
    more = count - len(picks)
    picks += [rest[round(i * (len(rest) - 1) / (more - 1))] for i in range(more)] if more > 1 else rest[:more]
    picks.sort(key=lambda r: float(r["value"]))
    # named by rank among the picks, then trial number: sorted names run from the best trial down
    return {f"trial-r{rank:02d}-n{int(r['number']):03d}":
            space.suggest(optuna.trial.FixedTrial(r["params"]), pool_size).to_json()
            for rank, r in enumerate(picks, 1)}


def adapruner(*args: str) -> None:
    """One adapruner command in a child process (its own torch threads, its own peak memory)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "adapruner.cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"adapruner {' '.join(args[:3])} failed: {proc.stderr.strip().splitlines()[-1:]}")


def objectives(model: str, data_dir: Path, dense_cache: dict) -> dict:
    """Every objective of the pruned model on the search's validation windows, with scoring time."""
    import torch

    from adapruner.core.lm import TokenNLL
    from adapruner.models.load import load_model
    from adapruner.objectives.kl import dense_reference, kl_sum
    from adapruner.search.objective import ObjectiveProtocol, load_eval_windows

    protocol = ObjectiveProtocol()
    if not dense_cache:
        dense = load_model(MODEL, device="cpu")
        windows = load_eval_windows(dense.tokenizer, data_dir, protocol)
        with torch.no_grad():
            logits = {n: [dense.model(input_ids=b).logits for b in w.split(protocol.batch_size)]
                      for n, w in windows.items()}
        dense_cache.update(windows=windows, refs={k: {n: [dense_reference(x, k) for x in v] for n, v in logits.items()}
                                                  for k in (512, 0)})
        del dense, logits
    pruned = load_model(model, device="cpu")
    out: dict = {"ppl": {}, "kl512": {}, "kl_full": {},
                 "seconds": {"forward": 0.0, "ppl": 0.0, "kl512": 0.0, "kl_full": 0.0}}
    for name, w in dense_cache["windows"].items():
        nll, kl = TokenNLL(), {512: 0.0, 0: 0.0}
        count = 0
        for j, batch in enumerate(w.split(protocol.batch_size)):
            t = time.perf_counter()
            with torch.no_grad():
                logits = pruned.model(input_ids=batch).logits
            out["seconds"]["forward"] += time.perf_counter() - t
            t = time.perf_counter()
            nll.add(logits, batch)
            out["seconds"]["ppl"] += time.perf_counter() - t
            for k, key in ((512, "kl512"), (0, "kl_full")):
                t = time.perf_counter()
                kl[k] += float(kl_sum(logits[:, :-1], dense_cache["refs"][k][name][j]))
                out["seconds"][key] += time.perf_counter() - t
            count += batch.shape[0] * (batch.shape[1] - 1)
        out["ppl"][name] = nll.ppl()
        out["kl512"][name], out["kl_full"][name] = kl[512] / count, kl[0] / count
    for key in ("ppl", "kl512", "kl_full"):
        out[key]["mean"] = sum(out[key].values()) / len(out[key])
    return out


def mixed_perplexity(model: str, data_dir: Path) -> dict:
    """The ``mix`` objective (perplexity on WikiText-2 and PTB validation, held-back book windows,
    Alpaca answers; the search's 16 windows of 128 tokens each) of the pruned model, with its time."""
    import torch

    from adapruner.core.lm import TokenNLL
    from adapruner.models.load import load_model
    from adapruner.objectives import OBJECTIVES
    from adapruner.search.objective import ObjectiveProtocol, load_eval_windows

    loaded = load_model(model, device="cpu")
    protocol = ObjectiveProtocol(datasets=OBJECTIVES.get("mix").datasets)
    windows = load_eval_windows(loaded.tokenizer, data_dir, protocol)
    out, t = {}, time.perf_counter()
    for name, w in windows.items():
        nll = TokenNLL()
        with torch.no_grad():
            for batch in w.split(protocol.batch_size):
                nll.add(loaded.model(input_ids=batch).logits, batch)
        out[name] = nll.ppl()
    out["mean"] = sum(out.values()) / len(out)
    out["seconds"] = round(time.perf_counter() - t, 2)
    return out


def compact(zeroshot: dict) -> dict:
    """An eval report's zero-shot part with every task's outcomes as one string of 0/1."""
    out = {}
    for task in zeroshot["average"]["tasks"]:
        r = dict(zeroshot[task])
        r["correct"] = "".join(str(int(x)) for x in r.pop("correct"))
        r.pop("doc_ids", None)  # the first n documents, in order
        out[task] = r
    return {"tasks": out, "summary": zeroshot["summary"], "protocol": zeroshot["protocol"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--scratch", type=Path, default=Path(os.environ.get("ADAPRUNER_BENCH_DIR", "/tmp/adapruner-bench")),
                   help="where the pruned models stay (~0.5 GB each), so that an objective added later is scored "
                        "without pruning again; delete it when the study is done")
    p.add_argument("--max-models", type=int, default=None, help="stop after this many models (a sitting)")
    p.add_argument("--zeroshot-limit", type=int, default=None, help="smoke runs only: documents per task")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    data_dir = Path(args.data_dir).resolve()
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    rows_path = results / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    configs_path = results / "configs.json"
    if not configs_path.is_file():
        configs_path.write_text(json.dumps(configurations(data_dir, SEARCH_TRIALS), indent=1) + "\n")
    configs = ordered({"dense": None, **json.loads(configs_path.read_text())})
    limit = args.zeroshot_limit
    common = ["--device", "cpu", "--data-dir", str(data_dir)]
    dense_cache: dict = {}
    # Test perplexity (~13 min a model, the slowest step and no objective's input) runs once every
    # model has the rest, so that each sitting adds whole rows of the agreement table first.
    for phase in (("objectives", "proxy", "zeroshot", "mix"), ("test_ppl",)):
        done_now = 0
        for name, config in configs.items():
            row = rows.get(name, {"config": config})
            if all(step in row for step in phase):
                continue
            work = args.scratch / "objective_study" / name
            model = MODEL if config is None else str(work / "run" / "model")
            if config is not None and not Path(model).is_dir():
                work.mkdir(parents=True, exist_ok=True)
                (work / "config.json").write_text(json.dumps(config))
                adapruner("prune", "--model", MODEL, "--ratio", str(RATIO), "--config", str(work / "config.json"),
                          "--out", str(work / "run"), "--overwrite", *common)
            steps = {
                "objectives": lambda: objectives(model, data_dir, dense_cache),
                "proxy": lambda: _study_zeroshot(model, work, name, results, "proxy",
                                                 {t: limit or PROXY_COUNT for t in PROXY_TASKS}, common),
                "zeroshot": lambda: _study_zeroshot(model, work, name, results, "zeroshot",
                                                    {t: limit or n for t, n in STUDY_COUNTS.items()}, common),
                "mix": lambda: mixed_perplexity(model, data_dir),
                "test_ppl": lambda: _test_ppl(model, work, common),
            }
            for step in phase:
                if step in row:
                    continue
                print(f"== {name}: {step}", flush=True)
                t = time.perf_counter()
                row[step] = steps[step]()
                row.setdefault("seconds", {})[step] = round(time.perf_counter() - t, 1)
                rows[name] = row
                tmp = rows_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
                os.replace(tmp, rows_path)
            done_now += 1
            if args.max_models and done_now >= args.max_models:
                break
    return 0


def ordered(configs: dict) -> dict:
    """The models in study order: ``FIRST`` (``trial-best`` / ``trial-mid``: the best and the median
    of the picked trials), then baselines and trials alternately."""
    trials = sorted(k for k in configs if k.startswith("trial-"))
    alias = {"trial-best": trials[0] if trials else None, "trial-mid": trials[len(trials) // 2] if trials else None}
    head = [alias.get(k, k) for k in FIRST if alias.get(k, k) in configs]
    rest_b = [k for k in configs if k not in head and not k.startswith("trial-")]
    rest_t = [k for k in trials if k not in head]
    tail = [k for pair in zip(rest_b, rest_t) for k in pair] + rest_b[len(rest_t):] + rest_t[len(rest_b):]
    return {k: configs[k] for k in head + tail}


def _study_zeroshot(model: str, work: Path, name: str, results: Path, kind: str, counts: dict[str, int],
                    common: list[str]) -> dict:
    """``counts``' tasks (first n examples each; one evaluation per distinct n), their outcomes
    written to ``results/<kind>/<name>.json`` and their summary returned."""
    from adapruner.eval.significance import summarise

    tasks: dict = {}
    for n in sorted(set(counts.values())):
        group = [t for t, m in counts.items() if m == n]
        out = work / f"{kind}-{n}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        adapruner("eval", "--model", model, "--tasks", ",".join(group), "--limit", str(n), "--out", str(out),
                  "--overwrite", *common)
        zs = json.loads(out.read_text())["zeroshot"]
        tasks.update({t: zs[t] for t in group})
        protocol = zs["protocol"]
    tasks = {t: tasks[t] for t in counts}
    summary = summarise(tasks)
    protocol.update(limit=counts, task_versions=None)
    zs = {**tasks, "average": {"tasks": list(counts)}, "summary": summary, "protocol": protocol}
    (results / kind).mkdir(parents=True, exist_ok=True)
    (results / kind / f"{name}.json").write_text(json.dumps(compact(zs)) + "\n")
    return summary


def _test_ppl(model: str, work: Path, common: list[str]) -> dict:
    out = work / "test.json"
    adapruner("eval", "--model", model, "--ppl", "wikitext2,ptb", "--out", str(out), "--overwrite", *common)
    return {r["dataset"]: r["ppl"] for r in json.loads(out.read_text())["perplexity"]}


if __name__ == "__main__":
    raise SystemExit(main())
