"""Each defect of the research scripts DIS grew from has a test here that would catch it.

Angle units (RQDecomp3x3 angles multiplied by 360): tests/test_pose.py::test_angles_are_degrees_not_rescaled and
the real-video range check in tests/test_extract_real.py. Per-second smiles at a hard-coded 25 fps:
tests/test_extract_real.py::test_per_second_smiles_follow_the_real_fps. The others are below.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dis_core.errors import DISError
from dis_core.features.build import FeatureSpec, fit_landmark_basis, procrustes_align, video_features
from dis_core.model.flows import FlowConfig, load_density, save_density, train_flow
from dis_core.score.stage import _assert_disjoint
from dis_core.cohort.split import SplitConfig, assign_splits
from dis_core.manifest import VideoEntry


def _toy(n=600, d=3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ a + np.arange(d)


@pytest.fixture(scope="module")
def trained():
    x = _toy()
    cols = ["yaw", "pitch", "roll"]
    r = train_flow(x, cols, FlowConfig(layers=3, hidden=16, max_epochs=40))
    return x, cols, r.density


def test_landmark_columns_in_another_order_are_refused(trained):
    x, cols, d = trained
    perm = [2, 0, 1]
    with pytest.raises(ValueError, match="order matters"):
        d.log_prob(x[:, perm], [cols[i] for i in perm])
    # the same data in the model's order scores normally
    assert np.isfinite(d.log_prob(x, cols)).all()


def test_checkpoint_cannot_load_into_another_architecture(trained, tmp_path):
    x, cols, d = trained
    p = tmp_path / "m.pt"
    save_density(p, d)
    back, _ = load_density(p)
    np.testing.assert_allclose(back.log_prob(x, cols), d.log_prob(x, cols), rtol=1e-6)
    blob = torch.load(p, weights_only=True)
    blob["flow_config"] = dataclasses.asdict(dataclasses.replace(d.flow_config, layers=2))  # 3-layer weights, 2-layer config
    torch.save(blob, p)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_density(p)


def test_velocities_follow_real_frame_times_not_a_fixed_fps():
    spec = FeatureSpec("h", "head_pose", velocity=True, velocity_window_s=0.3, center="none")
    out = []
    for fps in (24.0, 30.0):
        t = np.arange(int(fps * 4)) / fps
        v = np.column_stack([10 * np.sin(2 * np.pi * 0.5 * t), 2 * t, np.zeros_like(t)])  # deg; 2 deg/s ramp
        sel = np.ones(len(t), bool)
        f = video_features(v, ["yaw", "pitch", "roll"], t, sel, sel, spec)
        np.testing.assert_allclose(f.x[:, 4], 2.0, rtol=1e-9)  # d_pitch in deg/s at both frame rates
        out.append(f)
    assert out[0].columns == out[1].columns == ["yaw", "pitch", "roll", "d_yaw", "d_pitch", "d_roll"]


def test_no_face_frames_are_dropped_not_imputed():
    spec = FeatureSpec("h", "head_pose", velocity=True, velocity_window_s=0.1, center="session")
    t = np.arange(60) / 30.0
    v = np.tile([1.0, 2.0, 3.0], (60, 1)) + 1e-3 * np.sin(np.arange(60))[:, None]  # a live head (a frozen one: no rows)
    v[20:30] = np.nan  # 0.37 s: longer than spec.max_gap_s, so not bridged (shorter gaps are, see test_features_motion)
    sel = np.ones(60, bool)
    f = video_features(v, ["a", "b", "c"], t, sel, sel, spec)
    assert np.isfinite(f.x).all()
    assert not set(range(20, 30)) & set(f.frames.tolist())
    # frames whose velocity window (+-3 frames) reaches the gap or the video's ends are dropped too (counted):
    # the 10 faceless frames, 3 each side of the gap and 3 at each end
    assert 19 not in f.frames and 30 not in f.frames and f.dropped == 10 + 6 + 6 and f.interpolated == 0


def test_scoring_refuses_training_frames():
    with pytest.raises(DISError, match="used in training"):
        _assert_disjoint("p1", {"u1": [1, 2, 3]}, {"u1": np.array([3, 4, 5])})
    _assert_disjoint("p1", {"u1": [1, 2, 3]}, {"u1": np.array([4, 5])})


def _entry(pid, uid, split=None, session="s"):
    return VideoEntry(row=2, participant_id=pid, session=session, video=None, video_rel=uid, split=split, unit_id=uid)


def test_two_sessions_split_across_sessions_by_default():
    """With 2+ sessions the last session is held out whole (recognition on another day), and no
    frame is on both sides; ``within-session`` keeps the temporal hold-out."""
    times = {u: np.arange(90) / 30.0 for u in ("a1", "a2", "a3", "b1")}
    es = [_entry("p", "a1", session="day1"), _entry("p", "a2", session="day2"), _entry("p", "a3", session="day1"),
          _entry("q", "b1", session="day1")]
    sp = assign_splits(es, times)
    assert sp["a1"].rule == sp["a2"].rule == "cross-session"
    assert sp["a1"].train.all() and sp["a3"].train.all() and not sp["a1"].test.any()
    assert sp["a2"].test.all() and not sp["a2"].train.any()
    assert sp["b1"].rule == "temporal" and sp["b1"].test.sum() == 18 and not (sp["b1"].train & sp["b1"].test).any()
    within = assign_splits(es, times, SplitConfig(rule="within-session"))
    assert {s.rule for s in within.values()} == {"temporal"}
    with pytest.raises(ValueError, match="split rule"):
        SplitConfig(rule="random")


def test_temporal_split_holds_out_the_end_with_a_gap():
    fps = 30.0
    times = {"a": np.arange(300) / fps, "b": np.arange(300) / fps}
    sp = assign_splits([_entry("p", "a"), _entry("p", "b")], times, SplitConfig(test_fraction=0.2, gap_s=1.0))
    a, b = sp["a"], sp["b"]
    assert a.train.all() and not a.test.any()
    assert b.test.sum() == 120 and b.test[-120:].all()
    assert not (b.train & b.test).any()
    last_train = np.flatnonzero(b.train)[-1]
    assert times["b"][np.flatnonzero(b.test)[0]] - times["b"][last_train] >= 1.0


def test_the_temporal_cut_counts_frames_with_a_face_and_is_exact():
    """Someone who leaves the camera for the last quarter: the held-out part is still the last fifth of their
    frames with a face (counted over all frames it held only faceless ones). 90 frames at a 0.3 test fraction
    hold out 27 (floor(90 x 0.7) was 62, one frame short)."""
    times = {"a": np.arange(1800) / 30.0}
    face = {"a": np.arange(1800) < 1350}
    sp = assign_splits([_entry("p", "a")], times, detected=face)["a"]
    assert (sp.test & face["a"]).sum() == 270 and sp.test[1080:].all() and not sp.test[:1080].any()
    assert not (assign_splits([_entry("p", "a")], times)["a"].test & face["a"]).any()  # every frame counted
    short = assign_splits([_entry("p", "a")], {"a": np.arange(90) / 30.0}, SplitConfig(test_fraction=0.3, gap_s=0))
    assert short["a"].test.sum() == 27


def test_a_within_session_gap_shorter_than_a_feature_sets_reach_is_refused():
    """Rows look up to velocity half-window + longest lag from their frame, plus the frame beyond the moment
    they interpolate at and a bridge's reach: a within-session gap shorter than that lets test rows see
    training frames. Window rows stay in their part of the split but may read a bridged frame."""
    from dis_core.cohort.split import check_gap
    from dis_core.features.build import EXTRA_FEATURE_SETS, FEATURE_SETS, reach_s

    lags, spectrum = EXTRA_FEATURE_SETS["head_lags"], FEATURE_SETS["head_spectrum"]
    assert reach_s(lags) == pytest.approx(0.2 + 0.4 + 0.1 + 0.2 + 0.1)  # + a period, + bridge and a period
    assert reach_s(spectrum) == pytest.approx(0.4 + 0.1)
    assert max(reach_s(s) for s in FEATURE_SETS.values()) <= SplitConfig().gap_s  # the default gap covers all
    times = {"a": np.arange(300) / 30.0}
    temporal = assign_splits([_entry("p", "a")], times, SplitConfig(gap_s=0.5))
    reaches = {"head_lags": reach_s(lags), "head_spectrum": reach_s(spectrum)}
    msg = check_gap(temporal, SplitConfig(gap_s=0.5), reaches)
    assert "gap (0.5 s) is shorter than how far feature set head_lags looks from a frame (1 s)" in msg
    assert check_gap(temporal, SplitConfig(gap_s=1.0), reaches) == ""
    manifest = assign_splits([_entry("p", "a", "test"), _entry("p", "b", "train")], {**times, "b": times["a"]})
    assert check_gap(manifest, SplitConfig(gap_s=0.0), reaches) == "", "sessions apart: no gap needed"


def test_manifest_split_is_respected():
    times = {"a": np.arange(50) / 30.0, "b": np.arange(40) / 30.0}
    sp = assign_splits([_entry("p", "a", "train"), _entry("p", "b", "test")], times)
    assert sp["a"].train.all() and not sp["a"].test.any()
    assert sp["b"].test.all() and not sp["b"].train.any()


def test_landmarks_are_aligned_before_the_basis():
    """Raw landmarks are never used: position, scale and in-plane rotation do not change features."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(478, 2))
    shapes = base + 0.05 * rng.normal(size=(200, 478, 2))
    basis = fit_landmark_basis(shapes, 4)
    th = np.radians(25)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    moved = 3.7 * shapes[:10] @ rot.T + np.array([120.0, -45.0])
    np.testing.assert_allclose(basis.project(moved), basis.project(shapes[:10]), atol=1e-9)
    np.testing.assert_allclose(procrustes_align(moved, basis.reference), procrustes_align(shapes[:10], basis.reference),
                               atol=1e-9)


