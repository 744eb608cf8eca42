"""Known-answer tests for dis_core.stats (small hand-computed matrices) and a calibration check of the
dyad permutation test on simulated null cohorts."""

from __future__ import annotations

import numpy as np
import pytest

from dis_core.score import stats as st
from dis_core.errors import DISError


# ---------------------------------------------------------------- EER / AUC / DET

def _pruned_eer(genuine, impostor):
    """The flawed recipe of scoring.verification: default roc_curve, nearest retained point."""
    from sklearn.metrics import roc_curve
    y = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    fpr, tpr, _ = roc_curve(y, np.r_[genuine, impostor])
    fnr = 1 - tpr
    k = int(np.argmin(np.abs(fnr - fpr)))
    return (fpr[k] + fnr[k]) / 2


def test_eer_exact_where_pruned_roc_is_wrong():
    # One genuine above all impostors, one below: FNR = 0.5 for every threshold in between, while
    # FPR walks 1 -> 0 in steps of 1/8; the curves cross at FPR = FNR = 0.5 (threshold 4.5).
    # drop_intermediate removes that collinear run, leaving only (0, .5) and (1, .5) -> 0.25.
    genuine, impostor = [0.5, 10.0], [1, 2, 3, 4, 5, 6, 7, 8]
    assert st.eer(genuine, impostor) == pytest.approx(0.5)
    assert _pruned_eer(genuine, impostor) == pytest.approx(0.25)


def test_eer_interpolates_between_points():
    # genuine {2, 4}, impostor {1, 3}: at t=3 FPR=.5 FNR=.5 exactly -> 0.5
    assert st.eer([2, 4], [1, 3]) == pytest.approx(0.5)
    # genuine {3}, impostors {1, 2, 4}: t<=3: FNR 0, FPR 1/3 at t=3; t in (3,4]: FNR 1, FPR 1/3.
    # d goes from +1/3 to -2/3 between those points -> interpolation 1/3 of the way: FPR 1/3.
    assert st.eer([3], [1, 2, 4]) == pytest.approx(1 / 3)
    # FPR changes across the crossing: genuine [2, 1, 1], impostors [1, 1, 1, 0]: the tied 1s form a diagonal
    # segment from (FPR 0, FNR 2/3) to (FPR 3/4, FNR 0), which FPR = FNR crosses at 6/17 (a step, not a point)
    assert st.eer([2, 1, 1], [1, 1, 1, 0]) == pytest.approx(6 / 17)


def test_eer_zero_when_perfectly_separated():
    assert st.eer([5, 6, 7], [1, 2, 3, 4]) == 0.0
    s = np.array([[0.0, -5, -6], [-4, 0, -7], [-3, -2, 0]])
    assert st.eer_matrix(s) == 0.0
    assert st.auc_matrix(s) == 1.0


def test_auc_hand_count_with_ties():
    # pairs (g, i): g=3 beats 1, ties 3, loses 5 -> 1.5 ; g=5 beats 1, 3, ties 5 -> 2.5 ; total 4 / 6
    assert st.auc([3, 5], [1, 3, 5]) == pytest.approx(4 / 6)
    assert st.auc([1], [1, 1]) == pytest.approx(0.5)


def test_det_points_span_the_whole_curve():
    fpr, fnr = st.det_points([2, 4], [1, 3])
    assert fpr[0] == 1 and fnr[0] == 0 and fpr[-1] == 0 and fnr[-1] == 1
    assert np.all(np.diff(fpr) <= 0) and np.all(np.diff(fnr) >= 0)
    assert len(fpr) == 4 + 2  # every distinct score plus the two ends


# ---------------------------------------------------------------- identification

def test_topk_fractional_tie_at_top():
    s = np.array([[1.0, 0.0, 0.0],
                  [1.0, 2.0, 0.0],   # column 0: own model (1.0) tied with model 1 at the top -> 0.5
                  [0.0, 1.0, 3.0]])
    credit, mean = st.topk_fractional(s, k=1)
    np.testing.assert_allclose(credit, [0.5, 1.0, 1.0])
    assert mean == pytest.approx(2.5 / 3)
    credit2, _ = st.topk_fractional(s, k=2)
    np.testing.assert_allclose(credit2, [1.0, 1.0, 1.0])


def test_topk_fractional_three_way_tie_straddling_k():
    # own ties with two others, one competitor above: positions 2, 3, 4 equally likely; k=3 -> 2/3
    s = np.array([[1.0, 0, 0, 0], [5.0, 0, 0, 0], [1.0, 0, 0, 0], [1.0, 0, 0, 0]]) + np.diag([0, 9, 9, 9])
    credit, _ = st.topk_fractional(s, k=3)
    assert credit[0] == pytest.approx(2 / 3)
    assert st.topk_fractional(s, k=1)[0][0] == 0.0


def test_check_finite_names_the_pair():
    s = np.zeros((3, 3))
    s[1, 2] = np.nan
    s[2, 0] = np.inf
    with pytest.raises(DISError, match=r"model 'bob' on data 'cid'"):
        st.check_finite(s, ["ann", "bob", "cid"])
    st.check_finite(np.zeros((2, 2)), ["a", "b"])


# ---------------------------------------------------------------- bootstraps

def _sim_matrix(n, rng, sep=1.5):
    s = rng.standard_normal((n, n))
    s[np.diag_indices(n)] += sep
    return s


def test_bootstrap_duplicates_are_excluded_not_impostors():
    s = np.array([[0.0, -1, -2], [-3, 0, -4], [-5, -6, 0]])
    sub = st._resample(s, np.array([0, 0, 2]))
    assert np.isnan(sub[0, 1]) and np.isnan(sub[1, 0])
    assert sub[0, 0] == 0 and sub[1, 1] == 0 and sub[0, 2] == -2 and sub[2, 1] == -5
    # copies of one person never tie with each other in identification
    assert st.topk_fractional(sub, 1)[1] == 1.0


def test_bootstrap_interval_contains_point_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 80):
        s = _sim_matrix(n, rng)
        r = st.bootstrap_participants(s, st.eer_matrix, n_boot=300, seed=1)
        assert r.lo <= r.point <= r.hi
        assert r.dist.shape == (300,)
        widths.append(r.hi - r.lo)
    assert widths[1] < widths[0]
    r = st.bootstrap_participants(s, lambda m: st.topk_fractional(m, 1)[1], n_boot=200)
    assert r.lo <= r.point <= r.hi


def test_paired_bootstrap_detects_better_system_and_null():
    rng = np.random.default_rng(3)
    n = 40
    base = rng.standard_normal((n, n))
    good = base + 3 * np.eye(n)
    bad = base + 0.3 * np.eye(n)
    r = st.paired_bootstrap(good, bad, st.auc_matrix, n_boot=400)
    assert r.diff > 0 and r.lo > 0 and r.p < 0.01
    same = st.paired_bootstrap(good, good, st.auc_matrix, n_boot=100)
    assert same.diff == 0 and same.p == 1.0


