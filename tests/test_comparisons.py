"""Feature set vs feature set: paired comparisons on the participants common to both, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from dis_core.report.comparisons import feature_set_verdict
from dis_core.score import stats as st
from dis_core.score.scoring import compare_feature_sets, feature_set_comparisons


def _perfect(n: int) -> np.ndarray:
    """Own model best for every data column: top-1 1, EER 0, AUC 1."""
    s = -np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(float) - 1.0
    np.fill_diagonal(s, 0.0)
    return s


def _hopeless(n: int) -> np.ndarray:
    """Own model worst for every data column: top-1 0."""
    return -_perfect(n)


def test_only_common_participants_are_compared_in_a_fixed_order():
    pa = ["p1", "p2", "p3", "p4", "p5", "z"]  # z only in a: a model that beats everyone on every data set
    sa = np.vstack([_perfect(5), np.full((1, 5), -0.5)])
    sa = np.hstack([sa, np.full((6, 1), -9.0)])
    sa[5, 5] = 0.0
    sa[5, :5] = 5.0
    assert st.topk_fractional(sa, 1)[1] == pytest.approx(1 / 6)  # z wins every column but its own
    pb = ["p4", "p2", "w", "p5", "p1", "p3"]  # another order, and w only in b
    sb_common = _hopeless(5)  # in a's order p1..p5
    sb = np.zeros((6, 6))
    for i, pi in enumerate(pb):
        for j, pj in enumerate(pb):
            if pi != "w" and pj != "w":
                sb[i, j] = sb_common[pa.index(pi), pa.index(pj)]
            else:
                sb[i, j] = 3.0 if i == j else -3.0
    c = compare_feature_sets(sa, pa, sb, pb, n_boot=200)
    assert c["participants"] == 5
    assert c["top1_diff"] == pytest.approx(1.0)  # 1 - 0 on p1..p5, not 1/6 - ...
    assert c["auc_diff"] == pytest.approx(1.0)
    assert c["eer_diff"] == pytest.approx(-1.0)
    # McNemar: all 5 right in a, wrong in b -> two-sided binomial 2 * 0.5**5
    assert (c["top1_mcnemar_n10"], c["top1_mcnemar_n01"]) == (5, 0)
    assert c["top1_mcnemar_p"] == pytest.approx(2 * 0.5 ** 5)
    # 5 of 5 against 0 of 5: every draw says +1, Newcombe's interval holds what 5 people can say, 1 - hypot of
    # each rate's Wilson distance to its inner end, 1 - 5 / (5 + z^2) both (the bootstrap's alone: [1.00, 1.00])
    gap = 1 - 5 / (5 + float(st._st.norm.ppf(0.975)) ** 2)
    assert (c["top1_diff_lo"], c["top1_diff_hi"]) == pytest.approx((1 - np.hypot(gap, gap), 1.0)) and c["top1_p"] < 0.01


def test_fewer_than_three_common_people_give_no_comparison():
    assert compare_feature_sets(_perfect(4), list("abcd"), _perfect(4), list("cdef")) is None


def test_same_scores_give_no_difference():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((8, 8)) + 2 * np.eye(8)
    pids = [f"p{i}" for i in range(8)]
    c = compare_feature_sets(s, pids, s, pids, n_boot=100)
    assert c["top1_diff"] == 0 and c["top1_p"] == 1.0 and c["top1_mcnemar_p"] == 1.0


def test_family_is_every_pair_and_method_holm_adjusted():
    rng = np.random.default_rng(1)
    n = 12
    pids = [f"p{i}" for i in range(n)]
    base = rng.standard_normal((n, n))
    sets = [("strong", pids, {"flow": base + 4 * np.eye(n), "gaussian": base + 3 * np.eye(n)}),
            ("weak", pids, {"flow": base + 0.2 * np.eye(n), "gaussian": base + 0.1 * np.eye(n)}),
            ("also_weak", pids[::-1], {"flow": (base + 0.2 * np.eye(n))[::-1, ::-1],
                                       "gaussian": (base + 0.1 * np.eye(n))[::-1, ::-1]})]
    rows = feature_set_comparisons(sets, n_boot=300)
    assert [(r["feature_set"], r["method"]) for r in rows] == [
        ("strong vs weak", "flow"), ("strong vs weak", "gaussian"), ("strong vs also_weak", "flow"),
        ("strong vs also_weak", "gaussian"), ("weak vs also_weak", "flow"), ("weak vs also_weak", "gaussian")]
    raw = [r[f"{k}_p"] for r in rows for k in ("top1", "eer", "auc")]
    adj = st.holm(raw)
    np.testing.assert_allclose([r[f"{k}_p_holm"] for r in rows for k in ("top1", "eer", "auc")], adj)
    np.testing.assert_allclose([r["top1_mcnemar_p_holm"] for r in rows], st.holm([r["top1_mcnemar_p"] for r in rows]))
    # weak and also_weak are the same scores in another participant order: no difference at all
    same = [r for r in rows if r["feature_set"] == "weak vs also_weak"]
    assert all(r["top1_diff"] == 0 and r["auc_diff"] == 0 for r in same)
    text = feature_set_verdict(rows).text
    assert "strong better than weak on AUC (flow" in text
    assert "weak vs also_weak (flow): top-1, EER, AUC" in text.split("no supported difference:")[1]
    assert "Holm-corrected across the 18 tests on 10+ common people" in text


def test_a_comparison_on_too_few_people_is_left_out_of_the_family():
    """Twelve people in a and b, five of them also in c: a vs c and b vs c can never be claimed (fewer than 10
    common people) and counted in Holm they only raised a vs b's adjusted p (0.006 to 0.018 in a review)."""
    rng = np.random.default_rng(1)
    n = 12
    pids = [f"p{i}" for i in range(n)]
    base = rng.standard_normal((n, n))
    sets = [("a", pids, {"flow": base + 4 * np.eye(n)}), ("b", pids, {"flow": base + 0.3 * np.eye(n)})]
    alone = feature_set_comparisons(sets, n_boot=300)
    rows = feature_set_comparisons(sets + [("c", pids[:5], {"flow": (base + np.eye(n))[:5, :5]})], n_boot=300)
    assert [r["feature_set"] for r in rows] == ["a vs b", "a vs c", "b vs c"]
    for k in ("top1", "eer", "auc"):
        assert rows[0][f"{k}_p_holm"] == alone[0][f"{k}_p_holm"]
        assert np.isnan(rows[1][f"{k}_p_holm"]) and np.isnan(rows[2][f"{k}_p_holm"])
    assert np.isnan(rows[1]["top1_mcnemar_p_holm"]) and rows[0]["top1_mcnemar_p_holm"] == alone[0]["top1_mcnemar_p_holm"]
    text = feature_set_verdict(rows).text
    assert "Holm-corrected across the 3 tests on 10+ common people" in text
    assert "no claim (fewer than 10 people): a vs c (flow)" in text


