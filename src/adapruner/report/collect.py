"""Read whatever a run directory holds into one :class:`RunSummary`.

A run directory may contain any of: ``pruning_report.json`` (prune / search), ``trials.csv``
(search), ``finetune_report.json`` (finetune), stats JSON (``adapruner stats``), evaluation
JSON (``adapruner eval``: perplexities and/or zero-shot accuracies), possibly inside a
``model/`` sub-directory. Files are recognised by content, not by name, and every part is
optional, so the report works for any subset.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from adapruner.errors import AdaprunerError


@dataclass
class RunSummary:
    """What one run directory tells: widths, perplexities, accuracies, stats, tuning, search."""

    name: str
    path: str
    parameters: int | None = None
    layer_widths: list[dict] = field(default_factory=list)  # [{layer, heads, kv_heads, channels}]
    ppl: dict[str, float] = field(default_factory=dict)  # dataset -> perplexity
    zeroshot: dict[str, float] = field(default_factory=dict)  # task -> accuracy (average metric)
    zeroshot_average: float | None = None
    zeroshot_limit: int | None = None
    stats: dict | None = None
    finetune: dict | None = None
    trials: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _load_json(path: Path):
    """The JSON in ``path`` (None if absent); a one-line error naming the file when it is corrupt."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AdaprunerError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); it is corrupt or "
                             "half-written: re-create it with the adapruner command that wrote it") from None
    except OSError as exc:
        raise AdaprunerError(f"cannot read {path} ({exc.strerror})") from None


def _find_zeroshot(obj) -> dict | None:
    """The first dict shaped like :func:`adapruner.eval.zeroshot.run_zeroshot`'s result."""
    if isinstance(obj, dict):
        if "average" in obj and isinstance(obj.get("protocol"), dict) and "lm_eval_version" in obj["protocol"]:
            return obj
        for v in obj.values():
            found = _find_zeroshot(v)
            if found:
                return found
    return None


def _find_ppl(obj, prefix: str = "") -> dict[str, float]:
    """Every ``{..., "ppl": number}`` dict, keyed by its dotted path (e.g. ``perplexity.wikitext2``)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        if isinstance(obj.get("ppl"), (int, float)) and prefix:
            out[prefix] = float(obj["ppl"])
        for k, v in obj.items():
            if isinstance(v, dict) and k not in ("plan", "trials"):
                out.update(_find_ppl(v, f"{prefix}.{k}" if prefix else k))
    return out


def _widths_from_plan(plan: dict, widths: dict | None) -> list[dict]:
    if isinstance(widths, list) and widths and isinstance(widths[0], dict):
        return widths
    rows = []
    for k, v in sorted(plan.items(), key=lambda kv: int(kv[0])):
        rows.append({"layer": int(k), "heads": len(v["kept_heads"]), "kv_heads": len(v["kept_kv"]),
                     "channels": len(v["kept_channels"])})
    return rows


def _widths_from_saved(layer_widths) -> list[dict]:
    """``layer_widths`` as written by save_pruned: a list of per-layer dicts or of lists."""
    rows = []
    if isinstance(layer_widths, list):
        for i, w in enumerate(layer_widths):
            if isinstance(w, dict):
                rows.append({"layer": i, "heads": w.get("num_attention_heads", w.get("num_heads", w.get("heads"))),
                             "kv_heads": w.get("num_key_value_heads", w.get("num_kv_heads", w.get("kv_heads"))),
                             "channels": w.get("intermediate_size", w.get("channels"))})
            elif isinstance(w, (list, tuple)) and len(w) >= 3:
                rows.append({"layer": i, "heads": w[0], "kv_heads": w[1], "channels": w[-1]})
    return rows


def read_trials(path: Path) -> list[dict]:
    """Completed trials of a search's trials.csv as ``{number, value}``."""
    rows = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"number", "state", "value"} <= set(reader.fieldnames):
            raise AdaprunerError(f"{path} is not a trials.csv written by adapruner search (no number/state/value "
                                 "columns); re-create it by re-running the search command")
        for r in reader:
            try:
                value = float(r.get("value") or "nan")
            except ValueError:
                continue
            if r.get("state", "COMPLETE") == "COMPLETE" and value == value:
                rows.append({"number": int(r.get("number") or len(rows)), "value": value})
    return sorted(rows, key=lambda r: r["number"])


def collect_run(path: str | Path) -> RunSummary:
    """Summarise one run directory; an error if it is not a directory or holds nothing usable."""
    root = Path(path)
    if not root.is_dir():
        raise AdaprunerError(f"run directory {root} not found; pass directories written by prune/search/finetune/eval/stats")
    run = RunSummary(name=root.name, path=str(root))
    candidates = sorted(root.glob("*.json")) + sorted(root.glob("*/*.json"))
    for f in candidates:
        if f.name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                      "special_tokens_map.json", "best_config.json", "chat_template.json"):
            continue
        data = _load_json(f)
        if not isinstance(data, dict):
            continue
        used = False
        if "models" in data and isinstance(data.get("protocol"), dict) and "context" in data["protocol"]:
            run.stats, used = data, True
            first = next(iter(data["models"].values()), {})
            if not run.layer_widths and len(data["models"]) == 1:
                run.layer_widths = first.get("layers", [])
            if len(data["models"]) == 1:
                run.parameters = run.parameters or first.get("parameters")
        if "val_loss_after" in data and "method" in data:
            run.finetune, used = data, True
        if "plan" in data or "layer_widths" in data:
            widths = _widths_from_saved(data.get("layer_widths")) or _widths_from_plan(data.get("plan") or {}, None)
            run.layer_widths = run.layer_widths or widths
            params = data.get("parameters")
            params = data.get("parameters_after") or (params.get("pruned") if isinstance(params, dict) else params)
            run.parameters = run.parameters or params
            used = True
        if data.get("command") == "eval" and isinstance(data.get("parameters"), int):
            run.parameters = run.parameters or data["parameters"]
        zs = _find_zeroshot(data)
        if zs:
            tasks = zs["average"].get("tasks") or [k for k in zs if k not in ("average", "protocol")]
            for t in tasks:
                metric = zs[t].get("average_metric", "acc")
                if zs[t].get(metric) is not None:
                    run.zeroshot[t] = zs[t][metric]
            run.zeroshot_average = zs["average"].get("value")
            run.zeroshot_limit = zs["protocol"].get("limit")
            used = True
        for row in data.get("perplexity") or [] if isinstance(data.get("perplexity"), list) else []:
            if isinstance(row, dict) and isinstance(row.get("ppl"), (int, float)) and row.get("dataset"):
                # `adapruner eval` rows; a non-default window length is part of the name.
                seq = row.get("seq_len")
                name = row["dataset"] if seq in (None, 128) else f"{row['dataset']}@{seq}"
                run.ppl.setdefault(name, float(row["ppl"]))
                used = True
        for key, value in _find_ppl(data).items():
            if "validation" in key or "trial" in key:
                continue  # search objectives on validation subsets are not the reported PPL
            run.ppl.setdefault(key.split(".")[-1], value)
            used = True
        if used:
            run.files.append(str(f.relative_to(root)))
    for trials in (root / "trials.csv", root / "model" / "trials.csv"):
        if trials.is_file():
            run.trials = read_trials(trials)
            run.files.append(str(trials.relative_to(root)))
            break
    if not run.files:
        raise AdaprunerError(f"{root} holds no adapruner output (pruning_report.json, eval/stats/finetune JSON, "
                             "trials.csv); pass run directories written by adapruner commands")
    return run
