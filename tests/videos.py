"""Test-video makers: write real frames to real mp4 files with OpenCV."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np


def write_video(path: Path, frames_rgb: Iterable[np.ndarray], fps: float) -> Path:
    """Encode RGB frames as an mp4 (mp4v) at ``fps``."""
    w = None
    for fr in frames_rgb:
        if w is None:
            h, wd = fr.shape[:2]
            w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (wd, h))
            assert w.isOpened(), f"cannot write {path}"
        w.write(cv2.cvtColor(fr, cv2.COLOR_RGB2BGR))
    w.release()
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def rolled_portrait_frames(portrait_rgb: np.ndarray, roll_deg: np.ndarray, size: int = 480) -> list[np.ndarray]:
    """Rotate a portrait in-plane by ``roll_deg[i]`` (counter-clockwise on screen for positive angles)."""
    h, w = portrait_rgb.shape[:2]
    s = size / max(h, w) * 0.8
    img = cv2.resize(portrait_rgb, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
    pad_y, pad_x = (size - img.shape[0]) // 2, (size - img.shape[1]) // 2
    canvas = cv2.copyMakeBorder(img, pad_y, size - img.shape[0] - pad_y, pad_x, size - img.shape[1] - pad_x,
                                cv2.BORDER_REFLECT)
    c = (size / 2, size / 2)
    # OpenCV: a positive angle rotates counter-clockwise as displayed (origin top-left)
    return [cv2.warpAffine(canvas, cv2.getRotationMatrix2D(c, float(a), 1.0), (size, size),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for a in roll_deg]
