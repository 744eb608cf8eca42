"""Tests of dis_core.motion: camera invariance, gap bridging, angular velocity, spectra, gain."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dis_core.features import motion


def _transforms(rot: Rotation, rng, scale=1.3) -> np.ndarray:
    """4x4 matrices with rotation ``rot``, a uniform scale and a translation (as MediaPipe's)."""
    m = np.zeros((len(rot), 4, 4))
    m[:, :3, :3] = scale * rot.as_matrix()
    m[:, :3, 3] = rng.normal(0, 5, (len(rot), 3))
    m[:, 3, 3] = 1.0
    return m


def test_relative_rotvec_cancels_camera_placement():
    rng = np.random.default_rng(0)
    T = 300
    head = Rotation.from_rotvec(rng.normal(0, 0.3, (T, 3))) * Rotation.from_rotvec([0.1, 0.4, 0.0])
    m = _transforms(head, rng)
    m[rng.random(T) < 0.1] = np.nan
    cam = Rotation.from_rotvec(np.radians(10) * np.array([1.0, 2.0, -1.0]) / np.sqrt(6))
    m2 = m.copy()
    m2[:, :3, :3] = cam.as_matrix() @ m[:, :3, :3]
    m2[:, :3, 3] = (cam.as_matrix() @ m[:, :3, 3, None])[..., 0]
    ref = np.arange(T) < 150
    a = motion.relative_rotvec(m, ref)
    b = motion.relative_rotvec(m2, ref)
    missing = np.isnan(m).any(axis=(1, 2))
    assert np.isnan(a[missing]).all() and np.isfinite(a[~missing]).all()
    np.testing.assert_allclose(a[~missing], b[~missing], atol=1e-9, rtol=0)
    # the camera change is not trivially small: absolute rotations differ by 10 degrees
    r1, ok1 = motion.rotations_from_transforms(m)
    r2, _ = motion.rotations_from_transforms(m2)
    np.testing.assert_allclose(np.degrees((r1.inv() * r2).magnitude()), 10.0, atol=1e-6)
    np.testing.assert_allclose(np.degrees((r2 * r1.inv()).magnitude()), 10.0, atol=1e-9)
    # scale is removed by the SVD projection
    np.testing.assert_allclose(motion.relative_rotvec(_transforms(head, rng, 0.7), ref),
                               motion.relative_rotvec(_transforms(head, rng, 1.9), ref), atol=1e-9)


def test_relative_rotvec_robust_reference_ignores_glances():
    rng = np.random.default_rng(1)
    T = 200
    rv = rng.normal(0, 0.02, (T, 3))
    rv[:20] = [0.0, 1.2, 0.0]  # 10% of frames looking far away
    m = _transforms(Rotation.from_rotvec(rv), rng)
    out = motion.relative_rotvec(m, None, robust=True)
    assert np.abs(np.median(out[20:], axis=0)).max() < 0.01
    naive = motion.relative_rotvec(m, None, robust=False)
    assert np.abs(np.median(naive[20:], axis=0)).max() > 0.05


def test_bridge_gaps_short_bursts_all_filled():
    rng = np.random.default_rng(2)
    T = 3000
    t = np.arange(T) / 30.0
    x = np.column_stack([np.sin(t), np.cos(2 * t)])
    ok = np.ones(T, bool)
    target = int(0.15 * T)
    while (~ok).sum() < target:
        i, k = rng.integers(2, T - 5), rng.integers(1, 4)
        if ok[i - 1:i + k + 1].all():  # bursts separated by at least one face frame
            ok[i:i + k] = False
    hidden = (~ok).sum()
    xin = x.copy()
    xin[~ok] = np.nan
    filled, interp, seg = motion.bridge_gaps(xin, t, ok)
    assert interp.sum() == hidden and np.array_equal(interp, ~ok)
    assert np.isfinite(filled).all() and (seg == 0).all()
    np.testing.assert_allclose(filled, x, atol=0.01)
    np.testing.assert_array_equal(filled[ok], x[ok])


def test_bridge_gaps_long_gap_splits_segments():
    T = 300
    t = np.arange(T) / 30.0
    ok = np.ones(T, bool)
    ok[100:130] = False  # 1 s
    ok[:3] = False  # leading gap: never filled (nothing before)
    ok[-2:] = False
    x = np.where(ok[:, None], np.arange(T)[:, None] * 1.0, np.nan)
    filled, interp, seg = motion.bridge_gaps(x, t, ok)
    assert not interp.any()
    assert np.isnan(filled[100:130]).all() and np.isnan(filled[:3]).all()
    assert set(seg[3:100]) == {0} and set(seg[130:-2]) == {1}
    assert (seg[~ok] == -1).all()


def test_never_bridging_still_reads_millisecond_times_as_one_segment():
    """max_gap_s=0 ("never bridge") split a 30 fps Matroska file at every 34 ms step (times rounded to the
    millisecond), leaving no row; a real jump in the times still starts a segment."""
    t = np.round(np.arange(900) / 30.0, 3)
    t[600:] += 0.5  # a decoder stall
    x = np.arange(900.0)[:, None]
    _, interp, seg = motion.bridge_gaps(x, t, np.ones(900, bool), max_gap_s=0.0)
    assert not interp.any() and set(seg[:600]) == {0} and set(seg[600:]) == {1}


def test_feature_specs_refuse_numbers_that_hang_or_read_the_future():
    import pytest

    from dis_core.features.build import FeatureSpec

    for bad in ({"hop_s": 0.0}, {"velocity_window_s": 0.0}, {"window_s": float("nan")}, {"lags_s": (-0.2,)},
                {"k": 0}, {"max_gap_s": -1.0}):
        with pytest.raises(ValueError, match="above 0|or more"):
            FeatureSpec("x", "head_rotation", **bad)
    for ignored in ({}, {"velocity": False, "lags_s": (0.2,)}):  # window rows never read them: refused, not ignored
        with pytest.raises(ValueError, match="rows take no per-frame velocity or lags"):
            FeatureSpec("x", "head_rotation", window="spectrum", **ignored)
    assert FeatureSpec("x", "head_rotation", window="spectrum", velocity=False).lags_s == ()


def test_bridge_rotations_slerp():
    T = 60
    t = np.arange(T) / 30.0
    axis = np.array([0.0, 1.0, 0.0])
    rot = Rotation.from_rotvec(np.outer(t * 0.5, axis))
    q = rot.as_quat()
    ok = np.ones(T, bool)
    ok[10:13] = False
    q[~ok] = np.nan
    qf, interp, seg = motion.bridge_rotations(q, t, ok)
    assert interp.sum() == 3 and (seg == 0).all()
    np.testing.assert_allclose(Rotation.from_quat(qf).as_rotvec(), rot.as_rotvec(), atol=1e-12)
    qf2, interp2, _ = motion.bridge_gaps(None, t, ok, rotations=q)
    np.testing.assert_array_equal(qf2, qf)


def test_angular_velocity_constant_rate():
    T = 100
    t = np.arange(T) / 30.0
    axis = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    rate = 0.8  # rad/s
    r0 = Rotation.from_rotvec([0.2, -0.1, 0.3])
    rot = r0 * Rotation.from_rotvec(np.outer(rate * t, axis))  # body-frame rotation about `axis`
    seg = np.zeros(T, int)
    seg[50:] = 1
    w = motion.angular_velocity(rot.as_rotvec(), t, seg)
    inner = np.ones(T, bool)
    inner[[0, 49, 50, T - 1]] = False
    assert np.isnan(w[~inner]).all()
    np.testing.assert_allclose(w[inner], np.tile(rate * axis, (inner.sum(), 1)), atol=1e-9)
    np.testing.assert_allclose(motion.angular_velocity(rot, t, seg)[inner], w[inner], atol=1e-12)


def test_gain_normalise_invariant_to_scale():
    rng = np.random.default_rng(4)
    x = rng.normal(0, [1.0, 3.0, 0.2], (500, 3))
    x[::17] = np.nan
    ref = np.arange(500) < 250
    a = motion.gain_normalise(x, ref)
    b = motion.gain_normalise(0.5 * x, ref)
    np.testing.assert_allclose(a, b, atol=1e-12, equal_nan=True)
    r = a[ref & np.isfinite(a).all(axis=1)]
    np.testing.assert_allclose(np.median(np.abs(r - np.median(r, axis=0)), axis=0) * motion.MAD_TO_SD, 1.0,
                               atol=1e-12)


def test_the_bridge_limit_is_missing_frames_times_the_period():
    """max_gap_s 0.2 at 15 fps: 3 missing frames (0.2 s) are bridged and marked, 4 (0.27 s) split the
    video into two segments and stay missing."""
    from dis_core.features.motion import bridge_gaps

    t = np.arange(40) / 15.0
    v = np.stack([t, 2 * t], axis=1)
    for missing, bridged in ((3, True), (4, False)):
        ok = np.ones(len(t), bool)
        ok[10:10 + missing] = False
        filled, fill, seg = bridge_gaps(v, t, ok, 0.2)
        assert fill[10:10 + missing].all() == bridged and fill.sum() == (missing if bridged else 0)
        if bridged:
            np.testing.assert_allclose(filled, v, atol=1e-12)  # linear values are restored exactly
            assert len(set(seg)) == 1
        else:
            assert (seg[10:10 + missing] == -1).all() and seg[9] != seg[10 + missing]


def test_a_gap_is_measured_with_the_frame_period_around_it_when_the_rate_changes():
    """A phone dropping from 30 to 15 fps (or back): 3 missing frames in the 15 fps part (0.2 s) are bridged and
    4 are not, 6 missing in a 30 fps stretch of a mostly 15 fps video (0.2 s) are bridged and 7 are not (with the
    video's one median period the first was split and the last bridged); the same stretch without rows (a jump in
    the times) and the synchrony's resampling follow the same rule."""
    from dis_core.features.motion import bridge_gaps
    from dis_core.score.synchrony import resample

    fast_then_slow = np.concatenate([np.arange(600) / 30.0, 20.0 + np.arange(120) / 15.0])
    slow_fast_slow = np.concatenate([np.arange(300) / 15.0, 20.0 + np.arange(150) / 30.0, 25.0 + np.arange(150) / 15.0])
    for t, at, cases in ((fast_then_slow, 650, ((3, True), (4, False))),
                         (slow_fast_slow, 360, ((6, True), (7, False)))):
        for missing, bridged in cases:
            ok = np.ones(len(t), bool)
            ok[at:at + missing] = False
            _, fill, seg = bridge_gaps(t[:, None], t, ok, 0.2)
            assert fill[at:at + missing].all() == bridged and fill.sum() == (missing if bridged else 0), (at, missing)
            assert len(set(seg[seg >= 0])) == (1 if bridged else 2)
            keep = np.flatnonzero(ok)
            assert len(set(bridge_gaps(t[keep, None], t[keep], np.ones(len(keep), bool), 0.2)[2])) == (1 if bridged else 2)
            grid = resample(t, np.where(ok, 1.0, np.nan), 10.0, float(t[-1]), 0.2)
            inside = grid[int(np.ceil(t[at] * 10)):int(t[at + missing - 1] * 10) + 1]
            assert len(inside) and bool(np.isfinite(inside).all()) == bridged, (at, missing)


def test_a_gap_of_the_bridge_limit_is_bridged_wherever_it_falls_in_millisecond_times():
    """Times written to the millisecond (Matroska, WebM): 6 missing frames at 30 fps (0.2 s) were bridged at only
    20 of 30 places, and at 29.97 fps (0.2002 s) nowhere; 7 (0.233 s) never are."""
    from dis_core.features.motion import bridge_gaps

    for fps in (30.0, 30000 / 1001):
        t = np.round(np.arange(400) / fps, 3)
        for missing, bridged in ((6, True), (7, False)):
            got = []
            for at in range(100, 130):
                ok = np.ones(len(t), bool)
                ok[at:at + missing] = False
                got.append(bool(bridge_gaps(t[:, None], t, ok, 0.2)[1][at:at + missing].all()))
            assert got == [bridged] * 30, (fps, missing, got)
            # the same stretch without rows at all (a jump in the times) and the synchrony's resampling: one rule
            from dis_core.score.synchrony import resample

            whole, resampled = [], []
            for at in range(100, 130):
                keep = np.r_[0:at, at + missing:len(t)]
                whole.append(len(set(bridge_gaps(t[keep, None], t[keep], np.ones(len(keep), bool), 0.2)[2])) == 1)
                v = np.where(np.isin(np.arange(len(t)), keep), 1.0, np.nan)
                grid = resample(t, v, 10.0, float(t[-1]), 0.2)
                resampled.append(bool(np.isfinite(grid[int(np.ceil(t[at] * 10)):int(t[at + missing - 1] * 10)]).all()))
            assert whole == [bridged] * 30 and resampled == [bridged] * 30, (fps, missing, whole, resampled)


def test_a_jump_in_the_frame_times_splits_segments_like_missing_frames():
    """One second missing from the frame times (no row for it at all) splits the video as 30 rows without
    a face would; a jump within the bridge limit does not."""
    from dis_core.features.build import _velocity
    from dis_core.features.motion import bridge_gaps

    t = np.arange(120) / 30.0
    t[60:] += 1.0
    v = np.stack([np.sin(t), np.cos(t)], axis=1)
    _, fill, seg = bridge_gaps(v, t, np.ones(len(t), bool), 0.2)
    assert not fill.any() and seg[59] == 0 and seg[60] == 1 and len(set(seg)) == 2
    _, good, (_, hi, lo, _) = _velocity(v, t, seg, 0.2)  # the frames around each end: outer ones
    assert good.any() and (seg[hi[good]] == seg[lo[good]]).all()
    assert not good[54:66].any()  # no velocity window across the jump
    t2 = np.arange(120) / 30.0
    t2[60:] += 0.1  # 0.1 s: within the bridge
    assert len(set(bridge_gaps(v, t2, np.ones(len(t2), bool), 0.2)[2])) == 1
