"""What makes a phantom cohort hard enough: richer dynamics, a camera that moves between sessions,
detector gaps in short bursts, and near-neighbour participants.

Pure functions of a random generator and arrays; :mod:`dis_core.phantom.render` calls them only when
the corresponding :class:`~dis_core.phantom.render.PhantomConfig` options are on, so the classic
demo cohort is unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation


# ------------------------------------------------------------------------------- rich dynamics
def rich_parameters(rng: np.random.Generator, axes: dict, activity: float, tempo: float,
                    loguni: Callable[..., float]) -> tuple[dict, dict[str, float]]:
    """Draw the rich-dynamics parameters of one participant: per-axis AR sway (resonance, damping,
    spread) and the shapes of nods and shakes, coupling between axes. Returns (axes, top-level)."""
    out = {}
    for name, ax in axes.items():
        out[name] = dataclasses.replace(ax, ar_freq=float(0.25 + 0.9 * tempo * rng.uniform(0.5, 1.0)),
                                        ar_damping=float(loguni(0.08, 0.6)),
                                        ar_sd=float(loguni(0.6, 3.0) * activity ** 0.5))
    extra = dict(nod_cycles=float(rng.uniform(1.0, 4.0)), nod_h2=float(rng.uniform(0.0, 0.8)),
                 shake_cycles=float(rng.uniform(1.0, 4.0)), shake_h2=float(rng.uniform(0.0, 0.8)),
                 couple_yaw_roll=float(rng.uniform(-0.35, 0.35)), couple_pitch_yaw=float(rng.uniform(-0.3, 0.3)))
    return out, extra


def damped_sway(n: int, fps: float, freq: float, damping: float, sd: float, rng: np.random.Generator,
                burn_s: float = 20.0) -> np.ndarray:
    """(n,) noise-driven damped oscillator sampled at ``fps``: an AR(2) process whose poles sit at
    the resonance ``freq`` (Hz) with damping ratio ``damping``, of stationary standard deviation ``sd``.
    Scaled by the process's theoretical spread, not the sample's: a session's sway amplitude then varies
    as a real one would (a sample scaled to exactly ``sd`` made it the same in every session)."""
    if sd <= 0 or freq <= 0:
        return np.zeros(n)
    w = 2 * np.pi * freq / fps
    r = np.exp(-damping * w)
    a = [1.0, -2 * r * np.cos(w * np.sqrt(max(1 - damping ** 2, 1e-6))), r * r]
    burn = int(burn_s * fps)
    y = lfilter([1.0], a, rng.standard_normal(n + burn))[burn:]
    p1, p2 = -a[1], -a[2]  # y_t = p1 y_(t-1) + p2 y_(t-2) + e_t, e ~ N(0, 1)
    var = (1 - p2) / ((1 + p2) * ((1 - p2) ** 2 - p1 ** 2))
    return y * (sd / np.sqrt(var))


def rich_terms(ypr: np.ndarray, dyn, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Add AR sway to each axis of (n, 3) ``ypr`` and couple the axes (roll follows yaw, yaw follows pitch)."""
    out = np.array(ypr, float, copy=True)
    for k, ax in enumerate((dyn.yaw, dyn.pitch, dyn.roll)):
        out[:, k] += damped_sway(len(out), fps, ax.ar_freq, ax.ar_damping, ax.ar_sd, rng)
    dev = out - out.mean(axis=0)
    out[:, 0] += dyn.couple_pitch_yaw * dev[:, 1]
    out[:, 2] += dyn.couple_yaw_roll * dev[:, 0]
    return out


