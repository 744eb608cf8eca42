"""Identification from excerpts of the held-out data (dis_core.score.excerpts): known answers."""

import numpy as np
import pytest

from dis_core.errors import DISError
from dis_core.features.build import FEATURE_SETS, video_features
from dis_core.score.excerpts import (Excerpts, excerpt_labels, excerpt_rows, excerpt_scores, holm_family,
                                     stream_excerpts)
from dis_core.score.scoring import headline_intervals, identification, pair_score, score_matrix, tnorm, verification
from dis_core.score import stats as st
from dis_core.score.stats import topk_fractional


def _rows(ex: dict, n: int, n_boot: int) -> dict:
    """Each method's row of :func:`excerpt_rows`, by method."""
    return {x["method"]: x for x in excerpt_rows(ex, n, n_boot=n_boot)[0]}


def _centres(start=0.0, end=60.0, w=8.0, hop=0.5, shift=0.0):
    """Centres of every complete window of ``w`` s every ``hop`` s of a video from ``start`` to ``end``."""
    return np.arange(start + w / 2 + shift, end - w / 2 + 1e-9, hop)


def test_labels_of_spectral_windows_partition_whole_excerpts():
    t = _centres()  # 105 windows, centres 4 .. 56 s
    v = np.zeros(len(t), int)
    spans = {0: (0.0, 60.0)}
    one = excerpt_labels(t, v, 8.0, 8.0, 0.5, spans)
    assert np.array_equal(t[one >= 0], 4.0 + 8.0 * np.arange(7))  # one window each, [0, 8) .. [48, 56)
    assert np.array_equal(one[one >= 0], np.arange(7))
    two = excerpt_labels(t, v, 16.0, 8.0, 0.5, spans)
    assert np.array_equal(np.bincount(two[two >= 0]), [17, 17, 17])  # [0, 16), [16, 32), [32, 48); [48, 64) is cut off
    assert t[two == 1].min() == 20.0 and t[two == 1].max() == 28.0  # windows within [16, 32)
    half = excerpt_labels(t, v, 30.0, 8.0, 0.5, spans)
    assert np.array_equal(np.bincount(half[half >= 0]), [45, 45])


def test_labels_follow_a_restarted_window_grid_and_each_video():
    # a long gap at 30 s; the grid restarts 0.2 s off the first one's: a window still lands in each excerpt
    # but [24, 32), which no complete window fits
    t = np.r_[_centres(0, 30), _centres(30.2, 60)]
    lab = excerpt_labels(t, np.zeros(len(t), int), 8.0, 8.0, 0.5, {0: (0.0, 60.0)})
    assert t[lab >= 0].tolist() == [4.0, 12.0, 20.0, 36.2, 44.2, 52.2]
    # two videos: ids run on; frame rows (no window) by their own times
    f = np.arange(0, 20, 0.5)
    lab = excerpt_labels(np.r_[f, f], np.r_[np.zeros(40, int), np.ones(40, int)], 10.0, spans={0: (0, 20), 1: (0, 20)})
    assert np.array_equal(lab, np.repeat([0, 1, 2, 3], 20))
    # without spans, frame rows end one frame after the last one's time: 20 s at 30 fps holds four of 5 s
    t30 = np.arange(600) / 30
    assert np.array_equal(excerpt_labels(t30, np.zeros(600, int), 5.0), np.repeat([0, 1, 2, 3], 150))
    with pytest.raises(ValueError, match="cannot hold a window"):
        excerpt_labels(t, np.zeros(len(t), int), 4.0, 8.0, 0.5)