def test_a_family_gets_the_draws_to_support_a_difference_no_draw_crosses():
    """Four feature sets x two methods: 36 tests. With 1,000 draws the smallest p (2/1001) times 36 is 0.072,
    so Holm could support nothing however clear; the family gets 2,879 draws and the clear differences
    (a perfect set against hopeless ones, which no draw crosses) are supported; the flows' comparisons with
    their baselines are sized by their own family the same way."""
    from types import SimpleNamespace as NS

    from dis_core.score.evaluate import compare_with_baselines

    n = 12
    pids = [f"p{i}" for i in range(n)]
    rng = np.random.default_rng(2)
    noise = [rng.standard_normal((n, n)) for _ in range(6)]
    sets = [("perfect", pids, {"flow": _perfect(n), "gaussian": _perfect(n)})] + [
        (f"hopeless{k}", pids, {m: _hopeless(n) + 0.01 * noise[2 * k + j] for j, m in enumerate(("flow", "gaussian"))})
        for k in range(3)]
    rows = feature_set_comparisons(sets, n_boot=1000)
    assert len(rows) == 12 and {r["draws"] for r in rows} == {st.draws_for_family(36)} == {2879}
    clear = [r for r in rows if r["feature_set"].startswith("perfect")]
    assert len(clear) == 6  # perfect vs each hopeless set, flow and Gaussian
    assert all(r[f"{k}_p"] == pytest.approx(2 / 2880) and r[f"{k}_p_holm"] < 0.05 for r in clear
               for k in ("top1", "eer", "auc"))
    assert "perfect better than hopeless0 on AUC (flow, 12 people" in feature_set_verdict(rows).text

    results = [NS(methods={m: NS(s=s) for m, s in sc.items()} | {"ar": NS(s=sc["gaussian"])}, comparisons={},
                  participants=pids) for _, _, sc in sets]  # 4 feature sets x 2 baselines x top-1 and EER (what a verdict weighs): 16
    compare_with_baselines(results)
    assert [sorted(r.comparisons) for r in results] == [["ar", "gaussian"]] * 4
    assert {c["draws"] for r in results for c in r.comparisons.values()} == {st.draws_for_family(16)} == {1279}
    compare_with_baselines(results[:1])  # 4 tests: at least 1,000 draws
    assert results[0].comparisons["gaussian"]["draws"] == 1000


