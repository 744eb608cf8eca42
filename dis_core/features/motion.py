"""Head motion as rotations: camera-invariant relative pose, gap bridging, angular velocity, spectra.

Pure numpy/scipy functions on one video's arrays. Work on the rotation group (scipy's ``Rotation``)
rather than on yaw/pitch/roll so that a session's camera placement cancels, short detection
dropouts are bridged instead of splitting every velocity window, and time-frequency features are
taken only over complete stretches of face (``segment`` ids) and never across a break.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from dis_core.timing import ROUNDING_S

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation


# ------------------------------------------------------------------------------- relative pose
def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    """Project (..., 3, 3) matrices onto the nearest proper rotation (SVD; removes scale and shear)."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= d[..., None]
    return u @ vt


def rotations_from_transforms(transforms: np.ndarray) -> tuple[Rotation | None, np.ndarray]:
    """(T, 4, 4) facial transformation matrices -> (rotations of the face frames, (T,) face mask).

    The rotation is the orthonormalised upper-left 3x3 block; rows with any NaN have no face."""
    m = np.asarray(transforms, dtype=np.float64)
    ok = np.isfinite(m).all(axis=(-1, -2))
    if not ok.any():
        return None, ok
    return Rotation.from_matrix(_nearest_rotation(m[ok][:, :3, :3])), ok


def reference_rotation(rot: Rotation, robust: bool = True, mad_k: float = 3.0, iterations: int = 5) -> Rotation:
    """Mean rotation of ``rot``; if ``robust``, repeatedly drop frames whose angle from the mean
    exceeds the median angle by more than ``mad_k`` (normal-scaled) MADs, so glances away don't bias it."""
    keep = np.ones(len(rot), bool)
    mean = rot.mean()
    if not robust:
        return mean
    for _ in range(iterations):
        ang = (mean.inv() * rot).magnitude()
        med = np.median(ang[keep])
        # floored: when most frames sit at one angle (a frozen or repeated frame) the MAD is 0 and glances
        # were kept, biasing the reference by 12 degrees on a test; 1e-6 rad still rejects them
        mad = max(MAD_TO_SD * np.median(np.abs(ang[keep] - med)), 1e-6)
        new = ang <= med + mad_k * mad
        if new.sum() < 1 or np.array_equal(new, keep):
            break
        keep = new
        mean = rot[np.flatnonzero(keep)].mean()
    return mean


def relative_rotvec(transforms: np.ndarray, ref_mask: np.ndarray | None = None, robust: bool = True,
                    mad_k: float = 3.0) -> np.ndarray:
    """(T, 4, 4) transforms -> (T, 3) rotation vectors (rad) of R_ref^T R_t, in the head's own frame.

    R_ref is the (robust) mean of the face frames in ``ref_mask`` (all face frames if None or empty).
    Why: a fixed change of camera placement C (R_t' = C R_t, so R_ref' = C R_ref since the mean is
    equivariant) cancels, (C R_ref)^T (C R_t) = R_ref^T R_t. NaN rows where there is no face."""
    m = np.asarray(transforms)
    out = np.full((m.shape[0], 3), np.nan)
    rot, ok = rotations_from_transforms(m)
    if rot is None:
        return out
    sel = ok if ref_mask is None else ok & np.asarray(ref_mask, bool)
    if not sel.any():
        sel = ok
    ref = reference_rotation(rot[np.flatnonzero(sel[ok])], robust=robust, mad_k=mad_k)
    out[ok] = (ref.inv() * rot).as_rotvec()
    return out


# ------------------------------------------------------------------------------- gap bridging
# frame times written to the millisecond (Matroska, WebM) step by one around the period: not a gap
# (the extraction and the spectra read such periods as one rate by the same bound)
STAMP_JITTER_S = ROUNDING_S


def bridge_limit(max_gap_s: float) -> float:
    """The longest gap (missing time: the time between the face frames around it less one period) that is bridged:
    ``max_gap_s`` read with the millisecond times' tolerance (6 frames at 30 fps were bridged at 20 of 30 places in a
    file, at 29.97 fps never), 0 when never bridging. One rule for missing rows, for jumps in the times (which split
    a segment above it) and for the synchrony's resampling."""
    return max_gap_s + STAMP_JITTER_S + 1e-9 if max_gap_s > 0 else 0.0


