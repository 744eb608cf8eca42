"""Head-rotation features: camera invariance and bridging of short detector gaps."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dis_core.features.build import DEFAULT_FEATURE_SETS, EXTRA_FEATURE_SETS, FeatureSpec, base_values, video_features
from dis_core.extract.pose import head_pose

FPS = 30.0
SPEC = DEFAULT_FEATURE_SETS["head_pose"]


def _session(seconds: float = 60.0, seed: int = 0):
    """A smooth head rotation (a few slow sinusoids per axis) as (T, 4, 4) transforms, and times."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FPS)) / FPS
    ang = np.zeros((len(t), 3))
    for j in range(3):
        for f in (0.23, 0.61, 1.3):
            ang[:, j] += rng.uniform(2, 8) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    m = np.tile(np.eye(4), (len(t), 1, 1))
    m[:, :3, :3] = Rotation.from_euler("yxz", ang, degrees=True).as_matrix()
    m[:, :3, 3] = [0.0, 0.0, -40.0]
    return m, t


def _hide(m: np.ndarray, idx) -> np.ndarray:
    out = m.copy()
    out[np.asarray(idx, int)] = np.nan
    return out


def _bursts(n: int, fraction: float, seed: int = 1) -> np.ndarray:
    """Frames to hide: bursts of 1-3 frames at random, separated by at least one face frame."""
    rng = np.random.default_rng(seed)
    hidden = np.zeros(n, bool)
    while hidden.mean() < fraction:
        a = rng.integers(1, n - 4)
        b = a + rng.integers(1, 4)
        if not hidden[a - 1:b + 1].any():
            hidden[a:b] = True
    return np.flatnonzero(hidden)


def _features(m, t, spec=SPEC, fit=None):
    fit = np.ones(len(t), bool) if fit is None else fit
    values, cols = base_values(spec.source, transform=m, fit=fit)
    return video_features(values, cols, t, np.ones(len(t), bool), fit, spec)


def test_short_bursts_of_missing_frames_cost_few_rows():
    m, t = _session()
    full = _features(m, t)
    gaps = _hide(m, _bursts(len(t), 0.15))
    detected = int(np.isfinite(gaps).all(axis=(1, 2)).sum())
    assert detected <= 0.85 * len(t) + 3
    bridged = _features(gaps, t)
    old = _features(gaps, t, dataclasses.replace(SPEC, max_gap_s=0.0))  # no bridging: the former behaviour
    loss = (full.x.shape[0] - bridged.x.shape[0]) - (len(t) - detected)  # rows lost beyond the hidden frames
    assert loss < 0.10 * detected
    assert bridged.x.shape[0] >= 0.9 * detected
    assert old.x.shape[0] < 0.7 * detected  # without bridging, windows around every burst are lost
    assert bridged.interpolated > 0
    # interpolated frames are never rows
    assert np.isfinite(gaps[bridged.frames]).all()
    assert np.isfinite(bridged.x).all()


def test_features_do_not_change_with_the_camera():
    m, t = _session(20.0, seed=3)
    m = _hide(m, _bursts(len(t), 0.1, seed=4))
    fit = np.arange(len(t)) < len(t) // 2
    cam = np.eye(4)
    cam[:3, :3] = Rotation.from_rotvec(np.deg2rad(8.0) * np.array([0.6, -0.64, 0.48])).as_matrix()
    moved = cam @ m
    for spec in (SPEC, dataclasses.replace(SPEC, lags_s=(0.2, 0.4)), dataclasses.replace(SPEC, center="session")):
        a, b = _features(m, t, spec, fit), _features(moved, t, spec, fit)
        assert np.array_equal(a.frames, b.frames)
        assert len(a.frames) > 0.5 * len(t)
        np.testing.assert_allclose(a.x, b.x, atol=1e-9, rtol=0)
    # whereas yaw/pitch/roll move with the camera
    ok = np.isfinite(m).all(axis=(1, 2))
    assert np.abs(head_pose(m[ok]) - head_pose(moved[ok])).max() > 1.0


