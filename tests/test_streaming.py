"""The streamed path (one decoder layer at a time) gives the in-memory path's statistics and model,
and a run killed mid-way resumes from its last finished layer to the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import adapruner  # noqa: F401  (registers the pruned model types)
from adapruner.cli import main
from tiny import CONFIGS, tiny_batch, tiny_model
from tiny_tokenizer import char_tokenizer

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("w_abs", "w_sq", "dot", "el1", "el1_sample", "el2", "wanda", "fluctuation")


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory) -> dict[str, Path]:
    """A saved tiny checkpoint of every family."""
    out = {}
    for family in CONFIGS:
        path = tmp_path_factory.mktemp("streamed") / family
        tiny_model(family).save_pretrained(path)
        char_tokenizer(add_bos=True).save_pretrained(path)
        out[family] = path
    return out


def tensors(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint, whatever its sharding."""
    from safetensors.torch import load_file

    out = {}
    for file in sorted(directory.glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


def assert_same_checkpoint(a: Path, b: Path) -> None:
    ta, tb = tensors(a / "model"), tensors(b / "model")
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), name
    ca, cb = (json.loads((d / "model" / "config.json").read_text()) for d in (a, b))
    assert ca == cb


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_streamed_statistics_equal_the_in_memory_ones(family_dirs, family):
    from adapruner.importance.coefficients import ELEMENT_FACTORS
    from adapruner.importance.needs import StatisticsNeeds
    from adapruner.importance.statistics import collect_statistics
    from adapruner.models.load import load_model
    from adapruner.streaming.model import open_streamed
    from adapruner.streaming.statistics import streamed_statistics

    model = load_model(str(family_dirs[family]), device="cpu").model
    calib = tiny_batch(4, 24)
    for gradients, micro_batch in ((True, None), (True, 3), (False, None)):
        a = collect_statistics(model, calib, gradients=gradients, micro_batch=micro_batch, gram=True, progress=False)
        needs = StatisticsNeeds(samples=True, gradients=gradients, gram=True, element_factors=ELEMENT_FACTORS)
        b = streamed_statistics(open_streamed(str(family_dirs[family]), device="cpu"), calib, needs,
                                micro_batch=micro_batch, progress=False)
        assert a.needs == b.needs
        assert a.layers.keys() == b.layers.keys()
        if gradients:
            assert a.mean_loss == b.mean_loss
        for i, la in a.layers.items():
            lb = b.layers[i]
            for name, ma in la.members.items():
                for f in FIELDS:
                    x, y = getattr(ma, f), getattr(lb.members[name], f)
                    assert (x is None) == (y is None) and (x is None or torch.equal(x, y)), (i, name, f)
            for key in la.input_mean:
                assert torch.equal(la.input_mean[key], lb.input_mean[key])
            for key in la.gram:
                assert torch.equal(la.gram[key], lb.gram[key])


CASES = {
    "element1-saved-bfloat16": ["--metric", "element1", "--save-dtype", "bfloat16"],
    "eq5-blend-micro-batch": ["--metric", "adapruner", "--micro-batch", "2"],
    "wanda-sp-reconstruct-sequential": ["--metric", "wanda-sp", "--update", "reconstruct",
                                        "--update-option", "windows=12"],
    "wanda-sp-reconstruct-oneshot-bias": ["--metric", "wanda-sp", "--update", "reconstruct", "--update-option",
                                          "windows=12", "--update-option", "mode=oneshot", "--update-option",
                                          "bias=true"],
    "flap-bias-global": ["--metric", "flap", "--bias-compensation", "--mode", "global"],
    "obs": ["--metric", "obs"],
    "l2-bias-schedule": ["--metric", "l2", "--bias-compensation", "--mode", "schedule", "--allocation-option",
                         "knots=[0.5,1,2]"],
}


def prune(model_dir: Path, out: Path, stream: bool, *extra: str) -> int:
    return main(["prune", "--model", str(model_dir), "--ratio", "0.3", "--out", str(out), "--device", "cpu",
                 "--num-samples", "4", "--calib-seq-len", "32", "--stream" if stream else "--no-stream", *extra])


