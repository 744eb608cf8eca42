"""Video decoding: metadata and a stream of RGB frames with the video's own frame times."""

from __future__ import annotations

import collections
import dataclasses
import math
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from dis_core.errors import VideoError
from dis_core.timing import rate_of_periods


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
    pixel_aspect: float = 1.0  # the stream's sample aspect ratio: a stored pixel's width over its height


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: index, presentation time in seconds, RGB uint8 pixels (H, W, 3)."""

    index: int
    time_s: float
    rgb: np.ndarray
    wild_time: bool = False  # its timestamp leapt far past both neighbours' and was put back between them


# a timestamp this far past the last one (3 periods and 10 s) is damaged when the WILD_AHEAD-th frame after it is not
# past it or stalls (frame_time): a variable frame rate's pause, or a pause then a repeated stamp, is shorter than
# that, and a real pause's frames go on from it; up to WILD_AHEAD damaged stamps in a row are put back (the frames
# held: WILD_AHEAD + 1)
WILD_PERIODS, WILD_S, WILD_AHEAD = 3, 10.0, 4


def frame_time(prev: float, raw: float, ahead: Sequence[float], period: float) -> tuple[float, bool]:
    """A frame's time from the decoder's ``raw`` one, the last frame's ``prev`` and the next frames' raw times
    ``ahead`` (up to WILD_AHEAD; empty at the end). A time more than WILD_PERIODS periods and WILD_S past ``prev``
    is damaged when the last of the next frames does not pass it (the times fell back, or there is no next) or
    stalls on the one before it (OpenCV repeats the last damaged stamp for every frame after it); a real pause's
    frames go on from it, whatever one repeated stamp among them does. A damaged frame goes between its
    neighbours, or one period after the last (True: said and counted). Taken as it came, one stamp of 1000 s made
    a 4 s video last 1000 s, and two in a row (1000, 1000.03) did so unseen, as the second passed the first. A
    time that does not increase is the last plus one period; the first frame's is 0 when not finite, and when it
    lies far past the next ones (from some frame on, to the last held) it goes that many periods before the first
    of them. A forward gap the next frames go on from (a paused camera) is kept."""
    ahead = tuple(ahead)
    nxt = ahead[0] if ahead else None
    leap = max(WILD_PERIODS * period, WILD_S)
    last = ahead[-1] if ahead else None  # where the frames after it stand, WILD_AHEAD on: a real pause goes on
    if math.isfinite(prev) and math.isfinite(raw) and raw - prev > leap and (
            last is None or not math.isfinite(last) or last <= raw or (len(ahead) > 1 and last <= ahead[-2])):
        inside = nxt is not None and math.isfinite(nxt) and prev < nxt
        return prev + (min(period, (nxt - prev) / 2) if inside else period), True
    if not math.isfinite(prev) and math.isfinite(raw):  # the first frame, far past the next ones from some k on
        low = [math.isfinite(a) and 0 <= a < raw - leap for a in ahead]
        back = next((k for k in range(len(low)) if all(low[k:])), None)
        if back is not None:
            return max(ahead[back] - (back + 1) * period, 0.0), True
    if not math.isfinite(raw) or raw <= prev:
        return ((prev + period) if math.isfinite(prev) else 0.0), False
    return raw, False


# ISO-BMFF (mp4, mov, m4v, 3gp) and QuickTime top-level boxes that may open a file
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid")
# things people rename to .mp4 by mistake: named in the message
_NOT_VIDEO = (
    (b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"), (b"\x1f\x8b", "a gzip archive"),
    (b"ID3", "an MP3 audio file"), (b"fLaC", "a FLAC audio file"), (b"\x89HDF", "an HDF5 file"),
)


def container_format(head: bytes) -> str | None:
    """The video container the first bytes of a file announce (ISO-BMFF/QuickTime, Matroska/WebM, AVI,
    MPEG-TS, MPEG-PS/ES, Ogg, FLV, ASF, MXF, Y4M, raw H.264/H.265), or None when they announce none."""
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        return "ISO-BMFF/QuickTime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return "AVI"
    if head[:1] == b"\x47" and head[188:189] == b"\x47":
        return "MPEG-TS"
    if head[4:5] == b"\x47" and head[196:197] == b"\x47":
        return "MPEG-TS (M2TS)"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "MPEG-PS/ES"
    if head.startswith(b"\x00\x00\x00\x01") or head.startswith(b"\x00\x00\x01"):
        return RAW_STREAM
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"FLV"):
        return "FLV"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF/WMV"
    if head.startswith(b"\x06\x0e\x2b\x34"):
        return "MXF"
    if head.startswith(b"YUV4MPEG2"):
        return "Y4M"
    return None


def _looks_like(head: bytes) -> str:
    for magic, what in _NOT_VIDEO:
        if head.startswith(magic):
            return what
    if head.startswith(b"RIFF"):
        return f"a RIFF {head[8:12].decode('latin-1')!r} file"
    if head and not head.strip(b"\0"):  # a recorder's preallocated file, never written (or one zeroed)
        return f"{len(head)} bytes of 0x00 at its start (a file allocated but never written?)"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "data of an unknown kind"


def check_container(path: Path) -> str:
    """The container format of ``path`` by its first bytes; :class:`VideoError` (one line naming the file
    and what it looks like) when they announce no video container: OpenCV would read a JPEG renamed
    ``.mp4`` as a one-frame video."""
    with open(path, "rb") as f:
        head = f.read(512)
    fmt = container_format(head)
    if fmt is None:
        raise VideoError(f"{path}: not a video file: its content is {_looks_like(head)}, not a video container "
                         "(MP4/MOV, MKV/WebM, AVI, MPEG-TS/PS, Ogg, FLV, ASF, MXF)")
    return fmt


RAW_STREAM = "raw H.264/H.265 stream"


def is_raw_stream(path: Path) -> bool:
    """Whether ``path`` is a raw H.264/H.265 stream, by its first bytes: its 'rate' is the decoder's guess."""
    with open(path, "rb") as f:
        return container_format(f.read(512)) == RAW_STREAM