def test_verdict_without_comparisons():
    assert "no feature-set comparison" in feature_set_verdict([]).text


def _cmp(top1, eer):
    """A flow-vs-baseline comparison row: (diff, lo, hi, p) of top-1 and of EER."""
    keys = ("diff", "diff_lo", "diff_hi", "p")
    return {**{f"top1_{k}": v for k, v in zip(keys, top1)}, **{f"eer_{k}": v for k, v in zip(keys, eer)}}


def test_the_flows_beat_a_baseline_only_when_no_metric_is_supported_worse_after_holm():
    """'Beat' needs one metric supported better and none supported worse, each supported after Holm's
    correction over every flow-vs-baseline difference of the run (feature sets x baselines x metrics)."""
    from types import SimpleNamespace

    from dis_core.report.comparisons import baseline_holm, baseline_verdict

    def verdict_text(*a):
        return baseline_verdict(*a).text

    better_top1 = (0.20, 0.05, 0.35, 0.001)
    worse_eer, same_eer = (0.10, 0.02, 0.20, 0.001), (0.0, -0.05, 0.05, 0.9)
    people = [f"p{k}" for k in range(12)]
    mixed = SimpleNamespace(feature_set="a", participants=people, comparisons={"gaussian": _cmp(better_top1, worse_eer)})
    clean = SimpleNamespace(feature_set="b", participants=people, comparisons={"gaussian": _cmp(better_top1, same_eer)})
    assert "do NOT beat the Gaussian baseline: mixed, the flows supported better on top-1, the baseline on EER" \
        in verdict_text(mixed)
    worse = SimpleNamespace(feature_set="w", participants=people, comparisons={"gaussian": _cmp(
        (-0.20, -0.35, -0.05, 0.001), same_eer)})
    assert "do NOT beat the Gaussian baseline, which is supported better on top-1" in verdict_text(worse)
    assert "EER flow - baseline +0.10 [+0.02, +0.20], p 0.001: worse (supported)" in verdict_text(mixed)
    assert "the flows beat the Gaussian baseline" in verdict_text(clean)
    # p = 0.03 alone is supported; four such tests in one run are not (Holm: 4 x 0.03 = 0.12)
    weak = [SimpleNamespace(feature_set=f, participants=people, comparisons={"gaussian": _cmp((0.2, 0.05, 0.35, 0.03),
                                                                         (-0.1, -0.2, -0.01, 0.03))})
            for f in ("a", "b")]
    assert "the flows beat" in verdict_text(weak[0])
    ph = baseline_holm(weak)
    assert sorted(ph.values()) == pytest.approx([0.12] * 4)
    assert "do NOT beat" in verdict_text(weak[0], ph) and "Holm p 0.120: no supported difference" in verdict_text(weak[0], ph)
    # a feature set on too few people for a claim is no test of the family: it does not dilute the others
    six = SimpleNamespace(feature_set="c", participants=people[:6], comparisons={"gaussian": _cmp((0.2, 0.05, 0.35, 0.03),
                                                                               (-0.1, -0.2, -0.01, 0.03))})
    assert baseline_holm([*weak, six]) == ph
    assert "Holm p" not in verdict_text(six, ph) and "no claim" in verdict_text(six, ph)
    # not beating is not a finding that the two are equal: the sentence says which it is
    assert "the flows do NOT beat the Gaussian baseline: not shown better (nor shown equal)" in verdict_text(weak[0], ph)

    # two people: every usable bootstrap draw is the same pair, so nothing is claimed whatever p says
    two = SimpleNamespace(feature_set="c", participants=["x", "y"], comparisons={"gaussian": _cmp(better_top1, same_eer)})
    v = verdict_text(two)
    assert "too few people to tell whether the flows beat the Gaussian baseline" in v and "beat the" not in \
        v.replace("whether the flows beat the", "") and "(only 2 people: no claim below 10)" in v
    assert "top-1 flow - baseline +0.20 [+0.05, +0.35], p 0.001: no claim" in v