def test_a_long_gap_is_not_bridged_and_no_window_spans_it():
    m0, t = _session(10.0, seed=5)
    gap = (t >= 4.0) & (t < 5.0)
    m = _hide(m0, np.flatnonzero(gap))
    vf = _features(m, t)
    assert vf.interpolated == 0
    assert not gap[vf.frames].any()
    half, period = SPEC.velocity_window_s, 1.0 / FPS
    g0, g1 = t[gap][0], t[gap][-1]  # first and last hidden frame
    before, after = vf.times < g0, vf.times > g1
    assert (before | after).all()
    # a window [t - half, t + half] holds no hidden frame: it ends before the gap or starts after it
    assert (vf.times[before] + half < g0 - 0.5 * period).all()
    assert (vf.times[after] - half > g1 + 0.5 * period).all()
    assert vf.times[before].max() + half > g0 - 1.5 * period  # and the rows run up to the gap's edge
    assert before.any() and after.any()
    # and the velocities (independent of the reference rotation) are those of the uninterrupted session
    full = _features(m0, t)
    pos = np.searchsorted(full.frames, vf.frames)
    assert np.array_equal(full.frames[pos], vf.frames)
    np.testing.assert_allclose(vf.x[:, 3:], full.x[pos, 3:], atol=1e-9, rtol=0)


def test_a_bridged_frame_on_the_inner_side_of_a_window_end_counts_as_used():
    """At 24 fps a 0.2 s velocity end of frame 20 falls between frames 24 and 25: with frame 24 bridged, the row
    read it, but only the outer frames were counted (0 bridged frames used); lags alike."""
    t = np.arange(60) / 24.0
    hp = np.cumsum(np.random.default_rng(1).normal(size=(60, 3)), axis=0)
    hp[24] = np.nan
    select = np.zeros(60, bool)
    select[20] = True
    spec = FeatureSpec("x", "head_pose", velocity=True, velocity_window_s=0.2)
    vf = video_features(*base_values("head_pose", head_pose=hp), t, select, np.ones(60, bool), spec)
    assert list(vf.frames) == [20] and vf.interpolated == 1
    lagged = FeatureSpec("x", "head_pose", velocity=False, lags_s=(0.2,))  # 0.2 s before frame 29: 24 and 25
    select = np.zeros(60, bool)
    select[29] = True
    vf = video_features(*base_values("head_pose", head_pose=hp), t, select, np.ones(60, bool), lagged)
    assert list(vf.frames) == [29] and vf.interpolated == 1


def test_frames_a_jump_in_the_times_skips_count_as_bridged_where_rows_read_through_it():
    """Three frames missing from the frame times (a decoder's drop, 0.1 s: within the bridge) are read through by
    interpolation as three hidden frames are, and QC counts them alike; they had counted none. A jump past the
    bridge splits the video instead, and nothing reads through it."""
    from dis_core.features.build import FEATURE_SETS

    hp = np.cumsum(np.random.default_rng(2).normal(size=(600, 3)), axis=0)
    t = np.arange(600) / FPS
    hidden = hp.copy()
    hidden[300:303] = np.nan
    dropped = np.delete(np.arange(603), [300, 301, 302]) / FPS  # the same session with the three frames gone
    spec = FeatureSpec("x", "head_pose", velocity=True, velocity_window_s=0.2)
    for s in (spec, FEATURE_SETS["head_spectrum"]):
        values, columns = base_values("head_pose", head_pose=hp) if s is spec else (hp * 0.01, ["rx", "ry", "rz"])
        hid = base_values("head_pose", head_pose=hidden)[0] if s is spec else hidden * 0.01
        n = len(t)
        a = video_features(hid, columns, t, np.ones(n, bool), np.ones(n, bool), s)
        b = video_features(values, columns, dropped, np.ones(n, bool), np.ones(n, bool), s)
        assert a.interpolated == 3 and b.interpolated == 3, (s.name, a.interpolated, b.interpolated)
        c = video_features(values, columns, t, np.ones(n, bool), np.ones(n, bool), s)
        assert c.interpolated == 0
        late = t.copy()
        late[300:] += 0.5  # past the bridge: two segments
        assert video_features(values, columns, late, np.ones(n, bool), np.ones(n, bool), s).interpolated == 0


