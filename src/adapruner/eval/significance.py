"""Standard errors of zero-shot summaries, and whether two models really differ.

Every number of a zero-shot result is a mean over examples, so it carries a standard error. A
task's accuracy p over n examples has SE = sd(x) / sqrt(n) (the sample standard deviation of the
0/1 outcomes, lm-evaluation-harness's ``stderr``). Tasks are independent samples, so a mean over
k tasks has SE = sqrt(sum SE_t^2) / k. Three summaries are given:

* the **7-task mean**, the papers' headline (LLM-Pruner's metric per task, see
  :data:`adapruner.eval.zeroshot.AVERAGE_METRIC`);
* the **6-task mean without BoolQ**: BoolQ's 62 % "yes" majority lets a model that has lost its
  reading answer "yes" and keep its score, so BoolQ moves the 7-task mean without telling models
  apart;
* the **chance-normalised mean** of (acc - chance) / (1 - chance), with chance the mean of
  1 / (number of choices) over a task's examples: 0 is guessing, 1 is perfect, on every task.

Two models evaluated on the same examples are compared **paired** (the comparison of "Adding
Error Bars to Evals", Miller 2024): per task, the mean of the per-example differences d = x_A - x_B
and its SE = sd(d) / sqrt(n), far smaller than the unpaired SE when the models agree on most
examples; the mean over tasks with SE = sqrt(sum SE_t^2) / k; a two-sided z test. Per task,
McNemar's exact test on the discordant examples (A right and B wrong, or the reverse) is given too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapruner.errors import AdaprunerError

BOOLQ = "boolq"


@dataclass(frozen=True)
class Estimate:
    """A mean and its standard error."""

    value: float
    se: float

    def to_json(self) -> dict:
        return {"value": self.value, "se": self.se}


def mean_estimate(values: list[float]) -> Estimate:
    """The mean of ``values`` and its standard error (sample standard deviation / sqrt(n))."""
    n = len(values)
    if n == 0:
        raise AdaprunerError("no examples to average")
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean, float("nan"))
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Estimate(mean, math.sqrt(var / n))


def mean_of_tasks(estimates: list[Estimate]) -> Estimate:
    """The mean over independent tasks, with SE = sqrt(sum SE^2) / k."""
    k = len(estimates)
    return Estimate(sum(e.value for e in estimates) / k, math.sqrt(sum(e.se ** 2 for e in estimates)) / k)


def chance_normalised(e: Estimate, chance: float) -> Estimate:
    """(acc - chance) / (1 - chance): 0 for guessing, 1 for perfect."""
    return Estimate((e.value - chance) / (1 - chance), e.se / (1 - chance))


def summarise(tasks: dict[str, dict]) -> dict:
    """The 7-task (all given tasks) mean, the mean without BoolQ and the chance-normalised mean,
    each with its standard error, from per-task results holding ``correct`` (0/1 per example of
    the task's summary metric) and ``chance``."""
    names = list(tasks)
    per_task = {t: mean_estimate(tasks[t]["correct"]) for t in names}
    normalised = {t: chance_normalised(per_task[t], tasks[t]["chance"]) for t in names}
    out = {"tasks": names, "mean": mean_of_tasks([per_task[t] for t in names]).to_json(),
           "chance_normalised_mean": mean_of_tasks([normalised[t] for t in names]).to_json()}
    rest = [t for t in names if t != BOOLQ]
    if BOOLQ in names and rest:
        out["mean_without_boolq"] = mean_of_tasks([per_task[t] for t in rest]).to_json()
    return out


def mcnemar(a: list[float], b: list[float]) -> dict:
    """McNemar's exact test: how many examples only A, only B got right, and the two-sided p-value
    of that split under 'equally good' (a binomial with p = 1/2 on the discordant examples)."""
    a_only = sum(1 for x, y in zip(a, b) if x > y)
    b_only = sum(1 for x, y in zip(a, b) if y > x)
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    from scipy.stats import binomtest

    return {"a_only": a_only, "b_only": b_only, "p_value": float(binomtest(a_only, n, 0.5).pvalue)}


def paired_difference(a: list[float], b: list[float]) -> Estimate:
    """The mean of the per-example differences a - b and its standard error."""
    if len(a) != len(b):
        raise AdaprunerError(f"a paired comparison needs the same examples ({len(a)} against {len(b)})")
    return mean_estimate([x - y for x, y in zip(a, b)])


def _z_test(e: Estimate) -> dict:
    z = e.value / e.se if e.se > 0 else (0.0 if e.value == 0 else math.copysign(math.inf, e.value))
    p = math.erfc(abs(z) / math.sqrt(2))
    return {"difference": e.value, "se": e.se, "z": z, "p_value": p, "beyond_2_se": abs(z) >= 2}


def compare(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """Paired comparison of two zero-shot results (per task ``correct`` on the same examples, in
    the same order): per task the difference A - B with its SE and McNemar's test, and the mean of
    the differences over all common tasks and over those without BoolQ, each with a z test."""
    common = [t for t in a if t in b]
    if not common:
        raise AdaprunerError("the two results share no zero-shot task; evaluate both on the same --tasks")
    per_task, estimates = {}, {}
    for t in common:
        xa, xb = a[t]["correct"], b[t]["correct"]
        if len(xa) != len(xb) or a[t].get("doc_ids") != b[t].get("doc_ids"):
            raise AdaprunerError(f"{t}: the two results scored different examples ({len(xa)} against {len(xb)}); "
                                 "evaluate both with the same --limit")
        estimates[t] = paired_difference(xa, xb)
        per_task[t] = {"n": len(xa), "a": sum(xa) / len(xa), "b": sum(xb) / len(xb), **_z_test(estimates[t]),
                       "mcnemar": mcnemar(xa, xb)}
    out = {"tasks": per_task, "mean": {"tasks": common, **_z_test(mean_of_tasks([estimates[t] for t in common]))}}
    rest = [t for t in common if t != BOOLQ]
    if BOOLQ in common and rest:
        out["mean_without_boolq"] = {"tasks": rest, **_z_test(mean_of_tasks([estimates[t] for t in rest]))}
    return out


def implied_se(limit: int, tasks: int, accuracy: float = 0.5) -> tuple[float, float]:
    """The standard error of one task's accuracy over ``limit`` examples, and of a mean over
    ``tasks`` such tasks, at ``accuracy`` (0.5: the largest)."""
    one = math.sqrt(accuracy * (1 - accuracy) / limit)
    return one, one / math.sqrt(tasks)
