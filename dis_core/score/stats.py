"""Statistics for the score matrix: exact verification metrics, fractional identification, participant
bootstraps, and a dyad (couple) permutation test.

Pure numpy/scipy. Conventions as in :mod:`dis_core.score.scoring`: ``S[i, j]`` is the mean log-likelihood of
participant j's held-out data under participant i's model (rows = models, columns = data); genuine
pairs are the diagonal. A NaN *off*-diagonal cell means "excluded" (see :func:`bootstrap_participants`);
the matrix-level metrics here skip such cells.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import stats as _st

from dis_core.errors import DISError

__all__ = [
    "check_finite", "genuine_impostor", "roc_points", "eer", "auc", "det_points", "eer_matrix",
    "auc_matrix", "weighted_auc_eer", "topk_fractional", "BootResult", "PairedResult", "bootstrap_participants",
    "participant_draws", "top1_chance_p", "topk_leave_one_out", "jackknife_se", "bootstrap_columns", "column_draws",
    "wilson_interval", "proportion_interval", "rate_result",
    "boot_result", "paired_bootstrap", "paired_result", "draws_for_family", "p_text", "signed", "mcnemar_top1", "pair_similarity",
    "dyad_statistic", "dyad_permutation_test",
    "holm", "benjamini_hochberg", "paired_rate_interval", "paired_rate_p", "with_paired_rate", "couples_in_strata", "pseudo_couple_values", "excess_values", "small_strata", "couples_left_out", "classical_mds", "simulate_dyad_scores",
]


# ----------------------------------------------------------------------------------------------
# input checks


def check_finite(s: np.ndarray, names: Sequence[str] | None = None) -> None:
    """Raise DISError naming the first non-finite (model, data) cell, so a broken model is found by name.

    ``names`` labels the participants (rows and columns alike); indices are used when omitted.
    """
    s = np.asarray(s, dtype=float)
    if s.ndim != 2:
        raise DISError(f"score matrix must be 2-D, got shape {s.shape}")
    bad = np.argwhere(~np.isfinite(s))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        lab = (lambda k: f"{names[k]!r}") if names is not None else (lambda k: f"#{k}")
        raise DISError(f"non-finite score {s[i, j]} for model {lab(i)} on data {lab(j)} "
                       f"(row {i}, column {j}; {len(bad)} non-finite cell(s) in all)")


def genuine_impostor(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genuine (diagonal) and impostor (finite off-diagonal) scores of a square matrix; NaN cells skipped."""
    s = np.asarray(s, dtype=float)
    n = len(s)
    off = ~np.eye(n, dtype=bool)
    g = np.diag(s)
    imp = s[off]
    return g[np.isfinite(g)], imp[np.isfinite(imp)]


# ----------------------------------------------------------------------------------------------
# verification


