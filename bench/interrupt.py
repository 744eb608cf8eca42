"""Interrupt latency benchmark: prints figures (not a test). Run: .venv/bin/python bench/interrupt.py [--trials N]

`dis extract --workers 2` on a short and a 20 s video (a third queued); once the short one is done,
SIGINT or SIGTERM (alternating). Reported per trial: seconds from the signal to the process's exit,
split into the stop itself (signal -> the "interrupted by" line is printed, read from the process's
output stream) and the interpreter's exit after it; then the median and a 95% bootstrap interval of
the mean over trials. Also checked each time: exit 130 and no temporary `.part-` file left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dis_core.io.assets import fetch_samples, resolve_model  # noqa: E402


def _finished(status: Path) -> bool:
    """Whether a unit's record says it finished (an extraction also records that it started)."""
    try:
        return json.loads(status.read_text()).get("status") in ("ok", "skipped", "no_face")
    except (OSError, ValueError):
        return False


def trial(tmp: Path, manifest: Path, sig: signal.Signals, env: dict) -> tuple[float, float, int, int]:
    out = tmp / f"out-{time.monotonic_ns()}"
    p = subprocess.Popen([sys.executable, "-m", "jobs.cli", "extract", "-m", str(manifest), "-o", str(out),
                          "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    said: list[float] = []

    def read() -> None:
        for line in p.stdout:
            if line.startswith("interrupted by"):
                said.append(time.monotonic())

    th = threading.Thread(target=read, daemon=True)
    th.start()
    while not any(_finished(s) for s in (out / "videos").glob("*/status.json")):  # (an attempt records its start)
        if p.poll() is not None:
            raise RuntimeError("finished before it could be interrupted")
        time.sleep(0.05)
    t0 = time.monotonic()
    p.send_signal(sig)
    rc = p.wait(timeout=120)
    t1 = time.monotonic()
    th.join(5)
    parts = len([q for q in out.rglob("*") if ".part-" in q.name])
    shutil.rmtree(out, ignore_errors=True)
    stop = (said[0] - t0) if said else float("nan")
    return stop, t1 - t0, rc, parts


def boot_ci(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(x, (n, len(x))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=6)
    a = ap.parse_args()
    s = fetch_samples()
    env = dict(os.environ, DIS_FACE_MODEL=str(resolve_model().path))
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        m = tmp / "m.csv"
        m.write_text("participant_id,session,video\n"
                     f"short,s1,{s['single_face.mp4']}\nlong,s1,{s['WolfgangLanger_Pexels.mp4']}\n"
                     f"queued,s1,{s['carphone_pristine.mp4']}\n")
        rows = []
        for k in range(a.trials):
            sig = (signal.SIGINT, signal.SIGTERM)[k % 2]
            stop, total, rc, parts = trial(tmp, m, sig, env)
            rows.append((stop, total))
            print(f"trial {k + 1} {sig.name:7s}: stop {stop:5.2f} s, signal->exit {total:5.2f} s, exit {rc}, "
                  f".part- files left {parts}", flush=True)
        x = np.array(rows)
        for j, name in enumerate(("stop (signal -> summary printed)", "signal -> process exit")):
            lo, hi = boot_ci(x[:, j])
            print(f"{name}: median {np.median(x[:, j]):.2f} s, mean {x[:, j].mean():.2f} s "
                  f"(95% bootstrap interval {lo:.2f}-{hi:.2f} s), max {x[:, j].max():.2f} s, n={len(x)}")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
