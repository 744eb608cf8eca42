"""Known answers for the contracts a hand mutation audit found untested: interval levels, who a draw holds,
the partner similarity, step-down adjustments, lags looking into the past, references fitted on training
frames only, windows that stop at a jump in the frame times, and the partner-test wrapper."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dis_core.score import stats as st


def test_bootstrap_intervals_are_the_2_5_and_97_5_percentiles():
    d = np.arange(1001) / 1000
    b = st.boot_result(0.5, d)
    assert (b.lo, b.hi) == pytest.approx((0.025, 0.975))
    r = st.paired_result(0.5, d)
    assert (r.lo, r.hi) == pytest.approx((0.025, 0.975))
    assert r.p == pytest.approx(2 * (1 + 1) / 1002)  # one draw (0.0) on the other side of 0


def test_every_participant_is_drawn_alike():
    """Draws of 5 people with replacement: each person 1/5 of the time; a draw holds a repeat with probability
    1 - 5!/5^5 = 0.9616 and 5 (1 - 0.8^5) = 3.3616 distinct people on average (the sample itself, or a
    permutation of it, has the right frequencies and neither of these)."""
    d = st.participant_draws(5, 4000, 0)
    counts = np.bincount(d.ravel(), minlength=5) / 20000
    assert len(counts) == 5 and counts == pytest.approx(np.full(5, 0.2), abs=0.01)
    distinct = np.array([len(set(row)) for row in d.tolist()])
    assert (distinct < 5).mean() == pytest.approx(0.9616, abs=0.01)
    assert distinct.mean() == pytest.approx(3.3616, abs=0.03)
    assert (st.participant_draws(5, 4000, 0) == d).all() and not (st.participant_draws(5, 4000, 1) == d).all()


def test_pair_similarity_is_the_mean_of_z_and_t_norm_both_ways():
    """Worked by hand for row 0: its impostor scores 1, 2, 3 have mean 2 and sd 1."""
    s = np.array([[0, 1, 2, 3], [2, 0, 4, 0], [1, 1, 0, 5], [0, 2, 2, 0]], float)
    sim = st.pair_similarity(s)
    want = {(0, 1): -0.1443, (0, 2): -0.2887, (0, 3): -0.2556, (1, 2): 0.25, (1, 3): -0.0819, (2, 3): 0.5205}
    for (i, j), v in want.items():
        assert sim[i, j] == pytest.approx(v, abs=1e-4) and sim[j, i] == pytest.approx(v, abs=1e-4)
    assert np.isnan(np.diag(sim)).all()


def test_benjamini_hochberg_steps_down():
    assert st.benjamini_hochberg([0.04, 0.01, 0.045]) == pytest.approx([0.045, 0.03, 0.045])


def test_lagged_values_come_from_the_past():
    from dis_core.features.build import _lagged

    t = np.arange(30) / 10
    out, good, _ = _lagged(t[:, None], t, np.zeros(30, int), 0.2)
    assert good.sum() == 28 and not good[:2].any()
    np.testing.assert_allclose(out[good, 0], t[good] - 0.2, atol=1e-12)


def test_session_centre_and_spread_are_fitted_on_the_training_frames_only():
    from dis_core.features.build import FeatureSpec, video_features

    t = np.arange(200) / 10
    fit = np.arange(200) < 100
    jitter = np.where(np.arange(200) % 2, 1e-3, -1e-3)  # a live head: no frame repeats the one before (frozen)
    v = (np.where(fit, 1.0, 5.0) + jitter)[:, None]
    vf = video_features(v, ["a"], t, np.ones(200, bool), fit, FeatureSpec("c", "head_pose", velocity=False))
    np.testing.assert_allclose(vf.x[:, 0], np.where(fit, 0.0, 4.0) + jitter, atol=1e-12)
    wobble = np.where(np.arange(200) % 2, 1.0, -1.0) * np.where(fit, 1.0, 3.0)
    vf = video_features(wobble[:, None], ["a"], t, np.ones(200, bool), fit,
                        FeatureSpec("s", "head_pose", center="none", scale="session", velocity=False))
    np.testing.assert_allclose(vf.x[:, 0], wobble / 1.4826)  # the training half's MAD is 1


def test_the_reference_rotation_comes_from_the_reference_frames_only():
    from dis_core.features.motion import relative_rotvec

    rv = np.zeros((100, 3))
    rv[50:, 1] = 0.5
    m = np.tile(np.eye(4), (100, 1, 1))
    m[:, :3, :3] = Rotation.from_rotvec(rv).as_matrix()
    out = relative_rotvec(m, ref_mask=np.arange(100) < 50)
    np.testing.assert_allclose(np.median(out[:50], axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.median(out[50:], axis=0), [0.0, 0.5, 0.0], atol=1e-12)


def test_the_robust_reference_rejects_glances_when_most_frames_repeat_one_pose():
    """A frozen camera: 60 % of frames repeat the true pose exactly, 15 % move a little, 25 % glance 50
    degrees away. The angles' MAD is 0; the glances are still rejected (they pulled the reference 12 degrees)."""
    from dis_core.features.motion import reference_rotation

    rng = np.random.default_rng(0)
    true = Rotation.from_euler("yxz", [10, -5, 3], degrees=True)
    rot = Rotation.concatenate([Rotation.concatenate([true] * 600),
                                true * Rotation.from_rotvec(rng.normal(0, np.radians(2), (150, 3))),
                                true * Rotation.from_euler("y", np.full((250, 1), 50.0), degrees=True)])
    assert np.degrees((true.inv() * reference_rotation(rot)).magnitude()) < 0.5
    assert np.degrees((true.inv() * reference_rotation(rot, robust=False)).magnitude()) > 10


