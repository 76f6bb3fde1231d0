"""Distillation recovery: it pulls the student towards the teacher, resumes after a kill with the
same number of steps, and refuses bad input in one line without leaving output behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adapruner.cli import main
from adapruner.config import AllocationConfig, MetricConfig, PruneConfig
from adapruner.planning import plan_pruning
from adapruner.pruning.surgery import prune_model
from adapruner.recovery.distill import DistillConfig, distill, mean_kl, validation_ppl
from tiny import tiny_batch, tiny_model


def pruned_pair(seed: int = 0):
    teacher = tiny_model("llama", seed=seed)
    student = tiny_model("llama", seed=seed)
    plan = plan_pruning(student, None, PruneConfig(metric=MetricConfig(name="l2"),
                                                   allocation=AllocationConfig(layers=[0, 4])), 0.3).plan
    prune_model(student, plan)
    return student, teacher


def patterned(n: int, length: int, seed: int) -> torch.Tensor:
    """Windows of a learnable text: counting sequences with random starts and strides."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(3, 200, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    return (start + step * torch.arange(length)) % 250 + 3


def test_distillation_lowers_the_kl_to_the_teacher():
    student, teacher = pruned_pair()
    train, val = tiny_batch(64, 24, seed=1), tiny_batch(8, 24, seed=2)
    before = mean_kl(student, teacher, val)
    student, report = distill(student, teacher, train, val, DistillConfig(max_steps=40, batch_size=8, lr=3e-3,
                                                                          eval_every=20, seq_len=24), progress=False)
    assert mean_kl(student, teacher, val) < 0.7 * before
    assert report["validation"][-1]["kl"] < report["validation"][0]["kl"]
    assert report["steps"] == 40 and len(report["train_loss"]) == 40


def test_distillation_with_the_lm_loss_lowers_the_validation_loss():
    student, teacher = pruned_pair()
    train, val = patterned(64, 24, 1), patterned(8, 24, 2)
    before = validation_ppl(student, val)
    student, report = distill(student, teacher, train, val, DistillConfig(max_steps=40, batch_size=8, lr=3e-3,
                                                                          lm_weight=1.0, seq_len=24), progress=False)
    assert report["val_ppl_after"] < 0.5 * before


def test_the_hidden_state_loss_pulls_every_layer_towards_the_teacher():
    from adapruner.recovery.distill import hidden_state_loss

    student, teacher = pruned_pair()
    train, val = tiny_batch(64, 24, seed=1), tiny_batch(8, 24, seed=2)

    def gap() -> float:
        with torch.no_grad():
            s = student(input_ids=val, output_hidden_states=True).hidden_states
            t = teacher(input_ids=val, output_hidden_states=True).hidden_states
        return float(hidden_state_loss(s, t))

    before = gap()
    student, report = distill(student, teacher, train, val, DistillConfig(max_steps=30, batch_size=8, lr=3e-3,
                                                                          hidden_weight=1.0, seq_len=24), progress=False)
    student.train(False)
    assert gap() < 0.7 * before
    assert all("hidden" in r for r in report["train_loss"]) and report["settings"]["hidden_weight"] == 1.0


