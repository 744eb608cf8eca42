"""Synchrony (windowed lagged cross-correlation) with known answers, and its pseudo-couple test calibrated
under the null, including a null in which everyone is driven by the same stimulus or by their site."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dis_core.errors import DISError
from dis_core.score import synchrony as sy

CFG = sy.SynchronyConfig(rate_hz=10, window_s=4, step_s=2, max_lag_s=1, n_perm=500, n_boot=200)


def test_resample_interpolates_and_leaves_long_gaps_empty():
    t = np.array([0.0, 0.1, 0.2, 0.3, 0.7, 0.8])  # a 0.4 s hole between 0.3 and 0.7
    v = np.array([0.0, 1.0, 2.0, 3.0, 7.0, 8.0])
    g = sy.resample(t, v, rate_hz=20, duration_s=0.9, max_gap_s=0.2)
    np.testing.assert_allclose(g[:7], [0, 0.5, 1, 1.5, 2, 2.5, 3])
    assert np.isnan(g[7:14]).all()  # 0.35 .. 0.65 lie in the hole
    np.testing.assert_allclose(g[14:17], [7, 7.5, 8])
    assert np.isnan(g[17])  # after the last sample
    v2 = v.copy()
    v2[1] = np.nan  # one dropped frame (0.2 s between neighbours) is bridged
    np.testing.assert_allclose(sy.resample(t, v2, 20, 0.3, 0.2)[:5], [0, 0.5, 1, 1.5, 2])


def test_resampling_measures_a_gap_with_the_frame_period_not_the_face_frames_steps():
    """While the detector flickers (every other frame missed), 7 frames in a row missing (0.23 s) split the
    features and stay empty here too: a period taken from the face frames' own steps (0.067 s there) bridged it."""
    from dis_core.features.motion import _gap_plan

    t = np.arange(400) / 30.0
    ok = np.ones(400, bool)
    ok[100:300:2] = False
    ok[200:207] = False
    fill, _ = _gap_plan(t, ok, 0.2)
    out = sy.resample(t, np.where(ok, 1.0, np.nan), 30.0, 400 / 30.0, 0.2)
    assert not fill[200:207].any() and np.isnan(out[200:207]).all()
    assert fill[100:199:2].all() and np.isfinite(out[100:199]).all()  # the single missed frames are bridged in both


def test_exact_lagged_copy_peaks_at_its_lag_with_r_one():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(60)
    y = np.r_[0.0, 2 * x[:-1] + 3]  # y follows x by one sample, affinely
    cfg = sy.SynchronyConfig(rate_hz=1, window_s=5, step_s=3, max_lag_s=2)
    r, lags = sy.wlcc(x, y, cfg)
    np.testing.assert_allclose(lags, [-2, -1, 0, 1, 2])
    np.testing.assert_allclose(r[:, 3], 1.0, atol=1e-12)
    peak, lag, n = sy.peak_synchrony(r, lags)
    assert peak == pytest.approx(1.0) and lag == 1.0 and n == len(r)
    r2, _ = sy.wlcc(y, x, cfg)  # the other way round: x precedes y, lag -1
    assert sy.peak_synchrony(r2, lags)[1] == -1.0


def test_known_coupling_and_lag_are_recovered():
    rng = np.random.default_rng(1)
    c, d = 0.6, 5  # y follows x by 0.5 s with correlation 0.6
    x = rng.standard_normal(4000)
    y = c * np.r_[np.zeros(d), x[:-d]] + np.sqrt(1 - c * c) * rng.standard_normal(4000)
    cfg = sy.SynchronyConfig(rate_hz=10, window_s=30, step_s=15, max_lag_s=1.5)
    peak, lag, n = sy.peak_synchrony(*sy.wlcc(x, y, cfg))
    assert lag == pytest.approx(0.5)
    assert peak == pytest.approx(c, abs=0.05)
    assert n > 20


def test_all_pairs_equal_the_pairwise_computation():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 200))
    x[2, 50:60] = np.nan  # a missing stretch removes the windows that touch it
    m = sy.synchrony_matrix([x], CFG)
    assert np.isnan(np.diag(m)).all()
    np.testing.assert_allclose(m, m.T, equal_nan=True)
    for a, b in [(0, 1), (1, 2), (3, 2)]:
        ra, lags = sy.wlcc(x[a], x[b], CFG)
        rb, _ = sy.wlcc(x[b], x[a], CFG)
        peaks = np.r_[[v.max() for v in ra if np.isfinite(v).all()], [v.max() for v in rb if np.isfinite(v).all()]]
        assert m[a, b] == pytest.approx(peaks.mean())
    # two sessions: windows of both are pooled
    m2 = sy.synchrony_matrix([x[:, :100], x[:, 100:]], CFG)
    assert np.isfinite(m2[0, 1]) and m2[0, 1] != pytest.approx(m[0, 1])


