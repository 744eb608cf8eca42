"""Scoring: every model against every participant's held-out data, and the metrics of the report.

Pure functions on arrays. Conventions: ``S[i, j]`` is the mean log-likelihood of participant j's
held-out frames under participant i's model (rows = models, columns = data); genuine pairs are
i == j, impostor pairs i != j.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from dis_core.errors import DISError
from dis_core.score.stats import (auc, boot_result, bootstrap_columns, dyad_permutation_test, eer, genuine_impostor,
                                  jackknife_se, mcnemar_top1, pair_similarity, paired_result, participant_draws,
                                  proportion_interval, roc_points, top1_chance_p, topk_fractional, topk_leave_one_out,
                                  small_strata, weighted_auc_eer, with_model_variation, with_paired_rate)


def score_all(log_prob: Sequence[Callable[[np.ndarray], np.ndarray]], data: Sequence[np.ndarray]
              ) -> list[list[np.ndarray]]:
    """Per-frame log p for every (model i, data j): ``out[i][j]`` is an array over j's frames.

    Each model reads each data set once (its log_prob batches internally).
    """
    return [[np.asarray(lp(x), np.float64) for x in data] for lp in log_prob]


TRIM = 0.05
SCORE_RULE = (f"mean per-frame log-likelihood after trimming the lowest and highest {TRIM:.0%} of each pair's "
              f"frames (a handful of impossible frames cannot dominate a score; whole frames only: under "
              f"{round(1 / TRIM)} rows none is trimmed)")


def pair_score(v: np.ndarray, trim: float = TRIM) -> float:
    """One (model, data) score: the trimmed mean of per-frame log p (see ``SCORE_RULE``)."""
    if not len(v):
        return float("nan")
    if trim <= 0:
        return float(np.mean(v))
    # scipy.stats.trim_mean's own operations (partition, then the mean of the kept slice), without its
    # per-call argument handling, which cost more than the flow's log p at scale (bench/scale.py)
    lo = int(trim * len(v))
    hi = len(v) - lo
    if lo > hi:
        raise ValueError("Proportion too big.")
    return float(np.mean(np.partition(np.asarray(v), (lo, hi - 1))[lo:hi]))


def score_matrix(per_frame: list[list[np.ndarray]], trim: float = TRIM,
                 names: Sequence[str] | None = None) -> np.ndarray:
    """N x N scores (rows = models, columns = data); non-finite per-frame log p is an error naming the pair."""
    for i, row in enumerate(per_frame):
        for j, v in enumerate(row):
            check_log_p(v, *((names[i], names[j]) if names is not None else (i, j)))
    return np.array([[pair_score(v, trim) for v in row] for row in per_frame])


def check_log_p(v: np.ndarray, model: object, data: object) -> None:
    """Non-finite per-frame log p is an error naming the model's and the data's participant, never dropped."""
    bad = ~np.isfinite(v)
    if bad.any():
        raise DISError(f"model of {model} gives non-finite log p on {int(bad.sum())} held-out frame(s) of {data}: "
                       "check that participant's features and model")


def norms(per_frame: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """The research workflow's norms: |log p_i(x) - mean log p_i(i's own held-out frames)| per frame
    (the plain mean, as that workflow defined it, not the trimmed pair score)."""
    ref = [float(np.mean(per_frame[i][i])) if len(per_frame[i][i]) else np.nan for i in range(len(per_frame))]
    return [[np.abs(v - ref[i]) for v in row] for i, row in enumerate(per_frame)]


def ranks(s: np.ndarray) -> np.ndarray:
    """rank[i, j]: position of model i among all models for data j (1 = highest likelihood); tied models share
    their mid-rank (two tied first are 1.5 each), as top-1 shares its credit, instead of ranking by row order."""
    from scipy.stats import rankdata

    return rankdata(-np.asarray(s, float), axis=0, method="average")


def identification(s: np.ndarray, ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """Closed-set identification: data j is identified at k when its own model ranks within the top k;
    ties with the own model share the credit fractionally (see :func:`dis_core.score.stats.topk_fractional`)."""
    return {f"top{k}": topk_fractional(s, k)[1] for k in ks if k <= len(s)}


def znorm(s: np.ndarray) -> np.ndarray:
    """Per-model z-normalisation over impostor data: (S[i, j] - mean_{j' != i} S[i, j']) / std.

    NaN cells (excluded pairs, e.g. two bootstrap copies of one person) are skipped."""
    s = np.asarray(s, float)
    imp = s.copy()
    np.fill_diagonal(imp, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without impostors (bootstrap draws) give NaN
        mu = np.nanmean(imp, axis=1, keepdims=True)
        sd = np.nanstd(imp, axis=1, ddof=1, keepdims=True)
    return standardised(s, mu, sd)


NORM_DECIMALS = 9


def standardised(s: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(s - mu) / sd, a spread that is missing, zero or the rounding noise of a constant taken as 1, and
    rounded to NORM_DECIMALS decimals: scores tied in exact arithmetic stay tied however the mean and the
    spread were summed (znorm over a draw's copies, the bootstrap with the copies as weights)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(sd) & (sd > 1e-12 * np.maximum(1.0, np.abs(mu)))
        return np.round((s - mu) / np.where(ok, sd, 1.0), NORM_DECIMALS)


def tnorm(s: np.ndarray) -> np.ndarray:
    """Per-data normalisation over impostor models: (S[i, j] - mean_{i' != j} S[i', j]) / std.

    Raw log-likelihoods of a broad model and a narrow one are on different scales; comparing each
    score with what the other models give the same data puts genuine pairs on one threshold.
    """
    return znorm(np.asarray(s, float).T).T


def verification(s: np.ndarray) -> dict[str, object]:
    """ROC AUC and the exact equal error rate (full ROC, interpolated at FPR = FNR), genuine = own
    held-out data, impostor = everyone else's; the ROC points for figures."""
    g, imp = genuine_impostor(s)
    if not len(g) or not len(imp):
        return {"auc": float("nan"), "eer": float("nan"), "fpr": np.array([0, 1]), "tpr": np.array([0, 1])}
    _, fpr, fnr = roc_points(g, imp)
    return {"auc": auc(g, imp), "eer": eer(g, imp), "fpr": fpr[::-1], "tpr": (1 - fnr)[::-1]}