class Dies(torch.nn.Module):
    """A teacher that is killed on its ``n``-th forward (like Ctrl-C in the middle of a run)."""

    def __init__(self, inner, n):
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.inner(*args, **kwargs)

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_with_the_same_steps(tmp_path):
    train, val = tiny_batch(64, 24, seed=1), tiny_batch(4, 24, seed=2)
    config = DistillConfig(max_steps=20, batch_size=4, lr=1e-3, eval_every=100, checkpoint_every=5, seq_len=24)
    student, teacher = pruned_pair()
    # 1 forward for the KL of the first validation, then 1 per step: dies during step 13.
    with pytest.raises(KeyboardInterrupt):
        distill(student, Dies(teacher, 2 + 12), train, val, config, checkpoint_dir=tmp_path / "ckpt", progress=False)
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["step"] == 10
    # The data digest must be the same in any process (a resume usually is a new process).
    import hashlib

    assert state["fingerprint"]["windows"] == hashlib.sha256(train.numpy().tobytes()).hexdigest()[:16]
    student2, _ = pruned_pair()
    resumed, report = distill(student2, teacher, train, val, config, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert report["resumed_at_step"] == 10 and report["steps"] == 20
    assert [h["step"] for h in report["train_loss"]] == list(range(1, 21))
    # The same run without the interruption ends at the same weights (same data order, same state).
    student3, _ = pruned_pair()
    straight, _ = distill(student3, teacher, train, val, config, progress=False)
    for (k, a), (_, b) in zip(resumed.state_dict().items(), straight.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k


class CtrlC(Dies):
    """A teacher during whose ``n``-th forward the user presses Ctrl-C (a real SIGINT)."""

    def forward(self, *args, **kwargs):
        import os
        import signal

        self.calls += 1
        if self.calls == self.n:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner(*args, **kwargs)


def test_ctrl_c_finishes_the_step_saves_and_the_rerun_ends_at_the_same_weights(tmp_path):
    train, val = tiny_batch(64, 24, seed=1), tiny_batch(4, 24, seed=2)
    config = DistillConfig(max_steps=12, batch_size=4, lr=1e-3, eval_every=100, seq_len=24)  # clock checkpoints only
    student, teacher = pruned_pair()
    # 1 teacher forward for the validation cache, then 1 per step: Ctrl-C during step 7.
    with pytest.raises(KeyboardInterrupt):
        distill(student, CtrlC(teacher, 1 + 7), train, val, config, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert json.loads((tmp_path / "ckpt" / "state.json").read_text())["step"] == 7  # step 7 completed, then saved
    student2, _ = pruned_pair()
    resumed, report = distill(student2, teacher, train, val, config, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert report["resumed_at_step"] == 7 and report["steps"] == 12
    straight, _ = distill(pruned_pair()[0], teacher, train, val, config, progress=False)
    for (k, a), (_, b) in zip(resumed.state_dict().items(), straight.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_checkpoints_follow_the_clock_unless_steps_are_asked_for(tmp_path, monkeypatch):
    import adapruner.recovery.loop as loop_module

    saved = []
    monkeypatch.setattr(loop_module, "save_checkpoint", lambda d, m, o, sc, step, *a: saved.append(step))
    train, val = tiny_batch(32, 24, seed=1), tiny_batch(4, 24, seed=2)
    student, teacher = pruned_pair()
    distill(student, teacher, train, val, DistillConfig(max_steps=6, batch_size=4, eval_every=100, seq_len=24),
            checkpoint_dir=tmp_path / "a", progress=False)
    assert saved == []  # a run shorter than --checkpoint-minutes writes none
    distill(pruned_pair()[0], teacher, train, val, DistillConfig(max_steps=6, batch_size=4, eval_every=100, seq_len=24,
                                                                 checkpoint_minutes=1e-9),
            checkpoint_dir=tmp_path / "b", progress=False)
    assert saved == [1, 2, 3, 4, 5]  # every step once the clock says so (none after the last: the output follows)
    saved.clear()
    distill(pruned_pair()[0], teacher, train, val, DistillConfig(max_steps=6, batch_size=4, eval_every=100, seq_len=24,
                                                                 checkpoint_every=2),
            checkpoint_dir=tmp_path / "c", progress=False)
    assert saved == [2, 4]


def _save_pair(tmp_path: Path) -> tuple[Path, Path]:
    from tiny_tokenizer import char_tokenizer

    student, teacher = pruned_pair()
    s, t = tmp_path / "student", tmp_path / "teacher"
    from adapruner.pruning.save import save_pruned

    save_pruned(student, char_tokenizer(add_bos=True), s, {"command": "prune"})
    teacher.save_pretrained(t)
    char_tokenizer(add_bos=True).save_pretrained(t)
    return s, t


def test_distill_cli_end_to_end(tmp_path, data_dir):
    s, t = _save_pair(tmp_path)
    out = tmp_path / "out"
    assert main(["finetune", "--method", "distill", "--model", str(s), "--teacher", str(t), "--max-steps", "6",
                 "--batch-size", "4", "--seq-len", "32", "--eval-every", "3", "--val-windows", "2", "--out", str(out),
                 "--device", "cpu", "--data-dir", str(data_dir)]) == 0
    report = json.loads((out / "finetune_report.json").read_text())
    assert report["steps"] == 6 and report["data"] == "books"
    assert len(report["seen_windows"]) == 24 and max(report["seen_windows"]) < report["train_windows"]
    assert [v["step"] for v in report["validation"]] == [0, 3, 6]
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] == json.loads((s / "config.json").read_text())["model_type"]  # loads like the input
    assert not (tmp_path / ".out.distill-checkpoint").exists()


def _one_layer_teacher(tmp_path: Path, vocab_size: int) -> Path:
    """A one-layer Llama with the char tokenizer: another vocabulary or another depth than the student."""
    import transformers as T
    from tiny_tokenizer import char_tokenizer

    other = tmp_path / "other"
    T.LlamaForCausalLM(T.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     num_key_value_heads=1, vocab_size=vocab_size)).save_pretrained(other)
    char_tokenizer(add_bos=True).save_pretrained(other)
    return other


@pytest.mark.parametrize("case", ["vocab", "missing", "short", "minutes", "hidden"])
def test_distill_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys, case):
    s, t = _save_pair(tmp_path)
    args = ["finetune", "--method", "distill", "--model", str(s), "--teacher", str(t), "--max-steps", "2",
            "--batch-size", "2", "--seq-len", "32", "--out", str(tmp_path / "out"), "--device", "cpu"]
    text = tmp_path / "text.txt"
    text.write_text("some words for training " * 200)
    args += ["--data", str(text)]
    if case == "vocab":
        args[args.index(str(t))] = str(_one_layer_teacher(tmp_path, vocab_size=300))
        match = "vocabulary"
    elif case == "missing":
        args[args.index(str(t))] = str(tmp_path / "no-teacher")
        match = "no such file"
    elif case == "hidden":
        args[args.index(str(t))] = str(_one_layer_teacher(tmp_path, vocab_size=256))  # same vocabulary, 1 layer
        args += ["--hidden-weight", "1"]
        match = "--hidden-weight needs student and teacher with the same layers"
    elif case == "short":
        text.write_text("tiny")
        match = "window(s) of 32 tokens"
    else:
        args += ["--max-minutes", "0"]
        match = "--max-minutes must be positive"
    capsys.readouterr()  # the setup's own output
    assert main(args) == 2
    err = capsys.readouterr().err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("error:") and match in last and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_bf16_mixed_precision_distillation_trains_float32_weights():
    student, teacher = pruned_pair()
    train, val = tiny_batch(64, 24, seed=1), tiny_batch(8, 24, seed=2)
    before = mean_kl(student, teacher, val)
    student, report = distill(student, teacher, train, val, DistillConfig(max_steps=30, batch_size=8, lr=3e-3,
                                                                          mixed_precision="bf16", seq_len=24),
                              progress=False)
    assert mean_kl(student, teacher, val) < 0.8 * before
    assert all(p.dtype == torch.float32 for p in student.parameters())
    from adapruner.recovery.training import mixed_precision

    with mixed_precision("cpu", "bf16"):  # the context really computes in bfloat16
        assert torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4)).dtype == torch.bfloat16
    with mixed_precision("cpu", "no"):
        assert torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4)).dtype == torch.float32
    with pytest.raises(Exception, match="--mixed-precision must be one of no, bf16"):
        DistillConfig(mixed_precision="fp8").check()


