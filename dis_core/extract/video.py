"""Video decoding: metadata and a stream of RGB frames with the video's own frame times."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from dis_core.errors import VideoError


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """Container metadata as reported by the decoder (frame count and fps may be approximate)."""

    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    duration_s: float
    codec: str


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: index, presentation time in seconds, RGB uint8 pixels (H, W, 3)."""

    index: int
    time_s: float
    rgb: np.ndarray


def _open(path: Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{path}: cannot be opened as a video: no decodable video stream (corrupt, truncated, "
                         "audio only or an unsupported codec)")
    return cap


def probe(path: str | Path) -> VideoInfo:
    """Read a video's metadata without decoding it."""
    cap = _open(Path(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    finally:
        cap.release()
    codec = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ") if fourcc > 0 else "unknown"
    if w <= 0 or h <= 0:
        raise VideoError(f"{path}: no video stream (width/height unknown)")
    dur = n / fps if fps > 0 and n > 0 else float("nan")
    return VideoInfo(str(path), fps, n, w, h, dur, codec)


def iter_frames(path: str | Path, fps_override: float | None = None) -> Iterator[Frame]:
    """Decode frames one at a time (never the whole video in memory).

    Times are the decoder's presentation timestamps; with ``fps_override`` they are ``index / fps``.
    Timestamps that do not increase (broken containers) are replaced by the previous one plus one
    nominal frame period, so downstream code can rely on strictly increasing times.
    """
    cap = _open(Path(path))
    try:
        nominal = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        period = 1.0 / (fps_override or (nominal if nominal > 0 else 30.0))
        prev = -math.inf
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if fps_override:
                t = i / fps_override
            else:
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if not math.isfinite(t) or t <= prev:
                    t = (prev + period) if math.isfinite(prev) else 0.0
            prev = t
            if bgr.ndim == 2:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
            else:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield Frame(i, t, rgb)
            i += 1
    finally:
        cap.release()


def effective_fps(times_s: np.ndarray, fallback: float) -> float:
    """Frame rate from the frame times themselves (median frame period), else ``fallback``."""
    t = np.asarray(times_s, dtype=float)
    if t.size >= 2:
        d = np.diff(t)
        d = d[d > 0]
        if d.size:
            return float(1.0 / np.median(d))
    return float(fallback)
