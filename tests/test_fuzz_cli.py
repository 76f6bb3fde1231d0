"""A fuzzer for the command line: generated argument vectors for every command end in one of the
documented exit statuses with an `error:` line (or argparse's usage error), never a traceback or
an internal error, and write nothing outside their output path.

The model is always a path that is not a usable checkpoint (missing, a plain directory, a file),
so every run fails in validation, before any weight is read: the property is about how input is
refused, and the test stays within seconds.
"""

from __future__ import annotations

import argparse
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adapruner.cli import COMMANDS, build_parser, main  # noqa: E402

NUMBERS = st.sampled_from(["0", "-1", "1", "0.5", "1e400", "-1e400", "nan", "inf", "2", "99999999999999999999999",
                           "1.5", "abc", "", " ", "1e-320", "0x10", "٣"])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


def _flags(command: str) -> list[argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [a for a in sub._actions if a.option_strings and a.dest not in ("help", "model", "out", "runs")]


@st.composite
def argv(draw, tmp):
    command = draw(st.sampled_from([c for c in COMMANDS if c not in ("models", "data")]))
    model = draw(st.sampled_from([str(tmp / "missing"), str(tmp / "plain_dir"), str(tmp / "a_file.txt")]))
    args = [command]
    if command == "report":
        args += [model]
    elif command == "compare":
        args += [model, str(tmp / "a_file.txt")]
    else:
        args += ["--model", model]
    if command in ("prune", "search", "finetune", "export", "stats", "report", "eval", "compare"):
        args += ["--out", str(tmp / "out" / draw(st.sampled_from(["o", "o.json", "o.gguf"])))]
    flags = _flags(command)  # a command may have no flag besides its inputs and --out (compare)
    for action in draw(st.lists(st.sampled_from(flags), max_size=4, unique_by=lambda a: a.dest)) if flags else []:
        flag = action.option_strings[-1]
        if action.nargs == 0:
            args.append(flag)
        elif action.choices:
            args += [flag, draw(st.one_of(st.sampled_from([str(c) for c in action.choices]), TEXT))]
        else:
            args += [flag, draw(st.one_of(NUMBERS, TEXT, st.just(str(tmp / "plain_dir"))))]
    return args


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "plain_dir").mkdir()
    (tmp / "a_file.txt").write_text("not a model\n")
    return tmp


def _snapshot(root):
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def test_generated_command_lines_are_refused_in_one_line(sandbox, capsys):
    before = _snapshot(sandbox)

    @settings(max_examples=int(os.environ.get("ADAPRUNER_FUZZ_EXAMPLES", 150)), deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(argv(sandbox))
    def check(args):
        try:
            status = main(args)
        except SystemExit as stop:  # argparse's own usage errors
            status = stop.code
        err = capsys.readouterr().err
        assert status in (0, 2, 3), (args, err)
        assert "Traceback" not in err, (args, err)
        if status:
            last = err.strip().split("\n")[-1]
            assert last.startswith("error: ") or ": error: " in last, (args, err)

    check()
    created = _snapshot(sandbox) - before
    assert all(p.startswith(str(sandbox / "out")) for p in created), created


def test_damaged_checkpoint_files_are_refused_in_one_line(tiny_llama_dir, tmp_path, capsys):
    """Truncated and bit-flipped weights and configs: the run succeeds (a flip inside the tensor
    data is still a valid file) or ends in one error line, never a traceback."""
    import shutil

    text = tmp_path / "text.txt"
    text.write_text("a few words to score in one short window of text.\n" * 4)
    names = ("model.safetensors", "config.json", "tokenizer.json")

    @settings(max_examples=int(os.environ.get("ADAPRUNER_FUZZ_EXAMPLES", 40)) // 2, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(names), st.sampled_from(["truncate", "flip"]), st.floats(0, 1), st.integers(0, 255))
    def check(name, how, where, byte):
        ckpt = tmp_path / "ckpt"
        shutil.rmtree(ckpt, ignore_errors=True)
        shutil.copytree(tiny_llama_dir, ckpt)
        path = ckpt / name
        data = bytearray(path.read_bytes())
        # Most of a safetensors file's interesting bytes are in its header: aim there half the time.
        span = min(len(data), 400) if name.endswith(".safetensors") and where < 0.5 else len(data)
        at = min(int(where * span), len(data) - 1)
        if how == "truncate":
            data = data[:at]
        else:
            data[at] ^= byte or 1
        path.write_bytes(bytes(data))
        status = main(["eval", "--model", str(ckpt), "--ppl", str(text), "--seq-len", "16", "--max-windows", "1",
                       "--device", "cpu", "--out", str(tmp_path / "e.json"), "--overwrite"])
        err = capsys.readouterr().err
        assert status in (0, 2, 3) and "Traceback" not in err, (name, how, at, err[-1500:])
        if status:
            assert err.strip().split("\n")[-1].startswith("error: "), (name, how, at, err[-1500:])

    check()