def test_partner_and_synchrony_lines_say_when_too_few_couples_for_the_interval():
    """Below MIN_COUPLES an interval over couples cannot reach 95% (5 values span a symmetric mean with
    probability 0.9375): the lines say so; at MIN_COUPLES they do not."""
    from types import SimpleNamespace as NS

    from dis_core.report.comparisons import partner_family
    from dis_core.score.synchrony import synchrony_text

    span = lambda n: 1 - 2.0 ** (1 - n)  # noqa: E731 - n values span a symmetric mean with this probability
    assert span(st.MIN_COUPLES - 1) < 0.95 <= span(st.MIN_COUPLES)  # the first number of couples that can cover
    t = {"observed": 0.3, "ci_lo": 0.1, "ci_hi": 0.5, "null_mean": 0.0, "p": 0.01, "p_holm": 0.02}
    few, enough = {**t, "dyads": st.MIN_COUPLES - 1}, {**t, "dyads": st.MIN_COUPLES}
    text = partner_family([NS(feature_set="a", methods={"flow": NS(dyads=few), "gaussian": NS(dyads=enough)})]).text
    assert text.count("falls short of 95%") == 1 and f"only {st.MIN_COUPLES - 1} couples" in text.split("a/gaussian")[0]
    sync = {"signal": "smile", "excess": 0.1, "excess_ci_lo": 0.0, "excess_ci_hi": 0.2, "null_mean": 0.3, "p": 0.04,
            "p_holm": 0.04}
    assert "falls short of 95%" in synchrony_text([{**sync, "dyads": 5}], "family")
    assert "falls short" not in synchrony_text([{**sync, "dyads": 6}], "family")