def top1_of(s: np.ndarray) -> float:
    return topk_fractional(s, 1)[1]


def _defined(fn, norm=tnorm):
    """A verification metric on ``norm(s)`` that is NaN on a matrix without genuine or impostor cells (a
    bootstrap draw of one person twice), so that draw is left out of the interval instead of failing."""
    def metric(s: np.ndarray) -> float:
        g, imp = genuine_impostor(norm(s))
        return fn(g, imp) if len(g) and len(imp) else float("nan")
    return metric


eer_tnorm = _defined(eer)
auc_tnorm = _defined(auc)


HEADLINE = {"top1": top1_of, "eer": eer_tnorm, "auc": auc_tnorm}
MIN_COMMON = 3  # people two feature sets must share to be compared (compare_feature_sets)
VERDICT_KEYS = ("top1", "eer")  # what a flow-vs-baseline verdict weighs (report.comparisons.baseline_verdict)
# Verification on the raw and the z-normed scores: reported beside the headline (t-norm) with their own
# intervals from the same draws, but not compared between methods.
SUPPLEMENTARY = {"eer_raw": _defined(eer, np.asarray), "auc_raw": _defined(auc, np.asarray),
                 "eer_znorm": _defined(eer, znorm), "auc_znorm": _defined(auc, znorm)}


_DRAWS: "OrderedDict[tuple, dict[str, np.ndarray]]" = OrderedDict()
_DRAWS_KEPT = 64  # a run's matrices (feature sets x methods, and their cuts to common people): 7 x n_boot floats each


