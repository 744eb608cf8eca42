"""Scoring: every model against every participant's held-out data, and the metrics of the report.

Pure functions on arrays. Conventions: ``S[i, j]`` is the mean log-likelihood of participant j's
held-out frames under participant i's model (rows = models, columns = data); genuine pairs are
i == j, impostor pairs i != j.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats


def score_all(log_prob: Sequence[Callable[[np.ndarray], np.ndarray]], data: Sequence[np.ndarray]
              ) -> list[list[np.ndarray]]:
    """Per-frame log p for every (model i, data j): ``out[i][j]`` is an array over j's frames.

    Each model reads each data set once (its log_prob batches internally).
    """
    return [[np.asarray(lp(x), np.float64) for x in data] for lp in log_prob]


TRIM = 0.05
SCORE_RULE = (f"mean per-frame log-likelihood after trimming the lowest and highest {TRIM:.0%} of each pair's "
              "frames (a handful of impossible frames cannot dominate a score)")


def pair_score(v: np.ndarray, trim: float = TRIM) -> float:
    """One (model, data) score: the trimmed mean of per-frame log p (see ``SCORE_RULE``)."""
    if not len(v):
        return float("nan")
    return float(stats.trim_mean(v, trim)) if trim > 0 else float(np.mean(v))


def score_matrix(per_frame: list[list[np.ndarray]], trim: float = TRIM,
                 names: Sequence[str] | None = None) -> np.ndarray:
    """N x N scores (rows = models, columns = data); non-finite per-frame log p is an error naming the pair."""
    for i, row in enumerate(per_frame):
        for j, v in enumerate(row):
            bad = ~np.isfinite(v)
            if bad.any():
                from .errors import DISError

                who = (names[i], names[j]) if names is not None else (i, j)
                raise DISError(f"model of {who[0]} gives non-finite log p on {int(bad.sum())} held-out frame(s) "
                               f"of {who[1]}: check that participant's features and model")
    return np.array([[pair_score(v, trim) for v in row] for row in per_frame])


def norms(per_frame: list[list[np.ndarray]], s: np.ndarray) -> list[list[np.ndarray]]:
    """The research workflow's norms: |log p_i(x) - mean log p_i(i's own held-out frames)| per frame."""
    return [[np.abs(v - s[i, i]) for v in row] for i, row in enumerate(per_frame)]


def ranks(s: np.ndarray) -> np.ndarray:
    """rank[i, j]: position of model i among all models for data j (1 = highest likelihood)."""
    order = np.argsort(-s, axis=0, kind="stable")
    r = np.empty_like(order)
    n = s.shape[0]
    for j in range(s.shape[1]):
        r[order[:, j], j] = np.arange(1, n + 1)
    return r


def identification(s: np.ndarray, ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """Closed-set identification: data j is identified at k when its own model ranks within the top k."""
    r = np.diag(ranks(s))
    return {f"top{k}": float(np.mean(r <= k)) for k in ks if k <= len(s)}


def znorm(s: np.ndarray) -> np.ndarray:
    """Per-model z-normalisation over impostor data: (S[i, j] - mean_{j' != i} S[i, j']) / std."""
    out = np.empty_like(s, dtype=float)
    n = len(s)
    for i in range(n):
        imp = np.delete(s[i], i)
        sd = imp.std(ddof=1) if len(imp) > 1 else 1.0
        out[i] = (s[i] - imp.mean()) / (sd if sd > 0 else 1.0)
    return out


def tnorm(s: np.ndarray) -> np.ndarray:
    """Per-data normalisation over impostor models: (S[i, j] - mean_{i' != j} S[i', j]) / std.

    Raw log-likelihoods of a broad model and a narrow one are on different scales; comparing each
    score with what the other models give the same data puts genuine pairs on one threshold.
    """
    return znorm(s.T).T


def verification(s: np.ndarray) -> dict[str, object]:
    """ROC AUC and equal error rate with genuine = own held-out data, impostor = everyone else's."""
    from sklearn.metrics import roc_auc_score, roc_curve

    n = len(s)
    genuine = np.eye(n, dtype=bool)
    y, score = genuine.ravel(), s.ravel()
    ok = np.isfinite(score)
    y, score = y[ok], score[ok]
    if y.all() or not y.any():
        return {"auc": float("nan"), "eer": float("nan"), "fpr": np.array([0, 1]), "tpr": np.array([0, 1])}
    fpr, tpr, _ = roc_curve(y, score)
    fnr = 1 - tpr
    k = int(np.argmin(np.abs(fnr - fpr)))
    eer = float((fpr[k] + fnr[k]) / 2)
    return {"auc": float(roc_auc_score(y, score)), "eer": eer, "fpr": fpr, "tpr": tpr}


def relation(dyads: Sequence[str], i: int, j: int) -> str:
    """'self', 'partner' (same non-empty dyad) or 'stranger'."""
    if i == j:
        return "self"
    if dyads[i] and dyads[i] == dyads[j]:
        return "partner"
    return "stranger"


def compare_groups(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Two groups of scores: means, Welch's t-test, Mann-Whitney U, Cohen's d and rank-biserial r."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {"n_a": len(a), "n_b": len(b), "mean_a": float(np.mean(a)) if len(a) else np.nan,
           "mean_b": float(np.mean(b)) if len(b) else np.nan}
    if len(a) < 2 or len(b) < 2:
        out.update(welch_t=np.nan, welch_p=np.nan, mwu_u=np.nan, mwu_p=np.nan, cohen_d=np.nan, rank_biserial=np.nan)
        return out
    t = stats.ttest_ind(a, b, equal_var=False)
    u = stats.mannwhitneyu(a, b, alternative="two-sided")
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    out.update(welch_t=float(t.statistic), welch_p=float(t.pvalue), mwu_u=float(u.statistic), mwu_p=float(u.pvalue),
               cohen_d=float((a.mean() - b.mean()) / pooled) if pooled > 0 else np.nan,
               rank_biserial=float(2 * u.statistic / (len(a) * len(b)) - 1))
    return out


def dyad_comparisons(s: np.ndarray, dyads: Sequence[str]) -> dict[str, dict[str, float]]:
    """Self vs partner vs stranger on z-normalised pair scores (only where dyads exist)."""
    z = znorm(s)
    groups: dict[str, list[float]] = {"self": [], "partner": [], "stranger": []}
    n = len(s)
    for i in range(n):
        for j in range(n):
            groups[relation(dyads, i, j)].append(z[i, j])
    if not groups["partner"]:
        return {}
    return {
        "partner_vs_stranger": compare_groups(np.array(groups["partner"]), np.array(groups["stranger"])),
        "self_vs_partner": compare_groups(np.array(groups["self"]), np.array(groups["partner"])),
        "self_vs_stranger": compare_groups(np.array(groups["self"]), np.array(groups["stranger"])),
    }