@pytest.mark.parametrize("case", sorted(CASES))
def test_streamed_prune_writes_the_in_memory_checkpoint(family_dirs, data_dir, tmp_path, monkeypatch, case):
    monkeypatch.setenv("ADAPRUNER_DATA_DIR", str(data_dir))
    model = family_dirs["llama"]
    assert prune(model, tmp_path / "memory", False, *CASES[case]) == 0
    assert prune(model, tmp_path / "streamed", True, *CASES[case]) == 0
    assert_same_checkpoint(tmp_path / "memory", tmp_path / "streamed")
    report = json.loads((tmp_path / "streamed" / "pruning_report.json").read_text())
    assert report["execution"]["streamed"] and report["execution"]["reason"] == "--stream"
    assert not (tmp_path / ".streamed.partial").exists()
    assert len(json.loads((tmp_path / "streamed" / "model" / "model.safetensors.index.json").read_text())
               ["weight_map"]) == len(tensors(tmp_path / "streamed" / "model"))


@pytest.mark.parametrize("family", ["gemma3", "phi3", "qwen3"])
def test_streamed_prune_of_every_layout_loads_and_matches(family_dirs, data_dir, tmp_path, monkeypatch, family):
    """Tied embeddings (Gemma-3), fused projections (Phi-3), per-head norms (Qwen3)."""
    import transformers as T

    monkeypatch.setenv("ADAPRUNER_DATA_DIR", str(data_dir))
    extra = ["--metric", "element1", "--mode", "schedule", "--allocation-option", "knots=[0.5,1,2]",
             "--bias-compensation"]
    assert prune(family_dirs[family], tmp_path / "memory", False, *extra) == 0
    assert prune(family_dirs[family], tmp_path / "streamed", True, *extra) == 0
    assert_same_checkpoint(tmp_path / "memory", tmp_path / "streamed")
    ids = tiny_batch(2, 16)
    a = T.AutoModelForCausalLM.from_pretrained(tmp_path / "memory" / "model")
    b = T.AutoModelForCausalLM.from_pretrained(tmp_path / "streamed" / "model")
    assert torch.equal(a(ids).logits, b(ids).logits)


