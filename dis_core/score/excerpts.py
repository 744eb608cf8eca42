"""Identification from excerpts of the held-out data: how many seconds of video recognise a person.

A whole held-out session (30-60 s) averages many windows; scoring consecutive excerpts of L seconds
asks how much video is needed, and separates densities that a whole session leaves level at the
ceiling. Pure functions over per-row log p; each person's excerpts are bootstrapped together.
An excerpt holding a detector gap is scored on the rows it has; rows built from the past (head_lags)
may look back across an excerpt's start, windows (head_spectrum, head_windows) do not. The rows are the whole
session's, normalised on its reference rotation, gains and medians: an excerpt's figures are an upper bound for a
recording only that long.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import numpy as np

from dis_core.score.scoring import TRIM, check_log_p, pair_score, weighted_tnorm
from dis_core.score.stats import (boot_result, holm, jackknife_se, paired_result, participant_draws, rate_result,
                                  topk_fractional, topk_leave_one_out, weighted_auc_eer, with_model_variation,
                                  with_paired_rate)


_TOL = 1e-6  # s: frame times read from a container (29.97 fps) land a rounding off their nominal instants


def excerpt_labels(times: np.ndarray, video: np.ndarray, length_s: float, window_s: float = 0.0,
                   hop_s: float = 0.0, spans: dict | None = None) -> np.ndarray:
    """Excerpt of each row (-1: none). Video v's excerpts are the whole spans [a, a + L), a = t0 + kL, that
    end by t1 (to within half a hop), (t0, t1) = ``spans[v]``, its first frame's start and its last frame's end
    (default: its first row's window start and last row's window end; for per-frame rows, its last frame's end
    one median frame step after its time). A row of a ``window_s`` window every ``hop_s``
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
        if spans is not None:
            t0, t1 = spans[vid]
        else:
            step = float(np.median(np.diff(t[m]))) if window_s == 0 and len(m) > 1 else 0.0
            t0, t1 = t[m].min() - window_s / 2, t[m].max() + window_s / 2 + step
        k = np.floor((t[m] - t0 - lo_off + _TOL) / length_s).astype(np.int64)  # the excerpt by its lower edge
        r = t[m] - t0 - k * length_s
        whole = t0 + (k + 1) * length_s <= t1 + hop_s / 2 + _TOL
        inside = (r >= lo_off - _TOL) & (r < hi_off - _TOL) & (k >= 0) & whole
        ks = np.unique(k[inside])
        ids = dict(zip(ks.tolist(), range(next_id, next_id + len(ks))))
        next_id += len(ks)
        out[m[inside]] = [ids[kk] for kk in k[inside].tolist()]
    return out


def full_rows(length_s: float, window_s: float, hop_s: float, frame_step_s: float) -> float:
    """The rows of an excerpt of ``length_s`` without a gap: its windows (``window_s`` every ``hop_s``), or its
    frames at ``frame_step_s`` for per-frame rows. Per video, so that a 12 fps video is held to its own rate."""
    if window_s > 0:
        return float(np.floor((length_s - window_s) / hop_s + _TOL) + 1)
    return length_s / frame_step_s if frame_step_s > 0 else 0.0


def drop_thin(labels: dict, full: dict, share: float = 0.5) -> dict:
    """Labels without the excerpts holding fewer than ``share`` of the rows they would hold without a gap
    (``full[p]``: per row, :func:`full_rows` of its video): an excerpt of a few face frames is not identification
    from L seconds. (Against the cohort's fullest excerpt, a 12 fps video's every excerpt was thin beside 30 fps.)"""
    out = {}
    for p, a in labels.items():
        a = np.asarray(a).copy()
        if (a >= 0).any():
            ids = a[a >= 0]
            count = np.bincount(ids)
            need = np.zeros(len(count))
            need[ids] = np.asarray(full[p], float)[a >= 0]  # one video an excerpt: one value each
            thin = np.flatnonzero((count < share * need) & (count > 0))
            a[np.isin(a, thin)] = -1
        out[p] = a
    return out


class Excerpts(NamedTuple):
    """Scores of every model on every excerpt: ``s`` (models x excerpts), ``owner`` (excerpts,) the person
    whose excerpt it is (index of their model)."""

    s: np.ndarray
    owner: np.ndarray


