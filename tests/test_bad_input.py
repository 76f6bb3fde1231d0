"""The bad-input battery: every case is a one-line ``error:`` with exit status 2 (or the
documented behaviour), leaves nothing partial behind and changes no pre-existing file."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from adapruner.cli import main


@pytest.fixture(scope="module")
def ckpt(tiny_llama_dir) -> Path:
    return tiny_llama_dir


def one_line_error(capsys, argv: list[str], match: str, status: int = 2) -> str:
    """Exit status 2 (bad input; 3 for an environment fault), no traceback, and the last line is
    the one-line error (transformers' own loading progress bars may come before it)."""
    capsys.readouterr()
    assert main(argv) == status
    err = capsys.readouterr().err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("error: ") and "Traceback" not in err, err
    assert match in last, err
    return last


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def prune_args(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["prune", "--model", str(ckpt), "--ratio", "0.2", "--metric", "l2", "--layers", "0:4", "--out", str(out),
            "--device", "cpu", *extra]


def test_unwritable_output_fails_before_any_work(ckpt, capsys):
    one_line_error(capsys, prune_args(ckpt, Path("/proc/adapruner-nope/out")), "cannot write --out", status=3)


def test_stats_context_beyond_the_model_fails_before_loading(ckpt, capsys, tmp_path):
    one_line_error(capsys, ["stats", "--model", str(ckpt), "--context", "100000", "--out", str(tmp_path / "s.json")],
                   "exceeds the context")
    assert not (tmp_path / "s.json").exists()


def test_a_foreign_sqlite_file_is_refused_untouched(ckpt, capsys, tmp_path, data_dir):
    out = tmp_path / "run"
    out.mkdir()
    con = sqlite3.connect(out / "study.db")
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    before = digest(out / "study.db")
    one_line_error(capsys, ["search", "--model", str(ckpt), "--ratio", "0.2", "--trials", "1", "--out", str(out),
                            "--data-dir", str(data_dir)], "another program's SQLite database")
    assert digest(out / "study.db") == before and listing(out) == ["study.db"]


def test_a_scrambled_sqlite_study_is_one_line(ckpt, capsys, tmp_path, data_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "study.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    before = digest(out / "study.db")
    one_line_error(capsys, ["search", "--model", str(ckpt), "--ratio", "0.2", "--trials", "1", "--out", str(out),
                            "--data-dir", str(data_dir)], "study.db")
    assert digest(out / "study.db") == before


def test_truncated_weights_are_one_line(ckpt, capsys, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    one_line_error(capsys, ["eval", "--model", str(broken), "--ppl", str(ckpt / "config.json").replace(".json", ".txt"),
                            "--out", str(tmp_path / "e.json")], "not found")  # a missing text file: before loading
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    one_line_error(capsys, ["eval", "--model", str(broken), "--ppl", str(text), "--out", str(tmp_path / "e.json")],
                   "truncated")
    weights.write_bytes(b"")
    one_line_error(capsys, ["eval", "--model", str(broken), "--ppl", str(text), "--out", str(tmp_path / "e.json")],
                   "empty, truncated")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("command", ["eval", "export", "prune-streamed", "prune-in-memory", "stats"])
def test_a_config_that_disagrees_with_the_weights_is_one_line_before_any_work(ckpt, capsys, tmp_path, command,
                                                                               data_dir):
    """One check of the stored shapes against config.json, before any weight is read, in every command."""
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    config = json.loads((broken / "config.json").read_text())
    config["intermediate_size"] += 8
    (broken / "config.json").write_text(json.dumps(config))
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    out = tmp_path / "out"
    argv = {"eval": ["eval", "--model", str(broken), "--ppl", str(text), "--out", str(out)],
            "export": ["export", "--model", str(broken), "--out", str(out) + ".gguf"],
            "prune-streamed": prune_args(broken, out, "--stream", "--data-dir", str(data_dir)),
            "prune-in-memory": prune_args(broken, out, "--no-stream", "--data-dir", str(data_dir)),
            "stats": ["stats", "--model", str(broken), "--out", str(out) + ".json", "--device", "cpu"]}[command]
    one_line_error(capsys, argv, "do not have the shapes its config.json declares (model.layers.0.mlp.gate_proj")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))]


def test_a_weight_missing_from_the_checkpoint_is_refused_not_initialised(ckpt, capsys, tmp_path):
    """One flipped byte in a tensor name leaves a readable file without that weight: transformers
    would initialise it randomly and only warn; adapruner refuses the checkpoint."""
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    weights = broken / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data.replace(b"model.embed_tokens.weight", b"model.embdd_tokens.weight", 1))
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    one_line_error(capsys, ["eval", "--model", str(broken), "--ppl", str(text), "--out", str(tmp_path / "e.json")],
                   "lack 1 tensor(s) its config.json needs (model.embed_tokens.weight")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("content,match", [("[1, 2]", "must hold a JSON object"), ("{", "not valid JSON")])