def headline_draws(s: np.ndarray, n_boot: int = 1000, seed: int = 0, supplementary: bool = True
                   ) -> dict[str, np.ndarray]:
    """Every HEADLINE metric on every bootstrap draw of people (``participant_draws(N, n_boot, seed)``):
    top-1 as :func:`bootstrap_columns` (each drawn person's credit among all N models); EER and AUC under the
    duplicate rule of :func:`bootstrap_participants`, the same numbers as on S[idx][:, idx], computed on the
    draw's distinct people with their counts as weights (one sort per draw instead of five, no N x N copy).
    Remembered per matrix, so that a method's comparisons reuse
    its draws instead of redrawing them (every comparison of one run uses the same seed); the arrays are
    read-only. Without ``supplementary`` only HEADLINE is drawn (a third of the cost: what comparisons use)
    unless the draws with it are already remembered."""
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"headline_draws needs an integer seed (paired comparisons draw the same people for "
                         f"both methods), not {seed!r}")
    s = np.ascontiguousarray(s, dtype=float)
    own = np.diag(s)
    if not np.all(np.isfinite(own)):
        raise DISError(f"non-finite genuine score for data column {int(np.argmax(~np.isfinite(own)))}")
    key = (hashlib.sha1(memoryview(s).cast("B")).hexdigest(), s.shape, n_boot, int(seed), True)
    if not supplementary and key not in _DRAWS:
        key = key[:-1] + (False,)
    if key not in _DRAWS:
        out = {name: np.empty(n_boot) for name in (*HEADLINE, *(SUPPLEMENTARY if supplementary else ()))}
        credit = topk_fractional(s, 1)[0]  # against all N models: the gallery is not resampled (bootstrap_columns)
        for b, idx in enumerate(participant_draws(len(s), n_boot, seed)):
            out["top1"][b] = credit[idx].mean()
            for name, v in _draw_metrics(s, idx, supplementary).items():
                out[name][b] = v
        for v in out.values():
            v.setflags(write=False)
        _DRAWS[key] = out
        if len(_DRAWS) > _DRAWS_KEPT:
            _DRAWS.popitem(last=False)
    _DRAWS.move_to_end(key)
    return dict(_DRAWS[key])


def _draw_metrics(s: np.ndarray, idx: np.ndarray, supplementary: bool = True) -> dict[str, float]:
    """eer and auc of one draw after the draw's own t-norm, and (SUPPLEMENTARY) on its raw and z-normed scores."""
    u, count = np.unique(idx, return_counts=True)
    w = count.astype(float)  # copies of each distinct person in the draw
    sub = s[np.ix_(u, u)]
    off = ~np.eye(len(u), dtype=bool)
    ww = np.outer(w, w)  # an impostor cell's weight: copies of its model x copies of its data
    out: dict[str, float] = {}
    variants = [("", weighted_tnorm(sub, w, off))]
    if supplementary:
        variants += [("_raw", sub), ("_znorm", weighted_tnorm(sub.T, w, off).T)]
    for suffix, t in variants:
        g_ok = np.isfinite(np.diag(t))
        i_ok = np.isfinite(t) & off
        if not g_ok.any() or not i_ok.any():  # e.g. one person drawn N times: no impostor (_defined)
            out["eer" + suffix] = out["auc" + suffix] = float("nan")
            continue
        out["auc" + suffix], out["eer" + suffix] = weighted_auc_eer(np.diag(t)[g_ok], w[g_ok], t[i_ok], ww[i_ok])
    return out


def weighted_tnorm(sub: np.ndarray, w: np.ndarray, off: np.ndarray) -> np.ndarray:
    """t-norm of a draw's distinct people, each column against the other people's models present with
    their copies counted: :func:`tnorm` of S[idx][:, idx] (copies of one person are excluded pairs).
    ``sub`` may have more columns than rows (several held-out excerpts per person): ``off`` marks the
    impostor cells, ``w`` the rows' copies."""
    fin = ~np.isnan(sub) & off  # as nanmean: an infinite impostor makes the column's normalisation infinite
    n_imp = w @ fin
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = (w @ np.where(fin, sub, 0.0)) / n_imp
        var = (w @ np.where(fin, sub - mu, 0.0) ** 2) / np.where(n_imp > 1, n_imp - 1, np.nan)
        return standardised(sub, mu, np.sqrt(var))


