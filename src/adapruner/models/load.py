"""One model loader used by every command: alias, local directory, GGUF file or hub id.

``load_model(spec)`` decides what ``spec`` names, in this order: a bundled alias
(``adapruner models``), an existing local directory (a Hugging Face checkpoint, e.g. a pruned
model saved by adapruner), an existing ``.gguf`` file (converted once into the cache, see
:mod:`adapruner.models.gguf_cache`), and finally a hub id ``org/name``. Anything else is a
one-line :class:`~adapruner.errors.AdaprunerError`.

Placement: ``device="cpu"`` or ``"cuda"`` puts the whole model on that device. ``"auto"`` uses
the GPU when there is one, and when the model (counted on the meta device, times the dtype's
size) does not fit in the free memory of one GPU it is spread over all GPUs (and CPU RAM if
need be) with accelerate's ``device_map="auto"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adapruner.errors import AdaprunerError
from adapruner.models.aliases import ALIASES, alias_gguf_path, package_version
from adapruner.models import hub
from adapruner.models.tokenizer import fix_special_tokens

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# Fraction of a GPU's free memory the weights may take before we spread them over devices:
# activations, the KV cache and gradients (importance estimation) need the rest.
_GPU_FILL = 0.7


@dataclass
class LoadedModel:
    """A causal LM in eval mode with its tokenizer, the spec it came from and the local path read.

    ``source`` is one of ``alias``, ``directory``, ``gguf`` or ``hub``; ``path`` is the directory
    the weights were read from (the GGUF cache entry for aliases and GGUF files; the hub id for
    hub models).
    """

    model: torch.nn.Module
    tokenizer: object
    spec: str
    path: str
    source: str = "directory"
    info: dict = field(default_factory=dict)


def resolve_spec(spec: str) -> tuple[str, str]:
    """Classify ``spec`` as ``(kind, value)`` with kind alias|directory|gguf|hub, or raise."""
    if not spec or not spec.strip():
        raise AdaprunerError("no model given; pass --model with an alias (adapruner models), a directory, a .gguf file or a hub id")
    spec = spec.strip()
    if spec in ALIASES:
        return "alias", spec
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
            path = path / "model"  # a run directory of prune / search / finetune: its model
        if not (path / "config.json").is_file():
            raise AdaprunerError(f"{spec} is a directory but not a Hugging Face checkpoint (no config.json) nor a run "
                                 "directory holding one in model/")
        return "directory", str(path)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise AdaprunerError(f"{spec} is a file but not a .gguf file; pass a checkpoint directory or a .gguf file")
        return "gguf", str(path)
    looks_like_path = (spec.lower().endswith(".gguf") or spec.startswith((".", "/", "~"))
                       or spec.count("/") > 1 or "\\" in spec)
    if looks_like_path:
        raise AdaprunerError(f"no such file or directory: {spec}")
    if _HUB_ID.match(spec):
        return "hub", spec
    raise AdaprunerError(
        f"unknown model '{spec}': not an alias ({', '.join(sorted(ALIASES))}; see `adapruner models`), "
        "an existing directory or .gguf file, or a hub id 'org/name'"
    )


def _hub_error(spec: str, online: bool, exc: Exception | None = None) -> AdaprunerError:
    if not online:
        return AdaprunerError(
            f"cannot download '{spec}' from the Hugging Face hub (no network?); pass a local directory, "
            "a .gguf file or an alias (adapruner models)")
    reason = str(exc).splitlines()[0][:200] if exc is not None and str(exc) else "unknown error"
    return AdaprunerError(f"cannot download '{spec}' from the Hugging Face hub ({reason}); check the id, "
                          "log in for gated models (hf auth login), or pass a local directory")


def _resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise AdaprunerError(f"unknown device '{device}'; choose auto, cpu or cuda")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AdaprunerError("--device cuda was requested but no CUDA GPU is visible; use --device cpu")
    return device


def _parameter_bytes(config, dtype: torch.dtype, trust_remote_code: bool) -> int:
    """Size of the model's weights in ``dtype``, counted on the meta device (no memory used)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    n = sum(p.numel() for p in skeleton.parameters())
    return n * torch.empty((), dtype=dtype).element_size()


def _placement(config, dtype: torch.dtype, device: str, requested: str, trust_remote_code: bool) -> dict:
    """``from_pretrained`` keyword arguments that put the weights where ``device`` says."""
    if device == "cpu":
        return {}
    if requested == "auto":
        free, _ = torch.cuda.mem_get_info()
        if _parameter_bytes(config, dtype, trust_remote_code) > _GPU_FILL * free:
            return {"device_map": "auto"}
    return {"device_map": {"": torch.device(device if ":" in device else "cuda:0")}}