def test_paired_p_is_the_monte_carlo_p_and_never_zero():
    """p = 2 (k + 1) / (B + 1) with k of B draws across 0 (undefined draws left out): a bootstrap of 1,000
    draws cannot say p = 0, and a family needs draws enough for Holm to reach a difference none crosses."""
    up = np.linspace(0.1, 1.0, 999)
    assert st.paired_result(0.5, up).p == pytest.approx(2 / 1000)  # no draw across 0
    three = np.r_[up[3:], 0.0, -0.1, -0.2, np.nan]  # 999 finite draws, three at or below 0
    assert st.paired_result(0.5, three).p == pytest.approx(2 * 4 / 1000)
    assert st.paired_result(-0.5, -up).p == pytest.approx(2 / 1000)
    assert st.paired_result(0.5, -up).p == 1.0 and st.paired_result(0.0, up).p == 1.0
    for tests in (1, 8, 36, 90):
        b = st.draws_for_family(tests)
        assert tests * 2 / (b + 1) <= 0.05 / 2 and (b == 1000 or 0.05 / 2 < tests * 2 / b)  # the fewest, >= 1,000
        assert st.holm([2 / (b + 1)] * tests).max() < 0.05  # no draw across 0: supported after Holm
    assert st.holm([2 / 1001] * 36).max() > 0.05  # 1,000 draws could not support it in a family of 36
    assert (st.p_text(1 / 2001), st.p_text(0.001), st.p_text(0.0123)) == ("< 0.001", "0.001", "0.012")


def test_paired_top1_difference_holds_newcombes_interval_where_no_one_is_told_apart():
    """Both methods identify all 40 people: the paired bootstrap's interval had no width, [+0.000, +0.000]. The
    paired score interval there is +-(1 - Wilson's lower end of 40/40) = +-(1 - 40 / (40 + z^2)) = +-0.0876."""
    from dis_core.score.scoring import compare_methods
    z2 = float(st._st.norm.ppf(0.975)) ** 2
    half = 1 - 40 / (40 + z2)
    rng = np.random.default_rng(0)
    s = rng.normal(size=(40, 40))
    s[np.arange(40), np.arange(40)] += 10
    r = compare_methods(s, s.copy(), n_boot=200)
    assert r["top1_diff"] == 0 and (r["top1_diff_lo"], r["top1_diff_hi"]) == pytest.approx((-half, half), abs=1e-9)
    assert st.paired_rate_interval(np.ones(40), np.ones(40)) == pytest.approx((-half, half))
    # 5 of 40 identified by a alone, the rest by both (a 2 x 2 table with an empty margin: no correlation term):
    # 0.125 - hypot(a's distance to its lower end, b's to its upper), 0.125 + b's distance to its lower end
    (l1, _), (l2, u2) = st.wilson_interval(1.0, 40), st.wilson_interval(0.875, 40)
    assert st.paired_rate_interval(np.ones(40), np.r_[np.zeros(5), np.ones(35)]) == pytest.approx(
        (0.125 - np.hypot(1 - l1, u2 - 0.875), 0.125 + 0.875 - l2))


def test_paired_top1_p_is_held_to_newcombes_interval():
    """Flow identifies all 20, the baseline 16: the bootstrap's p was 0.029 beside an interval of [-0.0005, +0.42]
    printed as [+0.00, +0.42]. p now inverts the interval: below alpha exactly when the 1 - alpha interval
    excludes 0, and the sign of a bound just under 0 survives printing."""
    from dis_core.score.scoring import compare_methods

    a, b = np.ones(20), np.r_[np.zeros(4), np.ones(16)]
    p = st.paired_rate_p(a, b)
    for alpha in (0.01, 0.05, 0.1):
        lo, hi = st.paired_rate_interval(a, b, 1 - alpha)
        assert (p < alpha) == (lo > 0)
    assert st.paired_rate_interval(a, b, 1 - p)[0] == pytest.approx(0, abs=1e-9)
    assert st.paired_rate_p(b, a) == pytest.approx(p) and st.paired_rate_p(a, a) == 1.0
    rng = np.random.default_rng(2)
    s_a = rng.normal(size=(20, 20))
    s_a[np.arange(20), np.arange(20)] += 10
    s_b = s_a.copy()
    s_b[np.arange(4), np.arange(4)] -= 20  # the baseline misses the first four
    r = compare_methods(s_a, s_b, n_boot=1000)
    assert r["top1_diff"] == pytest.approx(0.2) and r["top1_diff_lo"] < 0 and r["top1_p"] >= p > 0.05
    assert (st.signed(r["top1_diff_lo"]), st.signed(-7e-19), st.signed(0.2)) == ("-0.00", "+0.00", "+0.20")


def test_excerpts_pair_excerpt_by_excerpt_in_newcombes_interval():
    """Two methods that disagree on 3 of 160 excerpts (20 people x 8): fed each person's mean credit, the interval
    read them as uncorrelated (about -0.29 to +0.27); paired excerpt by excerpt within each person it is about
    +-0.1. One excerpt each is the person-level interval."""
    rng = np.random.default_rng(3)
    owner = np.repeat(np.arange(20), 8)
    a = (rng.random(160) < 0.6).astype(float)
    b = a.copy()
    b[[5, 50, 100]] = 1 - b[[5, 50, 100]]
    means = [np.bincount(owner, weights=x) / 8 for x in (a, b)]
    lo, hi = st.paired_rate_interval(a, b, owner=owner)
    wide = st.paired_rate_interval(*means)
    d = means[0].mean() - means[1].mean()
    assert lo < d < hi and hi - lo < 0.5 * (wide[1] - wide[0]) and hi - lo < 0.3
    one = rng.random(12) < 0.7, rng.random(12) < 0.5
    assert st.paired_rate_interval(*one, owner=np.arange(12)) == pytest.approx(st.paired_rate_interval(*one))


def test_mcnemar_exact():
    a = np.array([1] * 8 + [0] * 2 + [1] * 5, bool)
    b = np.array([0] * 8 + [1] * 2 + [1] * 5, bool)
    r = st.mcnemar_top1(a, b)
    assert (r["n10"], r["n01"]) == (8, 2)
    # two-sided binomial: 2 * P(X <= 2 | 10, .5) = 2 * 56 / 1024
    assert r["p"] == pytest.approx(2 * 56 / 1024)
    assert st.mcnemar_top1(a, a)["p"] == 1.0
    with pytest.raises(DISError):
        st.mcnemar_top1([0.5, 1], [1, 1])


# ---------------------------------------------------------------- multiple comparisons

def test_holm_and_bh_textbook():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005 .01 .03 .04 x (4,3,2,1) = .02 .03 .06 .04 -> running max .02 .03 .06 .06
    np.testing.assert_allclose(st.holm(p), [0.03, 0.06, 0.06, 0.02])
    # BH: sorted x 4/(1,2,3,4) = .02 .02 .04 .04 -> running min from the top: same
    np.testing.assert_allclose(st.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(st.holm([0.5, 0.6]), [1.0, 1.0])
    out = st.benjamini_hochberg([0.01, np.nan, 0.04])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04)


# ---------------------------------------------------------------- MDS

def test_mds_recovers_points_up_to_rotation():
    pts = np.array([[0, 0], [3, 0], [0, 4], [3, 4], [1, 2]], float)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    x, w = st.classical_mds(d, k=2)
    np.testing.assert_allclose(np.linalg.norm(x[:, None] - x[None], axis=-1), d, atol=1e-9)
    assert np.all(w > 0)
    # similarity input: sim = c - d (NaN diagonal) is read as dissimilarity max(sim) - sim = d - min(d)
    sim = 10 - d
    np.fill_diagonal(sim, np.nan)
    xs, _ = st.classical_mds(sim, k=2, similarity=True)
    d2 = d - d[d > 0].min()
    np.fill_diagonal(d2, 0)
    x2, _ = st.classical_mds(d2, k=2)
    np.testing.assert_allclose(np.linalg.norm(xs[:, None] - xs[None], axis=-1),
                               np.linalg.norm(x2[:, None] - x2[None], axis=-1), atol=1e-9)
    # the share a 2-D map holds: all of it for points in a plane, two fifths for a regular simplex of six points
    assert st.mds_share(st.classical_mds(d, k=len(d))[1]) == pytest.approx(1.0)
    cube = np.eye(6)  # six points, equal spread in five dimensions: two of five equal eigenvalues
    simplex = np.linalg.norm(cube[:, None] - cube[None], axis=-1)
    assert st.mds_share(st.classical_mds(simplex, k=6)[1]) == pytest.approx(0.4)
    # negative eigenvalues (not distances) count against the map: (3 + 2) / (3 + 2 + 1 + 4), not 100%
    assert st.mds_share(np.array([3.0, 2.0, 0.0, -1.0, -4.0])) == pytest.approx(0.5)


