"""Head pose in degrees from MediaPipe's facial transformation matrix.

Convention (also written into every HDF5 file): camera frame with x to the image's right, y up,
z towards the viewer; the matrix's rotation R (canonical face -> camera) is decomposed as
R = Ry(yaw) @ Rx(pitch) @ Rz(roll), right-handed rotations. Hence, as the viewer sees the video:
yaw > 0 the face turns towards the image's right (the subject's left); pitch > 0 the face tilts
down (chin towards chest); roll > 0 the face rotates counter-clockwise in the image (the head
tilts towards the subject's right shoulder). The angles come from the matrix directly, in degrees;
nothing is rescaled.
"""

from __future__ import annotations

import numpy as np

CONVENTION = (
    "R = Ry(yaw) Rx(pitch) Rz(roll) in a camera frame with x right, y up, z towards the viewer; degrees. "
    "yaw>0: face turns towards image right (subject's left); pitch>0: chin down; "
    "roll>0: counter-clockwise in the image (head tilts to the subject's right shoulder)."
)
COLUMNS = ("yaw", "pitch", "roll")


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    """Project (..., 3, 3) matrices onto the nearest proper rotation (removes scale and shear)."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= d[..., None]
    return u @ vt


def rotation_to_euler(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) yaw, pitch, roll in degrees (DIS convention)."""
    r = np.asarray(r, dtype=np.float64)
    pitch = np.arcsin(np.clip(-r[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(r[..., 0, 2], r[..., 2, 2])
    roll = np.arctan2(r[..., 1, 0], r[..., 1, 1])
    return np.degrees(np.stack([yaw, pitch, roll], axis=-1))


def euler_to_rotation(ypr_deg: np.ndarray) -> np.ndarray:
    """(..., 3) yaw, pitch, roll in degrees -> (..., 3, 3) rotations; inverse of :func:`rotation_to_euler`."""
    a, b, c = np.moveaxis(np.radians(np.asarray(ypr_deg, dtype=np.float64)), -1, 0)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    one, zero = np.ones_like(a), np.zeros_like(a)
    ry = np.stack([np.stack([ca, zero, sa], -1), np.stack([zero, one, zero], -1), np.stack([-sa, zero, ca], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cb, -sb], -1), np.stack([zero, sb, cb], -1)], -2)
    rz = np.stack([np.stack([cc, -sc, zero], -1), np.stack([sc, cc, zero], -1), np.stack([zero, zero, one], -1)], -2)
    return ry @ rx @ rz


def head_pose(matrices: np.ndarray) -> np.ndarray:
    """(T, 4, 4) facial transformation matrices -> (T, 3) yaw, pitch, roll degrees; NaN rows stay NaN."""
    m = np.asarray(matrices, dtype=np.float64)
    out = np.full(m.shape[:-2] + (3,), np.nan)
    ok = np.isfinite(m).all(axis=(-1, -2))
    if ok.any():
        out[ok] = rotation_to_euler(_nearest_rotation(m[ok][..., :3, :3]))
    return out
