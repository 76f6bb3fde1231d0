"""One output policy: no command writes to, through or over one of its inputs, and the commands
that write one file refuse to replace it without --overwrite."""

from __future__ import annotations

import os

import pytest

from adapruner.cli import main


@pytest.fixture()
def run_dir(tiny_llama_dir, tmp_path, data_dir):
    """A pruned run directory (OUT/model + pruning_report.json), an input for the commands below."""
    out = tmp_path / "run"
    assert main(["prune", "--model", str(tiny_llama_dir), "--ratio", "0.2", "--metric", "l2", "--out", str(out),
                 "--device", "cpu"]) == 0
    return out


def refused(capsys, argv, fragment):
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and fragment in last, last


def test_every_command_refuses_an_out_that_is_contains_or_lies_inside_an_input(run_dir, tmp_path, data_dir, capsys):
    model = run_dir / "model"
    weights = next(model.glob("*.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in model.iterdir()}
    link = tmp_path / "link.safetensors"
    link.symlink_to(weights)
    hard = tmp_path / "hard.safetensors"
    os.link(weights, hard)
    cases = [
        (["export", "--model", str(model), "--out", str(weights), "--overwrite"], "is one of this command's inputs"),
        (["export", "--model", str(model), "--out", str(model / "x.gguf")], "lies inside"),
        (["prune", "--model", str(model), "--ratio", "0.2", "--metric", "l2", "--out", str(run_dir), "--overwrite"],
         "contains this command's input"),
        (["prune", "--model", str(model), "--ratio", "0.2", "--metric", "l2", "--out", str(model / "sub")], "lies inside"),
        (["search", "--model", str(model), "--ratio", "0.2", "--trials", "1", "--out", str(model / "s"),
          "--data-dir", str(data_dir)], "lies inside"),
        (["finetune", "--model", str(model), "--method", "distill", "--teacher", str(model), "--out", str(run_dir),
          "--overwrite"], "contains this command's input"),
        (["eval", "--model", str(model), "--out", str(weights), "--overwrite", "--data-dir", str(data_dir)],
         "is one of this command's inputs"),
        (["stats", "--model", str(model), "--out", str(model / "config.json"), "--overwrite"],
         "is one of this command's inputs"),
        (["report", str(run_dir), "--out", str(run_dir / "pruning_report.json"), "--overwrite"],
         "is one of this command's inputs"),
    ]
    for argv, fragment in cases:
        refused(capsys, argv, fragment)
    # through a symlink or a hard link to an input: the same file
    (tmp_path / "x").mkdir()
    assert main(["export", "--model", str(model), "--out", str(link), "--overwrite"]) == 2
    assert main(["export", "--model", str(model), "--out", str(hard), "--overwrite"]) == 2
    assert {p: p.stat().st_mtime_ns for p in model.iterdir()} == before and weights.resolve() == weights


def test_report_and_stats_replace_an_existing_file_only_with_overwrite(run_dir, tmp_path, capsys):
    existing = tmp_path / "mine.md"
    existing.write_text("my notes\n")
    refused(capsys, ["report", str(run_dir), "--out", str(existing)], "already exists; pass --overwrite")
    assert existing.read_text() == "my notes\n"
    assert main(["report", str(run_dir), "--out", str(existing), "--overwrite"]) == 0
    assert existing.read_text() != "my notes\n"
    stats = tmp_path / "stats.json"
    stats.write_text("{}")
    refused(capsys, ["stats", "--model", str(run_dir / "model"), "--out", str(stats), "--no-samples"],
            "already exists; pass --overwrite")


def test_replacing_a_symlinked_output_leaves_its_target_and_no_debris(tmp_path):
    from adapruner.core.io import atomic_directory

    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("the user's")
    link = tmp_path / "out"
    link.symlink_to(target)
    with atomic_directory(link, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("ours")
    assert (link / "new.txt").read_text() == "ours" and not link.is_symlink()
    assert (target / "keep.txt").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out"]