# ---------------------------------------------------------------- dyads

def test_pair_similarity_symmetric_nan_diagonal():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((6, 6)) * np.arange(1, 7)[:, None]  # rows on very different scales
    sim = st.pair_similarity(s)
    assert np.all(np.isnan(np.diag(sim)))
    np.testing.assert_allclose(sim, sim.T, equal_nan=True)
    # a global positive affine map of the scores leaves the normalised similarity unchanged
    np.testing.assert_allclose(st.pair_similarity(3 * s - 7), sim, equal_nan=True)


def test_dyad_statistic_hand_computed():
    sim = np.array([[np.nan, 4, 1, 0],
                    [4, np.nan, 2, 1],
                    [1, 2, np.nan, 3],
                    [0, 1, 3, np.nan]])
    # dyad (0,1): 4 - (mean(1,0) + mean(2,1)) / 2 = 4 - 1 = 3 ; dyad (2,3): 3 - (mean(1,2)+mean(0,1))/2 = 2
    np.testing.assert_allclose(st.dyad_statistic(sim, [(0, 1), (2, 3)]), [3.0, 2.0])
    with pytest.raises(DISError):
        st.dyad_statistic(sim, [(0, 1), (1, 2)])


def test_matchings_are_every_pairing_when_few_else_uniform_random_ones_within_groups():
    people = np.arange(12)
    groups = np.repeat([0, 1, 2], 4)
    m, exact, floor = st._matchings(people, groups, 300, np.random.default_rng(0))
    assert exact and m.shape == (27, 6, 2) and floor == 1 / 27  # all of them (3^3), each once
    assert len({frozenset(frozenset(p) for p in row) for row in m.tolist()}) == 27
    assert np.all(groups[m[..., 0]] == groups[m[..., 1]])
    drawn, exact, floor = st._matchings(people, groups, 20, np.random.default_rng(0))
    assert not exact and drawn.shape == (20, 6, 2) and floor == pytest.approx(1 / 21)  # 27 > 20: Monte Carlo
    assert np.all(groups[drawn[..., 0]] == groups[drawn[..., 1]])  # ... within the groups too
    free, exact, floor = st._matchings(people, None, 300, np.random.default_rng(0))
    assert floor == pytest.approx(1 / 301) and st._matchings(people, None, 20000, None)[2] == 1 / 10395  # 11!!
    assert not exact and free.shape == (300, 6, 2) and (groups[free[..., 0]] != groups[free[..., 1]]).any()
    for m in (m, drawn, free):
        assert all(sorted(row.ravel()) == list(range(12)) for row in m)


def test_few_dyads_give_the_exact_p_of_their_pairings_and_say_it_cannot_reach_005():
    """3 dyads admit 15 pairings: with partners alike beyond any re-pairing p is exactly 1/15 (it was a Monte
    Carlo 0.0675), and the line says no p can reach 0.05; the exact p equals a brute-force count over all 105
    pairings of 4 couples."""
    s, pairs = st.simulate_dyad_scores(3, 0.99, np.random.default_rng(1))
    r = st.dyad_permutation_test(st.pair_similarity(s), pairs, n_perm=3000, seed=0, n_boot=200)
    assert r["exact"] and r["p"] == pytest.approx(1 / 15) and r["p_floor"] == pytest.approx(1 / 15)
    assert "the smallest p is 1/15 = 0.067, so this test cannot reach 0.05" in st.p_floor_notes([r["p_floor"]])[0]
    assert st.p_floor_notes([1 / 945]) == [""] and "cannot reach" in st.p_floor_notes([1 / 945] * 50)[0]
    # floors differ between tests of one family (feature sets holding other couples): each note judges its own
    # best case, Holm of the floors; 4 tests at 1/945 and 2 at 1/105 can all be supported (the last at 0.019)
    notes = st.p_floor_notes([1 / 945] * 4 + [1 / 105] * 2)
    assert notes == [""] * 6 and st.holm([1 / 945] * 4 + [1 / 105] * 2).max() < 0.05
    notes = st.p_floor_notes([1 / 15, 1 / 945])
    assert "0.067 at best after Holm" in notes[0] and notes[1] == ""
    # random re-pairings (10 couples allow 654,729,075 pairings): the floor is theirs, not a count of pairings
    sampled = st.p_floor_notes([1 / 2001] * 101, exact=[False] * 101)[0]
    assert "(2000 random re-pairings of these couples: the smallest p is 1/2001 = 5.0e-04, 0.050 at best" in sampled
    s, pairs = st.simulate_dyad_scores(4, 0.3, np.random.default_rng(2))
    sim = st.pair_similarity(s)
    r = st.dyad_permutation_test(sim, pairs, n_perm=2000, seed=0, n_boot=200)

    def pairings(xs):
        if not xs:
            yield []
        for k in range(1, len(xs)):
            for rest in pairings(xs[1:k] + xs[k + 1:]):
                yield [(xs[0], xs[k])] + rest
    every = [st.dyad_statistic(sim, m).mean() for m in pairings(list(range(8)))]
    assert len(every) == 105 and r["exact"]
    assert r["p"] == pytest.approx(np.mean(np.array(every) >= r["observed"] - 1e-12))
    assert r["null_mean"] == pytest.approx(np.mean(every))
    # chance: the 24 pairs that are not a real couple, each member's strangers leaving out their pseudo-partner
    # and their real partner (the null's mean also holds the 4 real couples, each in 1/7 of the pairings)
    partner = {a: a ^ 1 for a in range(8)}

    def pseudo_value(a, b):
        strangers = [np.mean([sim[x, j] for j in range(8) if j not in (x, y, partner[x])]) for x, y in ((a, b), (b, a))]
        return sim[a, b] - np.mean(strangers)
    pseudo = [pseudo_value(a, b) for a in range(8) for b in range(a + 1, 8) if b != partner[a]]
    assert len(pseudo) == 24 and r["chance"] == pytest.approx(np.mean(pseudo))
    assert r["excess"] == pytest.approx(r["observed"] - np.mean(pseudo))
    x = sim.copy()
    np.fill_diagonal(x, 0.0)
    part = np.array([partner[a] for a in range(8)])
    _, blocked, _ = st.pseudo_couple_values(lambda a, b: st._dyad_stats(sim, x.sum(axis=1), a, b, part),
                                            np.array(pairs), None, block=3)  # three rows at a time: the same pairs
    assert blocked.mean() == pytest.approx(np.mean(pseudo))


