"""``adapruner search`` end to end on a tiny checkpoint: outputs, reuse, crash recovery, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from adapruner.cli import main
from adapruner.config import PruneConfig
from adapruner.search import storage as stg

sys.path.insert(0, str(Path(__file__).parent))


SMALL_SPACE: Path | None = None


@pytest.fixture(scope="module", autouse=True)
def _small_space(small_space):
    global SMALL_SPACE
    SMALL_SPACE = small_space


@pytest.fixture(scope="module")
def tiny_dir(tiny_llama_dir) -> Path:
    """The session's tiny Llama checkpoint (conftest), as a user would pass with --model DIR."""
    return tiny_llama_dir


@pytest.fixture(scope="module")
def small_space(tmp_path_factory) -> Path:
    """The default space with 4 calibration samples (fewer per-sample gradients: faster tests)."""
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text("num_samples: 4\nscore_candidates: 6\n")
    return path


def search_args(model: Path, out: Path, data_dir: Path, trials: int = 3, *extra: str) -> list[str]:
    space = [] if "--space" in extra else ["--space", str(SMALL_SPACE)]
    return ["search", "--model", str(model), "--ratio", "0.2", "--trials", str(trials), "--out", str(out),
            "--data-dir", str(data_dir), "--eval-windows", "4", "--device", "cpu", "--heartbeat", "1", *space, *extra]


def trials_of(out: Path, name: str = "adapruner-tpe") -> list:
    return optuna.load_study(study_name=name, storage=stg.default_storage(out)).get_trials(deepcopy=False)