def test_euler_source_is_still_available():
    spec = FeatureSpec("head_pose_euler", "head_pose", velocity=True, velocity_window_s=0.3)
    hp = np.cumsum(np.random.default_rng(0).normal(size=(300, 3)), axis=0)
    hp[100] = np.nan
    vf = video_features(*base_values("head_pose", head_pose=hp), np.arange(300) / FPS, np.ones(300, bool),
                        np.ones(300, bool), spec)
    assert vf.columns[:3] == ["yaw", "pitch", "roll"]
    assert 100 not in vf.frames and 99 in vf.frames  # the 1-frame gap is bridged, not a row
    assert vf.interpolated == 1


def test_head_rotation_needs_transforms():
    with pytest.raises(ValueError):
        base_values("head_rotation")


def test_blendshapes_are_modelled_as_logits_of_clipped_scores():
    """Scores 0, 0.5, 1 and 0.9 become logit(1e-4), 0, logit(1 - 1e-4), logit(0.9); centring and
    velocities are applied to the logits; the default blendshapes set uses them."""
    from dis_core.features.build import LOGIT_EPS

    assert LOGIT_EPS == 1e-4
    t = np.arange(4) / FPS
    v = np.array([[0.0, 0.5], [0.5, 0.5], [1.0, 0.5], [0.9, np.nan]])
    raw = FeatureSpec("b", "blendshapes", center="none", velocity=False, transform="logit")
    f = video_features(v, ["a", "b"], t, np.ones(4, bool), np.ones(4, bool), raw)
    np.testing.assert_allclose(f.x, [[-9.21024, 0.0], [0.0, 0.0], [9.21024, 0.0]], atol=1e-5)
    assert f.frames.tolist() == [0, 1, 2]  # the NaN in frame 3 is a missing face, not a score
    vel = FeatureSpec("b", "blendshapes", center="session", velocity=True, velocity_window_s=1 / FPS,
                      transform="logit", max_gap_s=0)
    g = video_features(v[:3], ["a", "b"], t[:3], np.ones(3, bool), np.ones(3, bool), vel)
    assert g.columns == ["a", "b", "d_a", "d_b"]
    assert g.frames.tolist() == [1]  # the one complete window: frames 0 and 2 would be one-sided
    np.testing.assert_allclose(g.x[0], [0.0, 0.0, 9.21024 * FPS, 0.0], atol=1e-3)  # centred on the median logit
    with pytest.raises(ValueError, match="logit"):
        FeatureSpec("h", "head_rotation", transform="logit")


