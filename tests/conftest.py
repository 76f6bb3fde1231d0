"""Shared fixtures: the offline data directory and tiny random models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("ADAPRUNER_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline data directory (../shared/data relative to the repo root)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"data directory {DATA_DIR} not found")
    return DATA_DIR


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A saved tiny Llama checkpoint with a BOS-prepending character tokenizer."""
    from tiny import tiny_model
    from tiny_tokenizer import char_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama") / "llama"
    tiny_model("llama").save_pretrained(path)
    char_tokenizer(add_bos=True).save_pretrained(path)
    return path


def need_llama_cpp() -> None:
    """Skip a test that runs llama.cpp where llama-cpp-python is not installed, except in CI
    (``CI=true``), which installs it: there a missing build must fail, not skip."""
    if os.environ.get("CI"):
        import llama_cpp  # noqa: F401
    else:
        pytest.importorskip("llama_cpp")
