"""``adapruner prune`` end to end: tiny checkpoints on disk, bad input, and SmolLM2 (slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import transformers as T

import adapruner  # noqa: F401  (registers the pruned model types)
from adapruner.cli import main
from adapruner.config import PruneConfig
from adapruner.allocation import count_parameters
from tiny import tiny_batch
from tiny_tokenizer import char_tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tiny_llama_dir) -> Path:
    """The session's tiny Llama checkpoint (conftest), as a user would pass with --model DIR."""
    return tiny_llama_dir


def prune(tiny_dir, out, *extra, ratio="0.3") -> int:
    return main(["prune", "--model", str(tiny_dir), "--ratio", ratio, "--out", str(out), "--device", "cpu",
                 "--layers", "0:4", *extra])


def test_prune_random_writes_a_loadable_smaller_checkpoint(tiny_dir, tmp_path, capsys):
    out = tmp_path / "pruned"
    assert prune(tiny_dir, out, "--metric", "random", "--seed", "3") == 0
    printed = capsys.readouterr().out
    assert "parameters:" in printed and str(out) in printed
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["ratio_requested"] == 0.3 and abs(report["ratio_achieved"] - 0.3) < 0.01
    assert report["seed"] == 3 and report["config"]["metric"]["name"] == "random"
    assert report["config"]["metric"]["seed"] == 3
    assert len(report["layer_widths"]) == 4 and set(report["plan"]) == {"0", "1", "2", "3"}
    assert {"load_s", "plan_s", "surgery_s"} <= set(report["timings"])
    assert {"torch", "transformers", "adapruner"} <= set(report["versions"])
    model = T.AutoModelForCausalLM.from_pretrained(out / "model")
    assert count_parameters(model) == report["parameters_after"]
    assert T.AutoTokenizer.from_pretrained(out / "model")("ab")["input_ids"][0] == 1
    assert model.generate(tiny_batch(1, 5), max_new_tokens=3, do_sample=False).shape == (1, 8)


def test_same_seed_same_model_and_config_file_with_overrides(tiny_dir, tmp_path):
    assert prune(tiny_dir, tmp_path / "a", "--metric", "random", "--seed", "1") == 0
    assert prune(tiny_dir, tmp_path / "b", "--metric", "random", "--seed", "1") == 0
    plan_a = json.loads((tmp_path / "a" / "pruning_report.json").read_text())["plan"]
    assert plan_a == json.loads((tmp_path / "b" / "pruning_report.json").read_text())["plan"]

    cfg = PruneConfig.from_json({"metric": {"name": "l1"}, "allocation": {"mode": "global", "attention": "kv"}})
    (tmp_path / "best_config.json").write_text(json.dumps({"config": cfg.to_json()}))
    assert prune(tiny_dir, tmp_path / "c", "--config", str(tmp_path / "best_config.json"), "--metric", "l2") == 0
    used = json.loads((tmp_path / "c" / "pruning_report.json").read_text())["config"]
    assert used["metric"]["name"] == "l2"  # the flag wins
    assert used["allocation"]["mode"] == "global" and used["allocation"]["attention"] == "kv"  # the file's


def test_without_config_or_metric_the_default_recipe_prunes(tiny_dir, tmp_path, data_dir):
    from adapruner.cli import build_parser
    from adapruner.commands.prune import build_config
    from adapruner.recipes import DEFAULT_RECIPE, RECIPES

    def config(*flags):
        return build_config(build_parser().parse_args(["prune", "--model", "m", "--out", "o", *flags]))

    default = RECIPES[DEFAULT_RECIPE]
    got = config()
    assert (got.metric.name, got.update.name, got.allocation.mode) == (default.metric, default.update, default.mode)
    assert config("--metric", "l2").update.name == "none"  # --metric alone: every other setting at its default
    flap = config("--recipe", "flap-bias", "--mode", "global")  # flags refine a recipe
    assert (flap.metric.name, flap.update.name, flap.allocation.mode) == ("flap", "bias", "global")
    assert prune(tiny_dir, tmp_path / "d", "--num-samples", "4", "--data-dir", str(data_dir)) == 0
    report = json.loads((tmp_path / "d" / "pruning_report.json").read_text())
    assert report["recipe"] == DEFAULT_RECIPE and report["config"]["metric"]["name"] == default.metric


def test_a_flag_that_switches_mode_or_update_drops_the_files_options_for_the_old_one(tiny_dir, tmp_path):
    from adapruner.cli import build_parser
    from adapruner.commands.prune import build_config

    cfg = PruneConfig.from_json({"metric": {"name": "l2"},
                                 "allocation": {"mode": "schedule", "options": {"knots": [0.5, 2.0, 0.5]}},
                                 "update": {"name": "reconstruct", "options": {"mode": "oneshot", "windows": 4}}})
    path = tmp_path / "best_config.json"
    path.write_text(json.dumps({"config": cfg.to_json()}))
    # a schedule's knots mean nothing to uniform allocation: before, this was "no option(s) ['knots']"
    assert prune(tiny_dir, tmp_path / "u", "--config", str(path), "--mode", "uniform", "--update", "none") == 0
    used = json.loads((tmp_path / "u" / "pruning_report.json").read_text())["config"]
    assert used["allocation"]["mode"] == "uniform" and used["allocation"]["options"] == {}
    assert used["update"] == {"name": "none", "options": {}}

    def config(*flags):
        return build_config(build_parser().parse_args(["prune", "--model", "m", "--out", "o", "--config", str(path),
                                                       *flags]))

    # the same name keeps the file's options and merges the flag's into them
    same = config("--update-option", "mode=sequential")
    assert same.allocation.options == {"knots": [0.5, 2.0, 0.5]}
    assert same.update.options == {"mode": "sequential", "windows": 4}
    other = config("--update", "bias", "--metric", "flap", "--mode", "uniform", "--allocation-option", "equal=true")
    assert other.update.options == {} and other.metric.options == {} and other.allocation.options == {"equal": True}