def test_head_angular_speed_of_a_steady_turn_on_jittered_frame_times():
    from dis_core.features.motion import angular_velocity

    rng = np.random.default_rng(4)
    t = np.cumsum(rng.uniform(0.8, 1.2, 300) / 30.0)
    omega = 0.8 * np.array([0.6, 0.0, 0.8])
    rv = (Rotation.from_rotvec([0.1, -0.2, 0.05]) * Rotation.from_rotvec(t[:, None] * omega)).as_rotvec()
    w = angular_velocity(rv, t, np.zeros(300, int))
    np.testing.assert_allclose(w[1:-1], np.tile(omega, (298, 1)), atol=1e-9)
    assert np.isnan(w[[0, -1]]).all()


def test_no_spectral_window_spans_a_jump_in_the_frame_times():
    """A decoder stall: the frame times jump by 1 s at 30 s with no frame missing. It starts a new segment, and no
    window covers frames on both sides of it."""
    from dis_core.features.motion import bridge_gaps
    from dis_core.features.temporal import spectral_rows

    t = np.arange(900) / 15.0
    t[450:] += 1.0
    v = np.sin(2 * np.pi * 0.5 * t)[:, None]
    _, _, segment = bridge_gaps(v, t, np.ones(900, bool), 0.4)
    assert segment[449] != segment[450]
    w = spectral_rows(v, t, segment, np.ones(900, bool), ["a"], 8.0, 0.5)
    assert len(w.covered) > 40
    assert all(c.max() < 450 or c.min() >= 450 for c in w.covered)


def test_dropped_and_candidate_counts():
    from dis_core.features.build import FEATURE_SETS, video_features
    from dis_core.features.temporal import _candidates

    t = np.arange(900) / 15.0
    assert _candidates(t, np.ones(900, bool), 8.0, 0.5) == 104  # windows starting at 0, 0.5, ..., 51.5 s end by 59.93
    rv = 0.1 * np.sin(2 * np.pi * np.array([0.3, 0.7, 1.1]) * t[:, None])
    rv[420:450] = np.nan  # 2 s without a face
    vf = video_features(rv, ["rx", "ry", "rz"], t, np.ones(900, bool), np.ones(900, bool), FEATURE_SETS["head_spectrum"])
    # the 30 faceless frames and no other: the windows either side of the gap cover every frame with a face
    assert vf.dropped == 30 and not np.isin(np.arange(420, 450), vf.covered).any()
    # a gap short enough to bridge (0.2 s) inside the windows: its frames are covered, interpolated, not dropped;
    # covered and dropped frames are the selection (they counted the 3 twice, 1,054 of a 1,000-frame session)
    rv = 0.1 * np.sin(2 * np.pi * np.array([0.3, 0.7, 1.1]) * t[:, None])
    rv[300:303] = np.nan
    vf = video_features(rv, ["rx", "ry", "rz"], t, np.ones(900, bool), np.ones(900, bool), FEATURE_SETS["head_spectrum"])
    assert np.isin(np.arange(300, 303), vf.covered).all() and vf.interpolated == 3
    assert vf.dropped == 900 - len(vf.covered) and vf.dropped < 10


