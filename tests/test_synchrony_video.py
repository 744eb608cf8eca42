"""Synchrony through real video: two phantom partners filmed 'at the same time' performing the same head
movements (on different faces) are found maximally synchronous at lag 0; the head-speed signal read from
the extraction files follows the rendered truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dis_core.cohort.stage import prepare_cohort
from dis_core.extract.pose import euler_to_rotation
from dis_core.manifest import load_manifest
from dis_core.phantom.render import cohort_dynamics, make_rig, portraits, render_video, trajectory
from dis_core.score import synchrony as sy
from dis_core.score.stats import holm
from jobs.local import run_pipeline
from tests.conftest import write_manifest

FPS, SECONDS = 10.0, 10.0
CFG = sy.SynchronyConfig(rate_hz=10, window_s=3, step_s=1.5, max_lag_s=1, n_perm=200, n_boot=200)


@pytest.fixture(scope="module")
def locked_cohort(tmp_path_factory, samples, model):
    """4 participants, 1 time-locked session each: ph01 and ph02 (dyad d1) perform the very same head
    trajectory, ph03 and ph04 (dyad d2) their own."""
    d = tmp_path_factory.mktemp("sync")
    faces = portraits(samples, model.path)[:4]
    rng = np.random.default_rng(21)
    dyn = cohort_dynamics(4, rng, dyad_shared=())
    n = int(FPS * SECONDS)
    trajs = [trajectory(dyn[i], n, FPS, np.random.default_rng([21, i])) for i in (0, 2, 3)]
    trajs = [trajs[0], trajs[0], trajs[1], trajs[2]]
    rows = []
    for i, (face, ypr) in enumerate(zip(faces, trajs)):
        video = d / f"ph{i + 1}.mp4"
        render_video(make_rig(face[1], model.path), ypr, FPS, video)
        rows.append({"participant_id": f"ph{i + 1}", "session": "s1", "video": str(video), "dyad": f"d{i // 2 + 1}",
                     "time_locked": "yes", "condition": "lab"})
    m = load_manifest(write_manifest(d / "cohort.csv", rows))
    run_pipeline(m, d / "run", model, [], stages=["extract"], workers=1, log=lambda *_: None)
    return prepare_cohort(m, d / "run"), trajs


def _truth_speed(ypr: np.ndarray) -> np.ndarray:
    """Angle of R_{t-1}^T R_{t+1} over 2 frame intervals (deg/s), from the rendered yaw/pitch/roll."""
    r = euler_to_rotation(ypr)
    d = np.einsum("nji,njk->nik", r[:-2], r[2:])
    out = np.full(len(ypr), np.nan)
    out[1:-1] = np.degrees(np.arccos(np.clip((np.trace(d, axis1=1, axis2=2) - 1) / 2, -1, 1))) * FPS / 2
    return out


def test_head_speed_from_the_extraction_follows_the_truth(locked_cohort):
    cohort, trajs = locked_cohort
    e = cohort.videos_of("ph3")[0]
    got = sy.session_signals(cohort.layout.extraction(e.unit_id), CFG)["head_speed"]
    want = _truth_speed(trajs[2])
    ok = np.isfinite(got) & np.isfinite(want[: len(got)])
    assert ok.mean() > 0.9
    r = np.corrcoef(got[ok], want[: len(got)][ok])[0, 1]
    print(f"head speed vs truth: r = {r:.3f}, median truth {np.median(want[1:-1]):.1f} deg/s")
    assert r > 0.8


def test_same_movements_at_the_same_time_are_synchronous_at_lag_zero(locked_cohort):
    cohort, _ = locked_cohort
    rows, note = sy.cohort_synchrony(cohort, CFG)
    assert [r["signal"] for r in rows] == list(sy.SIGNALS)
    assert "2 couples" in note and "time-locked sessions s1" in note and "same condition" in note
    head = rows[0]
    assert head["dyads"] == 2 and head["sessions"] == 1
    # re-reading the signals: the copied trajectory is the most synchronous pair, at lag 0
    sig = [sy.session_signals(cohort.layout.extraction(cohort.videos_of(p)[0].unit_id), CFG)["head_speed"]
           for p in ("ph1", "ph2", "ph3", "ph4")]
    t = min(map(len, sig))
    m = sy.synchrony_matrix([np.stack([s[:t] for s in sig])], CFG)
    print(pd.DataFrame(m).round(2).to_string())
    assert m[0, 1] > 0.8 and m[0, 1] == np.nanmax(m)
    assert max(m[0, 2], m[0, 3], m[1, 2], m[1, 3], m[2, 3]) < m[0, 1] - 0.2
    peak, lag, _ = sy.peak_synchrony(*sy.wlcc(sig[0][:t], sig[1][:t], CFG))
    assert lag == 0.0
    # 2 dyads admit 3 pairings, tested exactly: the real one holding the copied trajectory is the most
    # synchronous of the three (known from m), so p is 1/3, the floor, and no lower
    means = [(m[0, 1] + m[2, 3]) / 2, (m[0, 2] + m[1, 3]) / 2, (m[0, 3] + m[1, 2]) / 2]
    assert means[0] > max(means[1:])
    assert head["exact"] and head["p_floor"] == pytest.approx(1 / 3) and head["p"] == pytest.approx(1 / 3)


def test_a_couple_without_a_common_session_costs_its_couple_and_the_reason_is_given(locked_cohort):
    """ph4 filmed under another session label: no label is held by both members of two couples, so no test can
    run, and the note says why."""
    import dataclasses

    cohort, _ = locked_cohort
    moved = dataclasses.replace(cohort, entries=[dataclasses.replace(e, session="s2") if e.participant_id == "ph4"
                                                 else e for e in cohort.entries])
    rows, note = sy.cohort_synchrony(moved, CFG)
    assert rows == [] and note == "synchrony test not run: no time-locked session is held by both members of two couples"


def test_no_time_locked_column_means_no_synchrony(locked_cohort):
    import dataclasses

    cohort, _ = locked_cohort
    plain = dataclasses.replace(cohort, entries=[dataclasses.replace(e, extra=tuple(
        (k, v) for k, v in e.extra if k != "time_locked")) for e in cohort.entries])
    assert sy.cohort_synchrony(plain, CFG) is None


def test_the_report_gets_a_synchrony_sheet_and_summary_line(locked_cohort):
    from dis_core.report.stage import write_report

    cohort, _ = locked_cohort
    wb, text = write_report(cohort, [], [], {"dis_version": "test"})
    sheet = pd.read_excel(wb, sheet_name="synchrony")
    assert list(sheet["signal"]) == list(sy.SIGNALS)
    np.testing.assert_allclose(sheet["p_holm"], holm(sheet["p"]))  # the signals are one family
    summary = pd.read_excel(wb, sheet_name="summary")
    line = dict(zip(summary["item"], summary["value"]))["synchrony tests"]
    assert "Holm-corrected" in line and "head_speed: excess" in line and "synchrony:" in text