def check_times(path: Path, fps_override: float | None) -> None:
    """A raw H.264/H.265 stream (e.g. a Raspberry Pi camera's .h264) holds no frame times: FFmpeg stamps
    it at 25 fps whatever it was filmed at, which would make every speed and rate wrong. Such a file needs
    the manifest's ``fps``; :class:`VideoError` names the file and the column otherwise."""
    if not fps_override and is_raw_stream(path):
        raise VideoError(f"{path}: a raw H.264/H.265 stream holds no frame times (the decoder would assume 25 fps): "
                         "give its frame rate in the manifest's fps column, or put it in a container "
                         "(ffmpeg -framerate <fps> -i in.h264 -c copy out.mp4)")


def _open(path: Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        check_container(path)
    except OSError as e:
        raise VideoError(f"{path}: cannot read ({e.strerror})") from None
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
        n = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)  # a raw stream's count reads -1.9e14
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        aspect = _pixel_aspect(cap)
    finally:
        cap.release()
    codec = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ") if fourcc > 0 else "unknown"
    if w <= 0 or h <= 0:
        raise VideoError(f"{path}: no video stream (width/height unknown)")
    dur = n / fps if fps > 0 and n > 0 else float("nan")
    return VideoInfo(str(path), fps, n, w, h, dur, codec, aspect)


def _pixel_aspect(cap: cv2.VideoCapture) -> float:
    """The sample aspect ratio the decoder reports (a DV or HDV camcorder's 4:3 or 16:11 pixels), 1 when unknown."""
    num, den = float(cap.get(cv2.CAP_PROP_SAR_NUM) or 0), float(cap.get(cv2.CAP_PROP_SAR_DEN) or 0)
    return num / den if num > 0 and den > 0 else 1.0


def shown_rgb(bgr: np.ndarray, aspect: float = 1.0, turned: bool = False) -> np.ndarray:
    """A decoded frame as the RGB picture it shows: pixels of sample aspect ``aspect`` stretched to square
    (along the stored width, which is the height of a frame the decoder turned)."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
    if aspect != 1.0:
        h, w = rgb.shape[:2]
        size = (w, max(1, round(h * aspect))) if turned else (max(1, round(w * aspect)), h)
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    return rgb


def square_pixel_view(cap: cv2.VideoCapture) -> tuple[float, bool]:
    """(aspect to stretch by, 1.0 when within 1% of square; whether the decoder turns the frames) of an open video."""
    aspect = _pixel_aspect(cap)
    return (aspect if abs(aspect - 1.0) > 0.01 else 1.0), int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 180 == 90


def iter_frames(path: str | Path, fps_override: float | None = None, square_pixels: bool = True) -> Iterator[Frame]:
    """Decode frames one at a time (never the whole video in memory).

    With ``square_pixels`` a stream of non-square pixels (its sample aspect ratio more than 1% from 1) is
    stretched to the picture it shows (width x aspect): MediaPipe reads pixels as square, and a 4:3-pixel
    camcorder file gave faces 25% narrower and head poses off by up to 2 degrees.

    Times are the decoder's presentation timestamps, 0 at the video stream's start (a file whose video
    starts after its audio, or an MPEG-TS clock, is not offset; a stream cut mid-GOP starts at its first
    decodable frame's time); with ``fps_override`` they are ``index / fps``.
    Timestamps that do not increase (broken containers) are replaced by the previous one plus one
    nominal frame period, so downstream code can rely on strictly increasing times, and stamps that leap far
    ahead of their neighbours (up to WILD_AHEAD in a row) are put back between them (:func:`frame_time`; WILD_AHEAD
    frames decoded ahead).
    """
    cap = _open(Path(path))
    try:
        nominal = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        period = 1.0 / (fps_override or (nominal if nominal > 0 else 30.0))
        aspect, turned = square_pixel_view(cap)  # turned: frames come rotated, the stored width is their height
        stretch = square_pixels and aspect != 1.0
        def decoded() -> Iterator[tuple[int, float, np.ndarray]]:
            i = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield i, (i / fps_override if fps_override else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0), bgr
                i += 1

        def frame(i: int, t: float, wild: bool, bgr: np.ndarray) -> Frame:
            return Frame(i, t, shown_rgb(bgr, aspect if stretch else 1.0, turned), wild)

        prev, held = -math.inf, collections.deque()  # the frame to time and the WILD_AHEAD decoded after it
        for i, raw, bgr in decoded():
            held.append((i, raw, bgr))
            if len(held) > WILD_AHEAD:
                j, r, b = held.popleft()
                prev, wild = frame_time(prev, r, [x[1] for x in held], period)
                yield frame(j, prev, wild, b)
        while held:
            j, r, b = held.popleft()
            prev, wild = frame_time(prev, r, [x[1] for x in held], period)
            yield frame(j, prev, wild, b)
    finally:
        cap.release()


def effective_fps(times_s: np.ndarray, fallback: float) -> float:
    """Frame rate from the frame times themselves (:func:`dis_core.timing.rate_of_periods`), else ``fallback``."""
    t = np.asarray(times_s, dtype=float)
    rate = rate_of_periods(np.diff(t)) if t.size >= 2 else None
    return float(fallback) if rate is None else rate