def test_frozen_embeddings_stay_fixed_while_the_layers_learn():
    student, teacher = pruned_pair()
    embedding = student.get_input_embeddings().weight.detach().clone()
    head = student.get_output_embeddings().weight.detach().clone()
    layer = student.model.layers[0].mlp.down_proj.weight.detach().clone()
    train, val = tiny_batch(64, 24, seed=1), tiny_batch(8, 24, seed=2)
    before = mean_kl(student, teacher, val)
    student, _ = distill(student, teacher, train, val, DistillConfig(max_steps=30, batch_size=8, lr=3e-3, seq_len=24,
                                                                     freeze_embeddings=True), progress=False)
    assert torch.equal(student.get_input_embeddings().weight, embedding)
    assert torch.equal(student.get_output_embeddings().weight, head)
    assert not torch.equal(student.model.layers[0].mlp.down_proj.weight, layer)
    assert mean_kl(student, teacher, val) < 0.8 * before


def test_the_cached_teacher_gives_the_validation_kl_of_the_live_teacher():
    from adapruner.recovery.distill import teacher_log_probs, validation_metrics

    student, teacher = pruned_pair()
    val = tiny_batch(12, 24, seed=2)
    cache = teacher_log_probs(teacher, val, batch_size=5)
    assert [c.dtype for c in cache] == [torch.float16] * 3
    live = validation_metrics(student, teacher, val, batch_size=5)
    cached = validation_metrics(student, None, val, batch_size=5, teacher_cache=cache)
    assert cached[0] == live[0] and cached[1] == pytest.approx(live[1], rel=1e-3, abs=1e-4)


def test_distill_pools_the_windows_of_several_sources(tmp_path, data_dir):
    s, t = _save_pair(tmp_path)
    text = tmp_path / "notes.jsonl"
    text.write_text("".join(json.dumps({"body": f"line {i} of a plain note about pruning."}) + "\n" for i in range(40)))
    out = tmp_path / "out"
    assert main(["finetune", "--method", "distill", "--model", str(s), "--teacher", str(t), "--max-steps", "2",
                 "--batch-size", "4", "--seq-len", "32", "--eval-every", "2", "--val-windows", "2", "--out", str(out),
                 "--data", "books", str(text), "--text-field", "body", "--device", "cpu",
                 "--data-dir", str(data_dir)]) == 0
    report = json.loads((out / "finetune_report.json").read_text())
    books, notes = report["data"]
    assert books["data"] == "books" and notes["data"]["file"] == str(text.resolve())
    assert report["train_windows"] == books["windows"] + notes["windows"] and notes["windows"] > 0


def test_lora_refuses_several_data_files(tmp_path, capsys):
    assert main(["finetune", "--method", "lora", "--model", "whatever", "--data", "a.json", "b.json",
                 "--out", str(tmp_path / "out")]) == 2
    assert "trains on one --data file (got 2)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
