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
