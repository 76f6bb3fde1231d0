"""Shared fixtures: the offline data directory and tiny random models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("ADAPRUNER_DATA_DIR") or REPO.parent / "shared" / "data")


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the moment of writing (the running test's capture)."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()


@pytest.fixture(autouse=True)
def _library_logs_follow_the_capture():
    """transformers and the hub client bind their log handlers to the stderr of the moment they
    first log, in a test an earlier capture that is closed by now ("--- Logging error ---" then
    lands in the next test's stderr): point every plain stream handler at the current stderr."""
    import logging

    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", ()):
            if type(handler) is logging.StreamHandler and not isinstance(handler.stream, _CurrentStderr):
                handler.stream = _CurrentStderr()  # not setStream: it flushes the closed stream
                handler.__dict__.pop("flush", None)  # transformers pins the old stderr's flush on its handler
    yield


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
