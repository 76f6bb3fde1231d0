"""Study mechanics of the search with a stand-in objective: budget, crash recovery, workers,
identity checks, storage errors. (The real objective is tested in test_search_objective.py.)

Run as a script, this file is the worker process that the crash and multi-worker tests start.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from adapruner.errors import AdaprunerError
from adapruner.search import identity as idn
from adapruner.search import results, samplers, worker
from adapruner.search import storage as stg
from adapruner.search.objective import TrialResult
from adapruner.search.space import SearchSpace

POOL = 50
HERE = Path(__file__).resolve()


class StandInObjective:
    """A smooth function of the configuration, reported over a few 'batches' (optionally slow)."""

    def __init__(self, step_sleep: float = 0.0, steps: int = 4):
        self.step_sleep, self.steps, self.calls = step_sleep, steps, 0

    def __call__(self, config, report=None):
        self.calls += 1
        m, idx = config.metric, config.calibration.indices
        value = 10 + sum(((i / POOL) - 0.3) ** 2 for i in idx) + 5 * (m.alpha1 - 0.7) ** 2 + 5 * (m.alpha2 - 0.2) ** 2
        for step in range(self.steps):
            time.sleep(self.step_sleep)
            if report is not None:
                report(step, value * (1 + 0.1 * (self.steps - step)))
        return TrialResult(value=value, ppl={"wikitext2": value, "ptb": value}, seconds=0.0)


def identity(space=None, model="tiny", ratio=0.2):
    space = space or SearchSpace(num_samples=4)
    return idn.StudyIdentity(model=model, ratio=ratio, space=space, protocol={"windows": 4}, sampler="tpe")


def run_worker(url: str, n: int, step_sleep: float = 0.0, seed: int = 0, heartbeat: int = 1,
               pruner: str = "none", name: str = "s", space: SearchSpace | None = None, objective=None,
               sampler: str = "tpe"):
    space = space or SearchSpace(num_samples=4)
    storage = stg.open_storage(url, heartbeat=heartbeat)
    study = idn.open_study(storage, name, identity(space), samplers.make_sampler(sampler, seed), samplers.make_early_stop(pruner))
    ctx = worker.WorkerContext(space=space, pool_size=POOL, n_trials=n, objective=objective or StandInObjective(step_sleep),
                           seed=seed, poll_s=0.2, progress=False)
    worker.Worker(study, ctx).run()
    return study


def states(url: str, name: str = "s") -> list:
    return optuna.load_study(study_name=name, storage=stg.open_storage(url)).get_trials(deepcopy=False)


def test_budget_is_exact_and_rerun_continues(tmp_path):
    url = stg.default_storage(tmp_path)
    run_worker(url, 5)
    assert sum(t.state == TrialState.COMPLETE for t in states(url)) == 5
    run_worker(url, 5)  # already done: nothing more
    assert len(states(url)) == 5
    run_worker(url, 8)  # a larger budget extends the study
    trials = states(url)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 8 and len(trials) == 8
    assert all("config" in t.user_attrs for t in trials)


def test_pruned_trials_count_towards_the_budget(tmp_path):
    url = stg.default_storage(tmp_path)

    class Bad(StandInObjective):
        def __call__(self, config, report=None):
            # After 5 ordinary trials every trial reports a hopeless running value.
            if self.calls >= 5:
                self.calls += 1
                for step in range(self.steps):
                    report(step, 1e6)
                return TrialResult(1e6, {}, 0.0)
            return super().__call__(config, report)

    run_worker(url, 9, pruner="percentile", objective=Bad())
    trials = states(url)
    assert len(trials) == 9
    assert sum(t.state == TrialState.PRUNED for t in trials) >= 1
    assert all(t.state in worker.FINISHED for t in trials)


def test_failing_trials_are_recorded_not_counted(tmp_path):
    url = stg.default_storage(tmp_path)

    class Flaky(StandInObjective):
        tries = 0

        def __call__(self, config, report=None):
            self.tries += 1
            if self.tries % 2 == 0:
                raise RuntimeError("boom")
            return super().__call__(config, report)

    run_worker(url, 3, objective=Flaky())
    trials = states(url)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all("boom" in t.user_attrs["error"] for t in failed)


def test_persistent_failure_stops_with_a_clear_error(tmp_path):
    def broken(config, report=None):
        raise RuntimeError("always broken")

    with pytest.raises(AdaprunerError, match="in a row failed.*always broken"):
        run_worker(stg.default_storage(tmp_path), 10, objective=broken)


def test_search_improves_on_its_first_trial(tmp_path):
    url = stg.default_storage(tmp_path)
    study = run_worker(url, 30)
    first = min(study.trials, key=lambda t: t.number)
    assert results.best_trial(study).value < first.value


def _start(url: str, n: int, step_sleep: float, seed: int = 0, name: str = "s",
           sampler: str = "tpe") -> subprocess.Popen:
    cmd = [sys.executable, str(HERE), "--url", url, "--n", str(n), "--sleep", str(step_sleep), "--seed", str(seed),
           "--name", name, "--sampler", sampler]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_kill_9_mid_trial_then_rerun_finishes_exactly_n(tmp_path):
    url, n = stg.default_storage(tmp_path), 6
    proc = _start(url, n, step_sleep=0.15)
    deadline = time.time() + 300  # generous: importing torch is slow on a busy CI machine
    done_before: dict[int, float] = {}
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            trials = states(url)
        except Exception:  # the study may not exist yet
            continue
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if len(done) >= 2 and running:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            # Re-read after the kill: a trial may have completed in between.
            done_before = {t.number: t.value for t in states(url) if t.state == TrialState.COMPLETE}
            break
    else:
        proc.kill()
        pytest.fail("the worker never reached a running trial")
    assert len(done_before) < n
    killed = [t.number for t in states(url) if t.state == TrialState.RUNNING]
    assert killed, "the kill must leave a RUNNING trial behind"

    rerun = _start(url, n, step_sleep=0.0)
    output = rerun.communicate(timeout=120)[0].decode()
    assert rerun.returncode == 0, output
    trials = states(url)
    complete = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) == n
    assert all(complete[k] == v for k, v in done_before.items()), "a completed trial was lost"
    assert all(t.state == TrialState.FAIL for t in trials if t.number in killed)
    assert not [t for t in trials if t.state == TrialState.RUNNING]


@pytest.mark.postgres
def test_two_workers_share_a_postgres_study():
    url = os.environ.get("ADAPRUNER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ADAPRUNER_TEST_POSTGRES_URL not set")
    name, n = f"two-workers-{os.getpid()}-{int(time.time())}", 10
    procs = [_start(url, n, step_sleep=0.05, seed=s, name=name) for s in (1, 2)]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trials = states(url, name)
    finished = [t for t in trials if t.state in worker.FINISHED]
    assert len(finished) == n
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2, "both workers should have run trials"
    optuna.delete_study(study_name=name, storage=stg.open_storage(url))


def _storages() -> list:
    urls = ["sqlite"]
    if os.environ.get("ADAPRUNER_TEST_POSTGRES_URL"):
        urls.append("postgres")
    return urls


@pytest.mark.parametrize("backend", _storages())
@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_resumed_and_parallel_workers_never_replay_a_trial(tmp_path, sampler, backend):
    """Same --seed everywhere: a resumed study and two workers on one storage draw new trials."""
    url = stg.default_storage(tmp_path) if backend == "sqlite" else os.environ["ADAPRUNER_TEST_POSTGRES_URL"]
    name = f"replay-{sampler}-{os.getpid()}-{int(time.time() * 1000)}"
    run_worker(url, 2, name=name, sampler=sampler)  # then "killed"
    run_worker(url, 6, name=name, sampler=sampler)  # resumed by a new process: a fresh sampler, same seed
    procs = [_start(url, 10, step_sleep=0.02, name=name, sampler=sampler) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trials = [t for t in states(url, name) if t.state in worker.FINISHED]
    assert len(trials) == 10
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == len(drawn), "a trial replayed another's parameters"
    study = optuna.load_study(study_name=name, storage=stg.open_storage(url))
    assert study.best_value == min(t.value for t in trials if t.state == TrialState.COMPLETE)
    if backend == "postgres":
        optuna.delete_study(study_name=name, storage=stg.open_storage(url))


def test_a_study_is_reproducible_from_its_seed(tmp_path):
    a, b = stg.default_storage(tmp_path / "a"), stg.default_storage(tmp_path / "b")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    run_worker(a, 4)
    run_worker(b, 2)
    run_worker(b, 4)  # killed after 2, resumed
    params = [[t.params for t in states(url)] for url in (a, b)]
    assert params[0] == params[1]


# -- identity and storage errors ---------------------------------------------------------------
def test_refuses_to_mix_spaces_or_models(tmp_path):
    url = stg.default_storage(tmp_path)
    run_worker(url, 2)
    storage = stg.open_storage(url)
    study = stg.existing_study(storage, "s")
    with pytest.raises(AdaprunerError, match=r"another space \(num_samples: \d+ -> 5\)"):
        idn.check_identity(study, identity(SearchSpace(num_samples=5)))
    with pytest.raises(AdaprunerError, match="model"):
        idn.check_identity(study, identity(model="other"))
    with pytest.raises(AdaprunerError, match="ratio"):
        idn.check_identity(study, identity(ratio=0.5))
    idn.check_identity(study, identity())  # same identity: fine


def test_corrupt_sqlite_is_an_error_and_left_untouched(tmp_path):
    db = tmp_path / "study.db"
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    with pytest.raises(AdaprunerError, match="not an SQLite database"):
        stg.open_storage(stg.default_storage(tmp_path))
    assert db.read_bytes() == before


def test_a_study_killed_mid_write_opens_after_its_hot_journal_rolls_back(tmp_path):
    """kill -9 during a write leaves a hot journal: the study must still open (rolled back to
    its last commit), not be called damaged, which is what a read-only check reported."""
    url = stg.default_storage(tmp_path)
    run_worker(url, 1)
    db = tmp_path / "study.db"
    writer = (
        "import os, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('PRAGMA journal_mode=DELETE'); con.execute('PRAGMA cache_size=1')\n"
        "con.execute('CREATE TABLE IF NOT EXISTS filler(x)'); con.execute('BEGIN')\n"
        "for _ in range(2000): con.execute('INSERT INTO filler VALUES (randomblob(1000))')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(db)], check=False)
    assert (tmp_path / "study.db-journal").exists()  # the hot journal the test is about
    storage = stg.open_storage(url)
    study = stg.existing_study(storage, "s")
    assert len([t for t in study.get_trials() if t.state == TrialState.COMPLETE]) == 1


def test_damaged_sqlite_pages_are_an_error(tmp_path):
    url = stg.default_storage(tmp_path)
    run_worker(url, 1)
    db = tmp_path / "study.db"
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header, wreck the schema page
    db.write_bytes(bytes(data))
    before = db.read_bytes()
    with pytest.raises(AdaprunerError, match="damaged SQLite database|cannot use study storage"):
        storage = stg.open_storage(url)
        stg.existing_study(storage, "s")
    assert db.read_bytes() == before


def test_unreachable_storage_is_a_one_line_error():
    with pytest.raises(AdaprunerError, match="cannot use study storage") as info:
        stg.open_storage("postgresql://user:secret@127.0.0.1:1/nodb")
    assert "secret" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(AdaprunerError, match="not a database URL"):
        stg.open_storage("not-a-url")


def test_trials_csv_and_convergence(tmp_path):
    url = stg.default_storage(tmp_path)
    study = run_worker(url, 4)
    results.write_trials_csv(study, tmp_path / "trials.csv")
    lines = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(lines) == 5 and "param_alpha1" in lines[0] and "indices" in lines[0]
    from adapruner.search.plots import best_so_far, plot_convergence

    curves = results.convergence_curves(stg.open_storage(url), "tiny", 0.2)
    assert list(curves) == ["s (tpe)"] and len(curves["s (tpe)"]) == 4
    xs, ys = best_so_far([(0, 3.0), (1, 5.0), (2, 1.0)])
    assert ys == [3.0, 3.0, 1.0]
    assert plot_convergence(curves, tmp_path / "c.png").stat().st_size > 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--n", type=int)
    ap.add_argument("--sleep", type=float)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="s")
    ap.add_argument("--sampler", default="tpe")
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_worker(a.url, a.n, step_sleep=a.sleep, seed=a.seed, name=a.name, sampler=a.sampler)


def test_eta_comes_from_trial_durations_not_from_setup():
    import datetime

    import optuna
    from optuna.trial import FrozenTrial, TrialState

    from adapruner.search.worker import trials_eta

    study = optuna.create_study()
    assert trials_eta(study, 10) == ""
    t0 = datetime.datetime(2026, 1, 1)
    for i, seconds in enumerate([300.0, 10.0, 12.0]):  # the first trial also filled the caches
        study.add_trial(FrozenTrial(number=i, state=TrialState.COMPLETE, value=1.0, values=None,
                                    datetime_start=t0, datetime_complete=t0 + datetime.timedelta(seconds=seconds),
                                    params={}, distributions={}, user_attrs={}, system_attrs={},
                                    intermediate_values={}, trial_id=i))
    assert trials_eta(study, 10) == "ETA 84 s (median trial 12.0 s)"
    assert trials_eta(study, 3) == ""


def test_a_trial_killed_before_its_first_heartbeat_is_failed_after_the_grace_period(tmp_path):
    """kill -9 between Optuna's ask and the first heartbeat leaves a RUNNING trial with no worker
    tag and no heartbeat, which Optuna never calls stale (CI once hung on it for 300 s): it is
    left alone within the grace period and failed after it, so a rerun finishes its budget."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = run_worker(url, 1, heartbeat=1)
    orphan = study.ask()  # RUNNING, untagged, never beat
    assert worker.grace_period_s(study) == 3
    assert worker.fail_dead_trials(study) == 0
    assert {t.number: t.state for t in states(url)}[orphan.number] == TrialState.RUNNING
    time.sleep(3.2)
    assert worker.fail_dead_trials(study) == 1
    run_worker(url, 3, heartbeat=1)
    by_number = {t.number: t.state for t in states(url)}
    assert by_number[orphan.number] == TrialState.FAIL
    assert sum(s == TrialState.COMPLETE for s in by_number.values()) == 3


