"""Every model family, as declared in its own file (adapruner.core.families), is complete: its
adapter reads a model of it, its pruned type exists in transformers, its GGUF export is mapped or
refused with a reason, and a pruned checkpoint of it ships the classes it needs. The engine tests
(masks = surgery = reloaded checkpoint, streamed = in memory) run every family of tests/tiny.py,
which is built from the same declarations."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import transformers as T

from adapruner.core.adapters import adapter_for
from adapruner.core.families import FAMILIES

sys.path.insert(0, str(Path(__file__).parent))
from tiny import CONFIGS, tiny_model  # noqa: E402

NAMES = [f.name for f in FAMILIES]


def test_families_cover_distinct_model_types():
    types = [t for f in FAMILIES for t in f.adapter.model_types]
    assert len(types) == len(set(types)) and len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("name", NAMES)
def test_a_family_declares_everything_it_needs(name):
    family = next(f for f in FAMILIES if f.name == name)
    assert family.adapter.example
    assert (family.gguf is None) != (family.gguf_unsupported is None)  # mapped, or refused with a reason
    if family.pruned_type is not None:
        config_cls, model_cls = (getattr(T, n) for n in family.pruned_type)
        assert config_cls.model_type == family.model_type and model_cls.config_class is config_cls
        assert name in CONFIGS  # and the tests have a tiny model of it


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_adapter_reads_a_tiny_model_of_the_family(name):
    model = tiny_model(name)
    adapter = adapter_for(model)
    assert adapter.name == name
    layers = adapter.decoder_layers(model)
    assert len(layers) == model.config.num_hidden_layers
    shape = adapter.layer_shape(model, 0)
    assert (shape.num_heads, shape.num_kv_heads) == (model.config.num_attention_heads,
                                                     model.config.num_key_value_heads)
    for member in adapter.members(shape):
        linear = layers[0].get_submodule(member.path)
        size = linear.weight.shape[member.axis]
        assert member.offset + member.count * member.width <= size


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_shipped_modeling_file_defines_the_family_without_adapruner(name):
    from adapruner.pruning import modeling_pruned
    from adapruner.pruning.save import shipped_modeling_file

    family = next(f for f in FAMILIES if f.name == name)
    source = shipped_modeling_file(family.model_type)
    blocked = source.replace("from adapruner.core.families import", "from adapruner_is_not_installed import")
    module = types.ModuleType("modeling_pruned_probe")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the file runs
    try:
        exec(compile(blocked, "modeling_pruned.py", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
        modeling_pruned.register()  # the probe registered its own classes with the Auto classes
    assert list(module.FAMILIES) == [family.model_type]
    assert module.MODEL_CLASSES[family.model_type].__name__.startswith("AdaprunerPruned")
