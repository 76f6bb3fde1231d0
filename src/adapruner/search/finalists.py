"""The search's finalists: the few best trials by the objective, re-scored on zero-shot accuracy
(and, after a search that screened its trials in bfloat16, re-scored as loaded).

A search objective measured on 32 validation windows ranks candidates that differ widely well, but
among the near-optimal trials at its top its differences are small and may not be the ones that
zero-shot accuracy rewards (KL divergence is reported to lose ranking power among near-dense
candidates; perplexity rewards what the two validation corpora reward). With ``finalists = K``
the K best trials (distinct configurations) each have their pruned modules swapped into the model
(the delivered model's logits) and scored on a **zero-shot proxy**: the first ``examples`` examples of each of
the development splits of ARC-Easy, ARC-Challenge and OpenBookQA, through lm-evaluation-harness
like the reported protocol, which never uses these splits. The finalist with the highest mean
accuracy is delivered (ties: the better objective). Each finalist's proxy is kept in the study
(``study.user_attrs["finalists"]``), so re-delivering a finished study does not score it again.

Its cost: one proxy per finalist (on SmolLM2-135M and 2 CPU cores, ~3 minutes for 3 x 200
examples), once per search.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from adapruner.config import PruneConfig
from adapruner.errors import AdaprunerError

PROXY_TASKS = ("arc_easy_dev", "arc_challenge_dev", "openbookqa_dev")
ATTR = "finalists"


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The ``k`` best COMPLETE trials by value, one per distinct configuration."""
    done = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None),
                  key=lambda t: (t.value, t.number))
    out, seen = [], set()
    for t in done:
        key = repr(t.user_attrs.get("config"))
        if key not in seen:
            seen.add(key)
            out.append(t)
        if len(out) == k:
            break
    return out


def proxy_key(examples: int) -> str:
    """How a proxy result is filed in the study: the examples per task decide it."""
    return f"{examples}"


def score_finalists(study: optuna.Study, objective, tokenizer, data_dir: str | Path, k: int, examples: int,
                    log=print) -> tuple[FrozenTrial, dict]:
    """The finalist to deliver and the report's record of the choice (every finalist's trial,
    objective, proxy mean and SE)."""
    from adapruner.eval.zeroshot import run_zeroshot
    from adapruner.pruning.surgery import swap_pruned

    if examples < 1:
        raise AdaprunerError(f"--finalist-examples must be at least 1 (got {examples})")
    finalists = top_trials(study, k)
    if not finalists:
        raise AdaprunerError("no trial of the study is complete, so there is nothing to deliver; run more trials")
    filed = dict(study.user_attrs.get(ATTR, {}).get(proxy_key(examples), {}))
    records = []
    for rank, t in enumerate(finalists, 1):
        if str(t.number) not in filed:
            log(f"finalist {rank}/{len(finalists)}: trial {t.number} (objective {t.value:.4g}) on the zero-shot proxy")
            plan = objective.plan(PruneConfig.from_json(t.user_attrs["config"]))
            handle = swap_pruned(objective.model, plan)
            try:
                zs = run_zeroshot(objective.model, tokenizer, list(PROXY_TASKS), Path(data_dir), examples, 8,
                                  log=lambda line: None)
            finally:
                handle.remove()
            filed[str(t.number)] = zs["summary"]["mean"]
            study.set_user_attr(ATTR, {**study.user_attrs.get(ATTR, {}), proxy_key(examples): filed})
        records.append({"trial": t.number, "objective": t.value, "proxy": filed[str(t.number)]})
    chosen = max(records, key=lambda r: (r["proxy"]["value"], -r["objective"]))
    report = {"count": k, "tasks": list(PROXY_TASKS), "examples_per_task": examples,
              "delivered_trial": chosen["trial"],
              "metric": "mean accuracy (acc_norm) over the tasks, with its standard error", "trials": records}
    return next(t for t in finalists if t.number == chosen["trial"]), report


# Trials screened in bfloat16 (``--trial-precision bfloat16``) are re-scored as loaded, best first:
# their values move by at most 0.5 % in bfloat16 while the bests of a search differ by more, so the
# three best screened trials hold the best one (docs/search.md).
RESCORED = 3
RESCORE_ATTR = "rescored"


def rescore_as_loaded(study: optuna.Study, objective, k: int = RESCORED,
                      extra: tuple[FrozenTrial, ...] = (), log=print) -> list[tuple[FrozenTrial, float]]:
    """The ``k`` best trials (distinct configurations), and the ``extra`` trials, each with its
    objective when the validation forward runs in the model's own precision. Filed in the study
    (``study.user_attrs["rescored"]``), so finishing a study again scores nothing twice."""
    filed = dict(study.user_attrs.get(RESCORE_ATTR, {}))
    chosen = top_trials(study, k)
    chosen += [t for t in extra if t.number not in {c.number for c in chosen}]
    for t in chosen:
        if str(t.number) not in filed:
            log(f"re-scoring trial {t.number} (objective {t.value:.4g} in bfloat16) as loaded")
            filed[str(t.number)] = objective(PruneConfig.from_json(t.user_attrs["config"]), precision="model").value
            study.set_user_attr(RESCORE_ATTR, filed)
    return [(t, filed[str(t.number)]) for t in chosen]