def test_ctrl_c_cleanup_fails_the_untagged_trial_this_optimize_call_created(tmp_path):
    """Ctrl-C between Optuna's ask and the trial's first storage call leaves a RUNNING trial
    without a worker tag: the cleanup fails it, and leaves older untagged trials to their owners."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = run_worker(url, 1)
    w = worker.Worker(study, worker.WorkerContext(space=SearchSpace(num_samples=4), pool_size=POOL, n_trials=3,
                                                  objective=StandInObjective(), seed=0, poll_s=0.2, progress=False))
    older = study.ask()  # another worker's, created before this process's optimize call
    w.last_number = older.number
    new = study.ask()  # created by "our" optimize call, interrupted before it was tagged
    w._fail_own_running()
    by_number = {t.number: t.state for t in states(url)}
    assert by_number[new.number] == optuna.trial.TrialState.FAIL
    assert by_number[older.number] == optuna.trial.TrialState.RUNNING


def test_the_start_up_trials_are_a_setting_of_every_trial_s_sampler():
    """TPE draws ``startup`` finished trials at random (Optuna's 10 by default, the paper's search
    unchanged); every trial's own seeded sampler keeps the setting."""
    for name in ("tpe", "tpe-mv"):
        sampler = samplers.make_sampler(name, 0, 5)
        optuna.create_study(sampler=sampler).ask()
        assert sampler._inner._n_startup_trials == 5
    assert samplers.make_sampler("tpe", 0)._inner._n_startup_trials == 10 == optuna.samplers.TPESampler()._n_startup_trials