def headline_intervals(s: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """95% percentile intervals of the headline metrics, of the raw and z-norm verification
    (SUPPLEMENTARY) and of top-3/top-5 by bootstrap over participants (people, not frames), with each
    metric's chance level (top-k: k / N); identification rates widened to hold their Wilson interval
    (:func:`dis_core.score.stats.proportion_interval`)."""
    out: dict[str, float] = {}
    n = len(s)
    draws = headline_draws(s, n_boot, seed)
    for name in (*HEADLINE, *SUPPLEMENTARY):
        b = boot_result(float("nan"), draws[name])
        out[f"{name}_lo"], out[f"{name}_hi"] = b.lo, b.hi
    # a rate: never narrower than Wilson's, nor than the jackknife's over people (models and data)
    out["top1_lo"], out["top1_hi"] = proportion_interval(float(topk_fractional(s, 1)[0].mean()), out["top1_lo"],
                                                         out["top1_hi"], n, se=jackknife_se(topk_leave_one_out(s, 1)))
    out.update(chance_top1=1.0 / n, chance_auc=0.5, chance_eer=0.5, top1_chance_p=top1_chance_p(s))
    below = out["top1_lo"]
    for k in (3, 5):
        if k <= n:  # as identification(): top-k only where there are k models
            b = bootstrap_columns(topk_fractional(s, k)[0], n_boot, seed, se=jackknife_se(topk_leave_one_out(s, k)))
            # top-k is never below top-1 for anyone, so neither is its lower bound (the jackknife, whose leave-one-out
            # values rank among one model fewer, read 0.58 [0.00, 1.00] for top-3 beside top-1 0.50 [0.21, 0.79])
            below = max(b.lo, below)
            out.update({f"top{k}_lo": below, f"top{k}_hi": b.hi, f"chance_top{k}": k / n})
    return out


def compare_methods(s_a: np.ndarray, s_b: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Method a vs method b on the same participants: paired bootstrap of the difference of each
    headline metric (a - b) with its 95% interval and p, and exact McNemar on top-1 correctness."""
    s_a, s_b = np.asarray(s_a, float), np.asarray(s_b, float)
    if s_a.shape != s_b.shape:
        raise DISError(f"score matrices differ in shape: {s_a.shape} vs {s_b.shape}")
    out: dict[str, float] = {}
    da, db = headline_draws(s_a, n_boot, seed, False), headline_draws(s_b, n_boot, seed, False)
    ca, cb = topk_fractional(s_a, 1)[0], topk_fractional(s_b, 1)[0]
    for name, fn in HEADLINE.items():
        r = paired_result(float(fn(s_a) - fn(s_b)), da[name] - db[name])
        if name == "top1":  # the models' own variation, which the draws keep fixed, and Newcombe's interval
            r = with_model_variation(r, jackknife_se(topk_leave_one_out(s_a, 1) - topk_leave_one_out(s_b, 1)))
            r = with_paired_rate(r, ca, cb)
        out.update({f"{name}_diff": r.diff, f"{name}_diff_lo": r.lo, f"{name}_diff_hi": r.hi, f"{name}_p": r.p})
    for name, fn in SUPPLEMENTARY.items():  # the point difference on raw and z-norm scores: does a claim hold there?
        out[f"{name}_diff"] = float(fn(s_a) - fn(s_b))
    mc = mcnemar_top1(ca == 1.0, cb == 1.0)
    out.update(top1_mcnemar_n10=mc["n10"], top1_mcnemar_n01=mc["n01"], top1_mcnemar_p=mc["p"], draws=n_boot)
    return out


def compare_feature_sets(s_a: np.ndarray, pids_a: Sequence[str], s_b: np.ndarray, pids_b: Sequence[str],
                         n_boot: int = 1000, seed: int = 0) -> dict[str, float] | None:
    """Feature set a vs feature set b (same method) on the participants scored in both: each matrix is cut
    to those people (in a's order) and compared as in :func:`compare_methods` (paired bootstrap of the
    difference a - b of top-1/EER/AUC, exact McNemar on top-1). Top-1 is then over that common closed set,
    so it can differ from each feature set's own figure. None when fewer than 3 people are common."""
    where_b = {p: k for k, p in enumerate(pids_b)}
    common = [p for p in pids_a if p in where_b]
    if len(common) < MIN_COMMON:
        return None
    ia = np.array([list(pids_a).index(p) for p in common])
    ib = np.array([where_b[p] for p in common])
    out = compare_methods(np.asarray(s_a, float)[np.ix_(ia, ia)], np.asarray(s_b, float)[np.ix_(ib, ib)],
                          n_boot=n_boot, seed=seed)
    return {"participants": len(common), **out}


def feature_set_comparisons(scored: Sequence[tuple[str, Sequence[str], dict[str, np.ndarray]]],
                            n_boot: int = 1000, seed: int = 0) -> list[dict[str, object]]:
    """Every pair of feature sets, per method, on their common participants (:func:`compare_feature_sets`).

    ``scored`` holds (feature set, participants, {method: S}). The family is every (pair, method, metric)
    bootstrap p in the run on at least MIN_PEOPLE common people (fewer: no claim, Holm p NaN, as a test that
    can never be claimed would only raise the others' adjusted p): each row gets Holm-adjusted ``<metric>_p_holm`` (top1, eer, auc) and
    ``top1_mcnemar_p_holm`` over that family, so a claim survives however many comparisons were made; the
    draws are at least ``n_boot`` and as many as the family needs (:func:`draws_for_family`)."""
    from dis_core.score.stats import MIN_PEOPLE, draws_for_family, holm

    common = lambda a, b: len(set(a[1]) & set(b[1]))  # noqa: E731
    pairs = [(scored[x], scored[y], m) for x in range(len(scored)) for y in range(x + 1, len(scored))
             for m in scored[x][2] if m in scored[y][2] and common(scored[x], scored[y]) >= MIN_COMMON]
    tested = sum(common(a, b) >= MIN_PEOPLE for a, b, _ in pairs)  # fewer people: no claim, so not in the family
    n_boot = draws_for_family(tested * len(HEADLINE), at_least=n_boot)
    rows: list[dict[str, object]] = []
    for (fa, pa, sa), (fb, pb, sb), m in pairs:
        c = compare_feature_sets(sa[m], pa, sb[m], pb, n_boot=n_boot, seed=seed)
        rows.append({"comparison": "feature_set", "feature_set": f"{fa} vs {fb}", "method": m,
                     "a": f"{fa}/{m}", "b": f"{fb}/{m}", **c})
    keys = [f"{k}_p" for k in HEADLINE]
    fam = [r for r in rows if r["participants"] >= MIN_PEOPLE]  # the others' Holm p: NaN (no claim is made)
    adj = holm([r[k] for r in fam for k in keys]) if fam else []
    mc = holm([r["top1_mcnemar_p"] for r in fam]) if fam else []
    for r in rows:
        r.update({f"{k}_holm": float("nan") for k in keys}, top1_mcnemar_p_holm=float("nan"))
    for i, r in enumerate(fam):
        r.update({f"{k}_holm": float(adj[i * len(keys) + j]) for j, k in enumerate(keys)},
                 top1_mcnemar_p_holm=float(mc[i]))
    return rows


def relation(dyads: Sequence[str], i: int, j: int) -> str:
    """'self', 'partner' (same non-empty dyad) or 'stranger'."""
    if i == j:
        return "self"
    if dyads[i] and dyads[i] == dyads[j]:
        return "partner"
    return "stranger"


def dyad_pairs(dyads: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of the dyads that have exactly two scored members (others cannot be tested)."""
    members: dict[str, list[int]] = {}
    for i, d in enumerate(dyads):
        if d:
            members.setdefault(d, []).append(i)
    return [(m[0], m[1]) for m in members.values() if len(m) == 2]


def partner_test(s: np.ndarray, dyads: Sequence[str], groups: Sequence[str] | None = None,
                 n_perm: int = 2000, seed: int = 0) -> dict[str, float] | None:
    """Partners vs strangers: one statistic per dyad on the symmetric pair similarity, against a
    permutation null that re-pairs people into pseudo-couples (within groups where given).
    Raises DISError when the groups do not allow it (a dyad spanning two groups)."""
    pairs = dyad_pairs(dyads)
    if len(pairs) < 2 or len(s) < 4:
        return None
    sim = pair_similarity(s)
    g = np.asarray(groups) if groups is not None else None
    r = dyad_permutation_test(sim, pairs, groups=g, n_perm=n_perm, seed=seed)
    labels = [d for d in dyads if d]
    incomplete = len(set(labels)) - len(pairs)  # a partner not scored, or three people under one label
    return {"dyads": r["dyads"], "dyads_alone": r["dyads_alone"], "dyads_incomplete": incomplete, "statistic": "mean over dyads of partner "
            "similarity minus the members' mean similarity to strangers", "observed": r["observed"], "ci_lo": r["ci_lo"],
            "ci_hi": r["ci_hi"], "chance": r["chance"], "null_mean": r["null_mean"], "null_sd": r["null_sd"], "excess": r["excess"],
            "excess_ci_lo": r["excess_ci_lo"], "excess_ci_hi": r["excess_ci_hi"], "effect_size": r["effect_size"],
            "p": r["p"], "exact": r["exact"], "p_floor": r["p_floor"], "smallest_stratum": r["smallest_stratum"],
            "interval": "expanded percentile bootstrap over couples (the observed's: of their statistics with the "
                        "members' mean similarity to strangers centred; the excess's: of their statistics less the "
                        "jackknife values of chance)" + small_strata(r["smallest_stratum"]),
            "alternative": "one-sided: partners more alike than pseudo-couples",
            "permutations": len(r["null"])}  # every pairing when there are at most n_perm (exact), else n_perm
