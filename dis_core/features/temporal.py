"""Representations that see time: one row per sliding window of several seconds.

A person's signature is how they move over seconds (the rhythm of sway, nods and shakes), which a
per-frame density cannot see. Here each row is a window lying wholly inside one stretch of face
(a segment after gap bridging) *and* inside one part of the split (train or test), and it records
every frame it covers, so the train/test disjointness guard sees windows exactly as frames.

Pure functions on one video's arrays; :func:`dis_core.features.build.video_features` calls
:func:`spectral_rows` for feature specs with ``window="spectrum"`` and :func:`frame_windows` (then a
:class:`WindowBasis` fitted on the cohort's training windows) for ``window="frames"``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dis_core.io.arrays import ArrayRecord
from dis_core.timing import rate_of_periods


@dataclasses.dataclass
class WindowRows:
    """Window rows of one video: descriptor values, centre frame, and every frame each window covers."""

    x: np.ndarray  # (n, d)
    centre: np.ndarray  # (n,) frame index nearest each window's centre
    covered: list[np.ndarray]  # per row, the frame indices its values were computed from
    columns: list[str]
    candidates: int  # windows that would fit in the selected frames if there were no gaps


def part_segments(segment: np.ndarray, select: np.ndarray) -> np.ndarray:
    """Segment ids restricted to ``select``: runs of consecutive frames in one segment and in the
    selection get one id each (-1 elsewhere), so no window crosses a gap or the train/test border."""
    seg = np.asarray(segment)
    sel = np.asarray(select, bool) & (seg >= 0)
    out = np.full(len(seg), -1, np.int64)
    start = sel & ~np.concatenate([[False], sel[:-1] & (seg[1:] == seg[:-1])])
    out[sel] = np.cumsum(start)[sel] - 1
    return out


def _nearest(ts: np.ndarray, when: float) -> int:
    """Index of the frame time nearest ``when`` (the earlier one on a tie)."""
    j = int(np.clip(np.searchsorted(ts, when), 0, len(ts) - 1))
    return j - 1 if j > 0 and when - ts[j - 1] <= ts[j] - when else j


def _windows(v: np.ndarray, t: np.ndarray, seg: np.ndarray, fs: float, n: int, hop_s: float, snap: bool,
             cells: bool = False):
    """Every complete window of ``n`` samples at ``fs`` Hz, every ``hop_s``, inside one run of ``seg``:
    yields (values resampled on the window's uniform grid (n, d), frames covered, centre frame).

    ``snap`` (a grid at the frame rate): each window starts on the frame nearest its nominal start, so the
    grid falls on the frames themselves; a grid between frames (a hop of 7.5 frames at 15 fps) would be
    read by linear interpolation, a low-pass filter of varying strength that changed the top band's power
    from one window to the next (2.68 against 1.89 on the same motion).

    ``cells`` (a grid coarser than the frames): sample k is the mean of the trajectory (linear between
    frames) over the k-th cell of 1 / ``fs`` seconds, the window spanning n cells: a box filter before
    the resampling, so motion above the grid's Nyquist frequency is attenuated (a sine at 0.8 ``fs`` to
    0.23 of its amplitude) instead of aliased into the window at full amplitude as by point sampling."""
    span = n / fs if cells else (n - 1) / fs
    for s in np.unique(seg[seg >= 0]):
        idx = np.flatnonzero(seg == s)
        ts, xs = t[idx], v[idx]
        if not np.isfinite(xs).all():
            continue
        if cells and len(ts) < 2:
            continue
        cum = _cumulative(ts, xs) if cells else None
        k, last = 0, -1
        while True:
            nominal = ts[0] + k * hop_s
            k += 1
            j = _nearest(ts, nominal) if snap else None
            start = ts[j] if snap else nominal
            if start + span > ts[-1] + 1e-9:
                break
            if snap and j == last:  # a hop shorter than the frame period: one window per frame
                continue
            last = j
            if cells:
                edges = start + np.arange(n + 1) / fs
                w = np.diff(_integral(ts, xs, cum, edges), axis=0) * fs
                grid = edges[[0, -1]]
            else:
                grid = start + np.arange(n) / fs
                w = np.column_stack([np.interp(grid, ts, xs[:, c]) for c in range(xs.shape[1])])
            lo = max(int(np.searchsorted(ts, grid[0], side="right")) - 1, 0)
            hi = min(int(np.searchsorted(ts, grid[-1] - 1e-9, side="left")), len(ts) - 1)  # rounding past a frame
            yield w, idx[lo:hi + 1], idx[_nearest(ts, start + span / 2.0)]


def _cumulative(ts: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(len(ts), d): the integral from ts[0] to each frame time of the piecewise-linear trajectory (trapezoids)."""
    dt = np.diff(ts)[:, None]
    return np.concatenate([np.zeros((1, xs.shape[1])), np.cumsum(0.5 * (xs[1:] + xs[:-1]) * dt, axis=0)])