def test_head_speed_of_a_constant_turn():
    t = np.arange(50) / 10.0
    rot = Rotation.from_euler("y", (30 * t)[:, None], degrees=True).as_matrix()  # 30 deg/s about the vertical
    tf = np.tile(np.eye(4), (50, 1, 1))
    tf[:, :3, :3] = rot
    tf[20] = np.nan  # one lost frame: bridged
    sp = sy.head_speed(t, tf)
    assert np.isnan(sp[0]) and np.isnan(sp[-1])
    np.testing.assert_allclose(sp[1:-1], 30.0, rtol=1e-6)


def test_smile_score_is_the_mean_of_the_two_smile_blendshapes():
    names = ["jawOpen", "mouthSmileLeft", "mouthSmileRight"]
    b = np.array([[0.9, 0.2, 0.4], [np.nan, np.nan, np.nan]])
    out = sy.smile_score(b, names)
    assert out[0] == pytest.approx(0.3) and np.isnan(out[1])


def _cohort(rng, couples, coupling, common=0.0, site_drive=0.0, sites=1, t=300):
    """AR(1) signals of 2 x couples people; partner 2k+1 follows 2k by 0.3 s with weight ``coupling``;
    ``common``: everyone also follows one stimulus; ``site_drive``: everyone follows their site's stimulus."""
    n = 2 * couples
    ar = np.zeros((n, t))
    e = rng.standard_normal((n, t))
    for i in range(1, t):
        ar[:, i] = 0.8 * ar[:, i - 1] + e[:, i]
    stim = np.convolve(rng.standard_normal(t + 20), np.ones(5) / 5, "same")[:t]
    site_of = np.repeat(np.arange(sites), n // sites)
    site_stim = np.stack([np.convolve(rng.standard_normal(t), np.ones(5) / 5, "same") for _ in range(sites)])
    x = ar / ar.std() + common * stim / stim.std() + site_drive * site_stim[site_of] / site_stim.std()
    lead = x[0::2].copy()
    x[1::2] = (1 - coupling) * x[1::2] + coupling * np.roll(lead, 3, axis=1)
    return x, np.arange(n).reshape(-1, 2), site_of


@pytest.mark.parametrize("common", [0.0, 1.0])
def test_synchrony_test_calibrated_under_the_null(common):
    """200 cohorts of 16 couples whose partners are independent (with common = 1, all are driven by one
    shared stimulus, so every pair correlates): rejection at 0.05 within [0.03, 0.07]."""
    ps = []
    for c in range(200):
        x, pairs, _ = _cohort(np.random.default_rng([7, c]), 16, 0.0, common=common)
        r = sy.synchrony_test(sy.synchrony_matrix([x], CFG), pairs, n_perm=500, n_boot=50, seed=c)
        ps.append(r["p"])
    rate = float(np.mean(np.array(ps) <= 0.05))
    assert 0.03 <= rate <= 0.07, rate


def test_sites_must_be_respected_in_re_pairing():
    """Couples filmed at 4 sites, each site with its own stimulus, partners otherwise independent: a null
    that re-pairs across sites rejects far too often; re-pairing within sites is calibrated."""
    naive, strat = [], []
    for c in range(100):
        x, pairs, site = _cohort(np.random.default_rng([8, c]), 16, 0.0, site_drive=1.0, sites=4)
        m = sy.synchrony_matrix([x], CFG)
        naive.append(sy.synchrony_test(m, pairs, n_perm=300, n_boot=50, seed=c)["p"])
        strat.append(sy.synchrony_test(m, pairs, groups=site, n_perm=300, n_boot=50, seed=c)["p"])
    assert np.mean(np.array(naive) <= 0.05) > 0.5
    assert np.mean(np.array(strat) <= 0.05) <= 0.1


def test_coupled_partners_are_detected_with_the_effect_and_its_interval():
    x, pairs, _ = _cohort(np.random.default_rng(3), 8, 0.5)
    m = sy.synchrony_matrix([x], CFG)
    r = sy.synchrony_test(m, pairs, n_perm=2000, n_boot=500)
    assert r["p"] < 0.01
    assert r["excess"] > 0 and r["excess_ci_lo"] > 0 and r["effect_size"] > 3
    assert r["observed"] == pytest.approx(np.mean([m[a, b] for a, b in pairs]))


def test_family_is_holm_adjusted_and_undefined_pairs_are_refused():
    x, pairs, _ = _cohort(np.random.default_rng(4), 8, 0.5)
    y, _, _ = _cohort(np.random.default_rng(5), 8, 0.0)
    rows, skipped = sy.synchrony_family({"head_speed": [x], "smile": [y]}, pairs, cfg=CFG)
    assert [r["signal"] for r in rows] == ["head_speed", "smile"] and not skipped
    ps = sorted(r["p"] for r in rows)
    assert rows[0]["p_holm"] == pytest.approx(min(1, 2 * ps[0]))
    assert rows[1]["p_holm"] >= rows[1]["p"]
    # a faceless recording (person 3) costs its couple, not the test; a short one (person 8) only its late windows
    full = sy.synchrony_test(sy.synchrony_matrix([x], CFG), pairs)
    x[3, :] = np.nan
    x[8, x.shape[1] // 3:] = np.nan
    r = sy.synchrony_test(sy.synchrony_matrix([x], CFG), pairs)
    assert r["dyads"] == 7 and r["dyads_unusable"] == 1 and "1 without a usable window" in sy.couples_left_out(r)
    assert r["p"] < 0.05 and full["p"] < 0.05
    # a signal no couple can use is skipped with its reason; the other keeps its test (Holm over one)
    rows, skipped = sy.synchrony_family({"head_speed": [np.full_like(x, np.nan)], "smile": [y]}, pairs, cfg=CFG)
    assert [r["signal"] for r in rows] == ["smile"] and rows[0]["p_holm"] == rows[0]["p"]
    assert len(skipped) == 1 and skipped[0].startswith("head_speed: not run")


def test_couples_of_unequal_lengths_are_compared_on_common_windows_and_the_null_holds():
    """Half the couples filmed 60 s, half 180 s, nobody synchronous, everyone's signal smoother after 60 s: padded to
    the longest recording, the long couples alone covered the smooth windows and a null cohort gave p < 0.05 about
    half the time. On the common windows (every pair cut to 60 s) the rejection rate is near 0.05; a couple filmed
    under half the median length is left out and named rather than cutting everyone to its length."""
    def person(rng, n):
        x, e = np.empty(n), rng.normal(size=n)
        x[0] = e[0]
        for k in range(1, n):
            x[k] = (0.0 if k < 600 else 0.97) * x[k - 1] + e[k]
        return x

    cfg = sy.SynchronyConfig(n_perm=300, n_boot=50)
    ps = []
    couples = [(f"a{k}", f"b{k}") for k in range(10)]
    for rep in range(100):
        rng = np.random.default_rng(rep)
        sig = {(p, "s1"): {s: person(rng, 600 if k % 2 else 1800) for s in sy.SIGNALS}
               for k, c in enumerate(couples) for p in c}
        keep, per_signal, left = sy.common_windows(sig, couples, ["s1"])
        assert keep == couples and not left and per_signal["head_speed"][0].shape == (20, 600)
        pairs = [(2 * k, 2 * k + 1) for k in range(10)]
        ps.append(sy.synchrony_test(sy.synchrony_matrix(per_signal["head_speed"], cfg), pairs, n_perm=300, n_boot=50,
                                    seed=rep)["p"])
    assert np.mean(np.array(ps) < 0.05) <= 0.1, np.mean(np.array(ps) < 0.05)
    sig = {(p, "s1"): {s: np.zeros(1800 if p != "a3" else 200) for s in sy.SIGNALS} for c in couples for p in c}
    keep, per_signal, left = sy.common_windows(sig, couples, ["s1"])
    assert ("a3", "b3") not in keep and per_signal["smile"][0].shape == (18, 1800)
    assert left == {"a recording under 50% of session s1's median length": ["a3+b3"]}


def test_the_sessions_compared_keep_the_most_couples():
    """Each label held by half the couples was required, and only couples holding all of them kept: couples 0-1
    filmed under a and 2-3 under b lost every couple (and a label per couple crashed). The best label comes first;
    another joins only if it keeps two couples and half of them."""
    c = [("a0", "b0"), ("a1", "b1"), ("a2", "b2"), ("a3", "b3")]
    assert sy.choose_sessions(c, {"a": set(c[:2]), "b": set(c[2:])}) == (["a"], set(c[:2]))
    assert sy.choose_sessions(c, {"s1": set(c), "s2": set(c[:3])}) == (["s1", "s2"], set(c[:3]))
    assert sy.choose_sessions(c, {"s1": set(c), "s2": set(c[:1])}) == (["s1"], set(c))
    assert sy.choose_sessions(c, {f"s{k}": {x} for k, x in enumerate(c)}) == ([], set())


def test_resampling_bridges_a_gap_by_its_missing_time_as_the_features_do():
    """A gap was bridged when the visible samples around it were 0.2 s apart, so at 10 fps two missing frames
    (0.2 s of face missing, bridged by the features) stayed NaN; now a gap is its missing time."""
    t = np.arange(40) / 10.0
    for missing, bridged in ((2, True), (3, False)):
        v = np.sin(t)
        v[10:10 + missing] = np.nan
        out = sy.resample(t, v, 10.0, 4.0, max_gap_s=0.2)
        assert np.isfinite(out[10:10 + missing]).all() == bridged