def test_a_bad_config_file_is_one_line(ckpt, capsys, tmp_path, content, match):
    config = tmp_path / "c.json"
    config.write_text(content)
    one_line_error(capsys, prune_args(ckpt, tmp_path / "out", "--config", str(config)), match)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("space,match", [("alpha1: [0.5]", "alpha1 must be a range"),
                                         ("allocation: {foo: 1}", "unknown allocation key"),
                                         ("num_samples: ten", "num_samples must be an integer"),
                                         ("factors: {second_order_el: [a]}", "needs a non-empty list of numbers")])
def test_space_values_of_the_wrong_type_are_one_line(ckpt, capsys, tmp_path, data_dir, space, match):
    path = tmp_path / "space.yaml"
    path.write_text(space + "\n")
    out = tmp_path / "run"
    one_line_error(capsys, ["search", "--model", str(ckpt), "--ratio", "0.2", "--trials", "1", "--out", str(out),
                            "--space", str(path), "--data-dir", str(data_dir)], match)
    assert not out.exists()


def test_a_failed_search_start_leaves_no_output(capsys, tmp_path, data_dir):
    out = tmp_path / "run"
    one_line_error(capsys, ["search", "--model", str(tmp_path / "no-such-model"), "--ratio", "0.2", "--trials", "1",
                            "--out", str(out), "--data-dir", str(data_dir)], "no such file or directory")
    assert not out.exists()


def test_finetune_lr_is_checked_before_loading(ckpt, capsys, tmp_path):
    data = tmp_path / "a.json"
    data.write_text(json.dumps([{"instruction": "x", "input": "", "output": "y"}] * 4))
    one_line_error(capsys, ["finetune", "--model", str(ckpt), "--data", str(data), "--out", str(tmp_path / "ft"),
                            "--lr", "-1"], "--lr must be a positive number")
    assert not (tmp_path / "ft").exists()


def test_stale_temporaries_of_ours_are_cleaned_but_nothing_else(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    stale = tmp_path / ".out.tmp-999999-0123abcd"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 100)
    mine = tmp_path / ".out.tmp-user-notes"
    mine.write_text("keep me")
    assert main(prune_args(ckpt, out)) == 0
    assert not stale.exists() and mine.read_text() == "keep me"