def _integral(ts: np.ndarray, xs: np.ndarray, cum: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(len(at), d): the integral from ts[0] to each of ``at`` (inside [ts[0], ts[-1]]) of the piecewise-linear
    trajectory through (ts, xs), exactly; ``cum`` = :func:`_cumulative` (once per segment, not per window)."""
    k = np.clip(np.searchsorted(ts, at, side="right") - 1, 0, len(ts) - 2)
    h = (at - ts[k])[:, None]
    slope = (xs[k + 1] - xs[k]) / (ts[k + 1] - ts[k])[:, None]
    return cum[k] + h * xs[k] + 0.5 * h ** 2 * slope


def _frame_rate(t: np.ndarray, seg: np.ndarray) -> float | None:
    """The frame rate within runs of ``seg``, as the extraction reads it (None if no two consecutive frames share
    one): millisecond times' median period put 30 fps at 30.303, so 8 s windows drifted off the frames and their
    interpolation took power from the top band (a .mkv session read slower than an .mp4 of the same motion)."""
    same = (seg[1:] == seg[:-1]) & (seg[1:] >= 0)
    return rate_of_periods(np.diff(t)[same]) if len(t) > 1 else None


def _rows(feats: list, covered: list, centres: list, names: list[str], t, select, window_s, hop_s) -> WindowRows:
    x = np.asarray(feats) if feats else np.empty((0, len(names)))
    return WindowRows(x, np.asarray(centres, np.int64), covered, names, _candidates(t, select, window_s, hop_s))


def band_edges(n_bands: int = 6, fmin: float = 0.25, fmax: float = 5.0) -> np.ndarray:
    """Log-spaced band edges (n_bands + 1,) from ``fmin`` to ``fmax`` Hz, the same at every frame rate: a
    column ``rx_b4`` means one range of frequencies in every session (edges ending at a 9.6 fps video's
    Nyquist moved every band, a 3 Hz tremor from band 4 to band 5)."""
    return np.geomspace(fmin, fmax, n_bands + 1)


def band_bins(edges: np.ndarray, n: int, fs: float) -> list[np.ndarray]:
    """Per band, the rfft bins of an ``n``-sample window at ``fs`` Hz at or above its lower edge and below its
    upper one, to a tenth of a bin: edges on a bin (0.25 and 5 Hz of an 8 s window) then take the same bins
    at 29.97 as at 30 fps (exact comparisons moved a bin between bands, shifting band 0 by a nat). Only bins
    below Nyquist: below 2 ``fmax`` frames a second (a 10 fps camera's jitter) the top band holds fewer."""
    k = np.arange(n // 2 + 1)
    first = np.ceil(np.asarray(edges, np.float64) / (fs / n) - 0.1)  # first bin of each band
    return [(k >= a) & (k < b) & (2 * k < n) for a, b in zip(first[:-1], first[1:])]


def spectral_rows(values: np.ndarray, times: np.ndarray, segment: np.ndarray, select: np.ndarray,
                  columns: list[str], window_s: float = 8.0, hop_s: float = 0.5, n_bands: int = 6,
                  fmin: float = 0.25, fmax: float = 5.0) -> WindowRows:
    """Per-axis log band power of (T, d) ``values`` over windows of ``window_s`` every ``hop_s``.

    Each window is resampled to a uniform grid at the frame rate (:func:`_frame_rate`), de-meaned and Hann-tapered;
    bands are log-spaced from ``fmin`` to ``fmax`` at every frame rate (:func:`band_edges`, :func:`band_bins`).
    Columns are axis-major: ``<axis>_b<k>`` is the log power (log of variance units) in band k."""
    v = np.asarray(values, np.float64).reshape(len(values), -1)
    t = np.asarray(times, np.float64)
    seg = part_segments(segment, select)
    names = [f"{c}_b{k}" for c in columns for k in range(n_bands)]
    fs = _frame_rate(t, seg)
    feats, centres, covered = [], [], []
    if fs is None:
        return _rows(feats, covered, centres, names, t, select, window_s, hop_s)
    edges = band_edges(n_bands, fmin, fmax)
    n = int(round(window_s * fs))
    bins = band_bins(edges, n, fs)
    first = np.ceil(edges[:-1] / (fs / n) - 0.1)  # each band's first bin, as band_bins rounds it
    if any(not b.any() and 2 * f >= n for b, f in zip(bins, first)):  # starts at or past Nyquist: filmed too
        return _rows(feats, covered, centres, names, t, select, window_s, hop_s)  # slowly here, no rows
    if any(not b.any() for b in bins):
        raise ValueError(f"a band of {np.round(edges, 3).tolist()} Hz holds no frequency bin of a {window_s:g} s "
                         "window: use a longer window or fewer bands")
    taper = np.hanning(n)
    scale = 2.0 / (fs * np.sum(taper ** 2))  # one-sided power spectral density
    df = fs / n
    for w, cov, centre in _windows(v, t, seg, fs, n, hop_s, snap=True):
        w = (w - w.mean(axis=0)) * taper[:, None]
        psd = np.abs(np.fft.rfft(w, axis=0)) ** 2 * scale
        power = np.stack([psd[b].sum(axis=0) * df for b in bins], axis=1)  # (d, n_bands)
        feats.append(np.log(power + 1e-12).ravel())
        covered.append(cov)
        centres.append(centre)
    return _rows(feats, covered, centres, names, t, select, window_s, hop_s)


def frame_windows(values: np.ndarray, times: np.ndarray, segment: np.ndarray, select: np.ndarray,
                  columns: list[str], window_s: float = 2.0, hop_s: float = 0.25, grid_hz: float = 7.5) -> WindowRows:
    """The trajectory itself over windows of ``window_s`` every ``hop_s``: each window resampled on a uniform
    grid of ``grid_hz`` (so videos of any frame rate give the same columns) and flattened axis-major,
    ``<axis>@<k>`` being the trajectory's mean over the k-th 1 / grid_hz seconds of the window (a box filter
    against aliasing: :func:`_windows` with ``cells``). Reduced by a :class:`WindowBasis`."""
    v = np.asarray(values, np.float64).reshape(len(values), -1)
    t = np.asarray(times, np.float64)
    seg = part_segments(segment, select)
    n = max(int(round(window_s * grid_hz)), 2)
    names = [f"{c}@{k}" for c in columns for k in range(n)]
    feats, centres, covered = [], [], []
    for w, cov, centre in _windows(v, t, seg, grid_hz, n, hop_s, snap=False, cells=True):
        feats.append(w.T.ravel())
        covered.append(cov)
        centres.append(centre)
    return _rows(feats, covered, centres, names, t, select, window_s, hop_s)


@dataclasses.dataclass
class WindowBasis(ArrayRecord):
    """A PCA basis of flattened frame windows, fitted on the cohort's training windows only: rows become
    their coordinates on the k leading axes (``wpc1..k``), the axes the cohort's motion spans."""

    columns: np.ndarray  # (D,) the raw window columns it was fitted on, in order
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) orthonormal rows
    explained: np.ndarray  # (k,) fraction of the training windows' variance on each axis

    @property
    def names(self) -> list[str]:
        return [f"wpc{i + 1}" for i in range(len(self.components))]

    def project(self, x: np.ndarray, columns: list[str]) -> np.ndarray:
        """(n, D) raw window rows with ``columns`` -> (n, k) coordinates."""
        if list(columns) != [str(c) for c in self.columns]:
            raise ValueError("window rows have other columns than the window basis was fitted on "
                             "(another window length, grid or axes): refit the cohort step")
        return (np.asarray(x, np.float64) - self.mean) @ self.components.T



def fit_window_basis(x: np.ndarray, columns: list[str], k: int) -> WindowBasis:
    """PCA of (n, D) raw training windows: the k leading axes (sign fixed: largest loading positive)."""
    m = RowMoments(np.shape(x)[1])
    m.add(x)
    return window_basis_of(m, columns, k)


def window_basis_of(m: RowMoments, columns: list[str], k: int) -> WindowBasis:
    """The window basis of the raw training windows gathered in ``m`` (added a video at a time)."""
    if m.n < k + 2:
        raise ValueError(f"{m.n} training windows cannot fit a {k}-dimensional window basis")
    comps, explained, mu = m.pca(k)
    return WindowBasis(np.asarray(columns, str), mu, comps, explained)


class RowMoments:
    """Running mean and second moment of rows added a batch (a video) at a time: the PCA of a cohort's
    rows in O(D^2) memory, whatever the cohort's size. ``about_mean``: the PCA of the rows about their
    common mean; otherwise of the rows as given (e.g. each video's rows minus that video's median)."""

    def __init__(self, d: int, about_mean: bool = True):
        self.about_mean = about_mean
        self.n = 0
        self.total = np.zeros(d)
        self.shift: np.ndarray | None = None  # about_mean: the first batch's mean (no sum-of-squares cancellation)
        self.gram = np.zeros((d, d))

    def add(self, x: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Add (n, D) rows ``x`` (the mean is theirs); ``rows``: the rows the second moment is of, when
        they are not ``x`` (only without ``about_mean``)."""
        x = np.asarray(x, np.float64)
        if not len(x):
            return
        self.n += len(x)
        self.total += x.sum(axis=0)
        if self.about_mean:
            if rows is not None:
                raise ValueError("rows about the common mean are the rows themselves")
            if self.shift is None:
                self.shift = x.mean(axis=0)
            r = x - self.shift
        else:
            r = x if rows is None else np.asarray(rows, np.float64)
        self.gram += r.T @ r

    def pca(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k leading principal axes, each signed so that its largest loading is positive:
        (components (k, D), explained fraction (k,), mean (D,))."""
        mu = self.total / self.n
        g = self.gram
        if self.about_mean:
            d = mu - self.shift
            g = g - self.n * np.outer(d, d)
        var, vecs = np.linalg.eigh((g + g.T) / 2)
        order = np.argsort(var)[::-1][:k]
        comps = vecs[:, order].T
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        return comps * signs[:, None], np.clip(var[order], 0, None) / np.trace(g), mu


def _candidates(t: np.ndarray, select: np.ndarray, window_s: float, hop_s: float) -> int:
    """How many windows the selected frames would give without any gap (for the 'dropped' count)."""
    sel = np.flatnonzero(np.asarray(select, bool))
    if not len(sel):
        return 0
    span = t[sel[-1]] - t[sel[0]]
    return int(max(np.floor((span - window_s) / hop_s) + 1, 0))


def session_spectrum(values: np.ndarray, times: np.ndarray, segment: np.ndarray, select: np.ndarray,
                     columns: list[str], **kw) -> np.ndarray:
    """One descriptor per session: the mean over its windows of the per-axis log band power
    (what the nearest-neighbour reference compares). NaN if the session has no complete window."""
    r = spectral_rows(values, times, segment, select, columns, **kw)
    return r.x.mean(axis=0) if len(r.x) else np.full(len(r.columns), np.nan)