def test_refinement_trials_keep_the_best_trial_s_categorical_choices():
    """With ``refine_every`` K every K-th trial from the end of the start-up keeps the best finished
    trial's categorical choices (and says which trial it refines); the others search freely; K = 0
    leaves the sampler as it was, so default studies are unchanged."""
    assert isinstance(samplers.make_sampler("tpe", 0), samplers.PerTrialSeed)
    sampler = samplers.make_sampler("tpe", 0, startup=4, refine_every=2)
    study = optuna.create_study(sampler=sampler)

    def objective(trial):
        metric = trial.suggest_categorical("metric", ["a", "b", "c"])
        x = trial.suggest_float("x", -3, 3)
        return {"a": 0.0, "b": 1.0, "c": 2.0}[metric] + (x - 1) ** 2

    for _ in range(16):
        trial = study.ask()
        done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
        value = objective(trial)
        frozen = study._storage.get_trial(trial._trial_id)
        if sampler.refines(trial.number):
            best = min(done, key=lambda t: t.value)
            assert frozen.system_attrs["refines"] == best.number
            assert trial.params["metric"] == best.params["metric"]
        else:
            assert "refines" not in frozen.system_attrs
        study.tell(trial, value)
    assert [n for n in range(16) if sampler.refines(n)] == [4, 6, 8, 10, 12, 14]
    assert results.trial_rows(study)[4]["refines"] is not None