def test_overwrite_refuses_a_directory_adapruner_did_not_write(ckpt, tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    one_line_error(capsys, prune_args(ckpt, out, "--overwrite"), "not an adapruner output")
    assert listing(out) == ["holiday.jpg"]
    assert main(prune_args(ckpt, tmp_path / "ok")) == 0
    assert main(prune_args(ckpt, tmp_path / "ok", "--overwrite")) == 0  # our own output: replaced


def test_report_names_a_corrupt_report_and_a_garbage_trials_csv(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "pruning_report.json").write_text('{"command": "prune", ')
    one_line_error(capsys, ["report", str(run), "--out", str(tmp_path / "r.md")], "pruning_report.json is not valid JSON")
    (run / "pruning_report.json").unlink()
    (run / "trials.csv").write_text("garbage,more\n1,2\n")
    one_line_error(capsys, ["report", str(run), "--out", str(tmp_path / "r.md")], "is not a trials.csv")
    assert not (tmp_path / "r.md").exists()


def test_finetune_help_documents_its_training_flags(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = capsys.readouterr().out
    for flag in ("--epochs", "--lr", "--lora-r", "--lora-alpha", "--lora-dropout"):
        assert flag in text
    assert "default 1e-4" in text and "LoRA rank" in text


def test_truncated_zeroshot_jsonl_names_file_and_line(tmp_path):
    from adapruner.data.zeroshot import _read_jsonl
    from adapruner.errors import AdaprunerError

    path = tmp_path / "val.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n')
    with pytest.raises(AdaprunerError, match=r"val.jsonl line 2 is not valid JSON"):
        _read_jsonl(path)


# -- the user's own text --------------------------------------------------------------------------

def test_eval_on_a_text_file_and_a_jsonl_file(ckpt, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n\n" * 80)
    records = tmp_path / "notes.jsonl"
    records.write_text("\n".join(json.dumps({"body": "A line of my own domain text. " * 4}) for _ in range(40)))
    out = tmp_path / "e.json"
    assert main(["eval", "--model", str(ckpt), "--ppl", f"{text},{records}", "--text-field", "body",
                 "--seq-len", "32", "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    files = [r["protocol"]["file"] for r in result["perplexity"]]
    assert all(f and len(f["sha256"]) == 64 for f in files)
    assert all(r["ppl"] > 1 for r in result["perplexity"])


def test_a_too_short_text_file_says_how_many_windows_it_gives(ckpt, tmp_path, capsys):
    text = tmp_path / "short.txt"
    text.write_text("tiny")
    one_line_error(capsys, prune_args(ckpt, tmp_path / "out", "--metric", "wanda-sp", "--calib-data", str(text),
                                      "--calib-seq-len", "32"), "gives 0 window(s) of 32 tokens")
    assert not (tmp_path / "out").exists()


def test_prune_calibrates_on_a_text_file_and_takes_a_parameter_target(ckpt, tmp_path):
    text = tmp_path / "domain.txt"
    text.write_text("Domain text for calibration, repeated for length. " * 400)
    out = tmp_path / "out"
    assert main(["prune", "--model", str(ckpt), "--target-params", "240k", "--metric", "wanda-sp", "--calib-data",
                 str(text), "--num-samples", "4", "--calib-seq-len", "32", "--layers", "0:4", "--out", str(out),
                 "--device", "cpu"]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["config"]["calibration"]["source"] == str(text)
    assert abs(report["parameters_after"] - 240_000) < 0.03 * report["parameters_before"]
    assert report["budget_asked"]["target_params"] == 240_000


def test_ctrl_c_during_a_search_exits_130_without_a_traceback(ckpt, tmp_path, data_dir):
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "adapruner.cli", "search", "--model", str(ckpt), "--ratio", "0.2", "--trials", "1000",
           "--out", str(out), "--data-dir", str(data_dir), "--eval-windows", "2", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        if (out / "study.db").exists():
            try:
                trials = optuna.load_study(study_name="adapruner-tpe", storage=f"sqlite:///{out / 'study.db'}").trials
            except Exception:
                continue
            if len(trials) >= 2:
                break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    study = optuna.load_study(study_name="adapruner-tpe", storage=f"sqlite:///{out / 'study.db'}")
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def test_a_full_disk_at_the_final_write_keeps_the_finished_result(ckpt, capsys, tmp_path, monkeypatch):
    """prune and eval finish their work, then the disk fills: a one-line error names where the
    result was kept, and nothing half-written is left at --out."""
    import errno

    import adapruner.core.io as io
    import adapruner.pruning.save as save

    full = tmp_path / "full"
    full.mkdir()
    monkeypatch.setenv("ADAPRUNER_RESCUE_DIR", str(tmp_path / "rescue"))

    def on_full_disk(real):
        def wrapper(*args, **kwargs):
            if any(str(full) in str(a) for a in args):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(save, "_write", on_full_disk(save._write))
    last = one_line_error(capsys, prune_args(ckpt, full / "run"), "the disk is full", status=3)
    kept = Path(last.split("kept in ")[1].split(":")[0])
    assert (kept / "model" / "config.json").is_file() and (kept / "pruning_report.json").is_file()
    assert listing(full) == []

    monkeypatch.setattr(io, "write_json", on_full_disk(io.write_json))
    text = tmp_path / "t.txt"
    text.write_text("some words to score in windows.\n" * 30)
    last = one_line_error(capsys, ["eval", "--model", str(ckpt), "--ppl", str(text), "--seq-len", "16",
                                   "--max-windows", "1", "--device", "cpu", "--out", str(full / "e.json")],
                          "the disk is full", status=3)
    kept = Path(last.split("kept in ")[1].split(":")[0])
    assert json.loads(kept.read_text())["perplexity"][0]["n_windows"] == 1
    assert listing(full) == []


def test_calibration_from_a_hub_dataset(ckpt, capsys, tmp_path, monkeypatch):
    """--calib-data org/name reads the dataset's train split when the hub is reachable (a fake one
    here) and is a one-line error without a network, before the model loads."""
    import adapruner.data.user_text as user_text

    monkeypatch.setattr("adapruner.models.hub.hub_reachable", lambda timeout=3.0: False)
    one_line_error(capsys, prune_args(ckpt, tmp_path / "a", "--metric", "wanda-sp", "--calib-data", "someone/corpus",
                                      "--num-samples", "2", "--calib-seq-len", "16"), "not reachable")
    assert not (tmp_path / "a").exists()
    monkeypatch.setattr("adapruner.models.hub.hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(user_text, "_load_hub_rows", lambda name, field: [f"row {i} of {name}, some words." for i in range(60)])
    assert main(prune_args(ckpt, tmp_path / "b", "--metric", "wanda-sp", "--calib-data", "someone/corpus",
                           "--num-samples", "2", "--calib-seq-len", "16")) == 0
    report = json.loads((tmp_path / "b" / "pruning_report.json").read_text())
    assert report["config"]["calibration"]["source"] == "someone/corpus"


def test_a_truncated_gguf_is_one_line(capsys, tmp_path, data_dir):
    """An interrupted GGUF download (8 bytes) fails with one line, not a struct.error traceback."""
    bad = tmp_path / "m.gguf"
    bad.write_bytes(b"GGUFjunk")
    one_line_error(capsys, ["eval", "--model", str(bad), "--data-dir", str(data_dir), "--device", "cpu"],
                   "cannot read GGUF file")


def ctrl_c_script(script: str, timeout: float) -> tuple[int, str, str, float]:
    """Run ``script`` in a fresh interpreter, press Ctrl-C (SIGINT) once it prints ``ready``;
    return its exit status, the rest of its stdout, its stderr and the seconds it took to exit."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # a library may print before the script does
        if line.strip() == "ready":
            break
    else:
        raise AssertionError(f"the script never got ready: {proc.communicate()[1][-2000:]}")
    start = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.time() - start


def assert_cut_off_by_the_clock(setup: str, main_body: str) -> None:
    """A CLI whose ``main`` runs ``main_body`` (after ``setup``) and never ends after Ctrl-C exits
    130 soon after, with one line saying the cleanup did not finish and no traceback."""
    script = ("import time\nimport adapruner.cli as cli\ncli.CLEANUP_AFTER_CTRL_C_S = 1\n" + setup
              + "def main(argv=None):\n" + main_body + "    return 0\ncli.main = main\ncli.entry()\n")
    code, _, err, elapsed = ctrl_c_script(script, timeout=30)
    assert code == 130 and elapsed < 20, (code, elapsed, err[-2000:])
    assert "cleanup did not finish" in err and "Traceback" not in err, err[-2000:]


def test_a_cleanup_that_hangs_after_ctrl_c_is_cut_off():
    """Whatever the cleanup after Ctrl-C waits on (an SQLite lock held by a storage call the
    interrupt cut short), the process exits 130 soon after, with one line saying so."""
    assert_cut_off_by_the_clock("", "    try:\n"
                                    "        print('ready', flush=True); time.sleep(60)\n"
                                    "    except KeyboardInterrupt:\n"
                                    "        time.sleep(60)  # a cleanup that never ends\n")


def test_ctrl_c_never_lands_inside_a_storage_call(tmp_path):
    """Ctrl-C during a loop of Optuna storage writes is raised in our own code, never inside
    Optuna or SQLAlchemy (where it would leave an SQLite lock held or crash Optuna's bookkeeping),
    and the storage stays writable afterwards."""
    script = (
        "import signal, sys, time, traceback\n"
        "import optuna\n"
        "import adapruner.cli as cli\n"
        "optuna.logging.set_verbosity(optuna.logging.ERROR)\n"
        "signal.signal(signal.SIGINT, cli._on_ctrl_c)\n"
        f"study = optuna.create_study(storage='sqlite:///{tmp_path / 'study.db'}')\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    while True:\n"
        "        study.set_user_attr('x', time.time())\n"
        "except KeyboardInterrupt as exc:\n"
        "    landed = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.endswith('cli.py')][-1]\n"
        "    print('landed in', landed.filename, flush=True)\n"
        "study.set_user_attr('after', 1)\n"
        "print('writable', flush=True)\n"
    )
    _, out, err, _ = ctrl_c_script(script, timeout=60)
    assert "landed in <string>" in out and "writable" in out, (out, err[-2000:])


def test_ctrl_c_in_a_storage_call_that_hangs_still_exits():
    """The deferred interrupt still starts the clock: a storage call that never returns (a
    database server gone silent) ends with exit status 130 once the clock runs out."""
    assert_cut_off_by_the_clock(
        "storage = {'__name__': 'sqlalchemy.fake'}  # code that counts as a storage call\n"
        "exec('import time\\ndef hang():\\n    print(\\'ready\\', flush=True)\\n    time.sleep(60)\\n', storage)\n",
        "    storage['hang']()\n")


@pytest.mark.parametrize("count,match", [("1e400", "finite count"), ("nan", "finite count"), ("0.5", "positive"),
                                         ("lots", "count like 100M")])
def test_a_target_parameter_count_that_is_no_count_is_one_line(count, match):
    from adapruner.core.params import parse_count
    from adapruner.errors import AdaprunerError

    with pytest.raises(AdaprunerError, match=match):
        parse_count(count)
