"""Identification from excerpts of the held-out data: how many seconds of video recognise a person.

A whole held-out session (30-60 s) averages many windows; scoring consecutive excerpts of L seconds
asks how much video is needed, and separates densities that a whole session leaves level at the
ceiling. Pure functions over per-row log p; each person's excerpts are bootstrapped together.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from dis_core.score.scoring import check_log_p, pair_score, standardised
from dis_core.score.stats import BootResult, PairedResult, boot_result, paired_result, participant_draws, weighted_auc_eer


def excerpt_labels(times: np.ndarray, video: np.ndarray, length_s: float, window_s: float = 0.0,
                   hop_s: float = 0.0, spans: dict | None = None) -> np.ndarray:
    """Excerpt of each row (-1: none). Video v's excerpts are the whole spans [a, a + L), a = t0 + kL, that
    end by t1 (to within half a hop), (t0, t1) = ``spans[v]``, its first frame's start and its last frame's end
    (default: its first row's window start and last row's window end). A row of a ``window_s`` window every ``hop_s``
    (time = its centre) belongs to the excerpt whose [a + W/2 - hop/2, a + L - W/2 + hop/2) holds its
    centre: its window lies inside to within half a hop (a window grid restarts after a long gap), and
    each row is in one excerpt at most. Excerpt ids run over the videos in their order of appearance."""
    t, v = np.asarray(times, float), np.asarray(video)
    if length_s < window_s:
        raise ValueError(f"an excerpt of {length_s:g} s cannot hold a window of {window_s:g} s")
    out = np.full(len(t), -1, np.int64)
    lo_off, hi_off = window_s / 2 - hop_s / 2, length_s - window_s / 2 + hop_s / 2
    next_id = 0
    for vid in dict.fromkeys(v.tolist()):
        m = np.flatnonzero(v == vid)
        t0, t1 = spans[vid] if spans is not None else (t[m].min() - window_s / 2, t[m].max() + window_s / 2)
        k = np.floor((t[m] - t0 - lo_off) / length_s + 1e-9).astype(np.int64)  # the excerpt by its lower edge
        r = t[m] - t0 - k * length_s
        whole = t0 + (k + 1) * length_s <= t1 + hop_s / 2 + 1e-9
        inside = (r >= lo_off - 1e-9) & (r < hi_off - 1e-9) & (k >= 0) & whole
        ks = np.unique(k[inside])
        ids = dict(zip(ks.tolist(), range(next_id, next_id + len(ks))))
        next_id += len(ks)
        out[m[inside]] = [ids[kk] for kk in k[inside].tolist()]
    return out


class Excerpts(NamedTuple):
    """Scores of every model on every excerpt: ``s`` (models x excerpts), ``owner`` (excerpts,) the person
    whose excerpt it is (index of their model)."""

    s: np.ndarray
    owner: np.ndarray


def excerpt_scores(per_row: Sequence[Sequence[np.ndarray]], labels: Sequence[np.ndarray]) -> Excerpts:
    """``per_row[i][j]``: model i's log p on person j's rows; ``labels[j]``: :func:`excerpt_labels` of j's
    rows. Each (model, excerpt) score is the pipeline's rule (:func:`pair_score`) on the excerpt's rows;
    non-finite log p is an error naming the pair, as in :func:`score_matrix`."""
    for i, row in enumerate(per_row):
        for j, v in enumerate(row):
            check_log_p(np.asarray(v), i, j)
    cols, owner = [], []
    for j, lab in enumerate(labels):
        lab = np.asarray(lab)
        for e in np.unique(lab[lab >= 0]):
            rows = lab == e
            cols.append([pair_score(np.asarray(per_row[i][j])[rows]) for i in range(len(per_row))])
            owner.append(j)
    s = np.array(cols, float).T if cols else np.zeros((len(per_row), 0))
    return Excerpts(s, np.asarray(owner, np.int64))


def top1_credit(x: Excerpts) -> np.ndarray:
    """Per excerpt, 1 when its owner's model scores highest; ties shared fairly (as topk_fractional)."""
    own = x.s[x.owner, np.arange(x.s.shape[1])]
    off = np.ones_like(x.s, bool)
    off[x.owner, np.arange(x.s.shape[1])] = False
    above = ((x.s > own) & off).sum(axis=0)
    tied = ((x.s == own) & off).sum(axis=0)
    return np.clip(1 - above, 0, tied + 1) / (tied + 1)


