"""Moment-to-moment synchrony between partners: windowed lagged cross-correlation (WLCC) of time-aligned
signals (head angular speed, smile score), tested against the pseudo-couple null.

For cohorts whose sessions are time-locked (partners filmed at the same time, each video starting at the
same moment; the manifest's ``time_locked`` column says so), a pair's synchrony is the mean over windows of
the peak Pearson correlation over lags (Boker et al. 2002's windowed cross-correlation): x's window
[s, s + W) against y's window [s + l, s + l + W) for |l| <= L, so a partner who follows within L seconds
counts. The statistic of a cohort is the mean synchrony of its couples; the null re-pairs the same
people into pseudo-couples (uniform perfect matchings, within grouping strata; the observed pairing is one of
them, so p is valid) and computes the same statistic on their time-aligned signals, so whatever makes any two
recordings look alike (the task's rhythm, the windowing, the peak-picking bias) is in the null too. Chance, the
level the excess is measured from, is the mean over pseudo-couples proper (pairs that are not real couples).

Pure numpy functions over arrays; reading the per-frame signals from the extraction HDF5 files is the
I/O edge (:func:`session_signals`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dis_core.errors import DISError
from dis_core.features.motion import bridge_limit, local_period
from dis_core.score.stats import (MIN_COUPLES, _check_groups, _matchings, _pairs, couples_in_strata, couples_left_out, few_couples, holm, p_floor_notes,
                                  p_text, permutation_p, pseudo_couple_values, excess_values, signed, small_strata,
                                  unit_mean_interval)

SIGNALS = ("head_speed", "smile")
SIGNAL_TEXT = {"head_speed": "head angular speed (deg/s, from the facial transformation matrices)",
               "smile": "smile score (mean of the mouthSmileLeft and mouthSmileRight blendshapes)"}
TIME_LOCKED_COLUMN = "time_locked"
TRUE_WORDS = ("true", "1", "yes")


@dataclasses.dataclass(frozen=True)
class SynchronyConfig:
    """Windowed lagged cross-correlation on a common time grid (seconds)."""

    rate_hz: float = 10.0  # common grid every signal is resampled onto
    window_s: float = 4.0  # window length W
    step_s: float = 2.0  # window step
    max_lag_s: float = 1.0  # lags -L..L; positive: the second person follows the first
    max_gap_s: float = 0.2  # gaps in the face track up to this are bridged linearly, longer ones are NaN
    n_perm: int = 2000
    n_boot: int = 2000
    seed: int = 0


# ----------------------------------------------------------------------------------------------
# signals


def resample(times: np.ndarray, values: np.ndarray, rate_hz: float, duration_s: float,
             max_gap_s: float = 0.2) -> np.ndarray:
    """``values`` (NaN where missing) at t = 0, 1/rate, ... < duration by linear interpolation between
    finite samples no more than ``max_gap_s`` apart; NaN elsewhere (before, after, across longer gaps)."""
    t = np.asarray(times, float)
    v = np.asarray(values, float)
    ok = np.isfinite(v) & np.isfinite(t)
    grid = np.arange(int(np.floor(duration_s * rate_hz + 1e-9))) / rate_hz
    out = np.full(len(grid), np.nan)
    tk, vk = t[ok], v[ok]
    if len(tk) < 2:
        return out
    r = np.searchsorted(tk, grid, side="left")
    exact = (r < len(tk)) & (tk[np.minimum(r, len(tk) - 1)] == grid)
    inner = (r > 0) & (r < len(tk))
    lo, hi = np.maximum(r - 1, 0), np.minimum(r, len(tk) - 1)
    # a gap is its missing time, as the features count it (motion._gap_plan): the period around it from every
    # frame's time, not the face frames' alone (whose steps across gaps would lengthen it where detection flickers)
    finite = np.isfinite(t)
    period = local_period(t[finite])
    if len(period):
        at = (np.cumsum(finite) - 1)[np.flatnonzero(ok)][lo]  # each left sample's step among the finite times
        inner &= (tk[hi] - tk[lo]) - period[np.minimum(at, len(period) - 1)] <= bridge_limit(max_gap_s)
    out[inner] = np.interp(grid[inner], tk, vk)
    out[exact] = vk[hi[exact]]
    return out


def head_speed(times: np.ndarray, transforms: np.ndarray, max_gap_s: float = 0.2) -> np.ndarray:
    """Per-frame head angular speed in deg/s from (T, 4, 4) facial transformation matrices (NaN without a
    face or at a segment's ends); rotations, not Euler angles, so no gimbal artefacts."""
    from dis_core.features.motion import angular_velocity, bridge_rotations, rotations_from_transforms

    rot, ok = rotations_from_transforms(transforms)
    out = np.full(len(times), np.nan)
    if rot is None:
        return out
    q = np.full((len(times), 4), np.nan)
    q[ok] = rot.as_quat()
    q, _, seg = bridge_rotations(q, times, ok, max_gap_s)
    w = angular_velocity(q, times, seg)
    return np.degrees(np.linalg.norm(w, axis=1))


def smile_score(blendshapes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Per-frame smile score: mean of the mouthSmileLeft and mouthSmileRight blendshapes (NaN without a face)."""
    idx = [list(names).index(n) for n in ("mouthSmileLeft", "mouthSmileRight")]
    return np.asarray(blendshapes, float)[:, idx].mean(axis=1)


def session_signals(h5_path: Path, cfg: SynchronyConfig = SynchronyConfig()) -> dict[str, np.ndarray]:
    """The I/O edge: one extraction file -> each signal of SIGNALS on the common grid from t = 0."""
    from dis_core.extract.h5store import read_extraction

    x = read_extraction(h5_path, skip=("landmarks",))
    t = np.asarray(x.time_s, float)
    duration = float(t[-1]) + 1.0 / cfg.rate_hz if len(t) else 0.0
    raw = {"head_speed": head_speed(t, x.transform, cfg.max_gap_s),
           "smile": smile_score(x.blendshapes, x.blendshape_names)}
    return {k: resample(t, v, cfg.rate_hz, duration, cfg.max_gap_s) for k, v in raw.items()}


# ----------------------------------------------------------------------------------------------
# windowed lagged cross-correlation


def _zwindows(x: np.ndarray, starts: np.ndarray, w: int) -> np.ndarray:
    """(P, S, W) windows x[p, s:s+W], each standardised (mean 0, sd 1); NaN if any sample is missing or
    the window is constant."""
    idx = starts[:, None] + np.arange(w)[None, :]
    win = x[:, idx]
    mu = win.mean(axis=-1, keepdims=True)
    sd = win.std(axis=-1, keepdims=True)
    sd = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mu)), sd, np.nan)  # constant up to rounding: no correlation
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (win - mu) / sd
    z[~np.isfinite(z).all(axis=-1)] = np.nan
    return z


def _plan(t: int, cfg: SynchronyConfig) -> tuple[np.ndarray, int, np.ndarray]:
    w = int(round(cfg.window_s * cfg.rate_hz))
    step = max(1, int(round(cfg.step_s * cfg.rate_hz)))
    lag = int(round(cfg.max_lag_s * cfg.rate_hz))
    starts = np.arange(lag, t - w - lag + 1, step)
    return starts, w, np.arange(-lag, lag + 1)


def wlcc(x: np.ndarray, y: np.ndarray, cfg: SynchronyConfig = SynchronyConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Windowed lagged cross-correlation of two aligned signals on the grid: (r (windows, lags), lags in s).

    r[k, m] = Pearson r of x[s_k : s_k + W] and y[s_k + l_m : s_k + l_m + W]; l > 0 means y follows x.
    A window with a missing or constant stretch is NaN."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    t = min(len(x), len(y))
    starts, w, lags = _plan(t, cfg)
    if not len(starts):
        return np.zeros((0, len(lags))), lags / cfg.rate_hz
    zx = _zwindows(x[None, :t], starts, w)[0]  # (S, W)
    zy = np.stack([_zwindows(y[None, :t], starts + l, w)[0] for l in lags], axis=1)  # (S, L, W)
    return np.einsum("sw,slw->sl", zx, zy) / w, lags / cfg.rate_hz


def peak_synchrony(r: np.ndarray, lags_s: np.ndarray) -> tuple[float, float, int]:
    """Mean over windows of the peak r over lags, the median lag of those peaks (s), and the windows used."""
    ok = np.isfinite(r).all(axis=1)
    if not ok.any():
        return float("nan"), float("nan"), 0
    k = np.argmax(r[ok], axis=1)
    return float(r[ok].max(axis=1).mean()), float(np.median(lags_s[k])), int(ok.sum())


def synchrony_sums(signals: np.ndarray, cfg: SynchronyConfig = SynchronyConfig()) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of P time-aligned signals (P, T) at once: (sum over windows of the peak r, window count),
    each (P, P), symmetrised (a's windows against b's and b's against a's). Sums, so sessions add up."""
    x = np.asarray(signals, float)
    p, t = x.shape
    starts, w, lags = _plan(t, cfg)
    if not len(starts):
        return np.zeros((p, p)), np.zeros((p, p))
    za = _zwindows(x, starts, w).transpose(1, 0, 2)  # (S, P, W)
    peak = np.full((len(starts), p, p), -np.inf)
    ok = np.ones((len(starts), p, p), bool)
    for lag in lags:  # one lag at a time: memory S x P x P, whatever the number of lags
        zb = _zwindows(x, starts + lag, w).transpose(1, 2, 0)  # (S, W, P)
        r = za @ zb / w  # r[s, a, b]: a's window s against b's window s + lag
        fin = np.isfinite(r)
        ok &= fin
        peak = np.maximum(peak, np.where(fin, r, -np.inf))
    peak = np.where(ok, peak, 0.0)
    sums, counts = peak.sum(axis=0), ok.sum(axis=0).astype(float)
    return sums + sums.T, counts + counts.T


def synchrony_matrix(sessions: Sequence[np.ndarray], cfg: SynchronyConfig = SynchronyConfig()) -> np.ndarray:
    """(P, P) synchrony over time-locked sessions: ``sessions`` holds one (P, T_k) array per session label
    (person p's signal in that session, aligned to the same clock as everyone's). Mean peak r over every
    window of every session; NaN for pairs with no usable window; NaN diagonal."""
    sums = counts = 0
    for x in sessions:
        s, c = synchrony_sums(x, cfg)
        sums, counts = sums + s, counts + c
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    np.fill_diagonal(m, np.nan)
    return m


# ----------------------------------------------------------------------------------------------
# the test


def usable_couples(sync: np.ndarray, p: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, int]:
    """The couples of ``p`` whose people have a synchrony (a common usable window) with everyone of their stratum,
    dropping first the couple with the most undefined pairs, and how many were dropped: one short or faceless
    recording costs its couple, not the test."""
    keep = np.ones(len(p), bool)
    while keep.any():
        people = p[keep].ravel()
        lab = np.zeros(len(people), int) if groups is None else np.asarray(groups)[people]
        bad = ~np.isfinite(sync[np.ix_(people, people)]) & (lab[:, None] == lab[None, :])
        np.fill_diagonal(bad, False)
        if not bad.any():
            break
        keep[np.flatnonzero(keep)[np.argmax(bad.sum(axis=1).reshape(-1, 2).sum(axis=1))]] = False
    return p[keep], int((~keep).sum())


def synchrony_test(sync: np.ndarray, pairs, groups=None, n_perm: int = 2000, n_boot: int = 2000, seed: int = 0,
                   ci: float = 0.95) -> dict[str, object]:
    """One-sided test that couples are more synchronous than pseudo-couples.

    Statistic: mean synchrony over the real couples. Null: the same people re-paired into uniformly random
    perfect matchings (within ``groups``, one label per person; the observed pairing belongs to the
    reference set), the same statistic on those pseudo-couples; p by :func:`dis_core.score.stats.permutation_p`
    (exact over every pairing when there are at most ``n_perm``). Couples without a usable window with someone of
    their stratum (:func:`usable_couples`) and couples alone in theirs
    (:func:`dis_core.score.stats.couples_in_strata`) are left out and counted.
    Excess = observed - chance (the pseudo-couples' mean, :func:`dis_core.score.stats.pseudo_couple_values`), with an
    expanded percentile bootstrap interval over couples of values that carry chance's uncertainty
    (:func:`dis_core.score.stats.excess_values`)."""
    sync = np.asarray(sync, float)
    p = _pairs(pairs, len(sync))
    groups = _check_groups(groups, len(sync), p)
    p, unusable = usable_couples(sync, p, groups)
    if len(p) < 2:
        raise DISError(f"{unusable} couple(s) without a usable window with their stratum: fewer than two left")
    p, alone = couples_in_strata(p, groups)
    rng = np.random.default_rng(seed)
    per_dyad = sync[p[:, 0], p[:, 1]]
    observed = float(per_dyad.mean())
    m, exact, floor = _matchings(p.ravel(), groups, n_perm, rng)
    null = sync[m[..., 0], m[..., 1]].mean(axis=1)
    pval = permutation_p(null, observed, exact)
    pseudo, of_stratum, couples = pseudo_couple_values(lambda a, b: sync[a, b], p, groups)
    chance, sd = float(of_stratum.mean()), float(null.std(ddof=1))
    lo, hi = unit_mean_interval(excess_values(per_dyad, pseudo, of_stratum, couples), rng, n_boot, ci)
    return {"observed": observed, "chance": chance, "null_mean": float(null.mean()), "null_sd": sd,
            "excess": observed - chance, "excess_ci_lo": lo, "excess_ci_hi": hi,
            "effect_size": (observed - chance) / sd if sd > 0 else float("nan"), "p": float(pval),
            "exact": exact, "p_floor": floor, "dyads": len(p), "dyads_alone": alone, "dyads_unusable": unusable,
            "smallest_stratum": int(couples.min()),
            "per_dyad": per_dyad, "null": null}


def synchrony_family(signals: Mapping[str, Sequence[np.ndarray]], pairs, groups=None,
                     cfg: SynchronyConfig = SynchronyConfig()) -> tuple[list[dict[str, object]], list[str]]:
    """Every signal's synchrony test (``signals[name]`` = the per-session (P, T) arrays), Holm-adjusted
    across the tests that ran (``p_holm``): rows for the report's ``synchrony`` sheet, and why the others did not
    run (one signal's failure costs only its test)."""
    rows, skipped = [], []
    for name, sessions in signals.items():
        try:
            r = synchrony_test(synchrony_matrix(sessions, cfg), pairs, groups, n_perm=cfg.n_perm, n_boot=cfg.n_boot,
                               seed=cfg.seed)
        except DISError as e:
            skipped.append(f"{name}: not run ({e})")
            continue
        rows.append({"signal": name, "sessions": len(sessions),
                     "statistic": "mean over couples of the mean over windows of the peak lagged correlation "
                                  f"(window {cfg.window_s:g} s, step {cfg.step_s:g} s, lags +-{cfg.max_lag_s:g} s)",
                     **{k: v for k, v in r.items() if k not in ("per_dyad", "null")}, "permutations": len(r["null"])})
    for row, ph in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = float(ph)
    return rows, skipped


# ----------------------------------------------------------------------------------------------
# the cohort (I/O edge): which sessions are time-locked, and their signals


def time_locked(extra: Mapping[str, str]) -> bool:
    """A manifest row's ``time_locked`` column says its session was filmed on one clock with its partner's."""
    return str(extra.get(TIME_LOCKED_COLUMN, "")).strip().lower() in TRUE_WORDS


SHORT_SHARE = 0.5  # a couple whose shorter recording of a session is under this share of the session's median is left
# out, so that one short video cuts nobody else's windows to its length


def choose_sessions(couples: Sequence[tuple[str, str]], has: Mapping[str, set]) -> tuple[list[str], set]:
    """The session labels to compare couples on and the couples holding all of them (``has[label]``: the couples
    with both members filmed under it): the label held by the most couples, then each further label that keeps
    two couples and half of them. ([], set()) when no label is held by two couples."""
    sessions, held = [], set(couples)
    for s in sorted(has, key=lambda s: (-len(has[s]), s)):
        both = held & set(has[s])
        if len(both) >= 2 and (not sessions or 2 * len(both) >= len(couples)):
            sessions, held = sessions + [s], both
    return sorted(sessions), held if sessions else set()


def common_windows(sig: Mapping[tuple[str, str], Mapping[str, np.ndarray]], couples: Sequence[tuple[str, str]],
                   sessions: Sequence[str]) -> tuple[list, dict[str, list[np.ndarray]], dict[str, list[str]]]:
    """Couples kept, each signal's per-session (2 x couples, T) arrays (partners side by side) and who was left out
    why: ``sig[(person, session)]`` holds each signal on the common grid. A couple with a recording under
    :data:`SHORT_SHARE` of its session's median length is left out; each session is then cut to its shortest
    recording kept, so that every pair is compared on the same windows."""
    keep, left = list(couples), {}
    length = {k: len(v[SIGNALS[0]]) for k, v in sig.items()}
    for s in sessions:
        med = float(np.median([length[(p, s)] for c in keep for p in c])) if keep else 0.0
        for a, b in list(keep):
            if min(length[(a, s)], length[(b, s)]) < SHORT_SHARE * med:
                keep.remove((a, b))
                left.setdefault(f"a recording under {SHORT_SHARE:.0%} of session {s}'s median length", []).append(
                    f"{a}+{b}")
    people = [p for c in keep for p in c]
    out: dict[str, list[np.ndarray]] = {k: [] for k in SIGNALS}
    for s in sessions:
        t = min((length[(p, s)] for p in people), default=0)
        for k in SIGNALS:
            out[k].append(np.stack([sig[(p, s)][k][:t] for p in people]) if people else np.zeros((0, 0)))
    return keep, out, left


def cohort_synchrony(cohort, cfg: SynchronyConfig = SynchronyConfig()) -> tuple[list[dict], str] | None:
    """The synchrony family for a cohort whose manifest marks sessions ``time_locked``; None if none is.

    Every pair is compared on the same windows, or the re-pairings are not exchangeable with the couples (partners
    share their recordings' lengths and sessions: padded to each session's longest, couples covered windows many
    pseudo-couples never reach, and a null cohort gave p < 0.05 half the time when the signals drifted with time).
    So: the session labels time-locked for both members of the most couples (the best label, then each that keeps
    two couples and half of them), the couples holding all of them, less couples unreadable or with a recording under :data:`SHORT_SHARE` of the session's median
    length; every session cut to its shortest remaining recording. Couples left out are counted in the note.
    Returns (rows, note), rows empty with the reason in note when no test can run."""
    from dis_core.score.groups import cohort_grouping, grouping_text
    from dis_core.score.scoring import dyad_pairs

    locked = [e for e in cohort.entries if time_locked(dict(e.extra))]
    if not locked:
        return None
    pids = sorted({e.participant_id for e in locked})
    couples = [(pids[a], pids[b]) for a, b in dyad_pairs([cohort.dyad(p) for p in pids])]
    if len(couples) < 2:
        return [], "fewer than two complete dyads with time-locked sessions: no synchrony test"
    by = {(e.participant_id, e.session): e for e in locked}
    has = {s: {c for c in couples if (c[0], s) in by and (c[1], s) in by} for s in sorted({s for (_, s) in by})}
    sessions, held = choose_sessions(couples, has)
    if not sessions:
        return [], "synchrony test not run: no time-locked session is held by both members of two couples"
    left: dict[str, list[str]] = {}
    keep = [c for c in couples if c in held]
    left["without every time-locked session"] = [f"{a}+{b}" for a, b in couples if (a, b) not in keep]
    sig: dict[tuple[str, str], dict] = {}
    for a, b in list(keep):
        try:
            for p in (a, b):
                for s in sessions:
                    sig[(p, s)] = session_signals(cohort.layout.extraction(by[(p, s)].unit_id), cfg)
        except (DISError, OSError, KeyError, ValueError) as e:
            keep.remove((a, b))
            left.setdefault("unreadable", []).append(f"{a}+{b} ({e})")
    keep, per_signal, short = common_windows(sig, keep, sessions)
    left.update(short)
    gone = "".join(f"; left out, {why}: {', '.join(who)}" for why, who in left.items() if who)
    if len(keep) < 2:
        return [], f"synchrony test not run: fewer than two couples left{gone}"
    pids = [p for c in keep for p in c]  # couple members only, partners side by side
    pairs = [(2 * k, 2 * k + 1) for k in range(len(keep))]
    try:
        groups, _ = cohort_grouping(cohort, pids)
    except DISError as e:
        return [], f"synchrony test not run: {e}"
    rows, skipped = synchrony_family(per_signal, pairs, groups, cfg)
    if not rows:
        return [], "synchrony test not run: " + "; ".join(skipped) + gone
    note = (f"family: {len(rows)} synchrony test(s) ({', '.join(r['signal'] for r in rows)}), {len(pairs)} couples, "
            f"time-locked sessions {', '.join(sessions)}, pseudo-couples within {grouping_text(groups)}, "
            "Holm-corrected" + "".join(f"; {x}" for x in skipped) + gone)
    for r in rows:
        r["pseudo_couples_within"] = grouping_text(groups)
    return rows, note


def synchrony_text(rows: Sequence[dict], note: str, alpha: float = 0.05) -> str:
    """The synchrony family in words for the report's summary, each test's outcome after Holm."""
    out = [note]
    floors = p_floor_notes([r.get("p_floor", 0.0) for r in rows], exact=[r.get("exact", True) for r in rows])
    for r, floor in zip(rows, floors):
        sig = "couples more synchronous than pseudo-couples (supported)" if r["p_holm"] < alpha else "not supported"
        few = (few_couples(r.get("dyads", MIN_COUPLES)) + small_strata(r.get("smallest_stratum", 0)) + floor
               + couples_left_out(r))
        out.append(f"{r['signal']}: excess {signed(r['excess'], 3)} [{signed(r['excess_ci_lo'], 3)}, {signed(r['excess_ci_hi'], 3)}]{few} "
                   f"over pseudo-couples' {r.get('chance', r['null_mean']):.3f}, p {p_text(r['p'])}, Holm p {p_text(r['p_holm'])}: {sig}")
    return "; ".join(out)