def roc_points(genuine_scores, impostor_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full ROC over every distinct threshold (accept when score >= t): thresholds, FPR, FNR.

    Starts at t = -inf (FPR 1, FNR 0) and ends at t = +inf (FPR 0, FNR 1); nothing is dropped.
    """
    g = np.sort(np.asarray(genuine_scores, float))
    imp = np.sort(np.asarray(impostor_scores, float))
    if len(g) == 0 or len(imp) == 0:
        raise DISError("need at least one genuine and one impostor score")
    t = np.unique(np.concatenate([g, imp]))
    t = np.concatenate([[-np.inf], t, [np.inf]])
    fpr = 1.0 - np.searchsorted(imp, t, side="left") / len(imp)   # P(impostor >= t)
    fnr = np.searchsorted(g, t, side="left") / len(g)             # P(genuine < t)
    fpr[-1], fnr[-1] = 0.0, 1.0
    return t, fpr, fnr


def eer(genuine_scores, impostor_scores) -> float:
    """Exact equal error rate: the full ROC, linearly interpolated where FPR - FNR changes sign.

    Unlike a pruned ROC (roc_curve's default drop_intermediate) no operating point can be skipped.
    """
    _, fpr, fnr = roc_points(genuine_scores, impostor_scores)
    return _eer_of(fpr, fnr)


def _eer_of(fpr: np.ndarray, fnr: np.ndarray) -> float:
    """The EER of a full ROC (from t = -inf to +inf): interpolated where FPR - FNR changes sign."""
    d = fpr - fnr                                 # non-increasing from +1 to -1
    k = int(np.argmax(d <= 0))                    # first point at or past the crossing
    if d[k] == 0:
        return float(fpr[k])
    a = d[k - 1] / (d[k - 1] - d[k])
    return float(fpr[k - 1] + a * (fpr[k] - fpr[k - 1]))


def weighted_auc_eer(genuine, w_genuine, impostor, w_impostor) -> tuple[float, float]:
    """(AUC, EER) of scores that stand for ``w`` identical copies each (integer counts): exactly
    :func:`auc` and :func:`eer` of the expanded lists, from one sort. A bootstrap draw that takes a
    person twice needs no N x N copy of the matrix (:func:`dis_core.score.scoring.headline_draws`)."""
    g, imp = np.asarray(genuine, float), np.asarray(impostor, float)
    wg, wi = np.asarray(w_genuine, float), np.asarray(w_impostor, float)
    n_g, n_i = wg.sum(), wi.sum()
    if n_g == 0 or n_i == 0:
        raise DISError("need at least one genuine and one impostor score")
    v = np.concatenate([g, imp])
    order = np.argsort(v)  # ties need no order: equal values are taken together below
    v = v[order]
    genuine_first = order < len(g)
    w = np.concatenate([wg, wi])[order]
    cum_g = np.r_[0.0, np.cumsum(np.where(genuine_first, w, 0.0))]  # integer counts: exact in float64
    cum_i = np.r_[0.0, np.cumsum(np.where(genuine_first, 0.0, w))]
    edge = np.flatnonzero(np.r_[True, v[1:] != v[:-1], True])  # where each distinct value starts (and the end)
    g_less, i_less = cum_g[edge[:-1]], cum_i[edge[:-1]]       # weighted counts strictly below each value
    g_eq, i_eq = np.diff(cum_g[edge]), np.diff(cum_i[edge])
    # the ROC of roc_points: t = -inf, every distinct value, +inf
    fpr = np.r_[1.0, 1.0 - i_less / n_i, 0.0]
    fnr = np.r_[0.0, g_less / n_g, 1.0]
    a = float(np.sum(g_eq * (i_less + 0.5 * i_eq)) / (n_g * n_i))  # Mann-Whitney, ties 0.5
    return a, _eer_of(fpr, fnr)


def auc(genuine_scores, impostor_scores) -> float:
    """ROC AUC as the Mann-Whitney probability P(genuine > impostor) with ties counted 0.5."""
    g = np.asarray(genuine_scores, float)
    imp = np.asarray(impostor_scores, float)
    if len(g) == 0 or len(imp) == 0:
        raise DISError("need at least one genuine and one impostor score")
    r = _st.rankdata(np.concatenate([g, imp]))    # mid-ranks: ties -> 0.5
    u = r[: len(g)].sum() - len(g) * (len(g) + 1) / 2
    return float(u / (len(g) * len(imp)))


def det_points(genuine_scores, impostor_scores) -> tuple[np.ndarray, np.ndarray]:
    """DET curve points (FPR, FNR) at every threshold, for plotting the whole trade-off."""
    _, fpr, fnr = roc_points(genuine_scores, impostor_scores)
    return fpr, fnr


def eer_matrix(s: np.ndarray) -> float:
    """Exact EER of a score matrix (genuine = diagonal, impostor = finite off-diagonal)."""
    return eer(*genuine_impostor(s))


def auc_matrix(s: np.ndarray) -> float:
    """Mann-Whitney AUC of a score matrix (genuine = diagonal, impostor = finite off-diagonal)."""
    return auc(*genuine_impostor(s))


# ----------------------------------------------------------------------------------------------
# identification


def topk_fractional(s: np.ndarray, k: int = 1, owner: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Closed-set top-k credit per data column with ties shared fairly, and its mean.

    If own model has g competitors strictly above it and t tied with it, it occupies one of the t + 1
    positions g+1 .. g+t+1 with equal chance: credit = clip(k - g, 0, t + 1) / (t + 1). NaN off-diagonal
    cells are not competitors. Per-participant credits are returned so they can be bootstrapped.
    ``owner``: the own model (row) of each column, when columns are not the models' own data in order
    (several held-out excerpts per person); default the diagonal.
    """
    s = np.asarray(s, float)
    cols = np.arange(s.shape[1])
    rows = cols if owner is None else np.asarray(owner)
    own = s[rows, cols]
    if not np.all(np.isfinite(own)):
        raise DISError(f"non-finite genuine score for data column {int(np.argmax(~np.isfinite(own)))}")
    off = np.ones(s.shape, bool)
    off[rows, cols] = False
    with np.errstate(invalid="ignore"):
        above = ((s > own[None, :]) & off).sum(axis=0)
        tied = ((s == own[None, :]) & off).sum(axis=0)
    credit = np.clip(k - above, 0, tied + 1) / (tied + 1)
    return credit.astype(float), float(credit.mean())


def top1_chance_p(s: np.ndarray, n_perm: int = 9999, seed: int = 0, block: int = 1000) -> float:
    """One-sided p of top-1 against chance: the share of random assignments of the models to the data columns
    (the owners permuted) identifying as many, credit shared at ties as :func:`topk_fractional` shares it, the
    observed assignment counted; exact, over every assignment, where there are no more than the draws (up to 7
    people: 6 of 6 read 0.0021 from draws, 1/720 exactly). A test of "no identity information" on these people, for "above chance":
    top-1's interval (which holds the models' own variation over new cohorts) reached 0 at 5 of 12 people on
    a cohort where this p was 0.002."""
    s = np.asarray(s, float)
    n = s.shape[1]
    if not np.isfinite(s).all():  # an excluded cell that a permutation made someone's own cannot be scored
        raise DISError("the permutation test of top-1 needs a complete, finite score matrix")
    top = s.max(axis=0)
    at_top = s == top[None, :]  # credit[j, i]: column i's top-1 credit were model j its own
    credit = np.where(at_top, 1.0 / np.maximum(at_top.sum(axis=0), 1)[None, :], 0.0)
    observed = float(topk_fractional(s, 1)[0].sum())
    cols, hits = np.arange(n), 0
    if math.factorial(n) <= n_perm + 1:  # every assignment (7 people: 5,040): the exact p, no draws
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        return float((credit[perms, cols[None, :]].sum(axis=1) >= observed - 1e-9).mean())
    rng = np.random.default_rng(seed)
    for start in range(0, n_perm, block):
        perms = rng.permuted(np.tile(cols, (min(block, n_perm - start), 1)), axis=1)
        hits += int((credit[perms, cols[None, :]].sum(axis=1) >= observed - 1e-9).sum())
    return (hits + 1) / (n_perm + 1)


def topk_leave_one_out(s: np.ndarray, k: int = 1, owner: np.ndarray | None = None, block: int = 256) -> np.ndarray:
    """(N,) top-k of the cohort without participant i (their model and their data), for each i: the
    delete-one jackknife of :func:`topk_fractional`, in O(N x columns) time and O(block x columns) memory
    (removing model i only changes the competitors above or tied with each other column's own model). With
    ``owner`` (several columns a person, e.g. excerpts) a person's credit is the mean over their columns, each
    person weighing as one; NaN where nobody else has columns."""
    s = np.asarray(s, float)
    n, m = s.shape
    owner = np.arange(m) if owner is None else np.asarray(owner)
    if n < 2 or m == 0:
        return np.full(n, np.nan)
    cols = np.arange(m)
    own = s[owner, cols]

    def beats(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(models a..b, columns) above and tied with each column's own model, the own cell itself excluded."""
        mine = owner[None, :] == np.arange(a, b)[:, None]
        with np.errstate(invalid="ignore"):
            return (s[a:b] > own) & ~mine, (s[a:b] == own) & ~mine

    above, tied = np.zeros(m, np.int64), np.zeros(m, np.int64)
    for a in range(0, n, block):
        g, e = beats(a, min(a + block, n))
        above += g.sum(axis=0)
        tied += e.sum(axis=0)
    order = np.argsort(owner, kind="stable")  # columns grouped by person, for one sum per person
    people, starts, count = np.unique(owner[order], return_index=True, return_counts=True)
    where = np.full(n, -1)
    where[people] = np.arange(len(people))  # each person's place among those with columns (-1: none)
    out = np.empty(n)
    for a in range(0, n, block):  # models a..b removed in turn
        b = min(a + block, n)
        g, e = beats(a, b)
        ab, ti = above - g, tied - e
        means = np.add.reduceat((np.clip(k - ab, 0, ti + 1) / (ti + 1))[:, order], starts, axis=1) / count
        pos = where[a:b]
        mine = np.where(pos >= 0, means[np.arange(b - a), np.maximum(pos, 0)], 0.0)  # the removed person's data
        others = len(people) - (pos >= 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a:b] = np.where(others > 0, (means.sum(axis=1) - mine) / others, np.nan)
    return out


def jackknife_se(values: np.ndarray) -> float:
    """Standard error from delete-one jackknife values: sqrt((N - 1) / N * sum (v_i - mean)^2), over the finite
    ones (NaN where fewer than 2: a value undefined without its person)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.sqrt((len(v) - 1) / len(v) * ((v - v.mean()) ** 2).sum())) if len(v) > 1 else float("nan")


# ----------------------------------------------------------------------------------------------
# bootstraps


class BootResult(NamedTuple):
    point: float
    lo: float
    hi: float
    dist: np.ndarray


class PairedResult(NamedTuple):
    diff: float
    lo: float
    hi: float
    p: float
    dist: np.ndarray


def _resample(s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """S[idx][:, idx] with off-diagonal cells that pair two copies of one person set to NaN (excluded)."""
    sub = s[np.ix_(idx, idx)].astype(float, copy=True)
    same = idx[:, None] == idx[None, :]
    np.fill_diagonal(same, False)
    sub[same] = np.nan
    return sub


def participant_draws(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) indices of people drawn with replacement: the draws of every bootstrap here."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_participants(s: np.ndarray, metric_fn: Callable[[np.ndarray], float], n_boot: int = 2000,
                           seed: int = 0, ci: float = 0.95) -> BootResult:
    """Percentile bootstrap over participants (people, not frames): metric_fn on S[idx][:, idx].

    Rule for duplicates: a copy of participant i is genuine only on its own diagonal cell; the
    off-diagonal cells that pair two copies of the same person (same model, same data) are set to NaN,
    i.e. excluded - neither impostor scores nor identification competitors. metric_fn must skip NaN
    off-diagonal cells (all matrix metrics in this module do). For pairwise metrics (AUC, EER), whose
    value does not depend on how many people compete; identification rates: :func:`bootstrap_columns`.
    """
    s = np.asarray(s, float)
    point = float(metric_fn(s))
    dist = np.array([metric_fn(_resample(s, idx)) for idx in participant_draws(len(s), n_boot, seed)], float)
    return boot_result(point, dist, ci)


def wilson_interval(point: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``point`` of ``n`` units (Wilson 1927; Brown, Cai & DasGupta 2001).
    For a mean of n credits in [0, 1] it is at least as wide as for n coin flips of that mean, whose variance
    p (1 - p) / n no such mean exceeds."""
    z = float(_st.norm.ppf(0.5 + ci / 2))
    centre = (point + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(max(point * (1 - point), 0.0) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_interval(point: float, lo: float, hi: float, n: int, ci: float = 0.95,
                        se: float | None = None) -> tuple[float, float]:
    """The interval of an identification rate over ``n`` people: the percentile bootstrap's (lo, hi) widened to
    hold the Wilson score interval. Near 0 and 1 the percentile interval of a proportion is far too narrow (of
    zero width when everyone is identified: 40 of 40 gave [1.000, 1.000]); simulated 95% coverage at a true rate
    of 0.95 was 0.84 at N = 40 and 0.43 at N = 12, against 0.99 for this one (0.96-0.97 at rates near 0.5, where
    the two agree). With ``se`` (the jackknife's over people, :func:`topk_leave_one_out`) it also holds
    point +- z se, within [0, 1]: the bootstrap keeps the models fixed, and a model that outscores many people's
    own (a broad density) takes their credits together (coverage 0.81-0.92 without it, 0.93-0.95 with it:
    bench/top1_coverage.py)."""
    if not (n > 0 and np.isfinite(point)):
        return lo, hi
    wl, wh = wilson_interval(point, n, ci)
    lo, hi = float(np.fmin(lo, wl)), float(np.fmax(hi, wh))
    if se is not None and np.isfinite(se):
        z = float(_st.norm.ppf(0.5 + ci / 2))
        lo, hi = min(lo, max(point - z * se, 0.0)), max(hi, min(point + z * se, 1.0))
    return lo, hi


def rate_result(b: BootResult, n: int, ci: float = 0.95, se: float | None = None) -> BootResult:
    """A rate's bootstrap result with its interval held to the Wilson interval over ``n`` people and, with
    ``se``, to point +- z se (:func:`proportion_interval`)."""
    lo, hi = proportion_interval(b.point, b.lo, b.hi, n, ci, se)
    return b._replace(lo=lo, hi=hi)


def bootstrap_columns(credit: np.ndarray, n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
                      se: float | None = None) -> BootResult:
    """Percentile bootstrap over participants of a mean of per-data-column credits (top-k identification,
    :func:`topk_fractional`): each column's credit is computed once against all N models and a draw averages
    the credits of the people it drew (the same draws as :func:`bootstrap_participants`); the interval is
    widened to hold the Wilson score interval (:func:`proportion_interval`).

    Identification rates are not bootstrapped on S[idx][:, idx]: a copy is no competitor, so a draw would
    rank each person among ~0.63 N distinct models, biasing top-k upward and its chance level away from
    k / N (at N = 20 without any signal the draws averaged 0.10 against a chance of 0.05). The models' own
    variation enters through ``se`` (:func:`proportion_interval`)."""
    c = np.asarray(credit, float)
    return rate_result(boot_result(float(c.mean()), column_draws(c, n_boot, seed), ci), len(c), ci, se)


def column_draws(credit: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot,) means of per-column credits over the participants of each draw (:func:`participant_draws`)."""
    c = np.asarray(credit, float)
    return np.array([c[idx].mean() for idx in participant_draws(len(c), n_boot, seed)], float)


def boot_result(point: float, dist: np.ndarray, ci: float = 0.95) -> BootResult:
    """The percentile interval of a bootstrap distribution (draws where the metric is undefined, NaN,
    left out)."""
    q = (1 - ci) / 2
    lo, hi = np.nanquantile(dist, [q, 1 - q])
    return BootResult(point, float(lo), float(hi), dist)


def paired_bootstrap(s_a: np.ndarray, s_b: np.ndarray, metric_fn: Callable[[np.ndarray], float],
                     n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> PairedResult:
    """Bootstrap of metric(a) - metric(b) on the same resampled participants (same duplicate rule).

    p (two-sided): :func:`paired_result`.
    """
    s_a, s_b = np.asarray(s_a, float), np.asarray(s_b, float)
    if s_a.shape != s_b.shape:
        raise DISError(f"score matrices differ in shape: {s_a.shape} vs {s_b.shape}")
    diff = float(metric_fn(s_a) - metric_fn(s_b))
    dist = np.array([metric_fn(_resample(s_a, idx)) - metric_fn(_resample(s_b, idx))
                     for idx in participant_draws(len(s_a), n_boot, seed)], float)
    return paired_result(diff, dist, ci)


def paired_result(diff: float, dist: np.ndarray, ci: float = 0.95) -> PairedResult:
    """Interval and two-sided p of a paired bootstrap distribution of differences; draws where either
    metric is undefined are left out. p = 2 (k + 1) / (B + 1), capped at 1, where k of the B draws lie on
    the other side of 0 from the observed difference (0 counted as the other side): the p of inverting the
    percentile interval, with the +1 of a Monte Carlo p (Davison & Hinkley 1997, sec. 4.2.5; as the
    permutation tests here) so that it is conservative and never 0: with no draw across 0, all B draws say
    is p < about 2 / B (see :func:`draws_for_family`)."""
    d = dist[np.isfinite(dist)]
    q = (1 - ci) / 2
    lo, hi = np.quantile(d, [q, 1 - q])
    if diff == 0:
        return PairedResult(diff, float(lo), float(hi), 1.0, dist)
    k = int(np.sum(d <= 0)) if diff > 0 else int(np.sum(d >= 0))
    return PairedResult(diff, float(lo), float(hi), float(min(1.0, 2 * (k + 1) / (len(d) + 1))), dist)


def paired_rate_interval(credit_a: np.ndarray, credit_b: np.ndarray, ci: float = 0.95,
                         owner: np.ndarray | None = None) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10, its correlation corrected as in Altman et al. 2000) of
    the difference of two paired rates: the paired analogue of the Wilson interval. Each unit's credit in [0, 1]
    for each method, the units people, or with ``owner`` (unit -> person) a person's excerpts, whose share of each
    cell of the 2 x 2 table is their excerpts' mean (each person weighs one, and the two methods pair excerpt by
    excerpt: their people's mean credits alone would read two methods that agree on nearly every excerpt as
    uncorrelated). Where neither method identifies anyone the other does not, the paired bootstrap has no width
    (40 of 40 both: +0.000 [+0.000, +0.000]); this holds +-0.088 there."""
    a, b = np.asarray(credit_a, float), np.asarray(credit_b, float)
    cells = np.stack([a * b, a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)])
    if owner is not None:
        k = np.bincount(owner)
        cells = np.stack([np.bincount(owner, weights=c, minlength=len(k)) for c in cells])[:, k > 0] / k[k > 0]
    both, only_a, only_b, neither = (float(c) for c in cells.sum(axis=1))
    n = cells.shape[1]
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson_interval(p1, n, ci)
    l2, u2 = wilson_interval(p2, n, ci)
    den = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b  # corrected as in Altman et al., Statistics with Confidence (2000)
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0.0)
    phi = cross / math.sqrt(den) if den > 0 else 0.0
    d = p1 - p2
    below = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    above = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return max(d - below, -1.0), min(d + above, 1.0)


def paired_rate_p(credit_a: np.ndarray, credit_b: np.ndarray, owner: np.ndarray | None = None) -> float:
    """Two-sided p of :func:`paired_rate_interval`: 1 - the level at which its interval first holds 0 (found by
    bisection; the interval widens with the level), so that p < alpha exactly when the 1 - alpha interval
    excludes 0. 1 when the rates are equal."""
    a, b = np.asarray(credit_a, float), np.asarray(credit_b, float)
    if owner is not None:
        k = np.bincount(owner)
        a, b = (np.bincount(owner, weights=x, minlength=len(k))[k > 0] / k[k > 0] for x in (a, b))
    d = float(a.mean() - b.mean())
    if abs(d) < 1e-12:
        return 1.0
    holds = lambda c: (paired_rate_interval(credit_a, credit_b, c, owner)[0] <= 0 if d > 0 else  # noqa: E731
                       paired_rate_interval(credit_a, credit_b, c, owner)[1] >= 0)
    lo, hi = 1e-9, 1 - 1e-12
    if not holds(hi):
        return 1e-12
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return float(1 - hi)


def with_paired_rate(r: PairedResult, credit_a: np.ndarray, credit_b: np.ndarray, ci: float = 0.95,
                     owner: np.ndarray | None = None) -> PairedResult:
    """A paired rate difference's interval widened to hold :func:`paired_rate_interval`, as a rate's is held to
    Wilson's (:func:`proportion_interval`), and its p to that interval's (:func:`paired_rate_p`): a p below 0.05
    beside an interval that holds 0 read as evidence the interval does not give, and lowered the other tests'
    Holm p."""
    lo, hi = paired_rate_interval(credit_a, credit_b, ci, owner)
    p = r.p if r.diff == 0 else max(r.p, paired_rate_p(credit_a, credit_b, owner))
    return r._replace(lo=min(r.lo, lo), hi=max(r.hi, hi), p=min(p, 1.0))


def with_model_variation(r: PairedResult, se: float, ci: float = 0.95) -> PairedResult:
    """A paired top-k difference held also to diff +- z se, and its p to the normal p of diff / se, where ``se``
    is the jackknife's over people of the difference (:func:`topk_leave_one_out` of each method): the draws keep
    the models fixed, and a broad model takes many people's credits together, which they do not see (a null of
    two equal methods was rejected at p < 0.05 in 0.10-0.26 of cohorts at N = 20-40 with broad models, 0.02-0.08
    with this; the rates' own intervals are held alike, :func:`proportion_interval`)."""
    if not (np.isfinite(se) and se > 0):
        return r
    z = float(_st.norm.ppf(0.5 + ci / 2))
    p = r.p if r.diff == 0 else max(r.p, float(2 * _st.norm.sf(abs(r.diff) / se)))
    return r._replace(lo=min(r.lo, max(r.diff - z * se, -1.0)), hi=max(r.hi, min(r.diff + z * se, 1.0)), p=min(p, 1.0))


def p_text(p: float) -> str:
    """A p-value as a sentence prints it: three decimals, and '< 0.001' below them (a permutation test's
    (k + 1) / (n + 1) of 0.0005 is not 0.000)."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def signed(x: float, digits: int = 2) -> str:
    """A signed difference as the sentences print it: '+0.00' for a draw's -7e-19, but '-0.00' for -0.0005, an
    interval's end below 0 that '+0.00' would show as not crossing it."""
    x = float(x)
    if -0.5 * 10 ** -digits < x <= -1e-9:
        return f"-{0:.{digits}f}"
    return f"{round(x, digits) + 0.0:+.{digits}f}"


def draws_for_family(tests: int, alpha: float = 0.05, at_least: int = 1000) -> int:
    """Bootstrap draws for a family of ``tests`` paired comparisons under Holm: enough that the smallest p
    a draw count allows (2 / (B + 1), :func:`paired_result`) times the family's size is at most alpha / 2,
    so that a difference no draw crosses can be supported however many comparisons the run makes."""
    return max(at_least, math.ceil(4 * tests / alpha) - 1)


def mcnemar_top1(correct_a, correct_b) -> dict[str, float]:
    """Exact (binomial) McNemar test of two systems' per-participant top-1 correctness, same people.

    n10 = a right & b wrong, n01 = a wrong & b right; p = two-sided binomial(n10; n10 + n01, 1/2).
    """
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.shape != b.shape:
        raise DISError(f"correctness vectors differ in shape: {a.shape} vs {b.shape}")
    if not (np.isin(a, [0, 1]).all() and np.isin(b, [0, 1]).all()):
        raise DISError("mcnemar_top1 needs 0/1 correctness (fractional tie credits are not allowed)")
    a, b = a.astype(bool), b.astype(bool)
    n10, n01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = 1.0 if n10 + n01 == 0 else float(_st.binomtest(n10, n10 + n01, 0.5).pvalue)
    return {"n10": n10, "n01": n01, "p": p}


# ----------------------------------------------------------------------------------------------
# dyads


def _norm_rows(s: np.ndarray) -> np.ndarray:
    """Each row standardised against its off-diagonal entries (mean, ddof=1 sd; NaN skipped)."""
    x = np.asarray(s, float).copy()
    np.fill_diagonal(x, np.nan)
    mu = np.nanmean(x, axis=1, keepdims=True)
    sd = np.nanstd(x, axis=1, ddof=1, keepdims=True)
    sd = np.where((sd > 0) & np.isfinite(sd), sd, 1.0)
    return (np.asarray(s, float) - mu) / sd


def pair_similarity(s: np.ndarray) -> np.ndarray:
    """Symmetric person-person similarity from S: mean of z-norm and t-norm scores in both directions.

    zn = each model row standardised over impostor data (j != i); tn = each data column standardised
    over impostor models (i' != j). sim[i, j] = (zn[i, j] + zn[j, i] + tn[i, j] + tn[j, i]) / 4, so
    it is symmetric and free of per-model and per-data scale; the diagonal is NaN.
    """
    s = np.asarray(s, float)
    zn = _norm_rows(s)
    tn = _norm_rows(s.T).T
    sim = (zn + zn.T + tn + tn.T) / 4
    np.fill_diagonal(sim, np.nan)
    return sim


def _pairs(pairs, n: int) -> np.ndarray:
    p = np.asarray(pairs, dtype=int).reshape(-1, 2)
    if len(p) == 0:
        raise DISError("no dyads given")
    if p.min() < 0 or p.max() >= n:
        raise DISError(f"dyad index out of range 0..{n - 1}")
    if (p[:, 0] == p[:, 1]).any() or len(np.unique(p)) != p.size:
        raise DISError("each person may be in at most one dyad, and not with themself")
    return p


def _dyad_stats(sim: np.ndarray, rowsum: np.ndarray, a: np.ndarray, b: np.ndarray,
                partner: np.ndarray | None = None, own: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Vectorised dyad statistic for index arrays a, b (any shape); rowsum = off-diagonal row sums. With
    ``partner`` (each person's real partner) a, b are pseudo-couples whose strangers leave out each member's real
    partner too: with the partner among them, partners alike pushed every pseudo-couple below 0 and chance with it
    (the excess then grew by (2D - 1) / (2D - 2) with D couples: 1.5 times with two). ``own`` (:func:`_own_stratum`:
    each person's off-diagonal sum over their stratum, and its size) weighs a pseudo-couple's strangers of the own
    stratum and of the others as a real couple's are weighed: m - 2 of n - 2 (leaving out the partner took one of the
    own stratum's, so where strata are alike chance rose and the excess sank: -0.04 with no partner effect, 4 couples
    in 2 strata, people of one stratum 0.3 more alike than of two)."""
    n = len(sim)
    sab = sim[a, b]
    if partner is None:
        stranger_a, stranger_b = (rowsum[a] - sab) / (n - 2), (rowsum[b] - sab) / (n - 2)
    else:
        def stranger(x, y):  # x's strangers, pseudo-partner y (same stratum) and real partner left out
            out = sim[x, partner[x]]
            if own is None:
                return (rowsum[x] - sim[x, y] - out) / (n - 3)
            m = own[1][x]
            mine = (own[0][x] - sim[x, y] - out) / (m - 3)
            other = np.divide(rowsum[x] - own[0][x], n - m, out=np.zeros(np.shape(x)), where=n > m)
            return ((m - 2) * mine + (n - m) * other) / (n - 2)

        stranger_a, stranger_b = stranger(a, b), stranger(b, a)
    return sab - (stranger_a + stranger_b) / 2


def _own_stratum(x: np.ndarray, groups: np.ndarray | None, block: int = 1024) -> tuple[np.ndarray, np.ndarray] | None:
    """Each person's sum of ``x`` (zero diagonal) over the people of their stratum and the stratum's size (None
    without strata), ``block`` rows at a time."""
    if groups is None:
        return None
    g = np.asarray(groups)
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    sums = np.concatenate([(x[i:i + block] * (inv[i:i + block, None] == inv[None, :])).sum(axis=1)
                           for i in range(0, len(x), block)]) if len(x) else np.zeros(0)
    return sums, counts[inv]


def dyad_statistic(sim: np.ndarray, pairs) -> np.ndarray:
    """Per dyad: partner similarity minus the mean similarity of the two members to strangers.

    Strangers of a member are everyone except themself and their partner. The mean over dyads is the
    test statistic of :func:`dyad_permutation_test`.
    """
    sim = np.asarray(sim, float)
    n = len(sim)
    if n < 3:
        raise DISError("need at least 3 people for a stranger comparison")
    p = _pairs(pairs, n)
    x = sim.copy()
    np.fill_diagonal(x, 0.0)
    if not np.all(np.isfinite(x)):
        raise DISError("similarity matrix has non-finite off-diagonal cells")
    return _dyad_stats(sim, x.sum(axis=1), p[:, 0], p[:, 1])


def _blocks(people: np.ndarray, groups: np.ndarray | None) -> list[np.ndarray]:
    """The people of each stratum (all in one without groups); a stratum must hold whole couples."""
    labels = np.zeros(len(people), int) if groups is None else np.asarray(groups)[people]
    blocks = []
    for g in np.unique(labels):
        members = people[labels == g]
        if len(members) % 2:
            raise DISError(f"group {g!r} has an odd number ({len(members)}) of paired people")
        blocks.append(members)
    return blocks


def couples_in_strata(p: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, int]:
    """The couples of ``p`` (D, 2) that share their stratum with another couple, and how many do not: a couple
    alone in its stratum can only be re-paired with itself, so it adds nothing to the test but dilutes its
    statistic, interval and chance level. Raises DISError when fewer than two couples remain."""
    label = np.zeros(len(p), int) if groups is None else np.asarray(groups)[p[:, 0]]
    _, inv, counts = np.unique(label, return_inverse=True, return_counts=True)
    keep = counts[inv] >= 2
    if keep.sum() < 2:
        raise DISError(f"no two couples share a stratum ({len(p)} couple(s) in {len(counts)} strata): no "
                       "pseudo-couples to compare them with")
    return p[keep], int((~keep).sum())


def pseudo_couple_values(value: Callable[[np.ndarray, np.ndarray], np.ndarray], p: np.ndarray,
                         groups: np.ndarray | None, block: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per couple of ``p`` (D, 2): the mean of a pair statistic over its pseudo-couples (its two people with the
    people of the other couples of its stratum), its stratum's chance (the mean of those over the stratum's
    couples, which is the mean over the stratum's pairs that are not a real couple: each pair is in two couples'
    means, each mean over 4 (D_s - 1) pairs), and how many couples its stratum holds. Chance is their mean over
    couples, each stratum weighted by its couples as a re-pairing of the cohort weighs it; the null's own mean also
    holds the real couples (each 1 / (m - 1) of its stratum's pairings), which would shrink the excess by
    (m - 2) / (m - 1). ``value(a, b)`` gives the statistic of index arrays broadcast together, evaluated ``block``
    rows at a time (no N x N temporaries at 10,000 people)."""
    people = p.ravel()
    label = np.zeros(len(people), int) if groups is None else np.asarray(groups)[people]
    if np.unique(label[::2], return_counts=True)[1].min() < 2:
        raise DISError("a couple alone in its stratum has no pseudo-couples (couples_in_strata leaves it out)")
    partner = np.empty(people.max() + 1, int)
    partner[p[:, 0]], partner[p[:, 1]] = p[:, 1], p[:, 0]
    per_person = np.zeros(len(people))
    for g in np.unique(label):
        at = np.flatnonzero(label == g)
        m = people[at]
        for i in range(0, len(m), block):
            a = m[i:i + block, None]
            keep = (a != m[None, :]) & (partner[a] != m[None, :])  # the stratum's others but the real partner
            per_person[at[i:i + block]] = np.where(keep, value(a, m[None, :]), 0.0).sum(axis=1) / keep.sum(axis=1)
    per_couple = per_person.reshape(-1, 2).mean(axis=1)  # both members meet the same number of pseudo-partners
    _, inv, count = np.unique(label[::2], return_inverse=True, return_counts=True)
    return per_couple, (np.bincount(inv, per_couple) / count)[inv], count[inv]


def excess_values(per_dyad: np.ndarray, pseudo: np.ndarray, chance: np.ndarray, couples: np.ndarray) -> np.ndarray:
    """One value per couple whose mean is the excess (observed - chance) and whose spread over couples holds
    chance's own: the delete-one-couple jackknife values of the pseudo-couples' mean, a U-statistic over the
    stratum's couples, d_k - f (c_k - chance) - chance with f = 2 (D_s - 1) / (D_s - 2), the first-order
    projection's 2 corrected for c_k leaving the couple's own pairs out (which shrank chance's part to
    ((D_s - 2) / (D_s - 1))^2 of it: a quarter at 3 couples). With 2 couples c_k is the stratum's chance.
    bench/excess_coverage.py, 1,000 cohorts each (coverage of the true excess, against the observed mean's interval
    shifted by a fixed chance): 0.94 to 0.97 with 12 or 30 couples in one stratum and with strata of 3, against
    0.60 to 0.98 (0.60 where people's levels show only with strangers); with strata of 2 couples it falls short,
    0.81 to 0.94 (a stratum's chance then rests on one pair of couples, which no resampling of couples sees)."""
    c = np.asarray(couples, float)
    f = np.where(c > 2, 2 * (c - 1) / np.maximum(c - 2, 1), 2.0)
    return (np.asarray(per_dyad, float) - f * (np.asarray(pseudo, float) - np.asarray(chance, float))
            - np.asarray(chance, float))


def _check_groups(groups, n: int, p: np.ndarray) -> np.ndarray | None:
    """``groups`` as an array of one label per person of ``n``, refusing a real couple split between two strata."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if len(groups) != n:
        raise DISError(f"groups has {len(groups)} labels for {n} people")
    split = groups[p[:, 0]] != groups[p[:, 1]]
    if split.any():
        k = int(np.argmax(split))
        raise DISError(f"a real dyad spans two groups ({groups[p[k, 0]]} and {groups[p[k, 1]]})")
    return groups


def _all_pairings(members: np.ndarray) -> list[list[tuple[int, int]]]:
    if len(members) == 0:
        return [[]]
    first, rest = members[0], members[1:]
    return [[(first, rest[k])] + m for k in range(len(rest)) for m in _all_pairings(np.delete(rest, k))]


def _matchings(people: np.ndarray, groups: np.ndarray | None, n_perm: int,
               rng: np.random.Generator) -> tuple[np.ndarray, bool, float]:
    """The perfect matchings of ``people`` (within groups when given) as an (M, D, 2) index array, whether they
    are all of them, and the smallest p a test over them can give: every matching when there are at most
    ``n_perm`` (3 couples: 15, 5 couples: 945), so that the p-value is exact (floor 1 / M); else ``n_perm``
    uniformly random ones (floor 1 / (n_perm + 1) at best). Real couples are not avoided: the observed pairing must
    be a member of the reference set, or the p-value is overconfident."""
    blocks = _blocks(np.asarray(people), groups)
    count = math.prod(math.prod(range(len(b) - 1, 0, -2)) for b in blocks)  # (m - 1)!! per stratum of m
    if count <= n_perm:  # every combination of each stratum's pairings (any number of strata)
        out = np.zeros((1, 0, 2), int)
        for b in blocks:
            x = np.array(_all_pairings(b), int).reshape(-1, len(b) // 2, 2)
            out = np.concatenate([np.repeat(out, len(x), axis=0), np.tile(x, (len(out), 1, 1))], axis=1)
        return out, True, 1 / count
    return (np.concatenate([rng.permuted(np.tile(b, (n_perm, 1)), axis=1).reshape(n_perm, -1, 2) for b in blocks],
                           axis=1), False, max(1 / count, 1 / (n_perm + 1)))


def permutation_p(null: np.ndarray, observed: float, exact: bool) -> float:
    """One-sided p of ``observed`` against its re-pairings: #{null >= observed} / M when ``null`` holds every
    pairing (it holds the observed one, so p >= 1 / M), else the Monte Carlo (1 + #) / (1 + n)."""
    k = int(np.sum(null >= observed - 1e-12 * max(1.0, abs(observed))))
    return k / len(null) if exact else (1 + k) / (1 + len(null))


def p_floor_notes(floors: Sequence[float], alpha: float = 0.05, exact: Sequence[bool] | None = None) -> list[str]:
    """For each test of a Holm family, ' (...)' when so few pairings exist that even its smallest p (``floors``)
    cannot fall below alpha after Holm, else ''. Holm-adjusted p are monotone in the p, so Holm of the floors is
    each test's best case, whatever floors the others have (feature sets may hold different couples). ``exact``:
    per test, whether its p is over every pairing (else over random re-pairings, which the note then names)."""
    best = holm(floors) if len(floors) else np.zeros(0)
    out = []
    for k, (f, b) in enumerate(zip(floors, best)):
        if not (f > 0 and b >= alpha):
            out.append("")
            continue
        count = round(1 / f)
        why = (f"only {count} ways to pair these couples" if exact is None or exact[k]
               else f"{count - 1} random re-pairings of these couples")
        floor = f"{f:.3f}" if f >= 0.001 else f"{f:.1e}"
        out.append(f" ({why}: the smallest p is 1/{count} = {floor}" + (f", {b:.3f} at best after Holm" if len(floors) > 1
                                                                       else "") + f", so this test cannot reach {alpha:g})")
    return out


# Below this many people a bootstrap over them has too few distinct draws to support a claim: with 2 people
# every usable draw is the same pair, so an EER difference of +0.50 came out as [+0.50, +0.50], p 0.000.
MIN_PEOPLE = 10
MIN_COUPLES = 6  # n values span a symmetric unit mean with probability 1 - 2^(1-n): 0.875 at 4, 0.9375 at 5, 0.97 at 6
# couples, so no interval resampling 5 or fewer couples can reach 95%


def few_couples(n: int) -> str:
    """' (only n couples: ...)' beside an interval over n couples that cannot reach 95% (n < MIN_COUPLES), else
    '': what the partner and synchrony lines say (their permutation p is exact at any n)."""
    return (f" (only {n} couples: an interval over fewer than {MIN_COUPLES} falls short of 95%, and over so few it "
            "is about the range of the couples' values; the permutation p holds)") if n < MIN_COUPLES else ""


def small_strata(k: int) -> str:
    """' (...)' beside an excess interval whose smallest stratum holds ``k`` = 2 couples, else '': there a stratum's
    chance rests on one pair of couples, and the interval covered the true excess 0.81 to 0.94 of the time in
    simulations (bench/excess_coverage.py and a reviewer's)."""
    return (" (strata of 2 couples: this interval covers the excess 0.81 to 0.94 of the time in simulations, not 0.95)"
            if k == 2 else "")


def couples_left_out(t: Mapping[str, object]) -> str:
    """'; n couples left out: ...' for a dyad or synchrony test that could not use every couple, else ''."""
    parts = [f"{t[k]} {w}" for k, w in (("dyads_alone", "alone in their stratum"),
                                        ("dyads_unusable", "without a usable window with their stratum"),
                                        ("dyads_incomplete", "without two scored members")) if t.get(k)]
    return f" ({' and '.join(parts)}: left out)" if parts else ""


def expanded_levels(n: int, ci: float = 0.95) -> tuple[float, float]:
    """Quantile levels of the expanded percentile interval of a mean over ``n`` units (Hesterberg 2015,
    "What teachers should know about the bootstrap", sec. 5.3): the plain percentile interval of a mean is too
    narrow for few units (its spread lacks n / (n - 1), and z stands for t), so its levels move out until
    z = sqrt(n / (n - 1)) t_{n-1}. At 10 units 0.0086 and 0.9914 instead of 0.025 and 0.975."""
    a = (1 - ci) / 2
    if n < 2:
        return a, 1 - a
    z = math.sqrt(n / (n - 1)) * float(_st.t.ppf(1 - a, n - 1))
    return float(_st.norm.sf(z)), float(_st.norm.cdf(z))


def unit_mean_interval(values: np.ndarray, rng: np.random.Generator, n_boot: int = 2000,
                       ci: float = 0.95) -> tuple[float, float]:
    """Expanded percentile bootstrap interval (:func:`expanded_levels`) of the mean of ``values``, one per
    unit (a couple), resampling units."""
    v = np.asarray(values, float)
    boot = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(boot, expanded_levels(len(v), ci))
    return float(lo), float(hi)


def dyad_permutation_test(sim: np.ndarray, pairs, groups=None, n_perm: int = 2000, seed: int = 0,
                          n_boot: int = 2000, ci: float = 0.95) -> dict[str, object]:
    """One-sided test that partners are more similar than strangers, by re-pairing people.

    The null re-pairs the 2D people in ``pairs`` into pseudo-couples (random perfect matchings, within
    ``groups`` if given - one label per person of ``sim``; the observed pairing belongs to the
    reference set) and recomputes the mean dyad statistic; p by :func:`permutation_p` (exact when there are at most
    ``n_perm`` pairings; ``p_floor``, the smallest p any data could give: :func:`_matchings`). A couple alone in
    its stratum is left out (``dyads_alone``; :func:`couples_in_strata`).
    Chance is the pseudo-couples' mean (:func:`pseudo_couple_values`; their strangers leave out the members' real
    partners, :func:`_dyad_stats`), above 0 when strata make pseudo-couples
    alike (same site): excess = observed - chance, effect size = excess / sd of the null. The intervals of the
    observed mean and of the excess are expanded percentile bootstraps over dyads (:func:`unit_mean_interval`): the
    observed's of the statistics with the members' mean similarity to strangers centred (it cancels in the mean),
    the excess's of values that carry chance's uncertainty (:func:`excess_values`), but where everyone is in a
    couple and there are no strata, which makes chance 0 by construction, the observed's. The excess is, per stratum,
    the partners' mean raw similarity less the pseudo-couples' (the strangers' terms cancel), weighted by couples.
    """
    sim = np.asarray(sim, float)
    p = _pairs(pairs, len(sim))
    groups = _check_groups(groups, len(sim), p)
    p, alone = couples_in_strata(p, groups)
    per_dyad = dyad_statistic(sim, p)
    x = sim.copy()
    np.fill_diagonal(x, 0.0)
    rowsum = x.sum(axis=1)
    rng = np.random.default_rng(seed)
    m, exact, floor = _matchings(p.ravel(), groups, n_perm, rng)
    null = _dyad_stats(sim, rowsum, m[..., 0], m[..., 1]).mean(axis=1)
    observed = float(per_dyad.mean())
    pval = permutation_p(null, observed, exact)
    partner = np.full(len(sim), -1)
    partner[p[:, 0]], partner[p[:, 1]] = p[:, 1], p[:, 0]
    own = _own_stratum(x, groups)
    pseudo, of_stratum, couples = pseudo_couple_values(lambda a, b: _dyad_stats(sim, rowsum, a, b, partner, own), p,
                                                       groups)
    chance = float(of_stratum.mean())
    if abs(chance) < 1e-12 * max(1.0, float(np.nanmax(np.abs(sim)))):  # a mean that is 0 but for its sum's rounding
        chance = 0.0  # (the dyads sheet read 1.3e-17 and -2.0e-17)
    sd = float(null.std(ddof=1))
    # the observed mean over couples of d_k = s_ab - M_k (M_k: the members' mean similarity to strangers), whose
    # M_k average to the cohort's mean similarity: resampled as d_k - (M_k - mean M), their spread over couples
    # (people's own levels) no longer widens or narrows it (0.81 to 0.99 coverage before, 0.935 to 0.94 after)
    strangers = per_dyad - sim[p[:, 0], p[:, 1]]  # -M_k
    lo, hi = unit_mean_interval(per_dyad + strangers - strangers.mean(), rng, n_boot, ci)
    if groups is None and 2 * len(p) == len(sim):  # everyone in a couple, no strata: chance is 0 by construction,
        elo, ehi = lo, hi  # the excess is the observed mean, and one number gets one interval
    else:
        elo, ehi = unit_mean_interval(excess_values(per_dyad, pseudo, of_stratum, couples), rng, n_boot, ci)
    return {"observed": observed, "p": float(pval), "ci_lo": lo, "ci_hi": hi, "chance": chance,
            "null_mean": float(null.mean()), "null_sd": sd, "excess": observed - chance, "excess_ci_lo": elo,
            "excess_ci_hi": ehi, "effect_size": (observed - chance) / sd if sd > 0 else np.nan,
            "exact": exact, "p_floor": floor, "dyads": len(p), "dyads_alone": alone, "per_dyad": per_dyad, "null": null,
            "smallest_stratum": int(couples.min())}


# ----------------------------------------------------------------------------------------------
# multiple comparisons


def _adjust(pvals, adjust_sorted: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply an adjustment to the sorted finite p-values and put them back in place; NaN kept as NaN."""
    p = np.asarray(pvals, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    v = p[ok]
    if len(v):
        o = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[o] = np.minimum(1.0, adjust_sorted(v[o]))
        out[ok] = r
    return out


def holm(pvals) -> np.ndarray:
    """Holm step-down adjusted p-values (FWER): max_{j<=i} min(1, (m - j + 1) p_(j)); NaN kept as NaN."""
    return _adjust(pvals, lambda v: np.maximum.accumulate((len(v) - np.arange(len(v))) * v))


def benjamini_hochberg(pvals) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (FDR): min_{j>=i} min(1, m p_(j) / j); NaN kept as NaN."""
    return _adjust(pvals, lambda v: np.minimum.accumulate((len(v) * v / np.arange(1, len(v) + 1))[::-1])[::-1])


# ----------------------------------------------------------------------------------------------
# embedding


def classical_mds(d: np.ndarray, k: int = 2, similarity: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Classical (Torgerson) MDS: coordinates (n, k) and the top-k eigenvalues of -J D^2 J / 2.

    With similarity=True the input is a similarity (e.g. :func:`pair_similarity`, NaN diagonal) turned
    into a dissimilarity d = max_offdiag(sim) - sim with a zero diagonal, then symmetrised.
    """
    d = np.asarray(d, float)
    if similarity:
        off = ~np.eye(len(d), dtype=bool)
        d = np.nanmax(d[off]) - d
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    if not np.all(np.isfinite(d)):
        raise DISError("classical_mds: non-finite dissimilarities")
    n = len(d)
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (d ** 2) @ j
    w, v = np.linalg.eigh(b)
    o = np.argsort(w)[::-1][:k]
    w, v = w[o], v[:, o]
    return v * np.sqrt(np.clip(w, 0, None)), w


def mds_share(eigenvalues: np.ndarray, k: int = 2) -> float:
    """The share of classical MDS's eigenvalues (all of them, :func:`classical_mds` with k = n), by magnitude,
    that its first ``k`` dimensions hold (Mardia 1978: sum of the k largest / sum of |all|): 1 when the
    dissimilarities are distances of points in k dimensions, less the more a k-dimensional map leaves out, and
    less where they are not distances at all (negative eigenvalues). Of the positive ones alone, a map that
    read "100%" left out 24% of the total, its stress-1 0.39 (a report review)."""
    w = np.asarray(eigenvalues, float)
    total = np.abs(w).sum()
    return float(np.clip(w[:k], 0, None).sum() / total) if w.size and w.max() > 0 else float("nan")


# ----------------------------------------------------------------------------------------------
# simulation (tests and bench/dyads.py)


def simulate_dyad_scores(n_couples: int, sharing: float, rng: np.random.Generator, dim: int = 8,
                         data_noise: float = 0.7, score_noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Score-level simulation of a cohort of couples: (S, pairs) with people 2c, 2c + 1 a couple.

    Person vector x = sqrt(1 - a) own + sqrt(a) shared_with_partner (own, shared ~ N(0, I_dim)); the
    held-out data of j is y_j = x_j + data_noise N(0, I); S[i, j] = -||x_i - y_j||^2 + score_noise N(0, 1).
    a = sharing = 0 means partners share nothing (the null).
    """
    n = 2 * n_couples
    own = rng.standard_normal((n, dim))
    shared = np.repeat(rng.standard_normal((n_couples, dim)), 2, axis=0)
    x = np.sqrt(1 - sharing) * own + np.sqrt(sharing) * shared
    y = x + data_noise * rng.standard_normal((n, dim))
    s = -((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1) + score_noise * rng.standard_normal((n, n))
    return s, np.arange(n).reshape(-1, 2)