def test_labels_of_real_spectral_rows_at_29_97_fps_with_a_gap():
    """The library's head_spectrum rows of a 45 s video at 29.97 fps whose face is lost from 20 to 21 s: the
    8 s excerpts are those a complete window fits (not [16, 24), across the gap), one window each, and
    every window lies inside its excerpt to within half a hop."""
    spec = FEATURE_SETS["head_spectrum"]
    t = np.arange(int(45 * 29.97)) / 29.97
    rv = np.column_stack([0.1 * np.sin(2 * np.pi * f * t) for f in (0.3, 0.7, 1.1)])
    rv[(t >= 20) & (t < 21)] = np.nan
    vf = video_features(rv, ["rx", "ry", "rz"], t, np.ones(len(t), bool), np.ones(len(t), bool), spec)
    lab = excerpt_labels(vf.times, np.zeros(len(vf.times), int), 8.0, spec.window_s, spec.hop_s,
                         {0: (0.0, t[-1] + 1 / 29.97)})
    starts = np.floor(vf.times[lab >= 0] / 8.0) * 8
    assert starts.tolist() == [0.0, 8.0, 24.0, 32.0]  # [40, 48) runs past the end; [16, 24) holds the gap
    assert np.all(np.abs(vf.times[lab >= 0] - (starts + 4.0)) <= spec.hop_s / 2 + 1e-6)
    assert np.bincount(lab[lab >= 0]).tolist() == [1, 1, 1, 1]


def test_scores_are_the_pipeline_rule_on_each_excerpt_and_ties_share_credit():
    rng = np.random.default_rng(0)
    per_row = [[rng.normal(size=6) for _ in range(3)] for _ in range(3)]  # 3 people, the third without excerpts
    labels = [np.array([0, 0, 0, 1, 1, 1]), np.array([-1, 0, 0, 0, 0, -1]), np.full(6, -1)]
    x = excerpt_scores(per_row, labels)
    assert x.s.shape == (3, 3)
    assert x.owner.tolist() == [0, 0, 1]
    assert x.s[2, 1] == pair_score(per_row[2][0][3:]) and x.s[1, 2] == pair_score(per_row[1][1][1:5])
    per_row[1][0][4] = np.nan
    with pytest.raises(DISError, match="non-finite log p on 1 held-out frame"):
        excerpt_scores(per_row, labels)
    with pytest.raises(ValueError, match="one model per person"):
        excerpt_scores(per_row, labels[:2])
    tie = Excerpts(np.array([[1.0, 0.0], [1.0, 2.0], [0.0, 2.0]]), np.array([0, 1]))
    assert excerpt_rows({"m": tie}, 3, n_boot=10)[0][0]["top1"] == 0.5  # each excerpt ties with one other model


def test_one_excerpt_per_person_gives_the_pipelines_whole_session_metrics():
    """An excerpt that is the whole held-out session: top-1, AUC and EER equal identification and
    verification of the N x N matrix, and the top-1 interval equals the pipeline's column bootstrap."""
    rng = np.random.default_rng(3)
    n, m = 12, 40
    mu = rng.normal(scale=0.6, size=n)
    data = [rng.normal(mu[j], 1.0, size=m) for j in range(n)]
    per_row = [[-0.5 * (d - mu[i]) ** 2 for d in data] for i in range(n)]
    x = excerpt_scores(per_row, [np.zeros(m, int)] * n)
    s = score_matrix(per_row)
    iv = _rows({"m": x}, n, 200)["m"]
    ver = verification(tnorm(s))
    assert iv["top1"] == pytest.approx(identification(s)["top1"])
    assert iv["auc"] == pytest.approx(ver["auc"]) and iv["eer"] == pytest.approx(ver["eer"])
    whole = headline_intervals(s, n_boot=200)  # the same draws of people, t-normed again within each draw
    for k in ("top1", "auc", "eer"):
        assert (iv[f"{k}_lo"], iv[f"{k}_hi"]) == pytest.approx((whole[f"{k}_lo"], whole[f"{k}_hi"]))
    assert iv["auc_lo"] < iv["auc"] < iv["auc_hi"]