def excerpt_scores(per_row: Sequence[Sequence[np.ndarray]], labels: Sequence[np.ndarray], trim: float = TRIM) -> Excerpts:
    """``per_row[i][j]``: model i's log p on person j's rows; ``labels[j]``: :func:`excerpt_labels` of j's
    rows. Each (model, excerpt) score is the pipeline's rule (:func:`pair_score`) on the excerpt's rows;
    non-finite log p is an error naming the pair, as in :func:`score_matrix` (:func:`stream_excerpts`
    of the pairs in memory)."""
    if len(per_row) != len(labels):
        raise ValueError(f"{len(per_row)} models for {len(labels)} people: one model per person, in the same order")
    people = range(len(labels))
    pairs = ((i, j, per_row[i][j]) for i in people for j in people)
    return stream_excerpts(pairs, list(people), {0: dict(enumerate(labels))}, trim)[0]


METRICS = ("top1", "auc", "eer")


class _Prepared(NamedTuple):
    credit: np.ndarray  # (n,) each person's mean top-1 credit over their excerpts (NaN: no excerpt)
    per_person: np.ndarray  # (n,) excerpts per person


def _prepare(x: Excerpts, n: int) -> _Prepared:
    c = topk_fractional(x.s, 1, x.owner)[0]  # each excerpt among all N models
    k = np.bincount(x.owner, minlength=n).astype(float)
    with np.errstate(invalid="ignore"):
        return _Prepared(np.bincount(x.owner, weights=c, minlength=n) / k, k)


def _draw(x: Excerpts, p: _Prepared, idx: np.ndarray) -> tuple[float, float, float]:
    """(top-1, AUC, EER) of one draw of people (``idx``, with repeats), each person weighing as one.

    top-1: each drawn person's share of excerpts identified among all N models (the gallery is not
    resampled, as :func:`dis_core.score.stats.bootstrap_columns`). AUC and EER as the whole-session
    draws (:func:`dis_core.score.scoring.headline_draws`): the drawn people's models only, t-normed again
    within the draw with copies as weights (:func:`weighted_tnorm`), a person's excerpts sharing its weight.
    With one excerpt per person these are exactly the whole-session figures and draws."""
    u, count = np.unique(idx, return_counts=True)
    has = p.per_person[u] > 0
    if not has.any():
        return float("nan"), float("nan"), float("nan")
    top1 = float(np.sum(count[has] * p.credit[u][has]) / count[has].sum())
    w = np.zeros(len(p.credit))
    w[u] = count
    cols = np.flatnonzero(w[x.owner] > 0)
    own = np.searchsorted(u, x.owner[cols])  # each column's own model among the drawn rows
    sub = x.s[np.ix_(u, cols)]
    at = (own, np.arange(len(cols)))
    off = np.ones(sub.shape, bool)
    off[at] = False
    t = weighted_tnorm(sub, count.astype(float), off)
    wcol = count[own] / p.per_person[x.owner[cols]]  # a person's copies shared among their excerpts
    g, wg = t[at], wcol
    i_ok = np.isfinite(t) & off
    if not np.isfinite(g).any() or not i_ok.any():  # e.g. one person drawn N times: no impostor
        return top1, float("nan"), float("nan")
    wi = np.outer(count.astype(float), wcol)
    auc, eer = weighted_auc_eer(g[np.isfinite(g)], wg[np.isfinite(g)], t[i_ok], wi[i_ok])
    return top1, auc, eer