def test_clipped_scores_of_a_moving_channel_are_dequantised_and_a_channel_always_off_stays_constant():
    """The blendshapes default: a channel off (score below 1e-4) on part of the frames gets those frames spread
    log-uniformly over [1e-6, 1e-4] (so logits in [logit(1e-6), logit(1e-4)], no atom for a flow to put its mass
    on), the same value for a frame whatever the split or the video's length; a channel off on every face frame
    stays at logit(1e-4), a constant the dead-channel rule sees; scores near 1 likewise; NaN stays a missing face."""
    from scipy.stats import kstest

    from dis_core.features.build import transform_values

    assert DEFAULT_FEATURE_SETS["blendshapes"].transform == "dequantised_logit"
    rng = np.random.default_rng(3)
    n = 4000
    v = np.column_stack([np.where(rng.random(n) < 0.6, 0.0, rng.uniform(0.01, 0.9, n)),  # off 60 % of frames
                         np.zeros(n),  # never moves
                         np.where(rng.random(n) < 0.3, 1.0, rng.uniform(0.1, 0.9, n))])  # on at 1 30 % of frames
    v[5] = np.nan
    z = transform_values(v, "dequantised_logit")
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    off, on = v[:, 0] == 0.0, v[:, 2] == 1.0
    lo, hi = logit(1e-6), logit(1e-4)
    assert (z[off, 0] >= lo - 1e-9).all() and (z[off, 0] <= hi + 1e-9).all() and len(np.unique(z[off, 0])) == off.sum()
    # log-uniform: log10 of the score uniform over [-6, -4]
    assert kstest((np.log10(1 / (1 + np.exp(-z[off, 0]))) + 6) / 2, "uniform").pvalue > 0.01
    assert (z[on, 2] >= -hi - 1e-9).all() and (z[on, 2] <= -lo + 1e-9).all()
    np.testing.assert_array_equal(z[~off & ~on, [0]], logit(v[~off & ~on, 0]))  # live scores untouched
    assert np.isnan(z[5]).all() and (z[np.isfinite(z[:, 1]), 1] == hi).all(), "the idle channel stays one value"
    np.testing.assert_array_equal(transform_values(v[:1000], "dequantised_logit"), z[:1000])  # per frame, fixed
    np.testing.assert_allclose(transform_values(v, "logit")[off, 0], hi)  # the earlier rule: one value


def test_held_out_frames_never_decide_how_training_blendshapes_are_written():
    """Within one video (the within-session split), a channel off on every training frame stays one constant
    value on those frames whether or not it moves on the held-out frames (the dead-channel rule must see it;
    it once read 1,170 distinct training values when the channel moved only in the test part); the training
    rows are the same to the bit, and the held-out rows keep the training frames' rule."""
    n, cut = 1500, 1170
    t = np.arange(n) / 30.0
    fit = np.arange(n) < cut
    rng = np.random.default_rng(8)
    live = rng.uniform(0.01, 0.9, n)
    spec = DEFAULT_FEATURE_SETS["blendshapes"]
    rows = {}
    for name, moves_in_test in (("idle", np.zeros(n)), ("test only", np.where(fit, 0.0, live))):
        v = np.column_stack([live, moves_in_test])
        rows[name] = {part: video_features(v, ["a", "b"], t, sel, fit, spec) for part, sel in
                      (("train", fit), ("test", ~fit))}
    train = rows["test only"]["train"].x
    assert len(np.unique(train[:, 1])) == 1, "constant on the training rows: the dead-channel rule drops it"
    np.testing.assert_array_equal(train, rows["idle"]["train"].x)
    test = rows["test only"]["test"].x[:, 1]
    assert len(np.unique(test)) > 250 and (test >= train[0, 1]).all()  # live scores there, off frames on the atom


def test_velocity_windows_are_exact_symmetric_complete_and_the_same_at_any_frame_rate():
    """The central difference spans exactly [t - half, t + half], its ends interpolated between the frames
    around them: on v = t^2 it gives 2t exactly at 24, 25 and 30 fps; rows exist where both ends lie inside
    the video (never one-sided); and a 2 Hz nod has the same velocity at 24 as at 30 fps (a window of whole
    frames spanned 0.33 s at 24 fps and 0.40 s at 30, and the peak velocity differed by a factor 1.8)."""
    from dis_core.features.build import _velocity

    peaks = {}
    for fps in (24.0, 25.0, 30.0):
        for half in (0.1, 0.2, 0.3):
            t = np.arange(int(6 * fps)) / fps
            v = np.stack([t ** 2, 3 * t ** 2], axis=1)
            out, good, (_, hi, lo, _) = _velocity(v, t, np.zeros(len(t), int), half)
            np.testing.assert_allclose(out[good], np.stack([2 * t, 6 * t], axis=1)[good], rtol=0, atol=1e-9)
            np.testing.assert_array_equal(good, (t - half >= -1e-9) & (t + half <= t[-1] + 1e-9))
            assert (t[hi] < t + half + 1 / fps).all() and (t[lo] > t - half - 1 / fps).all()
        t = np.arange(int(6 * fps)) / fps
        nod = np.sin(2 * np.pi * 2.0 * t)[:, None]
        out, good, _ = _velocity(nod, t, np.zeros(len(t), int), 0.2)
        peaks[fps] = np.abs(out[good]).max()
    exact = 2 * np.pi * 2.0 * np.sin(2 * np.pi * 2.0 * 0.2) / (2 * np.pi * 2.0 * 0.2)  # a central difference of 0.4 s
    assert max(peaks.values()) / min(peaks.values()) < 1.1 and all(abs(p / exact - 1) < 0.1 for p in peaks.values())