def test_verdicts_name_a_flow_that_kept_its_gaussian_start_and_few_people_are_no_claim_not_no_difference():
    """A 'flow' that no epoch improved on is its Ledoit-Wolf start: the verdict counts such participants
    (chosen_epoch 0; best_epoch -1 in older records, read in today's terms). A feature-set comparison on 6 people was listed under 'no
    supported difference', which reads as evidence of none; it is 'no claim'. A draw's -7e-19 prints +0.00."""
    from types import SimpleNamespace

    from dis_core.model.result import in_current_terms
    from dis_core.report.comparisons import baseline_verdict, kept_start

    people = [f"p{k}" for k in range(12)]
    training = {p: {"chosen_epoch": 0 if k < 4 else 7} for k, p in enumerate(people)}
    training["p4"] = in_current_terms({"best_epoch": -1})  # a record written before chosen_epoch
    assert in_current_terms({"best_epoch": 6, "epochs": 9}) == {"chosen_epoch": 7, "epochs": 9}
    r = SimpleNamespace(feature_set="a", participants=people, training=training,
                        comparisons={"gaussian": _cmp((0.0, -6.9e-19, 0.1, 1.0), (0.0, -0.05, 0.05, 0.9))})
    assert kept_start(r) == 5
    v = baseline_verdict(r).text
    assert "kept its Gaussian start, no epoch beating it on validation rows, for 5 of 12 participants" in v
    assert v.endswith("refitted on every training row, it is their Gaussian baseline)")  # refitted on all rows
    cond = {p: {**t, "provenance": {"config": {"flow": {"conditional": "lags"}}}} for p, t in training.items()}
    assert baseline_verdict(SimpleNamespace(**{**vars(r), "training": cond})).text.endswith(
        "it is their autoregressive baseline)")  # a conditional flow's start: p(present | past), the AR's
    assert "top-1 flow - baseline +0.00 [+0.00, +0.10]" in v and "-0.00" not in v
    assert "Gaussian start" not in baseline_verdict(SimpleNamespace(**{**vars(r), "training": {}})).text
    pooled = {p: {"chosen_epoch": 0, "provenance": {"pooled_key": "abc"}} for p in people}  # one shape, N places
    v = baseline_verdict(SimpleNamespace(**{**vars(r), "training": pooled})).text
    assert "the pooled flow kept its Gaussian start" in v and "of 12 participants" not in v
    row = {"feature_set": "a vs b", "method": "flow", "participants": 6,
           **{f"{k}_{x}": v for k in ("top1", "eer", "auc") for x, v in
              (("diff", 0.1), ("diff_lo", -0.1), ("diff_hi", 0.3), ("p", 0.4), ("p_holm", 0.8))}}
    f = feature_set_verdict([row])
    assert [label for label, _ in f.lists] == ["supported differences", "no claim (fewer than 10 people)"]
    f = feature_set_verdict([{**row, "participants": 12}])
    assert [label for label, _ in f.lists] == ["supported differences", "no supported difference"]


def test_a_top1_at_chance_below_ten_people_is_its_own_clause_and_no_scores_name_no_dyads():
    """'top-1, EER and AUC: too few people to tell' read as if top-1 were the caveat; a report with nothing
    scored said 'fewer than two complete dyads' of any cohort."""
    from dis_core.report.comparisons import at_chance, at_chance_text, partner_family

    row = {"chance_top1": 1 / 6, "top1_lo": 0.10, "top1_hi": 0.70, "eer_lo": 0.1, "eer_hi": 0.3, "auc_lo": 0.7,
           "auc_hi": 0.9}
    assert at_chance_text(at_chance(row, 6)) == "top-1; EER and AUC: too few people to tell (under 10)"
    assert at_chance_text(at_chance({**row, "top1_lo": 0.3}, 6)) == "EER and AUC: too few people to tell (under 10)"
    assert at_chance_text(at_chance({**row, "eer_hi": 0.6}, 12)) == "top-1, EER"
    assert partner_family([]).text == "no partner test (no feature set was scored)"


def test_top1_above_chance_is_decided_by_its_permutation_test_not_its_interval():
    """5 of 12 identified with p 0.002 against chance while the interval (the models' variation over new cohorts)
    reaches 0: top-1 is above chance; at p 0.2 it is not; an interval wholly below chance stays "worse than
    chance"; EER and AUC still go by their intervals."""
    from dis_core.report.comparisons import at_chance

    row = {"chance_top1": 1 / 12, "top1_lo": 0.0, "top1_hi": 0.84, "top1_chance_p": 0.002, "eer_lo": 0.1,
           "eer_hi": 0.3, "auc_lo": 0.7, "auc_hi": 0.9}
    assert at_chance(row, 12) == []
    assert at_chance({**row, "top1_chance_p": 0.2}, 12) == ["top-1"]
    assert at_chance({**row, "top1_chance_p": 0.9, "top1_lo": 0.0, "top1_hi": 0.05}, 12) == ["top-1 worse than chance"]
    assert at_chance({**row, "eer_hi": 0.6}, 12) == ["EER"]
    del row["top1_chance_p"]  # a record made before the test: the interval, as then
    assert at_chance(row, 12) == ["top-1"]
