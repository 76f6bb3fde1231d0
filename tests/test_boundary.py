"""The CLI's error boundary: every class of failure is one `error:` line with its documented exit
status; the traceback only with --debug; out-of-range values are refused before any work."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys

import pytest

from adapruner import boundary
from adapruner.cli import main
from adapruner.errors import AdaprunerError, EnvironmentFault


@pytest.mark.parametrize("exc, status, fragment", [
    (AdaprunerError("bad flag"), 2, "bad flag"),
    (EnvironmentFault("the disk went away"), 3, "the disk went away"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/model.safetensors"), 3, "the disk is full (/out/model"),
    (OSError(errno.EFBIG, "File too large", "/out/x"), 3, "beyond the size"),
    (OSError(errno.EIO, "Input/output error"), 3, "input/output error"),
    (OSError(errno.EROFS, "Read-only file system", "/ro"), 3, "read-only"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), 3, "permission denied (/root/x)"),
    (pickle.UnpicklingError("Weights only load failed"), 2, "pickled file was refused"),
    (ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2"), 2, "pip install 'adapruner[postgres]'"),
    (MemoryError(), 3, "out of memory"),
    (ValueError("shapes do not match"), 1, "internal error (ValueError: shapes do not match)"),
])
def test_every_class_of_failure_has_its_status_and_one_line(exc, status, fragment):
    got, line = boundary.explain(exc)
    assert got == status and fragment in line and "\n" not in line
    if status == 1:
        assert "--debug" in line and "report" in line


def test_a_malformed_safetensors_file_is_bad_input(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "model.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + b"{}")  # a header length far beyond the file
    with pytest.raises(Exception) as caught:
        with safe_open(str(path), "pt"):
            pass
    status, line = boundary.explain(caught.value)
    assert status == 2 and "malformed" in line


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapruner.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("source, kind", [("raise RuntimeError('plugin broke')\n", "RuntimeError"),
                                          ("def broken(:\n", "SyntaxError")])
def test_a_broken_plugin_is_one_line(tmp_path, source, kind):
    (tmp_path / "bad_plugin.py").write_text(source)
    done = run_cli("models", env={"ADAPRUNER_PLUGINS": "bad_plugin", "PYTHONPATH": str(tmp_path)})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: cannot import plugin 'bad_plugin'")
    assert kind in lines[0] and "Traceback" not in done.stderr


def test_a_bug_says_so_in_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    from adapruner.commands import models

    def broken(args):
        raise KeyError("nobody expected this")

    monkeypatch.setattr(models, "run", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error (KeyError") and "Traceback" not in err
    assert main(["models", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: internal error")


def test_a_full_disk_during_a_command_is_an_environment_fault(monkeypatch, capsys):
    from adapruner.commands import models

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/p20/model.safetensors")

    monkeypatch.setattr(models, "run", full)
    assert main(["models"]) == 3
    assert capsys.readouterr().err.strip() == ("error: the disk is full (/runs/p20/model.safetensors): free space (or "
                                               "choose another --out) and run the same command again")


@pytest.mark.parametrize("argv, fragment", [
    (["prune", "--model", "m", "--out", "o", "--ratio", "1e400"], "expected a finite number"),
    (["prune", "--model", "m", "--out", "o", "--ratio", "nan"], "expected a finite number"),
    (["prune", "--model", "m", "--out", "o", "--ratio", "0.2", "--seed", str(2**64)], "a seed is an integer"),
    (["eval", "--model", "m", "--seed", "-1"], "a seed is an integer"),
    (["finetune", "--model", "m", "--out", "o", "--data", "d", "--lr", "inf"], "expected a finite number"),
    (["finetune", "--model", "m", "--out", "o", "--data", "d", "--lora-alpha", "-1"], "must be at least 1"),
    (["eval", "--model", "m", "--tasks", "piqa", "--limit", "0"], "must be at least 1"),
    (["eval", "--model", "m", "--tasks", ""], "must not be empty"),
    (["search", "--model", "m", "--out", "o", "--trials", "1", "--ratio", "0.2", "--calib-data", ""],
     "must not be empty"),
])
def test_out_of_range_numbers_are_refused_before_any_work(argv, fragment, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and fragment in capsys.readouterr().err


def test_an_empty_study_name_and_a_directory_as_text_file_are_refused(tmp_path, data_dir, tiny_llama_dir, capsys):
    assert main(["search", "--model", str(tiny_llama_dir), "--ratio", "0.2", "--trials", "1", "--out",
                 str(tmp_path / "s"), "--study", " ", "--data-dir", str(data_dir)]) == 2
    assert "--study is empty" in capsys.readouterr().err
    assert main(["prune", "--model", str(tiny_llama_dir), "--ratio", "0.2", "--out", str(tmp_path / "p"),
                 "--calib-data", str(tmp_path), "--metric", "element1"]) == 2
    assert "is a directory; pass one .txt" in capsys.readouterr().err


def test_a_pickle_only_checkpoint_is_refused_in_one_line(tmp_path, tiny_llama_dir, capsys):
    import shutil

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    ckpt = tmp_path / "pickled"
    ckpt.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, ckpt / f.name)
    with (ckpt / "pytorch_model.bin").open("wb") as f:
        pickle.dump({"model.embed_tokens.weight": Hostile()}, f)
    status = main(["stats", "--model", str(ckpt), "--no-samples"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")
    assert "pickle" in err.strip().splitlines()[-1]
    assert not (tmp_path / "pwned").exists()


def test_a_config_that_disagrees_with_the_tensors_is_bad_input(tiny_llama_dir, tmp_path, capsys):
    import json
    import shutil

    ckpt = tmp_path / "edited"
    shutil.copytree(tiny_llama_dir, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["intermediate_size"] += 8
    (ckpt / "config.json").write_text(json.dumps(config))
    assert main(["stats", "--model", str(ckpt), "--no-samples", "--out", str(tmp_path / "s.json")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: the weights in") and "config.json" in last


def test_a_full_disk_at_the_end_of_a_search_keeps_the_study_and_the_rerun_delivers(tiny_llama_dir, data_dir, tmp_path,
                                                                                  monkeypatch, capsys):
    import optuna

    from adapruner.search import results

    out = tmp_path / "run"
    argv = ["search", "--model", str(tiny_llama_dir), "--ratio", "0.2", "--trials", "2", "--out", str(out),
            "--data-dir", str(data_dir), "--eval-windows", "2", "--device", "cpu", "--space", "paper"]
    real = results.write_trials_csv

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "trials.csv"))

    monkeypatch.setattr(results, "write_trials_csv", full)
    assert main(argv) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: the disk is full")
    monkeypatch.setattr(results, "write_trials_csv", real)
    assert main(argv) == 0  # the same command: no trial is run again, the delivery is finished
    study = optuna.load_study(study_name="adapruner-tpe", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 2 and (out / "trials.csv").is_file() and (out / "model" / "config.json").is_file()


def test_a_refused_write_inside_the_safetensors_writer_is_an_environment_fault():
    """The Rust writer reports a full disk or a size limit as text; it is still the environment's fault."""
    SafetensorError = type("SafetensorError", (Exception,), {})
    status, line = boundary.explain(SafetensorError("Error while serializing: I/O error: File too large (os error 27)"))
    assert status == boundary.ENVIRONMENT and "safetensors" in line
    assert boundary.explain(SafetensorError("invalid header"))[0] == boundary.BAD_INPUT


def test_an_empty_name_in_a_list_and_an_error_after_a_progress_bar(tiny_llama_dir, capsys):
    from tqdm import tqdm

    assert main(["eval", "--model", str(tiny_llama_dir), "--tasks", "piqa,,boolq"]) == 2
    assert "--tasks has an empty name in 'piqa,,boolq'" in capsys.readouterr().err
    bar = tqdm(total=3, desc="a step that fails")
    bar.update()
    assert main(["eval", "--model", str(tiny_llama_dir), "--ppl", "missing.txt"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and bar.disable  # the bar was ended first
