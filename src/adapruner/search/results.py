"""What a study produced: its best trial and configuration, the trial table, convergence curves."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from adapruner.config import PruneConfig
from adapruner.core.io import atomic_file
from adapruner.errors import AdaprunerError


def best_trial(study: optuna.Study, phase: str | None = None, required: bool = True) -> FrozenTrial | None:
    """The COMPLETE trial with the lowest objective (optionally of one sequential phase)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and (phase is None or t.user_attrs.get("phase") == phase)]
    if not done:
        if required:
            raise AdaprunerError(f"study '{study.study_name}' has no completed trial; run more trials")
        return None
    return min(done, key=lambda t: (t.value, t.number))


def best_config(study: optuna.Study) -> tuple[PruneConfig, FrozenTrial]:
    """The :class:`PruneConfig` of the best trial."""
    trial = best_trial(study)
    return PruneConfig.from_json(trial.user_attrs["config"]), trial


def trial_rows(study: optuna.Study) -> list[dict]:
    """One flat dict per trial (for trials.csv)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        ppl = t.user_attrs.get("ppl", {})
        cal = t.user_attrs.get("config", {}).get("calibration", {})
        row = {"number": t.number, "state": t.state.name, "value": t.value,
               "seconds": _seconds(t), "phase": t.user_attrs.get("phase"), "recipe": t.user_attrs.get("recipe"),
               "refines": t.system_attrs.get("refines"), "neighbour_of": t.system_attrs.get("neighbour_of"),
               **{f"ppl_{k}": v for k, v in ppl.items()},
               **{f"param_{k}": v for k, v in t.params.items()},
               "indices": " ".join(map(str, cal.get("indices") or [])),
               "worker": t.user_attrs.get("worker"),
               "error": t.user_attrs.get("error") or t.user_attrs.get("discarded"),
               "start": t.datetime_start.isoformat() if t.datetime_start else None,
               "complete": t.datetime_complete.isoformat() if t.datetime_complete else None}
        rows.append(row)
    return rows


def _seconds(t: FrozenTrial) -> float | None:
    """The trial's objective time; for early-stopped or failed trials, start to end."""
    if "seconds" in t.user_attrs:
        return t.user_attrs["seconds"]
    if t.datetime_start and t.datetime_complete:
        return round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
    return None


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """All trials of the study, one row each, written atomically."""
    rows = trial_rows(study)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def convergence_curves(storage, model: str, ratio: float,
                       state: TrialState = TrialState.COMPLETE) -> dict[str, list[tuple[int, float]]]:
    """Objectives (in trial order) of the ``state`` trials of every study in ``storage`` on the same
    model and ratio, labelled ``study (sampler)``: the data of the convergence plot. For
    early-stopped (PRUNED) trials the value is the last running objective they reported."""
    curves = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        attrs = summary.user_attrs
        if attrs.get("model") != model or attrs.get("ratio") != ratio:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False, states=(state,))
        points = [(t.number, t.value if state == TrialState.COMPLETE else t.intermediate_values[max(t.intermediate_values)])
                  for t in trials if t.value is not None or t.intermediate_values]
        if points:
            curves[f"{summary.study_name} ({attrs.get('sampler', '?')})"] = sorted(points)
    return curves


def study_summary(study: optuna.Study) -> dict:
    """Counts, best value and median trial time of a study (for the report)."""
    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    seconds = sorted(t.user_attrs["seconds"] for t in trials if t.state == TrialState.COMPLETE and "seconds" in t.user_attrs)
    best = best_trial(study, required=False)
    return {"study": study.study_name, "states": {k: v for k, v in states.items() if v},
            "best_value": best.value if best else None, "best_trial": best.number if best else None,
            "median_trial_seconds": seconds[len(seconds) // 2] if seconds else None}