@pytest.mark.parametrize("args, message", [
    (["--metric", "random", "--ratio", "0"], "strictly between 0 and 1"),
    (["--metric", "random", "--ratio", "1.2"], "strictly between 0 and 1"),
    (["--metric", "random", "--ratio", "0.9"], "cannot be reached: .* at most 0\\.\\d+"),
    (["--metric", "random", "--layers", "0:99"], "layer range \\[0, 99\\)"),
    (["--metric", "random", "--layers", "2:2"], "layer range \\[2, 2\\)"),
    (["--metric", "nonsense"], "unknown importance metric 'nonsense'"),
    (["--recipe", "element1", "--config", "best_config.json"], "--config and --recipe"),
    (["--metric", "element1", "--micro-batch", "0"], "--micro-batch must be at least 1"),
])
def test_bad_input_is_one_line_error(tiny_dir, tmp_path, capsys, args, message):
    rc = main(["prune", "--model", str(tiny_dir), "--out", str(tmp_path / "o"), "--device", "cpu",
               *(["--ratio", "0.3"] if "--ratio" not in args else []), *args])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err  # (progress bars may precede it)
    assert re.search(message, errors[0]), errors[0]
    assert not (tmp_path / "o").exists()


def test_existing_out_is_refused_unless_overwrite(tiny_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    assert prune(tiny_dir, out, "--metric", "l2") == 2
    assert "already exists" in capsys.readouterr().err
    assert prune(tiny_dir, out, "--metric", "l2", "--overwrite") == 0
    assert (out / "model" / "model.safetensors").is_file()


def test_unsupported_architecture(tmp_path, capsys):
    path = tmp_path / "gpt2"
    T.AutoModelForCausalLM.from_config(T.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=256)).save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    assert main(["prune", "--model", str(path), "--ratio", "0.2", "--metric", "l2", "--out", str(tmp_path / "o"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "unsupported architecture 'gpt2'" in err and "llama" in err


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["random", "l2"])
def test_smollm2_prune_20_percent(metric, tmp_path, capsys):
    out = tmp_path / metric
    assert main(["prune", "--model", "smollm2-135m", "--ratio", "0.2", "--metric", metric, "--out", str(out),
                 "--device", "cpu"]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["parameters_before"] == 134_515_008
    assert abs(report["ratio_achieved"] - 0.2) < 0.01
    widths = report["layer_widths"]
    assert len(widths) == 30 and widths[0]["num_attention_heads"] == 9 and widths[29]["intermediate_size"] == 1536
    assert all(w["intermediate_size"] < 1536 and w["intermediate_size"] % 8 == 0 for w in widths[4:28])
    dense_bytes = sum(f.stat().st_size for f in Path(report["model"]["path"]).glob("*.safetensors"))
    pruned_bytes = (out / "model" / "model.safetensors").stat().st_size
    assert abs(pruned_bytes / dense_bytes - report["parameters_after"] / report["parameters_before"]) < 0.01
    model = T.AutoModelForCausalLM.from_pretrained(out / "model")
    assert count_parameters(model) == report["parameters_after"]
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    tok = T.AutoTokenizer.from_pretrained(out / "model")
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    assert model.generate(ids, max_new_tokens=5, do_sample=False).shape[1] == ids.shape[1] + 5


def test_calibration_metric_records_the_windows_it_used(tiny_dir, tmp_path, data_dir):
    args = ["--metric", "wanda-sp", "--num-samples", "3", "--calib-seq-len", "32", "--data-dir", str(data_dir)]
    assert prune(tiny_dir, tmp_path / "a", *args) == 0
    used = json.loads((tmp_path / "a" / "pruning_report.json").read_text())["config"]
    assert len(used["calibration"]["indices"]) == 3 and used["calibration"]["seq_len"] == 32
    # The recorded config reproduces the run exactly.
    (tmp_path / "cfg.json").write_text(json.dumps(used))
    assert prune(tiny_dir, tmp_path / "b", "--config", str(tmp_path / "cfg.json"), "--data-dir", str(data_dir)) == 0
    plans = [json.loads((tmp_path / d / "pruning_report.json").read_text())["plan"] for d in "ab"]
    assert plans[0] == plans[1]


def test_micro_batches_give_the_same_pruning(tiny_dir, tmp_path, data_dir):
    args = ["--metric", "element2", "--num-samples", "4", "--calib-seq-len", "32", "--data-dir", str(data_dir)]
    assert prune(tiny_dir, tmp_path / "all", *args) == 0
    assert prune(tiny_dir, tmp_path / "mb", *args, "--micro-batch", "1") == 0
    plans = [json.loads((tmp_path / d / "pruning_report.json").read_text())["plan"] for d in ("all", "mb")]
    assert plans[0] == plans[1]


def test_calibration_indices_are_checked():
    from adapruner.config import CalibrationConfig
    from adapruner.errors import AdaprunerError
    from adapruner.data.calibration import calibration_indices

    assert calibration_indices(50, CalibrationConfig(num_samples=5, seed=1)) == \
        calibration_indices(50, CalibrationConfig(num_samples=5, seed=1))
    with pytest.raises(AdaprunerError, match="outside the pool"):
        calibration_indices(10, CalibrationConfig(indices=[3, 12]))
    with pytest.raises(AdaprunerError, match="only 4 windows"):
        calibration_indices(4, CalibrationConfig(num_samples=10))
