"""A model whose weights stay on disk until a step needs them: the streamed path's model.

:func:`open_streamed` builds the model's skeleton with accelerate's ``init_empty_weights`` (every
parameter on the meta device, no memory) and keeps a :class:`CheckpointTensors` of its shards.
:meth:`StreamedModel.materialised` then reads the weights of a few submodules (one decoder
layer, or the embedding, or the final norm and head) into real tensors of the compute dtype on
the compute device, and sends them back to the meta device when the step is done. Everything
else (family adapters, statistics hooks, surgery) works on the skeleton as on a loaded model,
because a materialised layer *is* the family's own module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from adapruner.core.adapters import adapter_for
from adapruner.errors import AdaprunerError
from adapruner.streaming.checkpoint import CheckpointTensors


@dataclass
class StreamedModel:
    """The skeleton ``model`` (decoder layers on the meta device until materialised), its tokenizer
    and the checkpoint ``tensors`` it reads from; computation runs in ``dtype`` on ``device``."""

    model: nn.Module
    tokenizer: object
    tensors: CheckpointTensors
    path: str
    dtype: torch.dtype
    device: torch.device
    source: str = "directory"
    info: dict = field(default_factory=dict)
    spec: str = ""  # the model as the user named it (alias, directory, .gguf file)

    streamed = True  # evaluation code asks this instead of importing the class

    @property
    def config(self):
        return self.model.config

    def parameters(self):
        """The skeleton's parameters (meta tensors outside a step: shapes and dtypes, no data)."""
        return self.model.parameters()

    @property
    def num_layers(self) -> int:
        return len(adapter_for(self.model).decoder_layers(self.model))

    def layer_path(self, index: int) -> str:
        """The module path of decoder layer ``index`` (e.g. ``model.layers.3``)."""
        return f"{adapter_for(self.model).layers}.{index}"

    def embedding_path(self) -> str:
        return _module_name(self.model, self.model.get_input_embeddings())

    def head_paths(self) -> list[str]:
        """The modules after the last decoder layer: its final norm and the output embedding."""
        adapter = adapter_for(self.model)
        return [_module_name(self.model, adapter.final_norm(self.model)),
                _module_name(self.model, self.model.get_output_embeddings())]

    def source_key(self, name: str) -> str:
        """The checkpoint tensor that holds parameter ``name`` (a tied head reads the embedding)."""
        if name in self.tensors:
            return name
        head = _module_name(self.model, self.model.get_output_embeddings())
        if name.startswith(head + ".") and getattr(self.model.config, "tie_word_embeddings", False):
            return self.embedding_path() + name[len(head):]
        return name

    @contextlib.contextmanager
    def materialised(self, *paths: str) -> Iterator[list[nn.Module]]:
        """Read the weights of the submodules at ``paths``, yield the modules, then free them.

        The modules go back to the meta device on leaving (also on an exception), so at most the
        materialised modules' weights exist at any time.
        """
        from accelerate.utils import set_module_tensor_to_device

        modules = [self.model.get_submodule(p) for p in paths]
        names = []
        for path, module in zip(paths, modules):
            for name, _ in module.named_parameters():
                names.append(f"{path}.{name}")
            for name, buf in module.named_buffers():
                if buf.device.type == "meta":
                    names.append(f"{path}.{name}")
        keys = {n: self.source_key(n) for n in names}
        try:
            values = self.tensors.read(sorted(set(keys.values())), dtype=self.dtype, device=self.device)
            for name, key in keys.items():
                set_module_tensor_to_device(self.model, name, self.device, value=values[key])
            del values
            self.retie()
            for module in modules:
                module.requires_grad_(False)
            yield modules
        finally:
            for module in modules:
                module.to("meta")
            self.retie(released=True)
            release_freed_memory()

    def retie(self, released: bool = False) -> None:
        """Share one parameter between a tied input and output embedding again (loading or releasing
        one of them gives it a new parameter): counts and saving see one tensor, as in memory, and
        releasing either releases both."""
        if not getattr(self.model.config, "tie_word_embeddings", False):
            return
        inp, out = self.model.get_input_embeddings(), self.model.get_output_embeddings()
        if out is None or out.weight is inp.weight:
            return
        meta = (inp.weight.device.type == "meta", out.weight.device.type == "meta")
        # After a release the meta one wins; after a load the real one does.
        if meta[0] == released:
            out.weight = inp.weight
        else:
            inp.weight = out.weight

    def layer(self, index: int):
        """:meth:`materialised` for decoder layer ``index``: ``with sm.layer(i) as (layer,):``."""
        return self.materialised(self.layer_path(index))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc keeps them otherwise, and the resident set
    of a long streamed run creeps up layer after layer); a no-op where there is no glibc."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def _module_name(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise AdaprunerError("the model's embedding or head is not one of its submodules; it cannot be streamed")


def open_streamed(spec: str, device: str = "auto", dtype: str = "float32",
                  trust_remote_code: bool = False) -> StreamedModel:
    """The :class:`StreamedModel` of a local checkpoint, alias or GGUF file: config, tokenizer and
    skeleton only; no weight is read until a step materialises it.

    Hub ids are refused (download the checkpoint first): the streamed path reads safetensors
    shards from a local directory.
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from adapruner.models.load import DTYPES, _ensure, _resolve_device, check_shapes, check_weight_files, resolve_spec
    from adapruner.models.aliases import ALIASES, alias_gguf_path, package_version
    from adapruner.models.tokenizer import fix_special_tokens

    if dtype not in DTYPES:
        raise AdaprunerError(f"unknown dtype '{dtype}'; choose one of {', '.join(sorted(DTYPES))}")
    kind, value = resolve_spec(spec)
    if kind == "hub":
        raise AdaprunerError(f"the streamed path reads a local checkpoint; download '{spec}' first "
                             "(hf download ORG/NAME --local-dir DIR) and pass --model DIR")
    if kind == "alias":
        path, _ = _ensure(alias_gguf_path(value), alias=value, version=package_version(ALIASES[value]))
    elif kind == "gguf":
        path, _ = _ensure(Path(value))
    else:
        path = value
    stored = check_weight_files(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise AdaprunerError(f"cannot read the checkpoint in {path}: {str(exc).splitlines()[0]}") from exc
    torch_dtype = DTYPES[dtype]
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    check_shapes(model, stored, path)
    model.eval()
    model.requires_grad_(False)
    dev = torch.device(_resolve_device(device))
    for module in model.modules():  # non-persistent buffers (rotary frequencies) are real already
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.device.type != "meta" and buf.device != dev:
                module._buffers[name] = buf.to(dev)
    fix_special_tokens(tokenizer, model.config)
    tensors = CheckpointTensors(path)
    streamed = StreamedModel(model=model, tokenizer=tokenizer, tensors=tensors, path=str(path), dtype=torch_dtype,
                         device=dev, source=kind, spec=spec, info={"source": kind, "device": str(dev), "dtype": dtype,
                                                        "streamed": True})
    streamed.retie()
    # Every tensor the model needs must be stored: refused now, not when its layer is reached.
    missing = [n for n in model.state_dict() if streamed.source_key(n) not in tensors]
    if missing:
        raise AdaprunerError(f"the weights in {path} lack {len(missing)} tensor(s) its config.json needs "
                             f"({missing[0]}, ...): a weights file is damaged or belongs to another model; restore "
                             "the checkpoint")
    return streamed