def excerpt_draws(x: Excerpts, n: int, n_boot: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(point (3,), draws (n_boot, 3)) of (top-1, AUC, EER): :func:`_draw` of everyone, then of each draw."""
    p = _prepare(x, n)
    point = np.array(_draw(x, p, np.arange(n)))
    return point, np.array([_draw(x, p, idx) for idx in participant_draws(n, n_boot, seed)])


def stream_excerpts(pairs: Iterable[tuple[str, str, np.ndarray]], order: Sequence[str],
                    labels: dict[float, dict[str, np.ndarray]], trim: float = TRIM) -> dict[float, Excerpts]:
    """:func:`excerpt_scores` for every length from (model pid, data pid, per-row log p) streamed one pair at
    a time (a score block's file, never every pair's rows at once); ``labels[L][pid]`` labels pid's rows."""
    pos = {p: i for i, p in enumerate(order)}
    layout = {}  # L -> (first column of each pid's excerpts, [row mask of each excerpt] per pid, total)
    for length, lab in labels.items():
        first, masks, col = {}, {}, 0
        for p in order:
            a = np.asarray(lab[p])
            ids = np.unique(a[a >= 0])
            first[p], masks[p] = col, [a == e for e in ids]
            col += len(ids)
        layout[length] = (first, masks, col)
    s = {length: np.full((len(order), total), np.nan) for length, (_, _, total) in layout.items()}
    for pi, pj, lp in pairs:
        lp = np.asarray(lp)
        check_log_p(lp, pi, pj)
        for length, (first, masks, _) in layout.items():
            if len(masks[pj]) and len(masks[pj][0]) != len(lp):
                raise ValueError(f"{pj}: {len(masks[pj][0])} labelled rows for {len(lp)} scored rows")
            for k, mask in enumerate(masks[pj]):
                s[length][pos[pi], first[pj] + k] = pair_score(lp[mask], trim)
    out = {}
    for length, (first, masks, total) in layout.items():
        owner = np.concatenate([np.full(len(masks[p]), pos[p], np.int64) for p in order] or [np.zeros(0, np.int64)])
        if np.isnan(s[length]).any():
            raise ValueError(f"excerpts of {length:g} s: {int(np.isnan(s[length]).sum())} (model, excerpt) pairs "
                             "were never streamed")
        out[length] = Excerpts(s[length], owner)
    return out


def excerpt_rows(ex: dict[str, Excerpts], n: int, pairs: Sequence[tuple[str, str]] = (), n_boot: int = 1000,
                 seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Each method's (top-1, AUC, EER) with 95 % percentile intervals over the ``n`` participants (a drawn
    person brings all their excerpts; see :func:`_draw`), and a - b for each (a, b) of ``pairs``, paired on
    the same draws: one set of draws per method serves its interval and every comparison it is in."""
    for a, b in pairs:
        if ex[a].s.shape != ex[b].s.shape or not np.array_equal(ex[a].owner, ex[b].owner):
            raise ValueError(f"{a} and {b} scored different excerpts: {ex[a].s.shape} vs {ex[b].s.shape}")
    draws = {m: excerpt_draws(x, n, n_boot, seed) for m, x in ex.items()}
    rows = []
    for m, (point, d) in draws.items():
        x = ex[m]
        row = {"method": m, "excerpts": int(x.s.shape[1]), "people": int(len(np.unique(x.owner))),
               "chance_top1": 1.0 / n}
        for k, key in enumerate(METRICS):
            b = boot_result(float(point[k]), d[:, k])
            if key == "top1":  # a rate over the people with excerpts, held to its Wilson interval as the whole
                # session's is: conservative here (a person's credit, the share of their excerpts identified, varies
                # less than a coin flip), but continuous (the bootstrap's alone had no width with every excerpt
                # identified, and nearly none with one missed) and equal to the whole session's with one excerpt
                # each; held also to the jackknife over people, whose models are not resampled by the draws
                b = rate_result(b, row["people"], se=jackknife_se(topk_leave_one_out(x.s, 1, x.owner)))
            row.update({key: b.point, f"{key}_lo": b.lo, f"{key}_hi": b.hi})
        rows.append(row)
    comps = []
    credit = {m: topk_fractional(x.s, 1, x.owner)[0] for m, x in ex.items()} if pairs else {}  # each excerpt's
    for a, b in pairs:
        (pa, da), (pb, db) = draws[a], draws[b]
        c = {"a": a, "b": b}
        for k, key in enumerate(METRICS):
            r = paired_result(float(pa[k] - pb[k]), da[:, k] - db[:, k])
            if key == "top1":  # the models' own variation, and Newcombe's interval, as the rates' hold them
                r = with_model_variation(r, jackknife_se(topk_leave_one_out(ex[a].s, 1, ex[a].owner)
                                                         - topk_leave_one_out(ex[b].s, 1, ex[b].owner)))
                r = with_paired_rate(r, credit[a], credit[b], owner=ex[a].owner)  # paired excerpt by excerpt
            c.update({f"{key}_diff": r.diff, f"{key}_diff_lo": r.lo, f"{key}_diff_hi": r.hi, f"{key}_p": r.p})
        comps.append(c)
    return rows, comps


def holm_family(comps: list[dict], metrics: Sequence[str] = METRICS) -> list[dict]:
    """``comps`` (rows of :func:`excerpt_rows`) with ``<metric>_p_holm`` for each of ``metrics``: Holm over every
    (comparison, metric) p given, the family a caller names by what it passes (the report: every feature
    set, length and baseline, on the metrics its verdicts weigh)."""
    adj = holm([c[f"{k}_p"] for c in comps for k in metrics]) if comps else []
    return [{**c, **{f"{k}_p_holm": float(adj[i * len(metrics) + j]) for j, k in enumerate(metrics)}}
            for i, c in enumerate(comps)]