def test_at_a_gap_equal_to_the_reach_train_and_test_rows_read_disjoint_frames():
    """A within-session split keeps train frames before t_cut - gap and tests from t_cut; check_gap accepts
    gap = the feature set's reach. Then no frame a training row reads (the frames around its velocity
    window's ends and its lagged moment) is a test frame, and no frame a test row reads is a training
    frame, at the frame rates people record at."""
    from dis_core.features.build import _lagged, _velocity, reach_s

    for spec, fps in itertools.product((DEFAULT_FEATURE_SETS["head_pose"], EXTRA_FEATURE_SETS["head_lags"]),
                                       (24.0, 25.0, 29.97, 30.0)):
        half, lags = spec.velocity_window_s, spec.lags_s
        gap = reach_s(dataclasses.replace(spec, max_gap_s=0.0), period_s=1.0 / fps)  # nothing to bridge here
        t = np.arange(int(20 * fps)) / fps
        seg = np.zeros(len(t), int)
        _, rows, reads = _velocity(np.zeros((len(t), 1)), t, seg, half)  # the frames around both ends
        for lag in lags:
            _, lg, pick = _lagged(np.zeros((len(t), 1)), t, seg, lag)
            rows, reads = rows & lg, reads + pick
        for t_cut in (12.0, 12.0 + 0.4 / fps, 15.0 + 0.77 / fps):
            train, test = t < t_cut - gap, t >= t_cut
            read_by_train = np.concatenate([r[rows & train] for r in reads])
            read_by_test = np.concatenate([r[rows & test] for r in reads])
            assert not test[read_by_train].any() and not train[read_by_test].any()
            assert (rows & train).any() and (rows & test).any()


def test_angular_velocity_of_a_steady_turn_on_irregular_frame_times():
    """A head turning at a constant 0.8 rad/s about a fixed axis (body frame), filmed with jittered frame
    times: the feature path's velocity on the rotation group gives that angular velocity in rad/s at
    every complete window, whatever the spacing of the frames."""
    from dis_core.features.build import _velocity

    rng = np.random.default_rng(4)
    t = np.cumsum(rng.uniform(0.8, 1.2, 300) / 30.0)
    omega = 0.8 * np.array([0.6, 0.0, 0.8])
    start = Rotation.from_rotvec([0.1, -0.2, 0.05])
    v = (start * Rotation.from_rotvec(t[:, None] * omega)).as_rotvec()
    out, good, _ = _velocity(v, t, np.zeros(len(t), int), 0.2, on_group=True)
    assert good.sum() > 250
    np.testing.assert_allclose(out[good], np.tile(omega, (good.sum(), 1)), atol=1e-9)