def local_period(times: np.ndarray, k: int = 5) -> np.ndarray:
    """Each step of ``times`` (len - 1 of them): the frame period around it, the median of the 2k + 1 steps
    centred on it (fewer at the ends). A gap's missing time is its step less this, at every rate of a video whose
    rate changes (a phone dropping to 15 fps in low light was measured with its 30 fps median period); a few
    gaps or stalls among the steps do not move it."""
    d = np.diff(np.asarray(times, np.float64))
    if len(d) <= 2 * k + 1:
        return np.full(len(d), float(np.median(d)) if len(d) else 0.0)
    w = np.lib.stride_tricks.sliding_window_view(np.pad(d, k, mode="reflect"), 2 * k + 1)
    return np.median(w, axis=1)


def _gap_plan(times: np.ndarray, ok: np.ndarray, max_gap_s: float):
    """Which missing frames to bridge, and the segment ids after bridging (-1 still missing)."""
    t = np.asarray(times, np.float64)
    ok = np.asarray(ok, bool)
    fill = np.zeros(len(ok), bool)
    idx = np.flatnonzero(ok)
    # a gap lasts as long as the face is missing: (missing frames) x (frame period), i.e. the time between
    # the surrounding face frames less one period (3 hidden frames at 15 fps are a 0.2 s gap), the period there
    period = local_period(t)
    limit = bridge_limit(max_gap_s)
    for a, b in zip(idx[:-1], idx[1:]):
        if b - a > 1 and t[b] - t[a] - period[a] <= limit:
            fill[a + 1:b] = True
    have = ok | fill
    segment = np.full(len(ok), -1, dtype=np.int64)
    # a jump in the frame times themselves (a decoder stall, frames dropped from a variable-rate file) is a
    # gap too, though no row is missing: longer than a bridge, it starts a new segment
    # (times written to the millisecond vary by one around the period: not a gap, whatever max_gap_s allows)
    jump = (np.concatenate([[False], np.diff(t) - period > max(limit, STAMP_JITTER_S + 1e-9)]) if len(t)
            else np.zeros(0, bool))
    starts = have & (~np.concatenate([[False], have[:-1]]) | jump)
    segment[have] = np.cumsum(starts)[have] - 1
    return fill, segment