def test_verification_curve_rises_and_a_perfect_matrix_has_auc_1():
    from dis_core.score.scoring import verification

    v = verification(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert v["auc"] == 1.0 and v["eer"] == 0.0
    assert np.all(np.diff(v["fpr"]) >= 0) and np.all(np.diff(v["tpr"]) >= 0)
    assert (v["fpr"][0], v["tpr"][0], v["fpr"][-1], v["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    # by hand: genuine (diagonal) {2, 4}, impostor {3, 1}; accepting from above 4, then 4, 3, 2, 1: the operating
    # points (FPR, TPR) (0, 0), (0, 1/2), (1/2, 1/2), (1/2, 1), (1, 1); AUC = P(genuine > impostor) = 3/4, the area
    # under those points; the one point where FPR = FNR is (1/2, 1/2): EER 1/2. (The figures draw these points: a
    # curve with FPR and TPR swapped has the same ends and rises too.)
    v = verification(np.array([[2.0, 3.0], [1.0, 4.0]]))
    pts = list(dict.fromkeys(zip(v["fpr"].tolist(), v["tpr"].tolist())))
    assert pts == [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)], pts
    assert v["auc"] == 0.75 == np.trapezoid(v["tpr"], v["fpr"]) and v["eer"] == 0.5


def test_partner_test_reports_what_the_permutation_test_found_and_dyads_need_two_members():
    from dis_core.score.scoring import compare_methods, dyad_pairs, partner_test

    assert dyad_pairs(["d", "d", "d", "e", "e", ""]) == [(3, 4)]  # a three-member 'dyad' is not a couple
    rng = np.random.default_rng(5)
    s = rng.normal(size=(8, 8)) + 3 * np.eye(8)
    dyads, groups = ["a", "a", "b", "b", "c", "c", "d", "d"], np.array([0, 0, 0, 0, 1, 1, 1, 1])
    r = partner_test(s, dyads, groups, n_perm=2000, seed=0)
    direct = st.dyad_permutation_test(st.pair_similarity(s), dyad_pairs(dyads), groups=groups, n_perm=2000, seed=0)
    for k in ("observed", "null_mean", "excess", "p", "effect_size", "ci_lo", "ci_hi"):
        assert r[k] == pytest.approx(direct[k]), k
    assert r["permutations"] == 9 and r["exact"]  # 3 x 3 pairings within the two groups
    assert partner_test(s[:4, :4], dyads[:4]) is not None  # two complete dyads are enough
    a = np.eye(4)
    a[1, 0] = 1.0  # data 0: its own model tied with another, credit 0.5: not correct for McNemar
    c = compare_methods(a, np.eye(4), n_boot=200)
    assert (c["top1_mcnemar_n10"], c["top1_mcnemar_n01"]) == (0, 1)


def test_the_frame_rate_of_times_rounded_to_milliseconds_is_the_rate_they_were_written_at():
    """Matroska keeps whole milliseconds: 30 fps becomes periods of 33 and 34 ms, whose median said 30.303 fps
    in the file, the QC table and the report. Periods that differ only by rounding give frames over the span;
    a variable frame rate keeps the median period."""
    from dis_core.extract.video import effective_fps

    mkv = np.round(np.arange(300) / 30, 3)
    assert abs(effective_fps(mkv, 0.0) - 30.0) < 0.01
    assert effective_fps(np.arange(300) / 15, 0.0) == pytest.approx(15.0)
    vfr = np.concatenate([np.arange(36) / 30, 36 / 30 + np.arange(1, 40) / 15])  # 30 fps, then 15 fps
    assert effective_fps(vfr, 0.0) == pytest.approx(15.0)
    assert effective_fps(np.array([0.0]), 24.0) == 24.0
    dropped = np.delete(mkv, 150)  # one frame dropped: a 67 ms period among the 33s and 34s (it read 30.303)
    assert abs(effective_fps(dropped, 0.0) - 30.0) < 0.01
    # an even count whose median period lies between two rates (it read NaN): one of the two
    half = np.concatenate([np.arange(301) / 30, 10 + np.arange(1, 301) / 15])
    assert effective_fps(half, 0.0) in (pytest.approx(30.0), pytest.approx(15.0))
    assert effective_fps(np.array([0.0, 1 / 30, 1 / 30 + 1 / 15]), 0.0) in (pytest.approx(30.0), pytest.approx(15.0))