def test_partners_alike_do_not_push_chance_below_zero():
    """Partners 0.5, everyone else 0.3: the partner statistic is +0.2, and so is its excess, however few the couples
    and whatever the strata. With the real partner among a pseudo-couple's strangers, chance was -0.2 / (2D - 2)
    (-0.1 with two couples, an excess of 0.3)."""
    for n in (4, 6, 24):
        pairs = np.arange(n).reshape(-1, 2)
        sim = np.full((n, n), 0.3)
        sim[pairs[:, 0], pairs[:, 1]] = sim[pairs[:, 1], pairs[:, 0]] = 0.5
        np.fill_diagonal(sim, np.nan)
        for groups in (None,) + ((np.repeat(np.arange(n // 4), 4),) if n % 4 == 0 else ()):
            r = st.dyad_permutation_test(sim, pairs, groups, n_perm=500, n_boot=100)
            assert r["observed"] == pytest.approx(0.2)
            assert r["chance"] == 0.0 and r["excess"] == pytest.approx(0.2)


def test_strata_alike_within_give_no_excess_without_a_partner_effect():
    """People of one stratum (a site) 0.5 alike, of two strata 0.2, partners as alike as anyone of their stratum:
    no partner effect, so the excess is 0. A pseudo-couple's strangers, leaving out the real partner, held one own-
    stratum stranger fewer than a real couple's: chance rose and the excess read -0.04 at 4 couples in 2 strata."""
    for n, strata in ((8, 2), (16, 2), (24, 3), (24, 1)):
        g = np.repeat(np.arange(strata), n // strata)
        sim = np.where(g[:, None] == g[None, :], 0.5, 0.2)
        np.fill_diagonal(sim, np.nan)
        r = st.dyad_permutation_test(sim, np.arange(n).reshape(-1, 2), g, n_perm=500, n_boot=100)
        assert r["excess"] == pytest.approx(0.0, abs=1e-12), (n, r)  # (every re-pairing alike: the null sd is 0)
    # random similarities in 3 unequal strata: chance is the mean over pseudo-couples of the partner statistic with
    # each member's strangers weighed as a real couple's (m - 2 of the own stratum, n - m of the others, of n - 2)
    rng = np.random.default_rng(4)
    n = 18
    g = np.repeat([0, 1, 2], [4, 6, 8])
    a = rng.normal(size=(n, n))
    sim = (a + a.T) / 2 + np.where(g[:, None] == g[None, :], 1.0, 0.0)
    np.fill_diagonal(sim, np.nan)
    pairs = np.arange(n).reshape(-1, 2)
    partner = np.arange(n) ^ 1

    def pseudo_value(x0, y0):
        def stranger(x, y):
            mine = [sim[x, j] for j in range(n) if g[j] == g[x] and j not in (x, y, partner[x])]
            other = [sim[x, j] for j in range(n) if g[j] != g[x]]
            m = int((g == g[x]).sum())
            return ((m - 2) * np.mean(mine) + (n - m) * np.mean(other)) / (n - 2)
        return sim[x0, y0] - (stranger(x0, y0) + stranger(y0, x0)) / 2
    want = 0.0
    for k in range(3):
        m = np.flatnonzero(g == k)
        vals = [pseudo_value(x, y) for i, x in enumerate(m) for y in m[i + 1:] if y != partner[x]]
        want += len(m) / 2 * np.mean(vals)
    r = st.dyad_permutation_test(sim, pairs, g, n_perm=500, n_boot=100)
    assert r["chance"] == pytest.approx(want / (n / 2))


def test_the_excess_interval_is_over_couples_jackknife_values_whose_mean_is_the_excess():
    """The excess's interval resamples per-couple values whose mean is the excess exactly and which carry chance's
    uncertainty: a couple's statistic less the delete-one-couple jackknife value of its stratum's chance (a known
    answer, by brute force); with strata of two couples a couple's pseudo-couples are its stratum's only ones, and
    its value is its statistic less that chance. The partner test's observed interval resamples its statistics
    with the members' mean similarity to strangers centred, which leaves their mean as it was."""
    from dis_core.score.synchrony import synchrony_test
    rng = np.random.default_rng(5)
    n = 16
    pairs = np.arange(n).reshape(-1, 2)
    a = rng.normal(size=(n, n))
    sync = (a + a.T) / 2
    np.fill_diagonal(sync, np.nan)
    for groups in (None, np.repeat(np.arange(4), 4), np.repeat([0, 1], [4, 12])):
        r = synchrony_test(sync, pairs, groups, n_perm=200, n_boot=500)
        pseudo, chance, couples = st.pseudo_couple_values(lambda x, y: sync[x, y], pairs, groups)
        ex = st.excess_values(r["per_dyad"], pseudo, chance, couples)
        assert ex.mean() == pytest.approx(r["excess"]) and chance.mean() == pytest.approx(r["chance"])
        assert r["excess_ci_lo"] < r["excess"] < r["excess_ci_hi"]
        t = st.dyad_permutation_test(sync, pairs, groups, n_perm=200, n_boot=500)
        assert t["excess_ci_lo"] < t["excess"] < t["excess_ci_hi"] and t["ci_lo"] < t["observed"] < t["ci_hi"]
        # everyone in a couple, no strata: chance is 0 by construction, and the one number has one interval
        assert (t["chance"] == 0.0 and (t["excess_ci_lo"], t["excess_ci_hi"]) == (t["ci_lo"], t["ci_hi"])) == (
            groups is None)
    # one stratum of 8 couples: chance's jackknife pseudo-value D theta - (D - 1) theta_(-k), pairs by brute force
    def theta(keep):
        people = pairs[keep].ravel()
        return np.mean([sync[x, y] for x in people for y in people if x < y and x // 2 != y // 2])
    pseudo, chance, couples = st.pseudo_couple_values(lambda x, y: sync[x, y], pairs, None)
    assert set(couples) == {8} and chance[0] == pytest.approx(theta(np.arange(8)))
    d = sync[pairs[:, 0], pairs[:, 1]]
    jack = [8 * chance[0] - 7 * theta(np.delete(np.arange(8), k)) for k in range(8)]
    np.testing.assert_allclose(st.excess_values(d, pseudo, chance, couples), d - np.array(jack))
    from dis_core.score.synchrony import synchrony_text
    rows = [dict(synchrony_test(sync, pairs, g, n_perm=200, n_boot=100), signal="s", p_holm=0.5)
            for g in (np.repeat([0, 1], [4, 12]), np.repeat([0, 1], 8), None)]
    assert [r["smallest_stratum"] for r in rows] == [2, 4, 8]
    said = synchrony_text(rows, "").split("; ")[1:]
    assert "strata of 2 couples: this interval covers the excess 0.81 to 0.94 of the time" in said[0]
    assert "strata of 2" not in said[1] + said[2]
    with pytest.raises(DISError, match="a couple alone in its stratum"):
        st.pseudo_couple_values(lambda x, y: sync[x, y], pairs, np.repeat([0, 1], [2, 14]))
    couple = pairs[0]
    groups = np.repeat(np.arange(4), 4)
    pseudo, chance, couples = st.pseudo_couple_values(lambda x, y: sync[x, y], pairs, groups)
    cross = sync[np.ix_(pairs[0], pairs[1])].mean()  # the stratum's only pseudo-couples
    assert pseudo[0] == pytest.approx(cross) and pseudo[1] == pytest.approx(cross) and chance[0] == pytest.approx(cross)
    assert st.excess_values([sync[couple[0], couple[1]]], pseudo[:1], chance[:1], couples[:1])[0] == pytest.approx(
        sync[couple[0], couple[1]] - cross)


def test_chance_excludes_real_couples_so_small_strata_do_not_shrink_the_excess():
    """Partners +0.2 above everyone else's 0.3: the excess is +0.2 whatever the strata. Measured from the null's
    mean it would be 0.2 (m - 2) / (m - 1): +0.13 with strata of two couples."""
    from dis_core.score.synchrony import synchrony_test
    n = 24
    pairs = np.arange(n).reshape(-1, 2)
    sync = np.full((n, n), 0.3)
    sync[pairs[:, 0], pairs[:, 1]] = sync[pairs[:, 1], pairs[:, 0]] = 0.5
    np.fill_diagonal(sync, np.nan)
    for groups in (None, np.repeat(np.arange(4), 6), np.repeat(np.arange(6), 4)):
        r = synchrony_test(sync, pairs, groups, n_perm=2000, n_boot=100)
        assert r["chance"] == pytest.approx(0.3) and r["excess"] == pytest.approx(0.2)
    assert r["null_mean"] == pytest.approx(0.3 + 0.2 / 3)
    # unequal strata at unequal levels: chance is the pseudo-couples' mean, each stratum weighing by its couples
    level = np.repeat([0.1, 0.5], [8, 16])  # a stratum of 4 couples at 0.1, one of 8 couples at 0.5
    sync = np.add.outer(level, level) / 2
    sync[pairs[:, 0], pairs[:, 1]] = sync[pairs[:, 1], pairs[:, 0]] = level[pairs[:, 0]] + 0.2
    np.fill_diagonal(sync, np.nan)
    r = synchrony_test(sync, pairs, np.repeat([0, 1], [8, 16]), n_perm=2000, n_boot=100)
    assert r["chance"] == pytest.approx((4 * 0.1 + 8 * 0.5) / 12) and r["excess"] == pytest.approx(0.2)


def test_couples_alone_in_their_stratum_are_left_out_and_counted():
    """Nine sites with one couple and one with three: only the three can be re-paired; the lone couples would
    add their (uninformative) values to the statistic and its interval, and hide that only three were tested."""
    rng = np.random.default_rng(4)
    groups = np.r_[np.repeat(np.arange(9), 2), np.full(6, 9)]
    pairs = [(2 * k, 2 * k + 1) for k in range(12)]
    s = rng.normal(size=(24, 24))
    r = st.dyad_permutation_test(st.pair_similarity(s), pairs, groups=groups, n_boot=100)
    assert r["dyads"] == 3 and r["dyads_alone"] == 9 and r["exact"] and len(r["null"]) == 15
    assert r["observed"] == pytest.approx(st.dyad_statistic(st.pair_similarity(s), pairs[9:]).mean())
    assert "9 alone in their stratum: left out" in st.couples_left_out(r)
    with pytest.raises(DISError, match="no two couples share a stratum"):
        st.dyad_permutation_test(st.pair_similarity(s), pairs, groups=np.repeat(np.arange(12), 2))


def test_dyad_permutation_calibrated_under_null():
    """200 null cohorts of 16 couples (partners share nothing): rejection rate at 0.05 near 0.05."""
    ps = []
    for c in range(200):
        s, pairs = st.simulate_dyad_scores(16, 0.0, np.random.default_rng(10_000 + c))
        r = st.dyad_permutation_test(st.pair_similarity(s), pairs, n_perm=500, seed=c, n_boot=200)
        ps.append(r["p"])
    rate = np.mean(np.array(ps) <= 0.05)
    assert 0.03 <= rate <= 0.07, rate


def test_dyad_permutation_calibrated_within_groups():
    ps = []
    groups = np.repeat(np.arange(4), 8)  # 4 sites of 4 couples
    for c in range(200):
        s, pairs = st.simulate_dyad_scores(16, 0.0, np.random.default_rng(20_000 + c))
        r = st.dyad_permutation_test(st.pair_similarity(s), pairs, groups=groups, n_perm=500, seed=c,
                                     n_boot=200)
        ps.append(r["p"])
    rate = np.mean(np.array(ps) <= 0.05)
    assert 0.02 <= rate <= 0.08, rate


def test_dyad_effect_size_is_measured_from_chance_when_strata_make_pseudo_couples_alike():
    """No partner effect, but people of one site score alike (as pseudo-couples formed within sites do): the
    null's mean is well above 0, so an effect size from 0 would call site similarity a partner effect of
    several null sds. Measured from the null's mean it is near 0, and the excess's interval holds the excess."""
    rng = np.random.default_rng(3)
    site = np.repeat(np.arange(4), 8)
    eff, raw = [], []
    for c in range(40):
        s, pairs = st.simulate_dyad_scores(16, 0.0, rng)
        z = rng.normal(size=(4, 8))[site]
        s = s - 0.5 * ((z[:, None] - z[None]) ** 2).sum(-1)
        r = st.dyad_permutation_test(st.pair_similarity(s), pairs, groups=site, n_perm=300, n_boot=200, seed=c)
        eff.append(r["effect_size"])
        raw.append(r["observed"] / r["null_sd"])
        assert r["effect_size"] == pytest.approx(r["excess"] / r["null_sd"])
        assert r["excess_ci_lo"] < r["excess"] < r["excess_ci_hi"]  # over couples, chance's uncertainty in it
    assert np.mean(raw) > 3  # the scenario is one where measuring from 0 misleads
    assert abs(np.mean(eff)) < 0.5, np.mean(eff)


def test_expanded_levels_known_values():
    """z = sqrt(n / (n - 1)) t_{0.975, n-1}: at 10 units t = 2.2622, z = 2.3846, level 0.00855; large n
    tends to the plain 0.025."""
    lo, hi = st.expanded_levels(10)
    assert lo == pytest.approx(0.00855, abs=2e-5) and hi == pytest.approx(1 - lo)
    assert st.expanded_levels(10_000)[0] == pytest.approx(0.025, abs=2e-4)


def test_unit_mean_interval_covers_at_ten_couples():
    """1,000 cohorts of 10 couples with normal per-couple values of mean 0: the expanded interval covers 0
    about 95% of the time; the plain percentile interval of the same draws about 90%."""
    rng = np.random.default_rng(5)
    hit = plain = 0
    for _ in range(1000):
        x = rng.normal(size=10)
        lo, hi = st.unit_mean_interval(x, np.random.default_rng(rng.integers(1 << 30)), n_boot=1000)
        hit += lo <= 0 <= hi
        b = x[np.random.default_rng(rng.integers(1 << 30)).integers(0, 10, (1000, 10))].mean(axis=1)
        plo, phi = np.quantile(b, [0.025, 0.975])
        plain += plo <= 0 <= phi
    assert 0.925 <= hit / 1000 <= 0.97, hit
    assert plain / 1000 < hit / 1000 - 0.02, (plain, hit)


def test_dyad_permutation_power_when_partners_share():
    s, pairs = st.simulate_dyad_scores(16, 0.7, np.random.default_rng(1))
    r = st.dyad_permutation_test(st.pair_similarity(s), pairs, n_perm=500)
    assert r["p"] == pytest.approx(1 / 501) == r["p_floor"]  # no re-pairing reaches the couples: (0 + 1) / (500 + 1)
    assert r["observed"] > 0 and r["effect_size"] > 3 and r["ci_lo"] > 0
    assert r["null"].shape == (500,)
    assert abs(r["null_mean"]) < 0.5 * r["null_sd"]


def test_weighted_auc_eer_known_answer_and_equal_to_the_expanded_lists():
    """Genuine [2, 1] with counts [1, 2], impostors [1, 0] with counts [3, 1]: expanded, genuine
    [2, 1, 1] and impostors [1, 1, 1, 0]. AUC = (4 + 2 x (1 + 3 x 0.5)) / 12 = 0.75; the ROC goes from
    (FPR 3/4, FNR 0) at t = 1 to (0, 2/3) at t = 2, so EER = 3/4 x (1 - 9/17) = 6/17."""
    a, e = st.weighted_auc_eer([2.0, 1.0], [1, 2], [1.0, 0.0], [3, 1])
    assert a == pytest.approx(0.75, abs=1e-15) and e == pytest.approx(6 / 17, abs=1e-15)
    rng = np.random.default_rng(8)
    for _ in range(20):
        g, imp = np.round(rng.normal(1, 1, 9), 1), np.round(rng.normal(0, 1, 30), 1)  # many ties
        wg, wi = rng.integers(1, 4, 9), rng.integers(1, 5, 30)
        a, e = st.weighted_auc_eer(g, wg, imp, wi)
        assert a == pytest.approx(st.auc(np.repeat(g, wg), np.repeat(imp, wi)), abs=1e-14)
        assert e == pytest.approx(st.eer(np.repeat(g, wg), np.repeat(imp, wi)), abs=1e-14)
    with pytest.raises(DISError):
        st.weighted_auc_eer([1.0], [1], [0.0], [0])


def test_headline_draws_equal_each_metric_on_the_resampled_matrix():
    """The fast bootstrap (a draw's distinct people, their copies as weights) gives, draw by draw, what
    each headline metric, and the raw and z-norm verification, gives on S[idx][:, idx] under the duplicate
    rule: with ties, excluded (NaN) cells, infinite scores and draws of one person only (no impostor: NaN)."""
    from dis_core.score.scoring import HEADLINE, SUPPLEMENTARY, compare_methods, headline_draws, headline_intervals

    rng = np.random.default_rng(5)
    for n in (2, 3, 7, 25):
        for trial in range(5):
            s = np.round(rng.normal(size=(n, n)), 1 if trial else 6) + np.eye(n) * rng.uniform(0, 2)
            if trial >= 2:  # small integers everywhere: genuine scores tie with impostors and competitors
                s = rng.integers(0, 4, (n, n)).astype(float)
            if trial == 3 and n > 3:
                s[0, 1] = s[2, 0] = np.nan
            if trial == 4 and n > 3:
                s[1, 0] = -np.inf
            fast = headline_draws(s, n_boot=150, seed=trial)
            for name, fn in {**HEADLINE, **SUPPLEMENTARY}.items():
                slow = (st.bootstrap_columns(st.topk_fractional(s, 1)[0], n_boot=150, seed=trial) if name == "top1"
                        else st.bootstrap_participants(s, fn, n_boot=150, seed=trial)).dist
                np.testing.assert_array_equal(np.isnan(fast[name]), np.isnan(slow))
                np.testing.assert_allclose(fast[name], slow, rtol=0, atol=1e-12, equal_nan=True)
    assert np.isnan(headline_draws(np.array([[1.0, 0.0], [0.0, 1.0]]), 50)["eer"]).any()  # {0, 0} or {1, 1}
    # the intervals and paired comparisons built on them are the generic bootstraps' figures
    s = np.round(rng.normal(size=(30, 30)), 1) + 1.5 * np.eye(30)
    s2 = s + rng.normal(0, 0.8, s.shape)
    h = headline_intervals(s, n_boot=200, seed=4)
    c = compare_methods(s, s2, n_boot=200, seed=4)
    for name, fn in HEADLINE.items():
        if name == "top1":  # each drawn person's credit among all N models
            ca, cb = st.topk_fractional(s, 1)[0], st.topk_fractional(s2, 1)[0]
            b = st.bootstrap_columns(ca, n_boot=200, seed=4)
            p = st.with_model_variation(st.paired_result(ca.mean() - cb.mean(), st.column_draws(ca - cb, 200, 4)),
                                        st.jackknife_se(st.topk_leave_one_out(s, 1) - st.topk_leave_one_out(s2, 1)))
        else:
            b = st.bootstrap_participants(s, fn, n_boot=200, seed=4)
            p = st.paired_bootstrap(s, s2, fn, n_boot=200, seed=4)
        assert (h[f"{name}_lo"], h[f"{name}_hi"]) == pytest.approx((b.lo, b.hi), abs=1e-12)
        assert (c[f"{name}_diff"], c[f"{name}_diff_lo"], c[f"{name}_diff_hi"], c[f"{name}_p"]) == \
            pytest.approx((p.diff, p.lo, p.hi, p.p), abs=1e-12)
    for name, fn in SUPPLEMENTARY.items():  # methods are compared on the headline metrics: here a point
        b = st.bootstrap_participants(s, fn, n_boot=200, seed=4)  # difference only, to flag a reversal
        assert (h[f"{name}_lo"], h[f"{name}_hi"]) == pytest.approx((b.lo, b.hi), abs=1e-12)
        assert c[f"{name}_diff"] == pytest.approx(fn(s) - fn(s2), abs=1e-12)
        assert f"{name}_diff_lo" not in c and f"{name}_p" not in c
    # comparisons draw the headline metrics alone (the same numbers), or reuse the full draws when remembered
    fresh = np.round(rng.normal(size=(20, 20)), 1) + np.eye(20)
    only = headline_draws(fresh, n_boot=100, seed=1, supplementary=False)
    assert set(only) == set(HEADLINE)
    full = headline_draws(fresh, n_boot=100, seed=1)
    assert set(full) == {*HEADLINE, *SUPPLEMENTARY}  # not the headline-only draws remembered before
    for name in HEADLINE:
        np.testing.assert_array_equal(only[name], full[name])
    assert headline_draws(fresh, n_boot=100, seed=1, supplementary=False)["eer"] is full["eer"]
    kept = headline_draws(s, n_boot=200, seed=4)
    assert kept["eer"] is headline_draws(s.copy(), n_boot=200, seed=4)["eer"]  # reused, and read-only:
    with pytest.raises(ValueError):
        kept["eer"][:] = 0
    with pytest.raises(DISError, match="genuine"):
        headline_draws(np.where(np.eye(30, dtype=bool) & (np.arange(30) == 3), np.nan, s))
    with pytest.raises(ValueError, match="seed"):
        headline_draws(s, seed=None)


def test_tied_scores_stay_tied_after_normalisation():
    """Known answer: genuine 3, 1, 2, 0 and impostors as below; in exact arithmetic the t-normed genuine of
    column 0 equals impostors of other columns. Rounding noise once broke such ties one way in one path and
    the other way in the other; and a constant column's spread (rounding noise) is no spread at all."""
    from dis_core.score.scoring import _draw_metrics, auc_tnorm, tnorm

    s = np.array([[3, 2, 0, 3], [3, 1, 2, 0], [3, 0, 0, 2], [1, 3, 2, 0]], float)
    t = tnorm(s)
    g, imp = np.diag(t), t[~np.eye(4, dtype=bool)]
    assert np.isin(g, imp).sum() >= 2  # the ties survive
    exact = np.mean([(a > b) + 0.5 * (a == b) for a in g for b in imp])
    assert exact == pytest.approx(1 / 3)
    assert auc_tnorm(s) == pytest.approx(1 / 3, abs=1e-15)
    assert _draw_metrics(s, np.arange(4))["auc"] == pytest.approx(1 / 3, abs=1e-15)  # the bootstrap's path
    assert np.all(tnorm(np.full((5, 5), 0.1)) == 0)


def test_top1_against_chance_is_a_permutation_test_with_known_answers():
    """The share of random assignments of models to data that identify as many: with three people all identified,
    3 fixed points of a random permutation of 3 (1 in 6); everyone identified among 12, about 1 / 12! (the
    smallest p the draws give); one broad model on top of every column, one identification whatever the
    assignment (p 1); 5 of 12 by a matching (chance gets 5 or more with 1 - sum_{k<5} e^-1/k! ~ 0.004); under
    noise, the test says "above" at most as often as its level."""
    from math import exp, factorial

    assert st.top1_chance_p(np.eye(3) + 0.1, n_perm=60000) == 1 / 6  # 3! assignments: exact, no draws
    assert st.top1_chance_p(np.eye(6)) == 1 / 720 and st.top1_chance_p(np.eye(7)) == 1 / 5040  # 6 of 6 read 0.0021
    assert st.top1_chance_p(np.eye(8)) == pytest.approx(1 / 10000)  # 8! > 9,999 draws: sampled, the +1 its floor
    # exact with shared credit: 2 of 4 by a matching with the other two swapped: assignments with >= 2 fixed
    # points of 4 (the identity, 6 transpositions: 7 of 24)
    assert st.top1_chance_p(np.eye(4)[:, [0, 1, 3, 2]]) == pytest.approx(7 / 24)
    assert st.top1_chance_p(np.eye(12), n_perm=999) == pytest.approx(1 / 1000)
    broad = np.zeros((12, 12))
    broad[4] = 1.0
    assert st.top1_chance_p(broad, n_perm=999) == 1.0
    broad[0, 1] = np.nan  # an excluded cell a permutation could make someone's own: not scored as a miss
    with pytest.raises(DISError, match="complete, finite score matrix"):
        st.top1_chance_p(broad)
    five = np.eye(12)[:, np.r_[0:5, np.roll(np.arange(5, 12), 1)]]  # columns 0-4 own, 5-11 another's
    assert st.topk_fractional(five, 1)[1] == pytest.approx(5 / 12)
    poisson = 1 - sum(exp(-1) / factorial(k) for k in range(5))
    assert st.top1_chance_p(five, n_perm=60000) == pytest.approx(poisson, abs=0.0015)
    rng = np.random.default_rng(5)
    assert np.mean([st.top1_chance_p(rng.normal(size=(12, 12)), n_perm=499, seed=k) <= 0.05
                    for k in range(300)]) <= 0.05


def test_top_k_lower_bounds_never_fall_below_top1s():
    """Top-3 credit is at least top-1 credit for everyone, so its lower bound is at least top-1's: the
    jackknife over people (who rank among one model fewer) widened a top-3 of 7 / 12 to [0.00, 1.00] beside
    top-1 0.50 [0.21, 0.79] (an unseen cohort's Gaussian; here its ranks, row = model, 0 = first in the column,
    which decide every top-k figure); and top-5's at least top-3's."""
    from dis_core.score.scoring import headline_intervals

    ranks = ["091116112859", "300622563420", "6a588a62896a", "189005035ba7", "526740979791", "444463486136",
             "b5bbb4bbb5b2", "9ba9aba04a8b", "263237241618", "a72a78897044", "737559350205", "8183917aa373"]
    s = -np.array([[int(c, 12) for c in row] for row in ranks], float)
    assert st.topk_fractional(s, 1)[1] == pytest.approx(6 / 12) and st.topk_fractional(s, 3)[1] == pytest.approx(7 / 12)
    h = headline_intervals(s, n_boot=300)
    assert h["top3_lo"] >= h["top1_lo"] > 0.1 and h["top5_lo"] >= h["top3_lo"]


def test_top_k_intervals_keep_the_whole_cohort_as_competitors():
    """A draw ranks each drawn person's data among all N models: with every score tied, each person's
    top-k credit is k / N exactly, so every draw is k / N (the chance level), not k / (distinct people
    drawn) as when the copies left the gallery. Without signal the draws centre on the point, not above it."""
    from dis_core.score.scoring import headline_draws, headline_intervals

    n = 10
    flat = np.zeros((n, n))
    assert np.all(headline_draws(flat, n_boot=300)["top1"] == 0.1)
    for k in (1, 3, 5):
        b = st.bootstrap_columns(st.topk_fractional(flat, k)[0], n_boot=300)
        assert b.dist == pytest.approx(np.full(300, k / n))
    # the reported interval of a rate is then its Wilson score interval (textbook 1 of 10: 0.018 to 0.404)
    h = headline_intervals(flat, n_boot=300)
    assert (h["top1_lo"], h["top1_hi"], h["chance_top1"]) == pytest.approx((0.0179, 0.4042, 0.1), abs=1e-4)
    assert (h["top3_lo"], h["top3_hi"], h["chance_top3"]) == pytest.approx((*st.wilson_interval(0.3, 10), 0.3))
    assert (h["top5_lo"], h["top5_hi"], h["chance_top5"]) == pytest.approx((*st.wilson_interval(0.5, 10), 0.5))
    assert "top5_lo" not in headline_intervals(np.eye(4), n_boot=50)  # no top-5 among 4 models
    rng = np.random.default_rng(8)
    gap = []
    for trial in range(20):
        s = rng.normal(size=(20, 20))  # no signal: top-1 about 1/20
        gap.append(headline_draws(s, n_boot=400, seed=trial)["top1"].mean() - st.topk_fractional(s, 1)[1])
    assert abs(np.mean(gap)) < 0.01  # the draws averaged 0.05 above the point before


def test_an_identification_rate_at_its_bounds_gets_an_interval_that_covers():
    """Everyone identified gave 1.00 [1.00, 1.00]: a percentile bootstrap cannot see variation its sample does
    not show. The interval of a rate holds its Wilson interval (40 of 40: [0.912, 1], the exact Clopper-Pearson
    lower bound being 0.912 too), and keeps the bootstrap's where that is wider. Coverage of a true rate of 0.95
    over 400 simulated cohorts of 40 people: at least 0.93 (the plain percentile interval's was 0.84)."""
    lo, hi = st.bootstrap_columns(np.ones(40), n_boot=500)[1:3]
    assert (lo, hi) == pytest.approx((0.9124, 1.0), abs=1e-4)
    assert st.wilson_interval(0.0, 6) == pytest.approx((0.0, 0.390), abs=1e-3)
    assert st.proportion_interval(0.5, 0.1, 0.95, 40) == pytest.approx((0.1, 0.95))  # the wider kept
    rng = np.random.default_rng(3)
    hit = [lo <= 0.95 <= hi for lo, hi in (st.bootstrap_columns((rng.random(40) < 0.95).astype(float), 400, c)[1:3]
                                           for c in range(400))]
    assert np.mean(hit) >= 0.93


def test_exact_pairings_of_many_strata_of_one_couple_each():
    """36 couples over 33 sites with one couple each and one site with three: 15 pairings, enumerated (numpy's
    meshgrid refused more than 32 inputs, and the report lost the feature set)."""
    rng = np.random.default_rng(9)
    groups = np.repeat(np.r_[np.arange(33), [33, 33]], 2)
    groups = np.r_[groups, [33, 33]]
    pairs = [(2 * k, 2 * k + 1) for k in range(36)]
    m, exact, _ = st._matchings(np.arange(72), groups, 2000, rng)
    assert exact and m.shape == (15, 36, 2)
    assert np.all(groups[m[..., 0]] == groups[m[..., 1]])
    s = rng.normal(size=(72, 72))
    sim = st.pair_similarity(s)
    r = st.dyad_permutation_test(sim, pairs, groups=groups, n_boot=100)
    assert r["exact"] and r["p_floor"] == pytest.approx(1 / 15)
    # brute force: the 33 couples alone at their site are left out (nobody to re-pair them with); site 33's six
    # people take each of their 15 pairings
    assert r["dyads"] == 3
    every = [st.dyad_statistic(sim, [(66, b), (c, d), (e, f)]).mean()
             for b in range(67, 72) for rest in [[x for x in range(67, 72) if x != b]]
             for (c, d), (e, f) in [((rest[0], rest[1]), (rest[2], rest[3])), ((rest[0], rest[2]), (rest[1], rest[3])),
                                    ((rest[0], rest[3]), (rest[1], rest[2]))]]
    assert len(every) == 15 and r["p"] == pytest.approx(np.mean(np.array(every) >= r["observed"] - 1e-12))


# ---------------------------------------------------------------- top-k: the models' own variation

def test_top_k_leave_one_out_equals_removing_each_person_outright():
    """The O(N^2) delete-one jackknife equals top-k recomputed with each person's row and column deleted,
    on a matrix with ties and excluded (NaN) cells."""
    rng = np.random.default_rng(5)
    s = rng.integers(0, 4, (9, 9)).astype(float) + 2 * np.eye(9)  # many ties
    s[2, 5] = s[7, 1] = np.nan
    for k in (1, 3):
        brute = [st.topk_fractional(np.delete(np.delete(s, i, 0), i, 1), k)[1] for i in range(9)]
        np.testing.assert_allclose(st.topk_leave_one_out(s, k, block=4), brute, atol=1e-12)
    # several columns a person (excerpts), a person weighing as one; person 3 has none but competes
    owner = np.array([0, 0, 1, 2, 2, 2, 4, 4])
    x = rng.normal(size=(5, 8)) + 1.5 * (np.arange(5)[:, None] == owner[None, :])

    def top1_of_people(xs, ow):
        c = st.topk_fractional(xs, 1, ow)[0]
        return np.mean([c[ow == p].mean() for p in np.unique(ow)])

    brute = [top1_of_people(np.delete(x, i, 0)[:, owner != i], np.searchsorted(np.delete(np.arange(5), i),
                                                                              owner[owner != i])) for i in range(5)]
    np.testing.assert_allclose(st.topk_leave_one_out(x, 1, owner, block=2), brute, atol=1e-12)
    # only person 0 has columns: without them the rate is undefined (it read 0 and blew the se up)
    lone = st.topk_leave_one_out(x[:, owner == 0], 1, owner[owner == 0])
    assert np.isnan(lone[0]) and np.all(lone[1:] == lone[1]) and st.jackknife_se(lone) == 0.0
    v = np.array([0.5, 0.75, 1.0, 0.75])
    assert st.jackknife_se(v) == pytest.approx(np.sqrt(3 / 4 * 0.125))


def test_top1_interval_widens_when_one_broad_model_takes_several_peoples_credit():
    """Model 0 outscores the own model of 4 of 12 people: removing that one person moves top-1 by 4/11, which
    a bootstrap of the data columns against fixed models cannot see. The printed interval holds point +- 1.96
    x the jackknife's se; without such a model it is the bootstrap's widened to Wilson, as before."""
    from dis_core.score.scoring import headline_intervals

    n = 12
    s = -10.0 * (1 - np.eye(n)) + np.arange(n)[None, :] * 1e-3  # everyone identified, no ties
    plain = headline_intervals(s, n_boot=200)
    boot = st.bootstrap_columns(st.topk_fractional(s, 1)[0], 200, 0)
    assert (plain["top1_lo"], plain["top1_hi"]) == pytest.approx((boot.lo, boot.hi))
    s[0, 1:5] = 5.0  # a broad model: above the own model of people 1-4
    point = st.topk_fractional(s, 1)[1]
    se = st.jackknife_se(st.topk_leave_one_out(s, 1))
    assert point == pytest.approx(8 / 12) and se > 0.1
    out = headline_intervals(s, n_boot=200)
    boot = st.bootstrap_columns(st.topk_fractional(s, 1)[0], 200, 0)
    assert out["top1_lo"] == pytest.approx(min(boot.lo, point - 1.959964 * se))
    assert out["top1_lo"] < boot.lo
    assert out["top1_hi"] == pytest.approx(min(1.0, max(boot.hi, point + 1.959964 * se)))


def test_tied_models_share_their_mid_rank():
    from dis_core.score.scoring import ranks

    r = ranks(np.zeros((4, 4)))
    assert np.all(r == 2.5)  # row order decided it: 1, 2, 3, 4 down the diagonal
    assert ranks(np.array([[3.0, 0.0], [1.0, 2.0]])).tolist() == [[1.0, 2.0], [2.0, 1.0]]


def test_paired_top1_keeps_its_size_when_broad_models_take_peoples_credit_together():
    """Two exchangeable methods (the same signal, models that are broad by chance, each method its own): the
    paired top-1 difference, whose draws keep the models fixed, was rejected at p < 0.05 in about 0.2 of cohorts
    at N = 20 (nominal 0.05). Held to the jackknife over people of the difference, it keeps its size."""
    from dis_core.score.scoring import compare_methods

    rng = np.random.default_rng(11)
    n, reps, rejected, raw = 20, 100, 0, 0
    for r in range(reps):
        b = rng.normal(0, 1, n)
        a, c = (rng.normal(0, 3.0, (n, 1)) + b[None, :] + 6.0 * np.eye(n) + rng.normal(0, 1, (n, n)) for _ in range(2))
        out = compare_methods(a, c, n_boot=300, seed=r)
        rejected += out["top1_p"] < 0.05
        ca, cc = st.topk_fractional(a, 1)[0], st.topk_fractional(c, 1)[0]
        raw += st.paired_result(float((ca - cc).mean()), st.column_draws(ca - cc, 300, r)).p < 0.05
        assert out["top1_diff_lo"] <= out["top1_diff"] <= out["top1_diff_hi"]
    assert raw / reps > 0.1, "the draws alone are too liberal here (the case this guards)"
    assert rejected / reps <= 0.10, (rejected, raw)


def test_a_top1_difference_held_to_its_jackknife_stays_a_difference_of_rates():
    """diff +- z se is clipped to [-1, 1] (0.85 +- 1.96 x 0.1 reached 1.05); se 0 or NaN leaves the result as it was."""
    r = st.PairedResult(0.85, 0.70, 0.95, 0.01, np.zeros(3))
    w = st.with_model_variation(r, 0.1)
    assert w.hi == 1.0 and w.lo == pytest.approx(0.85 - 1.959964 * 0.1, abs=1e-6) and w.p >= r.p
    assert st.with_model_variation(r, 0.0) == r and st.with_model_variation(r, float("nan")) == r
    # a known answer: diff 0.1, se 0.1: the interval holds 0.1 +- 1.96 x 0.1, p the two-sided normal p of 1 se
    k = st.with_model_variation(st.PairedResult(0.1, -0.05, 0.25, 0.2, np.zeros(3)), 0.1)
    assert (k.lo, k.hi) == pytest.approx((0.1 - 0.1959964, 0.1 + 0.1959964), abs=1e-6)
    assert k.p == pytest.approx(0.3173105, abs=1e-6)
    # ... and a rate's interval is clipped at 0 (point 0.1, se 0.2 would reach -0.29)
    assert st.proportion_interval(0.1, 0.05, 0.2, 40, se=0.2)[0] == 0.0