def jump_slots(times: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """(T,) int: after each frame, the frames its segment's times skip (a jump in the times within the bridge
    limit: a decoder's dropped frames), which windows read through by interpolation as they read a bridged gap's
    rows; 0 elsewhere. QC counts them as bridged frames (they had counted none)."""
    t = np.asarray(times, np.float64)
    seg = np.asarray(segment)
    out = np.zeros(len(t), np.int64)
    if len(t) < 2:
        return out
    d, period = np.diff(t), local_period(t)
    same = (seg[:-1] >= 0) & (seg[:-1] == seg[1:]) & (d - period > STAMP_JITTER_S + 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        skipped = np.where(same & (period > 0), np.rint(d / np.where(period > 0, period, 1.0)) - 1, 0)
    out[:-1] = np.maximum(skipped, 0).astype(np.int64)
    return out


# A frame that repeats the one before it bit for bit, in a run lasting longer than this, is a frozen stream (a stalled
# recording or capture), not a still head: MediaPipe's output on a live camera differs from frame to frame. Such
# frames count as frames without a face (a features review: a 13 s freeze gave 8 s windows of log power 1e-12 in
# every band, 17 nats below the rest, and 388 identical head_pose rows). Shorter repeats (a frame shown twice by a
# rate conversion) are kept.
FROZEN_S = 0.5


def frozen_repeats(values: np.ndarray, times: np.ndarray, ok: np.ndarray, min_s: float = FROZEN_S) -> np.ndarray:
    """The frames that repeat the one before them exactly (all columns, both with values ``ok``), in runs lasting
    more than ``min_s`` seconds from the frame repeated to its last repeat: a frozen stream."""
    v, t, ok = np.asarray(values), np.asarray(times, float), np.asarray(ok, bool)
    same = np.zeros(len(v), bool)
    if len(v) > 1:
        same[1:] = ok[1:] & ok[:-1] & (v[1:] == v[:-1]).all(axis=1)
    edges = np.flatnonzero(np.diff(np.r_[0, same.astype(np.int8), 0]))
    out = np.zeros(len(v), bool)
    for a, b in zip(edges[::2], edges[1::2]):  # repeats a..b-1 of frame a-1
        if t[b - 1] - t[a - 1] > min_s:
            out[a:b] = True
    return out


def bridge_gaps(values: np.ndarray | None, times: np.ndarray, ok: np.ndarray, max_gap_s: float = 0.2,
                rotations: np.ndarray | Rotation | None = None):
    """Fill runs of missing frames lasting at most ``max_gap_s`` (missing frames x frame period) so
    one dropped detection does not split the motion; longer gaps split segments.

    Values (T, d) are linearly interpolated; if ``rotations`` ((T, 4) scalar-last quaternions, NaN
    where missing, or a length-T Rotation) is given it is slerped instead and returned as quaternions.
    Returns (filled, interpolated (T,) bool, segment (T,) int; -1 for frames still missing)."""
    t = np.asarray(times, np.float64)
    ok = np.asarray(ok, bool)
    if rotations is not None:
        q = rotations.as_quat() if isinstance(rotations, Rotation) else rotations
        return bridge_rotations(q, t, ok, max_gap_s)
    fill, segment = _gap_plan(t, ok, max_gap_s)
    v = np.array(values, dtype=np.float64, copy=True)
    flat = v.reshape(len(v), -1)
    flat[~ok] = np.nan
    if fill.any():
        for j in range(flat.shape[1]):
            flat[fill, j] = np.interp(t[fill], t[ok], flat[ok, j])
    return flat.reshape(v.shape), fill, segment


def bridge_rotations(quats: np.ndarray, times: np.ndarray, ok: np.ndarray, max_gap_s: float = 0.2):
    """Like :func:`bridge_gaps` for (T, 4) scalar-last quaternions, by spherical linear interpolation
    (scipy ``Slerp``), which stays on the rotation group. Returns (quats, interpolated, segment)."""
    t = np.asarray(times, np.float64)
    ok = np.asarray(ok, bool)
    fill, segment = _gap_plan(t, ok, max_gap_s)
    q = np.full((len(t), 4), np.nan)
    q[ok] = np.asarray(quats, np.float64)[ok]
    if fill.any():
        slerp = Slerp(t[ok], Rotation.from_quat(q[ok]))
        q[fill] = slerp(t[fill]).as_quat()
    return q, fill, segment


# ------------------------------------------------------------------------------- angular velocity
def _as_rotation_rows(rot) -> tuple[Rotation | None, np.ndarray]:
    """Rotation, (T, 3) rotvecs or (T, 4) quaternions (NaN rows missing) -> (rotations of ok rows, ok)."""
    if isinstance(rot, Rotation):
        return rot, np.ones(len(rot), bool)
    a = np.asarray(rot, np.float64)
    ok = np.isfinite(a).all(axis=1)
    if not ok.any():
        return None, ok
    r = Rotation.from_rotvec(a[ok]) if a.shape[1] == 3 else Rotation.from_quat(a[ok])
    return r, ok


def angular_velocity(rotvec_or_rot, times: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """(T, 3) body-frame angular velocity (rad/s): central difference rotvec(R_{t-1}^T R_{t+1}) / dt.

    Works on rotations, not on angles, so it has no gimbal artefacts; both neighbours must be in the
    frame's segment, hence NaN at segment ends and where there is no face."""
    t = np.asarray(times, np.float64)
    seg = np.asarray(segment)
    out = np.full((len(t), 3), np.nan)
    r, ok = _as_rotation_rows(rotvec_or_rot)
    if r is None or len(t) < 3:
        return out
    full = np.full(len(t), -1, np.int64)
    full[ok] = np.arange(ok.sum())
    i = np.arange(1, len(t) - 1)
    good = (seg[i] >= 0) & (seg[i - 1] == seg[i]) & (seg[i + 1] == seg[i]) & ok[i - 1] & ok[i + 1]
    i = i[good]
    if len(i):
        d = r[full[i - 1]].inv() * r[full[i + 1]]
        out[i] = d.as_rotvec() / (t[i + 1] - t[i - 1])[:, None]
    return out


# ------------------------------------------------------------------------------- gain
def gain_normalise(x: np.ndarray, ref_mask: np.ndarray | None = None) -> np.ndarray:
    """Divide each axis of (T, d) ``x`` by its robust spread (normal-scaled MAD) on the reference
    frames, so features keep their meaning under a per-session gain; NaN where the spread is zero."""
    v = np.asarray(x, np.float64)
    ref = np.ones(len(v), bool) if ref_mask is None else np.asarray(ref_mask, bool)
    r = v[ref]
    mad = MAD_TO_SD * np.nanmedian(np.abs(r - np.nanmedian(r, axis=0)), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mad > 0, v / np.where(mad > 0, mad, 1.0), np.nan)
