"""Bad inputs, faults and resumption: one clear line per problem, the rest processed, nothing half-written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest

from dis_core.extract import H5_NAME, ExtractConfig, extract_video, unit_dir
from dis_core.manifest import load_manifest
from tests.videos import read_frames, write_video

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "dis_core.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, **kw)


def test_bad_videos_each_get_one_clear_line_and_the_rest_is_processed(tmp_path, samples, model, make_manifest):
    d = tmp_path / "vids dir é"  # spaces and non-ASCII in paths
    d.mkdir()
    frames = read_frames(samples["single_face.mp4"])
    good = write_video(d / "good clip ü.mp4", frames, 30.0)
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("not a video\n")
    whole = samples["WolfgangLanger_Pexels.mp4"].read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    write_video(d / "one_frame.mp4", frames[:1], 30.0)
    write_video(d / "short.mp4", frames[:12], 30.0)  # 0.4 s
    gray = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in frames]
    write_video(d / "gray.mp4", gray, 30.0)
    shutil.copy(samples["no_face.mp4"], d / "no_face.mp4")
    names = ["good clip ü.mp4", "empty.mp4", "notes.mp4", "truncated.mp4", "one_frame.mp4", "short.mp4", "gray.mp4",
             "no_face.mp4"]
    m = make_manifest([{"participant_id": f"p{i}", "session": "s1", "video": str(d / n)} for i, n in enumerate(names)])
    out = tmp_path / "out"
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    r = _cli("extract", "-m", str(m), "-o", str(out), env=env)
    assert r.returncode == 3, r.stdout + r.stderr  # partial failure, distinct from success (0) and total failure (1)
    qc = pd.read_csv(out / "summary" / "extraction_qc.csv").set_index("video")
    status = {Path(v).name: s for v, s in qc["status"].items()}
    assert status == {"good clip ü.mp4": "ok", "empty.mp4": "failed", "notes.mp4": "failed",
                      "truncated.mp4": status["truncated.mp4"], "one_frame.mp4": "ok", "short.mp4": "ok",
                      "gray.mp4": "ok", "no_face.mp4": "no_face"}
    assert status["truncated.mp4"] in ("ok", "failed")
    lines = [ln for ln in r.stdout.splitlines() if "FAILED" in ln]
    for n in ("empty.mp4", "notes.mp4", "no_face.mp4"):
        hit = [ln for ln in lines if n in ln]
        assert len(hit) == 1, (n, lines)
    assert "empty file (0 bytes)" in " ".join(lines)
    # nothing half-written anywhere; every HDF5 file on disk opens and is complete
    assert not [p for p in out.rglob("*") if ".part-" in p.name]
    for h5 in out.rglob(H5_NAME):
        with h5py.File(h5) as f:
            assert f.attrs["status"] == "complete"


def test_corrupt_output_left_by_something_else_is_redone(tmp_path, samples, model, make_manifest):
    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(samples["single_face.mp4"])}]))
    e = m.entries[0]
    r1 = extract_video(e, tmp_path, model, ExtractConfig(), progress=False)
    h5 = Path(r1.output)
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    r2 = extract_video(e, tmp_path, model, ExtractConfig(), progress=False)
    assert r2.status == "ok", "a truncated output is not taken as done"
    with h5py.File(h5) as f:
        assert f.attrs["status"] == "complete" and f["landmarks"].shape[0] == r1.frames


def test_two_runs_on_one_output_folder_do_not_interleave(tmp_path, samples, model, make_manifest):
    m = make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])}])
    out = tmp_path / "out"
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    first = subprocess.Popen([sys.executable, "-m", "dis_core.cli", "extract", "-m", str(m), "-o", str(out),
                              "--executor", "debug"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lock = out / ".dis.lock"
    deadline = time.time() + 60
    while not (lock.is_file() and lock.read_text()):
        assert time.time() < deadline
        time.sleep(0.05)
    second = _cli("extract", "-m", str(m), "-o", str(out), env=env)
    assert second.returncode == 2
    assert "is in use by another DIS run (dis extract, pid" in second.stderr
    assert first.wait(timeout=300) == 0
    third = _cli("extract", "-m", str(m), "-o", str(out), env=env)  # the lock died with its holder
    assert third.returncode == 0 and "1 skipped" in third.stdout


def test_disk_full_fails_cleanly_and_keeps_the_earlier_output(tmp_path, samples, model, make_manifest):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1",
                                          "video": str(samples["single_face.mp4"])}]))
        e = m.entries[0]
        r1 = extract_video(e, mnt, model, ExtractConfig(), progress=False)
        assert r1.status == "ok"
        before = Path(r1.output).read_bytes()
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - 20_000, 0))
        r2 = extract_video(e, mnt, model, ExtractConfig(), force=True, progress=False)
        assert r2.status == "failed" and "disk full" in r2.message and "single_face.mp4" in r2.message
        assert Path(r1.output).read_bytes() == before, "the earlier good output is not overwritten"
        assert not [p for p in unit_dir(mnt, e).iterdir() if ".part-" in p.name]
    finally:
        subprocess.run(["umount", str(mnt)])
