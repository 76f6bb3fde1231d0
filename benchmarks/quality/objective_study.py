"""Which search objective predicts zero-shot accuracy? Every objective against the zero-shot protocol
and test perplexity, over >= 30 pruned SmolLM2-135M models at 20 %.

The models: every built-in metric with its defaults and the recipes (the configurations a search
starts from or a user types), and trials of the recorded full-space search
(``benchmarks/results/full_space/trials.csv``, rebuilt from their parameters with the same space),
chosen evenly over the ranks of their objective so that good, middling and poor models all enter.
For each model, resumable step by step (one row per model in ``rows.json``, committed as it lands):

1. ``adapruner prune --config`` of the configuration (the delivered model of that trial);
2. the objectives on the search's validation windows (16 per dataset of WikiText-2 and PTB valid,
   128 tokens, what a trial sees): ``ppl`` (the paper's), ``kl`` with the dense top-512 kept and
   with the whole vocabulary, each with the seconds its scoring took;
3. the zero-shot proxy: ARC-e, ARC-c and OBQA development splits (1369 examples, never reported);
4. the zero-shot protocol: the seven tasks on their full sets (per-example outcomes kept, compactly);
5. WikiText-2 and PTB test perplexity (LLM-Pruner's protocol).

    python benchmarks/quality/objective_study.py --data-dir ../shared/data            # resumable
    python benchmarks/quality/objective_study.py --data-dir ../shared/data --max-models 2 --zeroshot-limit 20  # smoke

``render_objective_study.py`` turns the rows into the correlation table and scatter plots.
Results: ``benchmarks/results/objective_study/`` (``rows.json``, ``zeroshot/<model>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
SEARCH_TRIALS = 24
PROXY_TASKS = ("arc_easy_dev", "arc_challenge_dev", "openbookqa_dev")


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
    """``count`` trials of the recorded full-space search, evenly over the ranks of their values,
    rebuilt from their parameters (``optuna.trial.FixedTrial`` through the same space)."""
    import optuna

    rows, space, pool_size = bench.recorded_trials(TRIALS, MODEL, data_dir)
    rows.sort(key=lambda r: float(r["value"]))
    picks = [rows[round(i * (len(rows) - 1) / (count - 1))] for i in range(count)] if count > 1 else rows[:count]
    return {f"trial-{int(r['number']):03d}": space.suggest(optuna.trial.FixedTrial(r["params"]), pool_size).to_json()
            for r in picks}


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
    out: dict = {"ppl": {}, "kl512": {}, "kl_full": {}, "seconds": {"ppl": 0.0, "kl512": 0.0, "kl_full": 0.0}}
    for name, w in dense_cache["windows"].items():
        nll, kl = TokenNLL(), {512: 0.0, 0: 0.0}
        count = 0
        for j, batch in enumerate(w.split(protocol.batch_size)):
            with torch.no_grad():
                logits = pruned.model(input_ids=batch).logits
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
    p.add_argument("--scratch", type=Path, default=Path(os.environ.get("ADAPRUNER_BENCH_DIR", "/tmp/adapruner-bench")))
    p.add_argument("--max-models", type=int, default=None, help="stop after this many models (a sitting)")
    p.add_argument("--zeroshot-limit", type=int, default=None, help="smoke runs only: documents per task")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    data_dir = Path(args.data_dir).resolve()
    results = args.results
    (results / "zeroshot").mkdir(parents=True, exist_ok=True)
    rows_path = results / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    configs_path = results / "configs.json"
    if not configs_path.is_file():
        configs_path.write_text(json.dumps(configurations(data_dir, SEARCH_TRIALS), indent=1) + "\n")
    configs = {"dense": None, **json.loads(configs_path.read_text())}
    limit = ["--limit", str(args.zeroshot_limit)] if args.zeroshot_limit else []
    common = ["--device", "cpu", "--data-dir", str(data_dir)]
    dense_cache: dict = {}
    done_now = 0
    for name, config in configs.items():
        row = rows.get(name, {"config": config})
        work = args.scratch / "objective_study" / name
        model = MODEL if config is None else str(work / "run" / "model")
        if config is not None and not Path(model).is_dir() and "test_ppl" not in row:
            work.mkdir(parents=True, exist_ok=True)
            (work / "config.json").write_text(json.dumps(config))
            adapruner("prune", "--model", MODEL, "--ratio", str(RATIO), "--config", str(work / "config.json"),
                      "--out", str(work / "run"), "--overwrite", *common)
        steps = [
            ("objectives", lambda: objectives(model, data_dir, dense_cache)),
            ("proxy", lambda: _zeroshot(model, work / "proxy.json", PROXY_TASKS, limit, common)["summary"]),
            ("zeroshot", lambda: _full_zeroshot(model, work, name, results, limit, common)),
            ("test_ppl", lambda: _test_ppl(model, work, common)),
        ]
        for step, run in steps:
            if step in row:
                continue
            print(f"== {name}: {step}", flush=True)
            t = time.perf_counter()
            row[step] = run()
            row.setdefault("seconds", {})[step] = round(time.perf_counter() - t, 1)
            rows[name] = row
            tmp = rows_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, rows_path)
        if config is not None and "test_ppl" in row:
            shutil.rmtree(work, ignore_errors=True)
        done_now += 1
        if args.max_models and done_now >= args.max_models:
            break
    return 0


def _zeroshot(model: str, out: Path, tasks, limit: list[str], common: list[str]) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    adapruner("eval", "--model", model, "--tasks", ",".join(tasks), "--out", str(out), "--overwrite", *limit, *common)
    return json.loads(out.read_text())["zeroshot"]


def _full_zeroshot(model: str, work: Path, name: str, results: Path, limit: list[str], common: list[str]) -> dict:
    from adapruner.data.zeroshot import TASKS

    zs = _zeroshot(model, work / "zeroshot.json", TASKS, limit, common)
    (results / "zeroshot" / f"{name}.json").write_text(json.dumps(compact(zs)) + "\n")
    return zs["summary"]


def _test_ppl(model: str, work: Path, common: list[str]) -> dict:
    out = work / "test.json"
    adapruner("eval", "--model", model, "--ppl", "wikitext2,ptb", "--out", str(out), "--overwrite", *common)
    return {r["dataset"]: r["ppl"] for r in json.loads(out.read_text())["perplexity"]}


if __name__ == "__main__":
    raise SystemExit(main())