@pytest.mark.parametrize("stage", ["scores:1", "layer:1"])
def test_a_killed_streamed_prune_resumes_from_its_last_finished_layer(family_dirs, data_dir, tmp_path, stage):
    """kill -9 (the process kills itself after a layer), then the same command: it says where it
    resumes and writes the checkpoint of an uninterrupted run."""
    args = ["prune", "--model", str(family_dirs["llama"]), "--ratio", "0.3", "--device", "cpu", "--num-samples", "4",
            "--calib-seq-len", "32", "--stream", "--metric", "adapruner", "--micro-batch", "2",
            "--data-dir", str(data_dir)]
    env = {**os.environ, "ADAPRUNER_FAULT_KILL_AFTER": stage, "PYTHONPATH": str(REPO / "src")}
    killed = subprocess.run([sys.executable, "-m", "adapruner.cli", *args, "--out", str(tmp_path / "run")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "run").exists() and (tmp_path / ".run.partial").is_dir()
    env.pop("ADAPRUNER_FAULT_KILL_AFTER")
    resumed = subprocess.run([sys.executable, "-m", "adapruner.cli", *args, "--out", str(tmp_path / "run")], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming:" in resumed.stdout
    if stage == "layer:1":
        assert "continuing from layer 2" in resumed.stdout
    assert main([*args, "--out", str(tmp_path / "uninterrupted")]) == 0
    assert_same_checkpoint(tmp_path / "run", tmp_path / "uninterrupted")
    assert not (tmp_path / ".run.partial").exists()


def test_a_different_run_never_reuses_staged_work(family_dirs, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAPRUNER_DATA_DIR", str(data_dir))
    staging = tmp_path / ".run.partial"
    (staging / "work" / "scores").mkdir(parents=True)
    (staging / "manifest.json").write_text(json.dumps({"digest": "another run"}))
    (staging / "work" / "plan.json").write_text("{}")
    assert prune(family_dirs["llama"], tmp_path / "run", True, "--metric", "l2") == 0
    assert "discarding the unfinished work of a different run" in capsys.readouterr().out
    assert prune(family_dirs["llama"], tmp_path / "memory", False, "--metric", "l2") == 0
    assert_same_checkpoint(tmp_path / "run", tmp_path / "memory")


def test_the_path_is_chosen_by_the_predicted_peak(family_dirs, tmp_path, capsys):
    """A budget below the in-memory prediction streams; --dry-run prints both predictions, writes nothing."""
    base = ["prune", "--model", str(family_dirs["llama"]), "--ratio", "0.3", "--device", "cpu", "--metric", "l2",
            "--out", str(tmp_path / "out")]
    assert main([*base, "--max-memory", "1M", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "execution: streamed" in printed and "over the" in printed
    assert "predicted in-memory: peak" in printed and "predicted streamed: peak" in printed
    assert main([*base, "--max-memory", "100G", "--dry-run"]) == 0
    assert "execution: in memory (fits" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    assert main([*base, "--max-memory", "eight gigs", "--dry-run"]) == 2
    assert "--max-memory must be a size" in capsys.readouterr().err


def test_a_search_trial_s_prediction_holds_the_pruned_copy_its_forward_swaps_in():
    """A gradient-free trial of an 8B shape in float32: its forward holds the kept weights of every
    narrowed layer beside the model, more than its statistics pass; a streamed trial one layer's."""
    from adapruner.config import MetricConfig, PruneConfig
    from adapruner.streaming.memory import Shape, predict

    shape = Shape(layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, head_dim=128, vocab=128256,
                  tied=False, parameters=0)
    shape.parameters = 2 * shape.vocab * shape.hidden + shape.layers * shape.layer_parameters + shape.hidden
    config = PruneConfig(metric=MetricConfig(name="wanda-sp"))
    prune, trial = predict(shape, config, 4), predict(shape, config, 4, trial_ratio=0.2)
    copy = trial["in_memory"].parts["pruned layers of a trial"]
    assert copy == shape.layers * int(0.8 * shape.layer_parameters * 4)
    assert trial["in_memory"].peak_bytes > prune["in_memory"].peak_bytes >= shape.parameters * 4
    assert trial["in_memory"].peak_bytes >= shape.parameters * 4 + copy
    assert 0 < trial["streamed"].peak_bytes - prune["streamed"].peak_bytes <= int(0.8 * shape.layer_parameters * 4)


def test_a_full_disk_is_one_line_and_the_next_run_resumes(family_dirs, data_dir, tmp_path, monkeypatch, capsys):
    import errno

    import adapruner.streaming.prune as streamed

    monkeypatch.setenv("ADAPRUNER_DATA_DIR", str(data_dir))
    real_save, calls = streamed._save, []

    def full_disk(tensors, path, dtype=None):
        calls.append(path)
        if "-of-" in path.name and len(calls) > 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(tensors, path, dtype)

    monkeypatch.setattr(streamed, "_save", full_disk)
    assert prune(family_dirs["llama"], tmp_path / "run", True, "--metric", "element1") == 3  # an environment fault
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars
    assert last.startswith("error: ") and "the disk is full" in last and ".run.partial" in last and "resume" in last
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(streamed, "_save", real_save)
    assert prune(family_dirs["llama"], tmp_path / "run", True, "--metric", "element1") == 0
    assert "resuming:" in capsys.readouterr().out
    assert prune(family_dirs["llama"], tmp_path / "memory", False, "--metric", "element1") == 0
    assert_same_checkpoint(tmp_path / "run", tmp_path / "memory")


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_streamed_perplexity_equals_the_in_memory_one(family_dirs, data_dir, tmp_path, family):
    """``eval --stream`` (one layer at a time; Gemma-2's logit soft-capping included)."""
    base = ["eval", "--model", str(family_dirs[family]), "--ppl", "wikitext2", "--seq-len", "32", "--max-windows",
            "10", "--batch-size", "4", "--device", "cpu", "--data-dir", str(data_dir)]
    assert main([*base, "--out", str(tmp_path / "memory.json")]) == 0
    assert main([*base, "--stream", "--out", str(tmp_path / "streamed.json")]) == 0
    memory, streamed = (json.loads((tmp_path / f"{n}.json").read_text())["perplexity"][0]
                        for n in ("memory", "streamed"))
    assert streamed["mean_nll"] == memory["mean_nll"] and streamed["n_tokens"] == memory["n_tokens"] == 10 * 31
    assert main([*base, "--stream", "--tasks", "piqa", "--out", str(tmp_path / "x.json")]) == 2


TRIAL_CASES = {
    "element1": {"metric": {"name": "element1"}},
    "eq5-blend": {"metric": {"name": "adapruner"}},
    "wanda-sp-reconstruct-sequential": {"metric": {"name": "wanda-sp"},
                                        "update": {"name": "reconstruct", "options": {"windows": 6}}},
    "wanda-sp-reconstruct-oneshot": {"metric": {"name": "wanda-sp"},
                                     "update": {"name": "reconstruct", "options": {"windows": 6, "mode": "oneshot"}}},
    "flap-bias-global": {"metric": {"name": "flap"}, "update": {"name": "bias"},
                         "allocation": {"mode": "global"}},
    "obs": {"metric": {"name": "obs"}},
}


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_a_streamed_search_trial_gives_the_in_memory_objective(family_dirs, family):
    """The same configurations scored by the in-memory objective and by the streamed one (one
    layer at a time, masks instead of surgery): the same values, and the skeleton stays dense."""
    import transformers as T

    from adapruner.config import PruneConfig
    from adapruner.search.objective import Measure, Objective
    from adapruner.streaming.model import open_streamed
    from adapruner.streaming.trial import StreamedObjective

    pool = tiny_batch(12, 24, seed=3)
    windows = {"wikitext2": tiny_batch(5, 24, seed=4), "ptb": tiny_batch(3, 24, seed=5)}
    model = T.AutoModelForCausalLM.from_pretrained(family_dirs[family]).eval()
    memory = Objective(model, pool, windows, 0.3, batch_size=2)
    sm = open_streamed(str(family_dirs[family]), device="cpu")
    streamed = StreamedObjective(sm, pool, windows, 0.3, batch_size=2)
    kl = Measure("kl", {"top_k": 16})
    memory_kl, streamed_kl = Objective(model, pool, windows, 0.3, 2, measure=kl), StreamedObjective(
        sm, pool, windows, 0.3, 2, measure=kl)
    shapes = {k: tuple(v.shape) for k, v in sm.model.state_dict().items()}
    for case, parts in TRIAL_CASES.items():
        config = PruneConfig.from_json({**parts, "calibration": {"seq_len": 24, "num_samples": 4,
                                                                 "indices": [0, 3, 5, 9]}})
        a, b = memory(config), streamed(config)
        for name in windows:
            assert b.ppl[name] == pytest.approx(a.ppl[name], rel=1e-5), (case, name)
        assert b.value == pytest.approx(a.value, rel=1e-5), case
        if case in ("element1", "wanda-sp-reconstruct-sequential"):
            assert streamed_kl(config).value == pytest.approx(memory_kl(config).value, rel=1e-4), case
    assert streamed.dense_ppl == pytest.approx(memory.dense_ppl, rel=1e-5)
    assert {k: tuple(v.shape) for k, v in sm.model.state_dict().items()} == shapes
    assert all(p.device.type == "meta" for p in sm.model.model.layers.parameters())


def test_a_streamed_search_finds_and_delivers_what_the_in_memory_one_does(family_dirs, data_dir, tmp_path, capsys):
    """``search --stream``: the same trials (values), the same best configuration, the same
    delivered weights as the in-memory search with the same seed, and the check reproduces."""
    import optuna

    from adapruner.search.storage import default_storage

    space = tmp_path / "space.yaml"
    space.write_text("num_samples: 4\n")

    def search(out, *extra):
        return main(["search", "--model", str(family_dirs["llama"]), "--ratio", "0.2", "--trials", "4", "--out",
                     str(out), "--data-dir", str(data_dir), "--eval-windows", "4", "--device", "cpu",
                     "--space", str(space), *extra])

    assert search(tmp_path / "memory", "--no-stream") == 0
    assert search(tmp_path / "streamed", "--stream") == 0
    assert "execution: streamed" in capsys.readouterr().out
    values = {}
    for name in ("memory", "streamed"):
        trials = optuna.load_study(study_name="adapruner-tpe", storage=default_storage(tmp_path / name)).trials
        values[name] = [t.value for t in trials]
    assert values["streamed"] == pytest.approx(values["memory"], rel=1e-5)
    memory, streamed = (json.loads((tmp_path / n / "pruning_report.json").read_text()) for n in ("memory", "streamed"))
    assert streamed["config"] == memory["config"] and streamed["plan"] == memory["plan"]
    assert streamed["reproduction"]["reproduced"] and streamed["runtime"]["execution"]["streamed"]
    ta, tb = tensors(tmp_path / "memory" / "model"), tensors(tmp_path / "streamed" / "model")
    assert ta.keys() == tb.keys()
    assert all(torch.allclose(ta[k], tb[k], rtol=1e-5, atol=1e-6) for k in ta)
    assert not (tmp_path / "streamed" / "model-streamed").exists()