def check_weight_files(directory: str | Path) -> dict[str, tuple[int, ...]]:
    """A one-line error for an empty, truncated or otherwise unreadable ``*.safetensors`` file in
    ``directory`` (an interrupted download or copy), instead of a deserialisation traceback.

    Reads only the header: 8 bytes of length, a JSON table of tensors with their byte ranges; the
    file must be as long as the last range ends. Returns every stored tensor's shape by name.
    """
    import json

    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(Path(directory).glob("*.safetensors")):
        try:
            size = file.stat().st_size
            with open(file, "rb") as handle:
                n = int.from_bytes(handle.read(8), "little")
                if size < 8 or n <= 0 or 8 + n > size:
                    raise ValueError(f"{size} bytes, header of {n}")
                table = json.loads(handle.read(n))
            ends = [v["data_offsets"][1] for k, v in table.items() if k != "__metadata__"]
            if 8 + n + max(ends, default=0) > size:
                raise ValueError(f"{size} bytes, the tensors need {8 + n + max(ends)}")
            shapes.update({k: tuple(int(d) for d in v["shape"]) for k, v in table.items() if k != "__metadata__"})
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise AdaprunerError(f"{file} is empty, truncated or not a safetensors file ({exc}); an interrupted "
                                 "download or copy? Restore or re-create it") from None
    return shapes


def check_shapes(model, stored: dict[str, tuple[int, ...]], directory) -> None:
    """Every tensor of ``model`` (built from the config, e.g. on the meta device) that the checkpoint
    stores under the same name has the stored shape: a config edited after saving, or one of another
    checkpoint, is refused before any weight is read, in every command the same way."""
    wrong = [(name, stored[name], tuple(t.shape)) for name, t in model.state_dict().items()
             if name in stored and tuple(stored[name]) != tuple(t.shape)]
    if wrong:
        name, have, want = wrong[0]
        more = f", and {len(wrong) - 1} more" if len(wrong) > 1 else ""
        raise AdaprunerError(f"the weights in {directory} do not have the shapes its config.json declares ({name}: "
                             f"{list(have)} stored, {list(want)} by the config{more}): the config was edited or "
                             "belongs to another checkpoint; restore it or save the model again")


def check_against_config(directory, config, trust_remote_code: bool = False,
                         stored: dict[str, tuple[int, ...]] | None = None) -> None:
    """:func:`check_shapes` of the model ``config`` describes, built on the meta device (no memory)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    stored = check_weight_files(directory) if stored is None else stored
    if not stored:
        return
    try:
        with init_empty_weights():
            skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 -- a config that cannot build its model is reported by the load itself
        return
    check_shapes(skeleton, stored, directory)


def peek_config(spec: str) -> dict | None:
    """The (text) config.json of ``spec`` without loading the model (local directories, and aliases
    once converted); None when it cannot be read cheaply."""
    import json

    try:
        kind, value = resolve_spec(spec)
    except AdaprunerError:
        return None
    path = None
    if kind == "directory":
        path = Path(value)
    elif kind == "alias":
        from adapruner.models.gguf_cache import cache_key, cache_root

        path = cache_root() / cache_key(None, alias=value, version=package_version(ALIASES[value]))
    if path is None or not (path / "config.json").is_file():
        return None
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return cfg.get("text_config", cfg) if isinstance(cfg, dict) else None


def peek_context(spec: str) -> int | None:
    """The model's ``max_position_embeddings`` read from its config.json without loading it; None when unknown."""
    value = (peek_config(spec) or {}).get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


def load_model(spec: str, device: str = "auto", dtype: str = "float32",
               trust_remote_code: bool = False) -> LoadedModel:
    """Load a causal LM and its tokenizer from an alias, a local directory, a GGUF file or a hub id.

    The model is returned in eval mode with weights in ``dtype`` (float32, bfloat16 or float16)
    on ``device`` (auto, cpu or cuda; see the module docstring for multi-GPU placement). GGUF
    files and aliases are converted once into the cache and read from there afterwards. The
    tokenizer always has a pad token (EOS when it defines none). Every failure a user can cause
    is a one-line :class:`AdaprunerError`.
    """
    if dtype not in DTYPES:
        raise AdaprunerError(f"unknown dtype '{dtype}'; choose one of {', '.join(sorted(DTYPES))}")
    torch_dtype = DTYPES[dtype]
    kind, value = resolve_spec(spec)
    requested = device
    device = _resolve_device(device)
    info: dict = {"source": kind}

    path = _local_path(kind, value, info)
    online = kind == "hub" and hub.hub_reachable()
    # Without a network, a hub id still loads a copy already in the local hub cache.
    common = dict(trust_remote_code=trust_remote_code, **({"local_files_only": not online} if kind == "hub" else {}))
    config, tokenizer = _read_config_and_tokenizer(spec, kind, value, path, online, common)
    if kind in ("directory", "alias", "gguf"):
        check_against_config(path, config, trust_remote_code, check_weight_files(path))
    placement = _placement(config, torch_dtype, device, requested, trust_remote_code)
    model = _read_weights(spec, kind, value, path, online, config, torch_dtype, placement, common)
    fix_special_tokens(tokenizer, model.config)
    model.eval()
    info.update(device=device, dtype=dtype, device_map=placement.get("device_map") if placement else None)
    if isinstance(info["device_map"], dict):
        info["device_map"] = {k: str(v) for k, v in info["device_map"].items()}
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, path=str(path), source=kind, info=info)


