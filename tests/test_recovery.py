"""Recovery fine-tuning on tiny models: LoRA and group-wise tuning lower the validation loss and
merge exactly; the finetune command writes a loadable model; bad data is a one-line error."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from tiny import tiny_model
from transformers import AutoModelForCausalLM

from adapruner.cli import main
from adapruner.data.alpaca import alpaca_prompt, load_alpaca, tokenize_example
from adapruner.errors import AdaprunerError
from adapruner.recovery.group import (GroupLoRALinear, GroupSettings, finetune_group, merge_group_lora,
                                      quantize_groups)
from adapruner.recovery.lora import finetune_lora, target_modules
from adapruner.recovery.training import TrainConfig

FAST = dict(max_steps=10, batch_size=4, micro_batch_size=4, cutoff=256, lr=5e-3, val_size=8)


def char_tokenizer():
    """A character-level tokenizer (100 ids) that fits the tiny models' 256-token vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for c in [chr(c) for c in range(32, 127)] + ["\n"]:
        vocab[c] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


@pytest.fixture(scope="module")
def rows(data_dir):
    return load_alpaca(data_dir / "alpaca" / "alpaca_first200.json")[:48]


def test_alpaca_template_and_mask(rows):
    tok = char_tokenizer()
    with_input = next(r for r in rows if r["input"])
    assert alpaca_prompt(with_input).endswith("### Input:\n" + with_input["input"] + "\n\n### Response:\n")
    no_input = next(r for r in rows if not r["input"])
    assert "### Input" not in alpaca_prompt(no_input)
    ex = tokenize_example(tok, no_input, cutoff=2000)
    n_prompt = len(tok(alpaca_prompt(no_input))["input_ids"])
    assert ex["labels"][:n_prompt] == [-100] * n_prompt  # loss on the response only by default
    assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
    assert ex["input_ids"][-1] == tok.eos_token_id
    full = tokenize_example(tok, no_input, cutoff=2000, train_on_inputs=True)
    assert full["labels"] == full["input_ids"]
    assert len(tokenize_example(tok, no_input, cutoff=50)["input_ids"]) == 50


def test_lora_lowers_loss_and_merged_model_reloads(rows, tmp_path):
    tok = char_tokenizer()
    model = tiny_model("llama")
    peft_model, report = finetune_lora(model, tok, rows, TrainConfig(**FAST), keep_adapter=True, progress=False)
    assert report["val_loss_after"] < report["val_loss_before"] - 0.3
    assert report["steps"] == 10 and report["n_val"] == 4
    x = torch.randint(3, 100, (2, 24))
    with torch.no_grad():
        adapter_logits = peft_model(x).logits
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(tmp_path / "m")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(x).logits, adapter_logits, atol=1e-4)


def test_lora_under_bf16_mixed_precision_lowers_loss(rows):
    model = tiny_model("llama")
    _, report = finetune_lora(model, char_tokenizer(), rows, TrainConfig(**FAST, mixed_precision="bf16"), progress=False)
    assert report["val_loss_after"] < report["val_loss_before"] - 0.3
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_lora_targets_fused_projections():
    assert target_modules(tiny_model("phi3")) == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert target_modules(tiny_model("qwen3")) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"]


def test_group_quantisation_grid_with_ragged_groups():
    w = torch.randn(5, 70)  # 70 = 2 groups of 32 + a short group of 6 (pruned widths)
    codes, scale, offset, group_of = quantize_groups(w, bits=4, group_size=32)
    assert scale.shape == (5, 3) and int(codes.max()) <= 15
    deq = scale[:, group_of] * codes.float() + offset[:, group_of]
    assert (deq - w).abs().max() <= scale.max() / 2 + 1e-6  # round-to-nearest error bound


def test_group_tuning_lowers_loss_and_merge_is_exact(rows):
    tok = char_tokenizer()
    model = tiny_model("phi3")  # fused projections exercise the adapter lookup
    tuned, report = finetune_group(model, tok, rows, TrainConfig(**FAST), GroupSettings(group_size=32),
                                   keep_adapter=True, progress=False)
    assert report["val_loss_after"] < report["val_loss_before"] - 0.3
    x = torch.randint(3, 100, (2, 24))
    with torch.no_grad():
        adapter_logits = tuned(x).logits
    layer = tuned.model.layers[0].self_attn.qkv_proj
    assert isinstance(layer, GroupLoRALinear)
    merged = merge_group_lora(copy.deepcopy(tuned))
    with torch.no_grad():
        assert torch.allclose(merged(x).logits, adapter_logits, atol=1e-4)
    # The merged weight is still on the INT4 grid of each group: same codes and scales, new offsets.
    w = merged.model.layers[0].self_attn.qkv_proj.weight
    z = layer.merged_offset()[:, layer.group_of]
    q = (w - z) / layer.scale[:, layer.group_of]
    assert torch.allclose(q, layer.codes.float(), atol=1e-3)
    assert not torch.allclose(layer.merged_offset(), layer.offset)  # the adapter did move the offsets