def test_neighbour_trials_swap_one_or_two_of_the_best_trial_s_windows():
    """With ``neighbour_every`` K every K-th trial from the end of the start-up repeats the best
    finished trial with one or two of its ``sample_i`` redrawn (and says whose neighbour it is);
    the swaps are a function of the seed and the trial number, so a second study proposes the same."""
    def run():
        sampler = samplers.make_sampler("tpe", 0, startup=4, neighbour_every=2)
        study = optuna.create_study(sampler=sampler)
        proposals = []
        for _ in range(14):
            trial = study.ask()
            done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
            metric = trial.suggest_categorical("metric", ["a", "b"])
            x = trial.suggest_float("x", -3, 3)
            windows = [trial.suggest_int(f"sample_{i}", 0, 999) for i in range(5)]
            frozen = study._storage.get_trial(trial._trial_id)
            if sampler.moves(trial.number):
                best = min(done, key=lambda t: t.value)
                assert frozen.system_attrs["neighbour_of"] == best.number
                assert (metric, x) == (best.params["metric"], best.params["x"])
                swapped = [i for i in range(5) if windows[i] != best.params[f"sample_{i}"]]
                assert 1 <= len(swapped) <= 2
            else:
                assert "neighbour_of" not in frozen.system_attrs
            proposals.append(trial.params)
            study.tell(trial, {"a": 0.0, "b": 1.0}[metric] + (x - 1) ** 2 + sum(windows) / 5000)
        assert [n for n in range(14) if sampler.moves(n)] == [4, 6, 8, 10, 12]
        assert results.trial_rows(study)[4]["neighbour_of"] is not None
        return proposals

    assert run() == run()


def test_halving_stops_a_trial_below_the_median_halfway_through_its_evaluation(tmp_path):
    """``halving`` decides once every dataset has given a batch (step 1 of two datasets' batches):
    a trial worse than the finished trials' median there stops, and its later batches never run."""
    url = stg.default_storage(tmp_path)

    class Late(StandInObjective):
        def __init__(self):
            super().__init__()
            self.last_steps: list[int] = []

        def __call__(self, config, report=None):
            if self.calls < 5:
                return super().__call__(config, report)
            self.calls += 1
            self.last_steps = []
            for step in range(self.steps):
                self.last_steps.append(step)
                report(step, 1e6)
            return TrialResult(1e6, {}, 0.0)

    objective = Late()
    run_worker(url, 6, pruner="halving", objective=objective)
    last = sorted(states(url), key=lambda t: t.number)[-1]
    assert last.state == TrialState.PRUNED and last.user_attrs["pruned_at_step"] == 1
    assert objective.last_steps == [0, 1]
    assert samplers.early_stop_for(3) == "halving" and samplers.early_stop_for(0) == "percentile"