def _local_path(kind: str, value: str, info: dict):
    """Where the checkpoint is read from: an alias's or a GGUF file's converted copy in the cache
    (converted on first use; ``info`` records it), else the directory or hub id itself."""
    if kind == "alias":
        alias = ALIASES[value]
        gguf = alias_gguf_path(value)
        path, converted = _ensure(gguf, alias=value, version=package_version(alias))
        info.update(gguf=str(gguf), package=alias.package, package_version=package_version(alias),
                    converted_now=converted)
        return path
    if kind == "gguf":
        gguf = Path(value)
        path, converted = _ensure(gguf)
        info.update(gguf=str(gguf), converted_now=converted)
        return path
    return value


def _read_config_and_tokenizer(spec: str, kind: str, value: str, path, online: bool, common: dict):
    """The config and the tokenizer; every way a user's files or the hub can fail is one line."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        return AutoConfig.from_pretrained(path, **common), AutoTokenizer.from_pretrained(path, **common)
    except OSError as exc:
        if kind == "hub":
            raise _hub_error(value, online, exc) from exc
        raise AdaprunerError(f"cannot read the checkpoint in {path}: {str(exc).splitlines()[0]}") from exc
    except ValueError as exc:
        raise AdaprunerError(f"cannot load '{spec}': {str(exc).splitlines()[0]}"
                             " (pass --trust-remote-code only if you trust its code)") from exc
    except Exception as exc:  # noqa: BLE001 -- a damaged local file fails in any way inside the parsers
        if isinstance(exc, AdaprunerError) or kind == "hub":
            raise
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}" if str(exc).strip() else type(exc).__name__
        raise AdaprunerError(f"cannot read the tokenizer or config in {path} ({detail}): a file is damaged; restore "
                             "it from the original checkpoint") from exc


def _read_weights(spec: str, kind: str, value: str, path, online: bool, config, torch_dtype, placement: dict,
                  common: dict):
    """The model built from ``config`` with its weights; weights that do not fit the config, or a
    config that cannot build its model, are one line."""
    from transformers import AutoModelForCausalLM

    try:
        model, loading = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=torch_dtype,
                                                              output_loading_info=True, **placement, **common)
    except OSError as exc:
        if kind == "hub":
            raise _hub_error(value, online, exc) from exc
        raise AdaprunerError(f"cannot read the weights in {path}: {str(exc).splitlines()[0]}") from exc
    except ValueError as exc:
        raise AdaprunerError(f"cannot load '{spec}' as a causal LM: {str(exc).splitlines()[0]}") from exc
    except RuntimeError as exc:
        if "mismatch" not in str(exc).lower():
            raise
        raise AdaprunerError(f"the weights in {path} do not have the shapes its config.json declares: the config "
                             "was edited or belongs to another checkpoint; restore it or save the model again") from exc
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        if kind == "hub":
            raise
        raise AdaprunerError(f"cannot build the model that {path}/config.json describes ({type(exc).__name__}: "
                             f"{str(exc)[:200]}): the config is damaged or edited; restore it (if it is intact, this "
                             "is a bug: rerun with --debug and report it)") from exc
    _refuse_missing_weights(path, loading)
    return model


def _refuse_missing_weights(path, loading: dict) -> None:
    """A checkpoint that lacks a weight its config needs would load with that weight randomly
    initialised (transformers only warns): a damaged header or a foreign file. Refuse it."""
    missing = sorted(loading.get("missing_keys") or [])
    if not missing:
        return
    unexpected = sorted(loading.get("unexpected_keys") or [])
    extra = f", and holds {len(unexpected)} it does not know ({unexpected[0]}, ...)" if unexpected else ""
    raise AdaprunerError(f"the weights in {path} lack {len(missing)} tensor(s) its config.json needs ({missing[0]}, "
                         f"...){extra}: a weights file is damaged or belongs to another model; restore the checkpoint")


def _ensure(gguf: Path, alias: str | None = None, version: str | None = None) -> tuple[Path, bool]:
    from adapruner.models.gguf_cache import ensure_converted

    return ensure_converted(gguf, alias=alias, version=version)