def test_search_writes_outputs_that_prune_reapplies(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(search_args(tiny_dir, out, data_dir, 3)) == 0
    for name in ("best_config.json", "trials.csv", "pruning_report.json", "convergence.png", "model/config.json"):
        assert (out / name).is_file(), name
    best = json.loads((out / "best_config.json").read_text())
    config = PruneConfig.load(out / "best_config.json")
    assert config.metric.name == "adapruner" and len(config.calibration.indices) == 4
    assert best["provenance"]["ratio"] == 0.2
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["protocol"]["split"] == "valid" and report["study"]["states"] == {"COMPLETE": 3}
    assert abs(report["parameters"]["removed_fraction"] - 0.2) < 0.02
    # The physically pruned model reproduces the best trial's masked validation perplexities.
    for name, ppl in report["provenance"]["validation_ppl"].items():
        assert report["pruned_validation_ppl"][name] == pytest.approx(ppl, rel=1e-4)
    assert len((out / "trials.csv").read_text().splitlines()) == 4

    # The found configuration transfers: prune applies it without searching, at another ratio.
    if not (Path(__file__).parents[1] / "src/adapruner/commands/prune.py").exists():
        pytest.skip("prune command not available")
    pruned = tmp_path / "transfer"
    code = main(["prune", "--model", str(tiny_dir), "--config", str(out / "best_config.json"), "--ratio", "0.3",
                 "--out", str(pruned), "--data-dir", str(data_dir), "--device", "cpu"])
    assert code == 0 and (pruned / "model" / "config.json").is_file()


def test_rerun_continues_and_refuses_another_model_or_space(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(search_args(tiny_dir, out, data_dir, 2, "--sampler", "random")) == 0
    assert main(search_args(tiny_dir, out, data_dir, 3, "--sampler", "random")) == 0
    trials = trials_of(out, "adapruner-random")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3 and len(trials) == 3
    capsys.readouterr()
    other = tmp_path / "other-model"
    other.symlink_to(tiny_dir)
    assert main(search_args(other, out, data_dir, 3, "--sampler", "random")) == 2
    assert "refusing to mix" in capsys.readouterr().err
    assert main(search_args(tiny_dir, out, data_dir, 3, "--sampler", "random", "--fixed-metric", "first")) == 2
    assert "another space (metric: adapruner -> element1)" in capsys.readouterr().err


def test_ablation_switches_run(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "ab"
    assert main(search_args(tiny_dir, out, data_dir, 2, "--no-data-search", "--study", "nodata")) == 0
    trials = trials_of(out, "nodata")
    assert trials[0].user_attrs["config"]["calibration"]["indices"] == trials[1].user_attrs["config"]["calibration"]["indices"]
    assert "sample_0" not in trials[0].params
    assert main(search_args(tiny_dir, out, data_dir, 2, "--fixed-metric", "second", "--study", "e2")) == 0
    assert trials_of(out, "e2")[0].user_attrs["config"]["metric"]["name"] == "element2"
    assert main(search_args(tiny_dir, out, data_dir, 2, "--sequential", "--study", "seq")) == 0
    phases = [t.user_attrs["phase"] for t in sorted(trials_of(out, "seq"), key=lambda t: t.number)]
    assert phases == ["data", "metric"]
    assert main(search_args(tiny_dir, out, data_dir, 2, "--data-space", "subspaces", "--study", "sub")) == 0
    assert main(search_args(tiny_dir, out, data_dir, 2, "--data-space", "score", "--study", "score",
                            "--space", str(_space(tmp_path, num_samples=2, score_candidates=3)))) == 0
    trials = trials_of(out, "score")
    assert len(trials[0].user_attrs["config"]["calibration"]["indices"]) == 2 and "sample_0" not in trials[0].params


def _space(tmp_path: Path, **values) -> Path:
    path = tmp_path / "space.json"
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize("extra,message", [
    (["--trials", "0"], "--trials must be an integer >= 1"),
    (["--ratio", "1.5"], "--ratio must be a fraction strictly between 0 and 1"),
    (["--ratio", "0.99"], "cannot be reached"),
    (["--no-data-search", "--fixed-metric", "first"], "nothing to search"),
    (["--storage", "postgresql://u:pw@127.0.0.1:1/none"], "cannot use study storage"),
])
def test_bad_input_is_one_line(tiny_dir, data_dir, tmp_path, capsys, extra, message):
    args = search_args(tiny_dir, tmp_path / "bad", data_dir, 2)
    for flag in ("--trials", "--ratio"):
        if flag in extra:
            i = args.index(flag)
            del args[i:i + 2]
    assert main(args + extra) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]


def test_pool_smaller_than_samples_and_bad_space(tiny_dir, data_dir, tmp_path, capsys):
    args = search_args(tiny_dir, tmp_path / "o", data_dir, 2)
    assert main(args + ["--space", str(_space(tmp_path, num_samples=10**7, score_candidates=10**7))]) == 2
    assert "samples are asked" in capsys.readouterr().err
    assert main(args + ["--space", str(_space(tmp_path, alpha3=[0, 1]))]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_corrupt_study_file_is_refused_and_kept(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "study.db").write_bytes(b"garbage" * 1000)
    assert main(search_args(tiny_dir, out, data_dir, 2)) == 2
    assert "not an SQLite database" in capsys.readouterr().err
    assert (out / "study.db").read_bytes() == b"garbage" * 1000
    assert sorted(p.name for p in out.iterdir()) == ["study.db"]


def test_kill_9_mid_trial_then_rerun_finishes_exactly_n(tiny_dir, data_dir, tmp_path):
    out, n = tmp_path / "crash", 3
    # Many small batches make every trial last long enough to be killed inside it.
    cmd = [sys.executable, "-m", "adapruner.cli", *search_args(tiny_dir, out, data_dir, n, "--eval-windows", "16",
                                                               "--eval-batch-size", "1", "--pruner", "none")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    done_before: dict[int, float] = {}
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            time.sleep(0.1)
            if not (out / "study.db").exists():
                continue
            try:
                trials = trials_of(out)
            except Exception:  # study not created yet, or the file is mid-write
                continue
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            if len(complete) >= 1 and any(t.state == TrialState.RUNNING for t in trials):
                os.kill(proc.pid, signal.SIGKILL)
                break
        else:
            pytest.fail("the search never had a completed and a running trial at once")
    finally:
        proc.wait()
    trials = trials_of(out)
    done_before = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    killed = [t.number for t in trials if t.state == TrialState.RUNNING]
    assert killed and len(done_before) < n

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = trials_of(out)
    complete = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) == n
    assert all(complete[k] == v for k, v in done_before.items()), "a completed trial was lost"
    assert all(t.state == TrialState.FAIL for t in trials if t.number in killed)
    assert (out / "best_config.json").is_file()


def test_search_takes_the_budget_in_the_users_terms(tiny_dir, data_dir, tmp_path):
    """--target-params and --ratio-of work for search as for prune: the study's ratio is the
    equivalent share of all parameters, and the report records what was asked."""
    import transformers as T

    from adapruner.core.params import count_parameters

    total = count_parameters(T.AutoModelForCausalLM.from_pretrained(tiny_dir))
    keep = int(total * 0.75)
    args = search_args(tiny_dir, tmp_path / "t", data_dir, 1, "--sampler", "random")
    i = args.index("--ratio")
    args[i:i + 2] = ["--target-params", str(keep)]
    assert main(args) == 0
    report = json.loads((tmp_path / "t" / "pruning_report.json").read_text())
    assert report["provenance"]["ratio"] == pytest.approx(0.25)
    assert report["provenance"]["budget_asked"] == {"ratio": None, "ratio_of": "total", "target_params": keep}
    assert report["parameters"]["pruned"] == pytest.approx(keep, rel=0.02)
    assert main(search_args(tiny_dir, tmp_path / "n", data_dir, 1, "--sampler", "random",
                            "--ratio-of", "non-embedding")) == 0
    report = json.loads((tmp_path / "n" / "pruning_report.json").read_text())
    assert report["provenance"]["ratio"] < 0.2  # a share of fewer parameters
    assert report["provenance"]["budget_asked"]["ratio_of"] == "non-embedding"


def test_a_default_search_result_loads_exactly_as_its_card_and_message_say(tiny_dir, data_dir, tmp_path, capsys):
    """The README's loading statements hold for a search result: with import adapruner and with
    trust_remote_code it loads; plainly it loads only when the card says it is plain."""
    from test_outputs import _load

    out = tmp_path / "run"
    assert main(search_args(tiny_dir, out, data_dir, 1, "--sampler", "random")) == 0
    printed = capsys.readouterr().out
    flavour = json.loads((out / "model" / "pruning_report.json").read_text())["checkpoint"]["flavour"]
    card = (out / "model" / "README.md").read_text()
    if flavour == "plain":
        assert "a plain transformers checkpoint" in printed and "A plain transformers checkpoint" in card
        assert _load(out / "model", "plain").returncode == 0
    else:
        assert "load it after import adapruner, or with trust_remote_code=True" in printed
        assert "A plain `from_pretrained(DIR)` without either fails" in card
        assert _load(out / "model", "plain").returncode != 0
    assert _load(out / "model", "adapruner").returncode == 0
    assert _load(out / "model", "remote").returncode == 0


def test_refinalising_a_finished_study_keeps_the_dense_reference(tiny_dir, data_dir, tmp_path):
    """A re-run that has no trial left to run still measures the dense model for the report and plot."""
    out = tmp_path / "run"
    args = search_args(tiny_dir, out, data_dir, 1, "--sampler", "random")
    assert main(args) == 0
    first = json.loads((out / "pruning_report.json").read_text())["dense_validation_ppl"]
    assert main(args) == 0  # nothing left to run: finalises again
    again = json.loads((out / "pruning_report.json").read_text())["dense_validation_ppl"]
    assert again is not None and again == pytest.approx(first, rel=1e-4)


def test_a_default_search_starts_from_the_recipes_and_is_never_worse_than_prune(tiny_dir, data_dir, tmp_path):
    """The default (full) space begins with prune's default recipe on prune's calibration windows,
    then the other recipes; its best is therefore no worse than prune's default on the objective."""
    from adapruner.cli import build_parser
    from adapruner.commands.prune import build_config
    from adapruner.data.calibration import calibration_indices, source_pool
    from adapruner.recipes import DEFAULT_RECIPE
    from adapruner.search.starts import ORDER
    from transformers import AutoTokenizer

    out = tmp_path / "run"
    assert main(search_args(tiny_dir, out, data_dir, 3, "--space", "full")) == 0
    trials = sorted(trials_of(out), key=lambda t: t.number)
    assert [t.user_attrs.get("recipe") for t in trials] == list(ORDER[:3]) and ORDER[0] == DEFAULT_RECIPE
    first = PruneConfig.from_json(trials[0].user_attrs["config"])
    default = build_config(build_parser().parse_args(["prune", "--model", "m", "--out", "o"]))
    pool = source_pool(AutoTokenizer.from_pretrained(tiny_dir), default.calibration, data_dir)
    assert first.calibration.indices == calibration_indices(len(pool), default.calibration)
    assert (first.metric.name, first.update.name, first.allocation.mode) == \
        (default.metric.name, default.update.name, default.allocation.mode)
    best = json.loads((out / "best_config.json").read_text())["provenance"]["objective"]
    assert best <= trials[0].value
    runtime = json.loads((out / "pruning_report.json").read_text())["runtime"]
    assert (runtime["sampler_startup_trials"], runtime["early_stop"]) == (10, "halving")
    # a resumed study does not get them again
    assert main(search_args(tiny_dir, out, data_dir, 4, "--space", "full")) == 0
    assert [t.user_attrs.get("recipe") for t in sorted(trials_of(out), key=lambda t: t.number)][3] is None


def test_max_minutes_delivers_the_best_so_far_and_the_same_command_continues(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "timed"
    args = search_args(tiny_dir, out, data_dir, 4, "--sampler", "random", "--max-minutes", "0.0001")
    assert main(args) == 0
    assert "--max-minutes 0.0001 reached after 1 of 4 trials" in capsys.readouterr().out
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["runtime"]["stopped_on_time_budget"] is True and report["study"]["states"] == {"COMPLETE": 1}
    # a space without starting points keeps the paper's early stop
    assert (report["runtime"]["sampler_startup_trials"], report["runtime"]["early_stop"]) == (10, "percentile")
    assert (out / "model" / "config.json").is_file()
    assert main(search_args(tiny_dir, out, data_dir, 4, "--sampler", "random")) == 0  # no time limit: up to 4
    assert sum(t.state == TrialState.COMPLETE for t in trials_of(out, "adapruner-random")) == 4
    assert main(args[:-2] + ["--max-minutes", "0"]) == 2
    assert "--max-minutes must be positive" in capsys.readouterr().err
