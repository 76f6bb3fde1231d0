"""A finished study opens in optuna-dashboard: served on the loopback address, its trials read back over HTTP."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from adapruner.cli import main

pytest.importorskip("optuna_dashboard")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_a_finished_search_is_served_by_optuna_dashboard(tiny_llama_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--model", str(tiny_llama_dir), "--ratio", "0.2", "--trials", "3", "--out", str(out),
                 "--data-dir", str(data_dir), "--eval-windows", "2", "--device", "cpu", "--space", "paper"]) == 0
    port = free_port()
    exe = shutil.which("optuna-dashboard") or sys.executable
    cmd = [exe] if exe != sys.executable else [sys.executable, "-m", "optuna_dashboard"]
    server = subprocess.Popen([*cmd, f"sqlite:///{out / 'study.db'}", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                studies = get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("optuna-dashboard did not answer")
        assert [s["study_name"] for s in studies] == ["adapruner-tpe"]
        detail = get(f"{base}/api/studies/{studies[0]['study_id']}")
        with (out / "trials.csv").open() as f:
            expected = {int(r["number"]): float(r["value"]) for r in csv.DictReader(f) if r["state"] == "COMPLETE"}
        served = {t["number"]: t["values"][0] for t in detail["trials"] if t["state"] == "Complete"}
        assert served == pytest.approx(expected) and len(served) >= 1
    finally:
        server.terminate()
        server.wait(timeout=10)