def test_shorter_excerpts_identify_less_and_a_method_against_itself_is_level():
    """Gaussians of known means: a person is found more often from 20 rows than from 2 (the mean of k rows
    has 1/sqrt(k) of the spread), the excerpts of one person weigh as one person, and a paired difference
    of a method with itself is exactly zero."""
    rng = np.random.default_rng(5)
    n, m = 20, 40
    mu = np.linspace(0, 4, n)
    data = [rng.normal(mu[j], 1.0, size=m) for j in range(n)]
    per_row = [[-0.5 * (d - mu[i]) ** 2 for d in data] for i in range(n)]
    short = excerpt_scores(per_row, [np.arange(m) // 2] * n)  # 20 excerpts of 2 rows each
    long = excerpt_scores(per_row, [np.arange(m) // 20] * n)  # 2 excerpts of 20 rows
    got = _rows({"short": short, "long": long}, n, 200)
    a, b = got["short"], got["long"]
    assert a["top1"] < b["top1"] and a["eer"] > b["eer"]
    # analytic: with spacing d = 4/19 and k rows, an inner person is found when |mean - mu| < d/2
    from scipy.stats import norm
    inner = lambda k: 2 * norm.cdf((4 / 19) / 2 * np.sqrt(k)) - 1  # noqa: E731
    expect = (18 * inner(2) + 2 * (norm.cdf((4 / 19) / 2 * np.sqrt(2)))) / 20
    assert a["top1"] == pytest.approx(expect, abs=0.06)  # 400 excerpts: binomial sd ~0.02
    _, (same,) = excerpt_rows({"a": short, "b": short}, n, [("a", "b")], n_boot=200)  # paired: zero in every draw
    assert all(same[f"{k}_diff"] == same[f"{k}_diff_lo"] == same[f"{k}_diff_hi"] == 0 for k in ("auc", "eer"))
    # top-1's difference holds Newcombe's interval of its people's credits, 0 inside it (no draw says more)
    credit = topk_fractional(short.s, 1, short.owner)[0]  # each excerpt's, paired excerpt by excerpt
    assert same["top1_diff"] == 0 and same["top1_p"] == 1.0
    assert (same["top1_diff_lo"], same["top1_diff_hi"]) == pytest.approx(
        st.paired_rate_interval(credit, credit, owner=short.owner))
    assert same["top1_diff_lo"] < 0 < same["top1_diff_hi"]
    # a person's excerpts weigh as one person: repeating one person's excerpts changes no figure
    dup = Excerpts(np.c_[short.s, short.s[:, short.owner == 0]], np.r_[short.owner, short.owner[short.owner == 0]])
    d = _rows({"dup": dup}, n, 10)["dup"]
    assert all(d[k] == pytest.approx(a[k]) for k in ("top1", "auc", "eer"))
    with pytest.raises(ValueError, match="different excerpts"):
        excerpt_rows({"short": short, "long": long}, n, [("short", "long")], n_boot=10)


def test_streamed_pairs_give_the_pair_score_of_each_excerpt_and_differences_of_the_rows():
    """Scores streamed pair by pair (as from the score blocks, in any order) are the pair-score rule on each
    excerpt's rows; a comparison's difference is the difference of its methods' rows, on the same draws; a
    pair never streamed is an error."""
    rng = np.random.default_rng(7)
    pids, m = ["a", "b", "c", "d"], 24
    mu = rng.normal(scale=0.5, size=4)
    data = {q: rng.normal(mu[j], 1.0, size=m) for j, q in enumerate(pids)}
    lp = {(p, q): -0.5 * (data[q] - mu[i]) ** 2 for i, p in enumerate(pids) for q in pids}
    lab = {8.0: {q: np.arange(m) // 8 for q in pids}, 12.0: {q: np.r_[np.arange(m - 1) // 12, -1] for q in pids}}
    pairs = [(p, q, lp[p, q]) for q in reversed(pids) for p in pids]
    got = stream_excerpts(pairs, pids, lab)
    for length, per in ((8.0, 3), (12.0, 2)):
        assert got[length].owner.tolist() == np.repeat(np.arange(4), per).tolist()
        for i, p in enumerate(pids):
            for j, q in enumerate(pids):
                for e in range(per):
                    assert got[length].s[i, j * per + e] == pair_score(lp[p, q][lab[length][q] == e])
    other = Excerpts(got[8.0].s + rng.normal(scale=0.3, size=got[8.0].s.shape), got[8.0].owner)
    rows, comps = excerpt_rows({"flow": got[8.0], "gaussian": other}, 4, [("flow", "gaussian")], n_boot=200)
    assert [x["method"] for x in rows] == ["flow", "gaussian"] and rows[0]["excerpts"] == 12 and rows[0]["people"] == 4
    assert len(comps) == 1 and (comps[0]["a"], comps[0]["b"]) == ("flow", "gaussian")
    for k in ("top1", "auc", "eer"):
        assert comps[0][f"{k}_diff"] == pytest.approx(rows[0][k] - rows[1][k])
        assert comps[0][f"{k}_diff_lo"] <= comps[0][f"{k}_diff"] <= comps[0][f"{k}_diff_hi"]
    with pytest.raises(ValueError, match="never streamed"):
        stream_excerpts(pairs[1:], pids, lab)


def test_thin_excerpts_are_left_out_against_their_own_videos_rate():
    """An excerpt with fewer than half the rows it would hold without a gap is not scored. The count is its own
    video's: a gap-free 10 fps person (50 rows in 5 s) beside 30 fps people (150) keeps every excerpt (against
    the cohort's fullest excerpt, every 10 and 12 fps excerpt was dropped)."""
    from dis_core.score.excerpts import drop_thin, full_rows

    assert full_rows(5.0, 0.0, 0.0, 1 / 30) == pytest.approx(150) and full_rows(16.0, 8.0, 0.5, 1 / 30) == 17
    a = np.r_[np.zeros(150, int), np.ones(60, int), np.full(80, 2), -1]  # 30 fps: the excerpt of 60 rows had a gap
    b = np.r_[np.zeros(50, int), np.ones(50, int)]  # 10 fps, no gap
    got = drop_thin({"p": a, "q": b}, {"p": np.full(len(a), 150.0), "q": np.full(len(b), 50.0)})
    assert got["p"].tolist() == [0] * 150 + [-1] * 60 + [2] * 80 + [-1] and got["q"].tolist() == b.tolist()
    assert a[150] == 1  # the input is left as it was


def test_holm_over_the_family_of_comparisons_and_metrics():
    """Two comparisons x three metrics are one family of six: Holm's known step-down values; on two metrics
    (the verdicts' top-1 and EER) a family of four, the other metric left without an adjusted p."""
    comps = [{"a": "flow", "b": "gaussian", "top1_p": 0.01, "auc_p": 0.04, "eer_p": 0.03},
             {"a": "flow", "b": "ar", "top1_p": 0.5, "auc_p": 0.02, "eer_p": 0.2}]
    got = holm_family(comps)
    assert [g[f"{k}_p_holm"] for g in got for k in ("top1", "auc", "eer")] == pytest.approx(
        [0.06, 0.12, 0.12, 0.5, 0.10, 0.4])
    assert got[0]["top1_p"] == 0.01 and holm_family([]) == []
    two = holm_family(comps, ("top1", "eer"))  # sorted 0.01, 0.03, 0.2, 0.5 -> 0.04, 0.09, 0.4, 0.5
    assert [g[f"{k}_p_holm"] for g in two for k in ("top1", "eer")] == pytest.approx([0.04, 0.09, 0.5, 0.4])
    assert "auc_p_holm" not in two[0]


def test_an_excerpt_rate_holds_the_wilson_interval_over_its_people_continuously():
    """Every excerpt identified gave [1, 1], one missed nearly as narrow ([0.975, 1] at N = 12): the excerpt rate
    is held to the Wilson interval over the people with excerpts, as the whole session's is, so one more miss never
    narrows it; away from the bounds the bootstrap's interval is kept where wider."""
    from dis_core.score.excerpts import excerpt_draws
    from dis_core.score.stats import boot_result, wilson_interval

    rng = np.random.default_rng(5)
    n, m = 12, 40
    mu = np.arange(n) * 1.0
    data = [rng.normal(mu[j], 0.01, size=m) for j in range(n)]
    per_row = [[-0.5 * (d - mu[i]) ** 2 for d in data] for i in range(n)]
    x = excerpt_scores(per_row, [np.arange(m) // 4] * n)  # 10 excerpts of 4 rows each, all identified
    got = _rows({"m": x}, n, 300)["m"]
    assert got["top1"] == 1 and (got["top1_lo"], got["top1_hi"]) == pytest.approx(wilson_interval(1.0, n))
    worse = Excerpts(x.s.copy(), x.owner)
    worse.s[1, 0], worse.s[0, 0] = 1.0, 0.0  # person 0's first excerpt now goes to person 1's model
    w = _rows({"m": worse}, n, 300)["m"]
    assert w["top1"] == pytest.approx(1 - 1 / 120) and w["top1_lo"] <= got["top1_lo"]
    point, d = excerpt_draws(worse, n, 300, 0)
    plain = boot_result(float(point[0]), d[:, 0])
    assert plain.lo > 0.95 and w["top1_lo"] < 0.76  # the bootstrap alone: nearly no width