def test_scaled_head_rotation_velocity_is_the_angular_velocity_over_each_axis_gain():
    """A head held 30 degrees off its reference in yaw and pitch, turning at 1 rad/s about its own vertical
    axis: ``head_lags`` (gain-scaled rotation vectors) gives as velocity the body-frame angular velocity
    divided by each axis's gain, and no spurious roll. Differences of the scaled rotation-vector
    coordinates gave [0.975, -0.091, -0.261] rad/s before the gain (the posture leaked into the velocity)."""
    t = np.arange(600) / FPS
    omega = np.array([0.0, 1.0, 0.0])
    held = Rotation.from_euler("yx", [30, 30], degrees=True)
    v = (held * Rotation.from_rotvec(0.2 * np.sin(2 * np.pi * 0.25 * t)[:, None] * omega)).as_rotvec()
    gain = np.median(np.abs(v - np.median(v, axis=0)), axis=0) * 1.4826
    for center in ("none", "session"):  # head_lags does not centre; a spec that does centres its lags alike
        spec = dataclasses.replace(EXTRA_FEATURE_SETS["head_lags"], center=center)
        offset = np.median(v, axis=0) if center == "session" else 0.0
        vf = video_features(v, ["rx", "ry", "rz"], t, np.ones(len(t), bool), np.ones(len(t), bool), spec)
        true = (0.2 * 2 * np.pi * 0.25 * np.cos(2 * np.pi * 0.25 * vf.times))[:, None] * omega  # d/dt of the angle
        vel = vf.x[:, [vf.columns.index(f"d_{c}") for c in ("rx", "ry", "rz")]] * gain
        # the central difference over +-0.2 s of a 0.25 Hz sine: cos scaled by sin(wh)/(wh)
        wh = 2 * np.pi * 0.25 * spec.velocity_window_s
        np.testing.assert_allclose(vel, true * np.sin(wh) / wh, atol=1e-9)
        lag = vf.x[:, [vf.columns.index(f"{c}@-0.2s") for c in ("rx", "ry", "rz")]] * gain + offset
        before = (held * Rotation.from_rotvec(0.2 * np.sin(2 * np.pi * 0.25 * (vf.times - 0.2))[:, None] * omega)
                  ).as_rotvec()
        np.testing.assert_allclose(lag, before, atol=1e-9)  # lags: the rotation 0.2 s before, as the values


def test_a_stream_frozen_for_seconds_gives_no_rows_of_its_frozen_frames():
    """A 13 s stretch in which the stream repeats one frame (a stalled recording), inside 60 s of a moving head:
    its 8 s windows had log band power log(1e-12) in every band, 17 nats below the rest, and head_pose 388 identical
    rows. Frames repeating the one before them for more than motion.FROZEN_S count as frames without a face: no
    window covers them, they are dropped, and the rest of the video gives its rows as before."""
    from dis_core.features.build import FEATURE_SETS
    from dis_core.features.motion import FROZEN_S, frozen_repeats

    rng = np.random.default_rng(1)
    t = np.arange(1800) / 30
    live = 0.1 * np.sin(2 * np.pi * np.array([0.3, 0.7, 1.1]) * t[:, None]) + 0.003 * rng.normal(size=(1800, 3))
    rv = live.copy()
    rv[600:1000] = rv[600]
    tr = np.zeros((1800, 4, 4))
    tr[:, :3, :3], tr[:, 3, 3] = Rotation.from_rotvec(rv).as_matrix(), 1
    every = np.ones(1800, bool)
    frozen = frozen_repeats(rv, t, every)
    assert np.array_equal(np.flatnonzero(frozen), np.arange(601, 1000))  # the frame repeated is a real one
    for repeats, kept in ((int(FROZEN_S * 30) - 1, True), (int(FROZEN_S * 30) + 1, False)):  # either side of FROZEN_S
        short = live.copy()
        short[100:101 + repeats] = short[100]
        assert frozen_repeats(short, t, every).sum() == (0 if kept else repeats)
    spec = FEATURE_SETS["head_spectrum"]
    vf = video_features(*base_values(spec.source, transform=tr, fit=every), t, every, every, spec)
    assert not vf.still and len(vf.x) > 50 and vf.x.min() > -20, vf.x.min()
    assert not np.isin(np.arange(601, 1000), vf.covered).any() and vf.dropped >= 399
    pose = FEATURE_SETS["head_pose"]
    vf = video_features(*base_values(pose.source, transform=tr, fit=every), t, every, every, pose)
    assert len(np.unique(vf.x, axis=0)) == len(vf.x) and not np.isin(np.arange(601, 1000), vf.frames).any()
    assert len(vf.x) > 1300 and vf.dropped >= 399