def test_alpaca_errors(tmp_path):
    with pytest.raises(AdaprunerError, match="not found"):
        load_alpaca(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "output": "d"}]))
    with pytest.raises(AdaprunerError, match=r"row 1 lacks the key 'input'"):
        load_alpaca(bad)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"instruction": "c", "input": "x"}\n')
    with pytest.raises(AdaprunerError, match=r"row 1 lacks the key 'output'"):
        load_alpaca(jsonl)
    (tmp_path / "obj.json").write_text('[]')
    with pytest.raises(AdaprunerError, match="non-empty JSON list"):
        load_alpaca(tmp_path / "obj.json")


@pytest.fixture()
def tiny_dir(tmp_path):
    path = tmp_path / "tiny"
    tiny_model("llama").save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


@pytest.mark.parametrize("method", ["lora", "group"])
def test_finetune_command_writes_loadable_model(tiny_dir, tmp_path, data_dir, method, capsys):
    out = tmp_path / f"out-{method}"
    code = main(["finetune", "--model", str(tiny_dir), "--data", str(data_dir / "alpaca" / "alpaca_first200.json"),
                 "--method", method, "--out", str(out), "--max-steps", "2", "--batch-size", "4",
                 "--micro-batch-size", "2", "--val-size", "4", "--cutoff", "200", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "finetune_report.json").read_text())
    assert report["method"] == method and report["steps"] == 2 and report["n_val"] == 4
    assert "val_loss_before" in report and "val_loss_after" in report and report["train"]["seed"] == 0
    reloaded = AutoModelForCausalLM.from_pretrained(out / "model")
    assert (out / "model" / "finetune_report.json").is_file()
    original = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert [p.shape for p in reloaded.parameters()] == [p.shape for p in original.parameters()]
    assert json.loads((out / "pruning_report.json").read_text())["finetune"]["method"] == method


def test_finetune_command_errors(tiny_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n')
    code = main(["finetune", "--model", str(tiny_dir), "--data", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2 and "row 0 lacks the key 'input'" in capsys.readouterr().err
    code = main(["finetune", "--model", str(tiny_dir), "--data", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")])
    assert code == 2 and "not found" in capsys.readouterr().err
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"instruction": "a", "input": "", "output": "b"}] * 4))
    code = main(["finetune", "--model", str(not_a_model), "--data", str(good), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    for method in ("lora", "distill"):
        code = main(["finetune", "--model", str(tiny_dir), "--method", method, "--data", str(good), "--teacher",
                     str(tiny_dir), "--warmup-steps", "-1", "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and "--warmup-steps must be 0 or more" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_smollm2_lora_step_keeps_shape(data_dir):
    from adapruner.models.load import load_model

    loaded = load_model("smollm2-135m", device="cpu")
    shapes = [p.shape for p in loaded.model.parameters()]
    rows = load_alpaca(data_dir / "alpaca" / "alpaca_first200.json")[:12]
    merged, report = finetune_lora(loaded.model, loaded.tokenizer, rows,
                                   TrainConfig(max_steps=1, batch_size=2, micro_batch_size=1, cutoff=64, val_size=2),
                                   progress=False)
    assert [p.shape for p in merged.parameters()] == shapes
    assert 0 < report["val_loss_after"] < 10 and report["n_val"] == 1


def test_lora_records_a_validation_curve_over_wall_time(tiny_dir, tmp_path, data_dir):
    """--eval-every gives LoRA the validation-PPL curve distillation has (same windows, same clock)."""
    out = tmp_path / "curve"
    assert main(["finetune", "--model", str(tiny_dir), "--data", str(data_dir / "alpaca" / "alpaca_first200.json"),
                 "--out", str(out), "--max-steps", "2", "--batch-size", "2", "--micro-batch-size", "2",
                 "--val-size", "2", "--cutoff", "64", "--eval-every", "1", "--val-windows", "2", "--seq-len", "32",
                 "--device", "cpu", "--data-dir", str(data_dir)]) == 0
    curve = json.loads((out / "finetune_report.json").read_text())["validation"]
    assert [c["step"] for c in curve] == [0, 1, 2]
    assert all(c["ppl"] > 1 for c in curve) and curve[0]["seconds"] <= curve[-1]["seconds"]


def test_the_rate_decays_to_zero_at_whichever_budget_ends_first():
    from adapruner.recovery.loop import lr_factor

    assert lr_factor(0, 10, 100, 0.0, None) == pytest.approx(0.1)  # warm-up
    assert lr_factor(55, 10, 100, 0.0, None) == pytest.approx(0.5)  # halfway through the steps
    # A 10-minute budget half spent binds before the steps do; spent, the rate is zero.
    assert lr_factor(20, 10, 100_000, 300.0, 10.0) == pytest.approx(0.5, abs=1e-3)
    assert lr_factor(20, 10, 100_000, 600.0, 10.0) == 0.0
    assert lr_factor(90, 10, 100, 60.0, 10.0) == pytest.approx(1 - 80 / 90)  # the steps bind
