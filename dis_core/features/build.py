"""Feature sets for the flows: head rotation, aligned landmarks in a cohort PCA basis, blendshapes.

Pure functions on arrays: per-frame values, made invariant to a session's constant offsets, with
velocities from the real frame times and optional lagged copies (a window that sees time).

Head pose (the default ``head_pose`` set, source ``head_rotation``) is not yaw/pitch/roll: each
frame is the rotation vector of R_ref^T R_t, the head's rotation relative to the robust mean
rotation R_ref of the video's fitting (training) frames (:func:`dis_core.features.motion.relative_rotvec`).
A fixed camera placement cancels exactly and there are no gimbal artefacts; its velocity is the
body-frame angular velocity rotvec(R_{t-h}^T R_{t+h}) / 2h. The Euler angles stay available as
source ``head_pose`` (e.g. the non-default spec ``head_pose_euler``).

Short detector dropouts (the face missing for at most ``max_gap_s``: missing frames x frame period) are bridged
(slerp for rotations, linear otherwise, :mod:`dis_core.features.motion`) so that they do not split velocity
and lag windows; longer gaps split the video into segments and no window crosses one. Bridged
frames are only ever looked at from inside a window: they are never emitted as feature rows, and
how many were used is counted. Frames without a face, or whose window cannot be completed inside
its segment, are dropped and counted.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from dis_core.features import motion
from dis_core.io.arrays import ArrayRecord
from dis_core.features.temporal import RowMoments, WindowBasis, frame_windows, spectral_rows

SOURCES = ("head_rotation", "head_pose", "landmarks", "blendshapes")
WINDOWS = ("none", "spectrum", "frames")


TRANSFORMS = ("none", "logit", "dequantised_logit")  # FeatureSpec.transform (see transform_values)


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One feature set. ``name`` is how models and reports refer to it."""

    name: str
    source: str
    center: str = "session"  # "session": subtract each video's median (fitted on its training frames); "none"
    # (head_rotation is already relative to the video's robust mean rotation; "none" keeps it a rotation vector)
    scale: str = "none"  # "session": also divide by each video's robust spread (removes gain; keeps timing)
    velocity: bool = True  # append d/dt from the real frame times (central difference t +- velocity_window_s)
    velocity_window_s: float = 0.1
    lags_s: tuple[float, ...] = ()  # append the values at t - lag, for each lag (seconds)
    k: int = 8  # dimensions of the cohort PCA basis (landmarks; window rows of window="frames")
    max_gap_s: float = 0.2  # bridge detector gaps up to this long (missing frames x period) inside windows; 0: never
    # rows over time (dis_core.features.temporal): "none" = one row per frame; "spectrum" = one row per
    # sliding window of window_s seconds every hop_s, per-axis log power in n_bands log-spaced bands;
    # "frames" = one row per such window, its means over the cells of a grid_hz grid, reduced to the k axes of a PCA
    # basis fitted on the cohort's training windows (the cohort step)
    window: str = "none"
    window_s: float = 8.0
    hop_s: float = 0.5
    n_bands: int = 6
    grid_hz: float = 7.5
    # values in [0, 1] (blendshape scores) mapped before centring and velocities into an unbounded space for the
    # flow (see :func:`transform_values`): "dequantised_logit" (the default of blendshapes) spreads the scores
    # clipped at LOGIT_EPS over a known band, "logit" (before session 47) leaves them on one value
    transform: str = "none"

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, not {self.transform!r}")
        if self.transform != "none" and self.source != "blendshapes":
            raise ValueError(f"transform {self.transform!r} is for blendshape scores in [0, 1]")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {self.window!r}")
        if self.source not in SOURCES:
            raise ValueError(f"feature source {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.center not in ("session", "none"):
            raise ValueError(f"center must be 'session' or 'none', not {self.center!r}")
        if self.scale not in ("session", "none"):
            raise ValueError(f"scale must be 'session' or 'none', not {self.scale!r}")
        # numbers that would hang the window loop (hop 0), give NaN columns dropped unsaid (velocity window 0)
        # or read the future as the past (a negative lag)
        for name in ("window_s", "hop_s", "velocity_window_s", "grid_hz"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a number above 0, not {getattr(self, name)!r}")
        if not all(np.isfinite(lag) and lag > 0 for lag in self.lags_s):
            raise ValueError(f"lags_s must be seconds above 0 (the past), not {self.lags_s!r}")
        if self.window != "none" and (self.velocity or self.lags_s):  # window rows never read them: say so
            raise ValueError(f"window={self.window!r} rows take no per-frame velocity or lags "
                             f"(velocity=False, lags_s=()): got velocity={self.velocity}, lags_s={self.lags_s!r}")
        if self.k < 1 or self.n_bands < 1 or not (np.isfinite(self.max_gap_s) and self.max_gap_s >= 0):
            raise ValueError(f"k and n_bands must be 1 or more and max_gap_s 0 or more (k={self.k}, "
                             f"n_bands={self.n_bands}, max_gap_s={self.max_gap_s})")


# Defaults chosen by bench/identify.py (issue #12, 40 x 2 x 60 s hard phantom, see the README): head motion
# over seconds (head_spectrum: per-axis log band power over 8 s windows every 0.5 s of the gain-normalised
# relative rotation, a pooled density) identifies best (top-1 0.975, EER 0.053 against 0.875 and 0.18 per
# frame); head_pose stays for short recordings, where head_spectrum does not apply (it needs 8 s of face
# in each part of the split: the cohort step then records why and its units are left out, not failed).
DEFAULT_FEATURE_SETS: dict[str, FeatureSpec] = {
    "head_pose": FeatureSpec("head_pose", "head_rotation", center="none", velocity=True, velocity_window_s=0.2),
    "head_spectrum": FeatureSpec("head_spectrum", "head_rotation", center="none", scale="session", velocity=False,
                                 window="spectrum", window_s=8.0, hop_s=0.5, n_bands=6, max_gap_s=0.4),
    "landmarks": FeatureSpec("landmarks", "landmarks", velocity=True, velocity_window_s=0.3, k=8),
    "blendshapes": FeatureSpec("blendshapes", "blendshapes", velocity=False, transform="dequantised_logit"),
}

# Not defaults: the former head-pose set on yaw/pitch/roll (degrees), for comparison; per-frame rows with
# the past 0.2 and 0.4 s (for the conditional flow p(present | past) and the autoregressive baseline);
# and the trajectory itself over 2 s windows every 0.25 s (a 7.5 Hz grid, 45 values) on the 12 leading
# axes of a basis fitted on the cohort's training windows: the shapes of nods and shakes, which band
# power averages away. A window of head_spectrum bridges gaps up to 0.4 s, as band power below 5 Hz
# barely changes over such a bridge.
EXTRA_FEATURE_SETS: dict[str, FeatureSpec] = {
    "head_pose_euler": FeatureSpec("head_pose_euler", "head_pose", velocity=True, velocity_window_s=0.3),
    "head_lags": FeatureSpec("head_lags", "head_rotation", center="none", scale="session", velocity=True,
                             velocity_window_s=0.2, lags_s=(0.2, 0.4)),
    "head_windows": FeatureSpec("head_windows", "head_rotation", center="none", scale="session", velocity=False,
                                window="frames", window_s=2.0, hop_s=0.25, grid_hz=7.5, k=12),
}
FEATURE_SETS: dict[str, FeatureSpec] = {**DEFAULT_FEATURE_SETS, **EXTRA_FEATURE_SETS}  # every named set


def row_word(feature_set: str) -> str:
    """What one row of a named feature set is, for people: "windows" for window rows, else "frames"."""
    spec = FEATURE_SETS.get(feature_set)
    return "windows" if spec is not None and spec.window != "none" else "frames"


def row_overlap(spec: FeatureSpec) -> int:
    """How many neighbouring rows on one side share frames with a row: those of windows of ``window_s`` every
    ``hop_s`` (16 for 8 s spectra every 0.5 s, 8 for 2 s trajectories every 0.25 s); 0 for frame rows. A flow's
    validation rows are kept that far from its training rows (``train_flow(purge=...)``)."""
    if spec.window == "none":
        return 0
    if spec.window == "frames":  # a trajectory window reads the frames around both its ends (the closed span
        # [s, s + window_s]): the window starting where it ends shares those frames too
        return int(np.floor(spec.window_s / spec.hop_s + 1e-9))
    # window_s / hop_s - 1 rows at a rate whose hop is a whole number of frames; one more where window starts
    # snapped to frames come closer than the hop (29.97 fps: 16 hops can span 239 frames of a 240-frame window)
    return int(np.ceil(spec.window_s / spec.hop_s - 1e-9))


FRAME_PERIOD_BOUND_S = 0.1  # one frame at 10 fps: face video is recorded at that rate or faster


def reach_s(spec: FeatureSpec, period_s: float = FRAME_PERIOD_BOUND_S) -> float:
    """How far (seconds) a row's values look from its own frame, for a within-session split's gap: frame rows
    read the velocity half-window plus the longest lag, and the frame beyond each moment they interpolate
    at (one period); window rows stay inside their part of the split. Either may read a bridged frame, whose
    value comes from a face frame up to a bridge plus a period further on."""
    # (the bridge's 2 ms tolerance for millisecond times, motion.bridge_limit, is left out: above 10.2 fps a frame
    # period is 2 ms or more below the bound's 0.1 s, which covers it; counting it made head_lags reach 1.002 s,
    # past the default 1 s gap)
    bridge = spec.max_gap_s + period_s if spec.max_gap_s > 0 else 0.0
    if spec.window != "none":
        return bridge
    looks = (spec.velocity_window_s if spec.velocity else 0.0) + max(spec.lags_s, default=0.0)
    return looks + (period_s if looks > 0 else 0.0) + bridge


def parse_feature_sets(names: str) -> list[FeatureSpec]:
    """'head_pose,landmarks' -> the default specs of those names, each once (a repeated name would train twice
    and put a feature set's tests into the run's Holm families twice)."""
    out = []
    known = FEATURE_SETS
    for n in dict.fromkeys(s.strip() for s in names.split(",") if s.strip()):
        if n not in known:
            raise ValueError(f"unknown feature set {n!r}; known: {', '.join(known)}")
        out.append(known[n])
    if not out:
        raise ValueError("no feature set given")
    return out


# ----------------------------------------------------------------------------- landmark alignment
def _center_scale(pts: np.ndarray) -> np.ndarray:
    """Remove translation and scale: (n, p, 2) -> centred, unit Frobenius norm."""
    c = pts - pts.mean(axis=1, keepdims=True)
    return c / np.linalg.norm(c, axis=(1, 2), keepdims=True)


def procrustes_align(pts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Align (n, p, 2) shapes to ``reference`` (p, 2) by a similarity transform (position, scale,
    in-plane rotation; no reflection). Output is on the reference's centred unit scale."""
    x = _center_scale(np.asarray(pts, np.float64))
    ref = _center_scale(np.asarray(reference, np.float64)[None])[0]
    m = np.einsum("npi,pj->nij", x, ref)  # (n, 2, 2) cross-covariance
    u, s, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= d[:, None]
    r = u @ vt
    scale = (s[:, 0] + d * s[:, 1])[:, None, None]  # optimal scale onto the reference
    return scale * (x @ r)


def mean_shape(pts: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Generalised Procrustes mean of (n, p, 2) shapes."""
    ref = _center_scale(pts[:1].astype(np.float64))[0]
    for _ in range(iterations):
        ref = _center_scale(procrustes_align(pts, ref).mean(axis=0)[None])[0]
    return ref


@dataclasses.dataclass
class LandmarkBasis(ArrayRecord):
    """The cohort's landmark space: Procrustes reference shape and a PCA basis fitted once for all."""

    reference: np.ndarray  # (p, 2)
    mean: np.ndarray  # (2p,)
    components: np.ndarray  # (k, 2p)
    explained: np.ndarray  # (k,)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(n, p, 2) image-space landmarks -> (n, k) coordinates in the basis."""
        a = procrustes_align(pts, self.reference).reshape(len(pts), -1)
        return (a - self.mean) @ self.components.T



def fit_landmark_basis(pts: np.ndarray, k: int, groups: np.ndarray | None = None) -> LandmarkBasis:
    """Fit the reference shape and a k-dimensional PCA on (n, p, 2) training landmarks of the cohort.

    With ``groups`` (n,) (one label per video), the PCA is fitted on centred shapes (each aligned shape
    minus its video's median shape), so the axes capture facial motion rather than differences in face
    geometry between people; ``mean`` stays the cohort's mean aligned shape."""
    fit = LandmarkMoments(mean_shape(pts), centre=groups is not None)
    if groups is None:
        fit.add(pts)
    else:
        groups = np.asarray(groups)
        for g in np.unique(groups):
            fit.add(pts[groups == g])
    return fit.basis(k)


class LandmarkMoments:
    """The landmark basis fitted one video at a time: shapes aligned on a reference shape chosen beforehand,
    their running moments kept (:class:`RowMoments`), so a cohort of any size fits in O(p^2) memory."""

    def __init__(self, reference: np.ndarray, centre: bool = True):
        self.reference, self.centre = np.asarray(reference, np.float64), centre
        self.moments = RowMoments(self.reference.size, about_mean=not centre)

    def add(self, pts: np.ndarray) -> None:
        """One video's (n, p, 2) shapes (centred on that video's median shape when ``centre``)."""
        a = procrustes_align(pts, self.reference).reshape(len(pts), -1)
        self.moments.add(a, a - np.median(a, axis=0) if self.centre else None)

    def basis(self, k: int) -> LandmarkBasis:
        comps, explained, mu = self.moments.pca(k)
        return LandmarkBasis(self.reference, mu, comps, explained)


def landmark_points(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, 478, 3) normalised landmarks -> (T, 478, 2) in pixels (aspect ratio preserved)."""
    return landmarks[:, :, :2].astype(np.float64) * np.array([width, height], np.float64)


# ------------------------------------------------------------------------------ per-video features
@dataclasses.dataclass
class VideoFeatures:
    """One video's feature rows: which frames they come from, and the named columns."""

    frames: np.ndarray  # (n,) frame indices into the video
    times: np.ndarray  # (n,) seconds
    x: np.ndarray  # (n, d) float64
    columns: list[str]
    dropped: int  # frames of the selection lost to missing faces or incomplete windows
    interpolated: int = 0  # bridged (interpolated) frames that some emitted row's window used
    covered: np.ndarray | None = None  # window rows: every frame some row was computed from (sorted)
    still: bool = False  # no rows: a scaled rotation axis hardly moves on the frames that set its gain (MIN_GAIN_RAD),
    # or the head is frozen (a stream repeating one frame, motion.FROZEN_S) on more than half of them


# Below this robust spread (rad) on the frames that set a session's gain, the head does not move: more than half of
# those frames are one rotation (a still image, a frozen stream). Dividing by the spread then multiplied the moving
# frames' values by up to 1e6 (a features review); such a video gives no rows, and says why. MediaPipe's own jitter
# on real video is some 1e-3 rad.
MIN_GAIN_RAD = 1e-4


# Blendshape scores are clipped to [LOGIT_EPS, 1 - LOGIT_EPS] before the logit: MediaPipe gives exact
# zeros and scores down to ~1e-7 for idle channels; below 1e-4 a score means "off". Left on one value, the clipped
# frames of a channel that also moves are an atom, where a continuous density's likelihood has no bound: a flow
# gained 2-4 nats a row on rows with clipped channels over the Gaussian, by how many channels were off, not by how
# a person moves (a session-47 review). "dequantised_logit" spreads them, log-uniformly, over
# [LOGIT_EPS * 10**-DEQUANT_DECADES, LOGIT_EPS] (and 1 - that): a band of 4.6 logit units, by draws fixed per
# (frame, channel), so features and models are reproducible and a frame's value does not depend on the split.
# A channel clipped on every face frame of a video's training frames stays on its one value there (and on the
# held-out frames): the dead-channel and fixed-column rules still see a constant, whatever the held-out part does.
LOGIT_EPS = 1e-4
DEQUANT_DECADES = 2.0


def _dequantising_draws(n: int, d: int) -> np.ndarray:
    """(n, d) uniform draws in [0, 1), the same for frame i and channel j of every video of n frames or more."""
    return np.random.default_rng(0x5EED).random((n, 52 if d <= 52 else d))[:, :d] if n else np.zeros((0, d))


def transform_values(v: np.ndarray, transform: str, fit: np.ndarray | None = None) -> np.ndarray:
    """Per-frame values in the space the flow models: unchanged, the logit of clipped scores, or that with the
    clipped scores of a channel that moves on the ``fit`` frames (the video's training frames; all if None or
    faceless) dequantised (NaN kept): held-out frames never decide how training frames are written."""
    if transform == "none":
        return v
    if transform not in TRANSFORMS:
        raise ValueError(transform)
    p = np.clip(v, LOGIT_EPS, 1 - LOGIT_EPS)
    if transform == "dequantised_logit" and v.size:
        face = np.isfinite(v)
        use = np.ones(len(v), bool) if fit is None else np.asarray(fit, bool)
        if not (face & use[:, None]).any():
            use = np.ones(len(v), bool)
        u = _dequantising_draws(len(v), v.shape[1])
        band = LOGIT_EPS * 10.0 ** (-DEQUANT_DECADES * u)  # log-uniform in [eps 10^-D, eps]
        for off, keep in ((face & (v < LOGIT_EPS), band), (face & (v > 1 - LOGIT_EPS), 1 - band)):
            moving = (face & ~off & use[:, None]).any(axis=0)  # a channel always off there stays constant
            p = np.where(off & moving, keep, p)
    return np.log(p) - np.log1p(-p)


def base_values(source: str, head_pose: np.ndarray | None = None, landmarks_xy: np.ndarray | None = None,
                blendshapes: np.ndarray | None = None, blendshape_names=None,
                basis: LandmarkBasis | None = None, transform: np.ndarray | None = None,
                fit: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """(T, d) per-frame values of a source, NaN rows where there is no face, and their column names.

    ``head_rotation`` needs the (T, 4, 4) ``transform``; its reference rotation is the robust mean
    over the face frames in ``fit`` (the video's training frames; all face frames if None/empty)."""
    if source == "head_rotation":
        if transform is None:
            raise ValueError("head_rotation features need the facial transformation matrices")
        return motion.relative_rotvec(transform, ref_mask=fit), ["rx", "ry", "rz"]
    if source == "head_pose":
        return np.asarray(head_pose, np.float64), ["yaw", "pitch", "roll"]
    if source == "blendshapes":
        return np.asarray(blendshapes, np.float64), list(blendshape_names)
    if source == "landmarks":
        if basis is None:
            raise ValueError("landmark features need the cohort basis")
        out = np.full((len(landmarks_xy), len(basis.components)), np.nan)
        ok = np.isfinite(landmarks_xy).all(axis=(1, 2))
        if ok.any():
            out[ok] = basis.project(landmarks_xy[ok])
        return out, [f"lmpc{i + 1}" for i in range(len(basis.components))]
    raise ValueError(source)


def video_features(values: np.ndarray, columns: list[str], times: np.ndarray, select: np.ndarray,
                   fit: np.ndarray, spec: FeatureSpec, window_basis: WindowBasis | None = None) -> VideoFeatures:
    """Build feature rows for the selected frames of one video.

    ``values`` (T, d) has NaN rows without a face and are first mapped by ``spec.transform`` (e.g. logits
    of blendshape scores); ``select`` marks the frames wanted (e.g. the test
    frames); ``fit`` marks the frames whose median centres the session (its training frames, or all).
    Gaps of at most ``spec.max_gap_s`` are bridged first; velocities and lags may then look at
    neighbouring frames outside ``select`` and at bridged frames, but never across a longer gap.
    Only frames with a real face become rows; frames of a frozen stream (:func:`motion.frozen_repeats`) have
    none, and a head frozen on most of its ``fit`` frames gives no rows (``still``). Rows of ``window="frames"`` are
    reduced by
    ``window_basis`` (the cohort's); without one they stay raw windows (what the basis is fitted on).
    """
    v = transform_values(np.asarray(values, np.float64), spec.transform, fit)
    t = np.asarray(times, np.float64)
    ok = np.isfinite(v).all(axis=1)
    frozen = motion.frozen_repeats(np.asarray(values), t, ok)  # a frozen stream: frames without a face, no atoms
    sets = (ok & fit) if (ok & fit).any() else ok  # the frames that set the session's centre and gain (below)
    frozen_share = float(frozen[sets].mean()) if sets.any() else 0.0
    if frozen.any():
        v, ok = np.where(frozen[:, None], np.nan, v), ok & ~frozen
    rotation = spec.source == "head_rotation"
    if rotation and ok.any():  # slerp on the rotation group
        q = np.full((len(v), 4), np.nan)
        q[ok] = Rotation.from_rotvec(v[ok]).as_quat()
        q, fill, segment = motion.bridge_rotations(q, t, ok, spec.max_gap_s)
        v = np.full_like(v, np.nan)
        have = np.isfinite(q).all(axis=1)
        v[have] = Rotation.from_quat(q[have]).as_rotvec()
    else:
        v, fill, segment = motion.bridge_gaps(v, t, ok, spec.max_gap_s)
    ref = ok & fit
    if not ref.any():
        ref = ok
    offset, gain = np.zeros(v.shape[1]), np.ones(v.shape[1])  # v -> (v - offset) / gain, fitted on ``ref``
    if spec.center == "session" and ref.any():
        offset = np.median(v[ref], axis=0)
    if spec.scale == "session" and ref.sum() > 1:
        gain = np.maximum(np.median(np.abs(v[ref] - np.median(v[ref], axis=0)), axis=0) * 1.4826, 1e-6)
    raw, v = v, (v - offset) / gain
    if rotation and (frozen_share > 0.5 or spec.scale == "session" and ref.sum() > 1 and (gain < MIN_GAIN_RAD).any()):
        vf = video_features(np.where(frozen[:, None], np.nan, values), columns, times, select, fit,
                            dataclasses.replace(spec, scale="none"), window_basis)
        return VideoFeatures(vf.frames[:0], vf.times[:0], vf.x[:0], vf.columns,
                             int(np.asarray(select, bool).sum()), 0,
                             None if vf.covered is None else vf.covered[:0], still=True)
    if spec.window != "none":
        sel = np.asarray(select, bool)
        if spec.window == "spectrum":
            w = spectral_rows(v, t, segment, sel, list(columns), spec.window_s, spec.hop_s, spec.n_bands)
        else:
            w = frame_windows(v, t, segment, sel, list(columns), spec.window_s, spec.hop_s, spec.grid_hz)
            if window_basis is not None:
                w.x, w.columns = window_basis.project(w.x, w.columns), window_basis.names
        cov = np.unique(np.concatenate(w.covered)) if w.covered else np.empty(0, np.int64)
        covered = np.zeros(len(v), bool)
        covered[cov] = True
        # dropped: selected frames no window covers (a faceless frame a window covers was bridged: interpolated, not
        # dropped, so trained + dropped frames are the selection; counted as both, they exceeded the video)
        return VideoFeatures(w.centre, t[w.centre], w.x, w.columns, int((sel & ~covered).sum()),
                             _bridged_read(covered, fill, t, segment), cov)
    # rotation vectors: velocities and lags on the rotation group from the raw values (a velocity is the body-frame
    # angular velocity whatever the posture), then centred and scaled as the values are, each axis's gain dividing
    # its velocity too; linear values: from the centred and scaled values (the same rows, to the last bit as before)
    src, off, g = (raw, offset, gain) if rotation else (v, 0.0, 1.0)
    parts, names = [v], list(columns)
    valid = ok.copy()
    used: list[np.ndarray] = []  # frames whose values the rows' windows read
    if spec.velocity:
        vel, vok, ends = _velocity(src, t, segment, spec.velocity_window_s, rotation)
        parts.append(vel / g)
        names += [f"d_{c}" for c in columns]
        valid &= vok
        used += ends
    for lag in spec.lags_s:
        lagged, lok, pick = _lagged(src, t, segment, lag, rotation)
        parts.append((lagged - off) / g)
        names += [f"{c}@-{lag:g}s" for c in columns]
        valid &= lok
        used += pick
    keep = np.asarray(select, bool) & valid
    x = np.concatenate(parts, axis=1)[keep]
    touched = np.zeros(len(v), bool)
    for idx in used:
        touched[idx[keep]] = True
    return VideoFeatures(np.flatnonzero(keep), t[keep], x, names, int((np.asarray(select, bool) & ~valid).sum()),
                         _bridged_read(touched, fill, t, segment))


def _bridged_read(read: np.ndarray, fill: np.ndarray, t: np.ndarray, segment: np.ndarray) -> int:
    """Bridged frames the rows read: filled rows read, and the frames a jump in the times skips where the rows read
    the frames either side of it (a window through the jump, or a window end inside it)."""
    slots = motion.jump_slots(t, segment)
    return int((read & fill).sum() + slots[:-1][read[:-1] & read[1:]].sum())


def _at(v: np.ndarray, t: np.ndarray, segment: np.ndarray, shift: float, on_group: bool = False):
    """Each frame's values at its time + ``shift`` seconds, interpolated between the two frames around that
    moment (linearly, or by slerp for rotation vectors ``on_group``), both in the frame's own segment: a
    moment, not a frame count, so it means the same at every frame rate. Returns (values, good, [a, b]),
    a and b the bracketing frames (equal when a frame falls on the moment)."""
    n = len(t)
    when = t + shift
    eps = 1e-6  # seconds: frame times summed in floating point land on the moment
    a = np.clip(np.searchsorted(t, when + eps, side="right") - 1, 0, n - 1)  # last frame at or before
    b = np.clip(np.searchsorted(t, when - eps, side="left"), 0, n - 1)  # first frame at or after
    good = ((segment >= 0) & (t[a] <= when + eps) & (t[b] >= when - eps) & (segment[a] == segment)
            & (segment[b] == segment))
    out = np.full_like(v, np.nan)
    if good.any():
        ga, gb = a[good], b[good]
        span = t[gb] - t[ga]
        w = np.where(span > 0, (when[good] - t[ga]) / np.where(span > 0, span, 1.0), 0.0)
        if on_group:
            ra = Rotation.from_rotvec(v[ga])
            out[good] = (ra * Rotation.from_rotvec(w[:, None] * (ra.inv() * Rotation.from_rotvec(v[gb])).as_rotvec())
                         ).as_rotvec()
        else:
            out[good] = v[ga] + w[:, None] * (v[gb] - v[ga])
    return out, good, [a, b]


def _velocity(v: np.ndarray, t: np.ndarray, segment: np.ndarray, half: float, on_group: bool = False):
    """Central difference over exactly [t - half, t + half], the ends interpolated between the frames around
    them (:func:`_at`), within one segment: the same window at every frame rate (a window of whole frames
    spanned 0.40 s at 30 fps and 0.33 s at 24 fps), symmetric, and complete (no row where either end falls
    outside the frame's segment: a video's ends, a long gap, a jump in the frame times). ``on_group``: ``v``
    are rotation vectors and the difference is the body-frame rotation rotvec(R_lo^T R_hi). Returns
    (values, good mask, the frames read: the two around each end, so that a bridged frame on the inner side of
    an end is counted as used too)."""
    hi_v, hi_ok, hi_pair = _at(v, t, segment, half, on_group)
    lo_v, lo_ok, lo_pair = _at(v, t, segment, -half, on_group)
    good = hi_ok & lo_ok
    out = np.full_like(v, np.nan)
    if good.any():
        if on_group:
            d = Rotation.from_rotvec(lo_v[good]).inv() * Rotation.from_rotvec(hi_v[good])
            out[good] = d.as_rotvec() / (2.0 * half)
        else:
            out[good] = (hi_v[good] - lo_v[good]) / (2.0 * half)
    return out, good, [*hi_pair, *lo_pair]


def _lagged(v: np.ndarray, t: np.ndarray, segment: np.ndarray, lag: float, on_group: bool = False):
    """Values ``lag`` seconds before each frame, interpolated in its segment (:func:`_at`). Returns (values,
    good, the frames read: the two around that moment)."""
    out, good, pair = _at(v, t, segment, -lag, on_group)
    return out, good, pair