def _faces_with_motion(offsets, n=300, seed=0):
    """Shapes of len(offsets) videos: one base face plus each video's static offset (face geometry)
    plus the same motion (a mouth-like deformation with amplitude sin t) and small noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(60, 2))
    motion = np.zeros((60, 2))
    motion[:10, 1] = 1.0  # ten points move up and down together
    amp = 0.05 * np.sin(np.linspace(0, 20, n))
    shapes = [base + off + amp[:, None, None] * motion + 0.001 * rng.normal(size=(n, 60, 2)) for off in offsets]
    return np.concatenate(shapes), np.repeat(np.arange(len(offsets)), n)


def test_the_landmark_basis_is_fitted_on_centred_shapes_motion_not_geometry():
    """Two videos with different static face geometry and the same motion: the first axis is the motion
    (the same as from one video alone, up to sign), not the difference between the faces."""
    rng = np.random.default_rng(1)
    geometry = 0.3 * rng.normal(size=(60, 2))
    pts, groups = _faces_with_motion([np.zeros((60, 2)), geometry])
    alone, _ = _faces_with_motion([np.zeros((60, 2))])
    centred = fit_landmark_basis(pts, 2, groups)
    single = fit_landmark_basis(alone, 2)
    cos = float(centred.components[0] @ single.components[0])
    assert abs(cos) > 0.99
    # the geometry offset of the two videos is not an axis: their coordinates differ by a constant the
    # session centring removes, and the first axis carries the motion of both alike
    a, b = centred.project(pts[groups == 0])[:, 0], centred.project(pts[groups == 1])[:, 0]
    assert np.corrcoef(a, b)[0, 1] > 0.99 and centred.explained[0] > 0.9
    # fitted on uncentred shapes (as before), the first axis is the faces' difference instead
    raw = fit_landmark_basis(pts, 2)
    assert abs(float(raw.components[0] @ single.components[0])) < 0.5


def test_units_refuse_a_feature_set_reaching_past_the_gap_and_too_few_window_rows(tmp_path):
    """Two checks the training unit makes itself. A feature set the cohort step never saw (a 1.5 s lag against
    the 1 s gap) reads training frames from its test rows: refused by the unit, with the cohort step's words. A
    7 s video gives 11 head_windows rows covering 136 frames (over min_train_frames), fewer than the 20 a flow
    needs: a one-line failure, not a traceback from inside the fit."""
    from dis_core.cohort.stage import prepare_cohort
    from dis_core.features.build import FEATURE_SETS
    from dis_core.layout import RunLayout
    from dis_core.manifest import Manifest, unit_id
    from dis_core.model.config import DEFAULT_FLOWS, HEAD_FLOW, TrainConfig
    from dis_core.model.stage import train_unit
    from tests.synthrun import synthetic_extraction

    out, entries = tmp_path / "out", []
    for k, secs in enumerate((40.0, 40.0, 7.0)):
        video = tmp_path / f"p{k}.mp4"
        video.write_bytes(f"v{k}".encode())
        e = VideoEntry(row=k + 2, participant_id=f"p{k}", session="s1", video=video, video_rel=video.name, dyad="",
                       unit_id=unit_id(f"p{k}", "s1", video.name))
        h5 = RunLayout(out).extraction(e.unit_id)
        h5.parent.mkdir(parents=True, exist_ok=True)
        synthetic_extraction(h5, video, secs, 30.0, seed=k)
        entries.append(e)
    prepare_cohort(Manifest(tmp_path / "m.csv", tuple(entries), ()), out, specs=[FEATURE_SETS["head_windows"]])
    far = FeatureSpec("head_lag15", "head_rotation", center="none", velocity=False, lags_s=(1.5,))
    r = train_unit(out, "p0", TrainConfig(far, dataclasses.replace(HEAD_FLOW, max_epochs=2)))
    assert r.status == "failed" and "gap (1 s) is shorter than how far feature set head_lag15 looks" in r.message
    r = train_unit(out, "p2", TrainConfig(FEATURE_SETS["head_windows"], DEFAULT_FLOWS["head_windows"]))
    assert r.status == "failed" and r.message.startswith("participant p2, head_windows: only 11 training rows")