def near_neighbours(dyn: list, count: int, rng: np.random.Generator, spread: float = 0.1,
                    dyad_size: int = 1) -> tuple[list, list[int]]:
    """Make the last participants near neighbours of earlier ones: a copy of another participant's
    parameters with every amplitude, frequency and rate perturbed by a factor exp(N(0, spread)), the same factors
    (and bias shifts) for every member of a copied dyad, so that partners who shared parameters still do.
    Whole dyads are copied into whole dyads (member m of a copied dyad copies member m of its source,
    never of its own dyad), ``ceil(count / dyad_size)`` of them and at most half the dyads, so copies
    leave the listed partners as they were drawn. Returns (dynamics, index of whom each copies or -1)."""
    n, size = len(dyn), max(int(dyad_size), 1)
    dyads = -(-n // size)
    k = min(-(-count // size), dyads // 2)
    out, src = list(dyn), [-1] * n
    for d in range(dyads - k, dyads):
        s = int(rng.integers(0, dyads - k))  # a whole dyad among the first ones
        factors = int(rng.integers(2**63))  # one perturbation per copied dyad: its partners keep what they share
        for m, i in enumerate(range(d * size, min((d + 1) * size, n))):
            out[i] = _perturb(dyn[s * size + m], np.random.default_rng(factors), spread)
            src[i] = s * size + m
    return out, src


def _perturb(d, rng: np.random.Generator, spread: float):
    def f(v: float) -> float:
        return float(v * np.exp(spread * rng.standard_normal()))

    def axis(a):
        return dataclasses.replace(a, bias=float(a.bias + rng.normal(0, 1.0)), f_slow=f(a.f_slow), a_slow=f(a.a_slow),
                                   f_fast=f(a.f_fast), a_fast=f(a.a_fast), ar_freq=f(a.ar_freq),
                                   ar_damping=min(f(a.ar_damping), 0.95), ar_sd=f(a.ar_sd))

    return dataclasses.replace(d, yaw=axis(d.yaw), pitch=axis(d.pitch), roll=axis(d.roll), nod_rate=f(d.nod_rate),
                               nod_freq=f(d.nod_freq), nod_amp=f(d.nod_amp), shake_rate=f(d.shake_rate),
                               shake_freq=f(d.shake_freq), shake_amp=f(d.shake_amp), jitter_sd=f(d.jitter_sd),
                               nod_cycles=f(d.nod_cycles), shake_cycles=f(d.shake_cycles))


# ------------------------------------------------------------------------------- camera
def camera_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A fixed camera rotation for one session: uniform random axis, angle uniform in [max/2, max]
    degrees (a camera that was clearly moved); the identity when ``max_deg`` is 0."""
    if max_deg <= 0:
        return np.eye(3)
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(0.5, 1.0) * max_deg)
    return Rotation.from_rotvec(axis * angle).as_matrix()


# ------------------------------------------------------------------------------- detector gaps
def hidden_bursts(n: int, fraction: float, rng: np.random.Generator, burst: tuple[int, int] = (1, 3)) -> np.ndarray:
    """(n,) bool: about ``fraction`` of the frames hidden in bursts of burst[0]..burst[1] frames,
    bursts separated by at least one visible frame (so each is a short gap, never a long one: the renderer caps a
    burst at 0.2 s of frames, the gap DIS bridges)."""
    hide = np.zeros(n, bool)
    if fraction <= 0 or n < 3:
        return hide
    target = int(round(fraction * n))
    tries = 0
    while hide.sum() < target and tries < 100 * n:
        tries += 1
        length = int(rng.integers(burst[0], burst[1] + 1))
        start = int(rng.integers(1, max(n - length - 1, 2)))
        if hide[max(start - 1, 0):start + length + 1].any():
            continue
        hide[start:start + length] = True
    return hide


def occlude(frame: np.ndarray, head_points: np.ndarray) -> np.ndarray:
    """Cover the head (the hull of its projected points, grown by 15%) with a flat dark patch, as a
    hand or an object in front of the face would: the detector cannot find it."""
    pts = np.asarray(head_points, np.float64)
    c = pts.mean(axis=0)
    hull = cv2.convexHull((c + 1.15 * (pts - c)).astype(np.float32)).reshape(-1, 2)
    out = frame.copy()
    cv2.fillConvexPoly(out, np.round(hull).astype(np.int32), (60, 55, 50))
    return out