def tnormed(x: Excerpts) -> np.ndarray:
    """Each excerpt's scores standardised over its impostor models (the pipeline's t-norm, :func:`tnorm`)."""
    s = np.asarray(x.s, float)
    imp = s.copy()
    imp[x.owner, np.arange(s.shape[1])] = np.nan
    return standardised(s, np.nanmean(imp, axis=0), np.nanstd(imp, axis=0, ddof=1))


def _per_person(x: Excerpts, n: int):
    """Per person: mean top-1 credit of their excerpts, and their excerpts' genuine / impostor t-norm scores."""
    credit, z = top1_credit(x), tnormed(x)
    idx = np.arange(z.shape[1])
    gen = z[x.owner, idx]
    off = np.ones_like(z, bool)
    off[x.owner, idx] = False
    people = []
    for j in range(n):
        e = x.owner == j
        if e.any():
            people.append((credit[e].mean(), gen[e], z[:, e][off[:, e]]))
        else:
            people.append(None)
    return people


def _metrics(people, counts: np.ndarray) -> tuple[float, float, float]:
    """(top-1, AUC, EER) of the people drawn ``counts`` times each: top-1 the mean over people of their
    excerpts' credit; AUC and EER over every drawn excerpt's t-norm scores."""
    keep = [(p, c) for p, c in zip(people, counts) if p is not None and c > 0]
    if not keep:
        return float("nan"), float("nan"), float("nan")
    w = np.array([c for _, c in keep], float)
    top1 = float(np.sum(w * [p[0] for p, _ in keep]) / w.sum())
    g = np.concatenate([p[1] for p, _ in keep])
    imp = np.concatenate([p[2] for p, _ in keep])
    wg = np.concatenate([np.full(len(p[1]), c, float) for p, c in keep])
    wi = np.concatenate([np.full(len(p[2]), c, float) for p, c in keep])
    auc, eer = weighted_auc_eer(g, wg, imp, wi)
    return top1, auc, eer


METRICS = ("top1", "auc", "eer")


def excerpt_intervals(x: Excerpts, n: int, n_boot: int = 1000, seed: int = 0) -> dict[str, BootResult]:
    """top-1, AUC and EER with 95 % percentile intervals over the ``n`` participants (a drawn person
    brings all their excerpts; every model stays a competitor, as the identification intervals)."""
    people = _per_person(x, n)
    point = _metrics(people, np.ones(n))
    draws = np.array([_metrics(people, np.bincount(idx, minlength=n)) for idx in participant_draws(n, n_boot, seed)])
    return {k: boot_result(point[m], draws[:, m]) for m, k in enumerate(METRICS)}


def compare_excerpts(a: Excerpts, b: Excerpts, n: int, n_boot: int = 1000, seed: int = 0) -> dict[str, PairedResult]:
    """Method a - method b on the same excerpts: paired bootstrap over participants of each metric."""
    if a.s.shape != b.s.shape or not np.array_equal(a.owner, b.owner):
        raise ValueError(f"the methods scored different excerpts: {a.s.shape} vs {b.s.shape}")
    pa, pb = _per_person(a, n), _per_person(b, n)
    d0 = np.subtract(_metrics(pa, np.ones(n)), _metrics(pb, np.ones(n)))
    dist = []
    for idx in participant_draws(n, n_boot, seed):
        c = np.bincount(idx, minlength=n)
        dist.append(np.subtract(_metrics(pa, c), _metrics(pb, c)))
    dist = np.array(dist)
    return {k: paired_result(float(d0[m]), dist[:, m]) for m, k in enumerate(METRICS)}
