"""The optuna-dashboard screenshot in the docs: the recorded full-space search, seen as a user sees it.

The 100 trials of ``benchmarks/results/full_space/trials.csv`` are replayed into a fresh SQLite
study through the same search space (each trial enqueued with its recorded parameters and given
its recorded value, so the study holds the search's real distributions and values), served with
``optuna-dashboard`` on the loopback address, and photographed with headless Chromium
(``apt-get install chromium``).

    python benchmarks/search/dashboard_screenshot.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRIALS = REPO / "benchmarks" / "results" / "full_space" / "trials.csv"
OUT = REPO / "docs" / "images" / "dashboard.png"
sys.path.insert(0, str(REPO / "benchmarks"))
import bench  # noqa: E402


def replay(storage: str, data_dir: Path) -> None:
    """A study of the recorded trials, each suggested through the full space with its recorded values."""
    import optuna

    rows, space, pool_size = bench.recorded_trials(TRIALS, "smollm2-135m", data_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="smollm2-135m-20-full", storage=storage, direction="minimize")
    for r in rows:
        study.enqueue_trial(r["params"])
    values = iter(float(r["value"]) for r in rows)

    def objective(trial):
        config = space.suggest(trial, pool_size)
        trial.set_user_attr("metric", config.metric.name)
        return next(values)

    study.optimize(objective, n_trials=len(rows))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/study.db"
        replay(storage, Path(args.data_dir))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exe = shutil.which("optuna-dashboard")
        cmd = [exe] if exe else [sys.executable, "-m", "optuna_dashboard"]
        server = subprocess.Popen([*cmd, storage, "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/dashboard/studies/1"
            for _ in range(150):
                try:
                    urllib.request.urlopen(url, timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            else:
                raise SystemExit("optuna-dashboard did not answer")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--window-size=1400,1000", "--virtual-time-budget=15000",
                            f"--screenshot={args.out}", url], check=True, capture_output=True, timeout=120)
        finally:
            server.terminate()
            server.wait()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
