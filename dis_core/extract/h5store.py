"""The per-video HDF5 file (schema ``dis.extraction`` v1): streamed writing, reading, completeness checks.

See docs/hdf5-schema.md for the layout. Arrays grow along time in chunks, so memory stays flat.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from dis_core.extract.landmarker import BLENDSHAPE_NAMES, N_BLENDSHAPES, N_LANDMARKS
from dis_core.extract.pose import COLUMNS as POSE_COLUMNS
from dis_core.extract.pose import CONVENTION as POSE_CONVENTION

SCHEMA = "dis.extraction"
SCHEMA_VERSION = 1

# name -> (per-frame shape, dtype)
DATASETS: dict[str, tuple[tuple[int, ...], Any]] = {
    "time_s": ((), np.float64),
    "detected": ((), np.bool_),
    "landmarks": ((N_LANDMARKS, 3), np.float32),
    "blendshapes": ((N_BLENDSHAPES,), np.float32),
    "transform": ((4, 4), np.float32),
    "head_pose": ((3,), np.float32),
    "smile": ((), np.bool_),
}


LIBVER = ("earliest", "v110")


class ExtractionWriter:
    """Append frames in blocks to a new HDF5 file; :meth:`finish` marks it complete."""

    def __init__(self, path: Path, chunk_frames: int = 256, compression_level: int = 4):
        self.path = Path(path)
        # formats of HDF5 1.10 at most: "latest" under h5py 3.16 (HDF5 2.0) wrote layout messages that HDF5 1.14
        # and older (h5py 3.11, which pyproject allows; MATLAB, R, HDFView) cannot read
        self._f = h5py.File(self.path, "w", libver=LIBVER)
        self._f.attrs["schema"] = SCHEMA
        self._f.attrs["schema_version"] = SCHEMA_VERSION
        self._f.attrs["status"] = "writing"
        self.n = 0
        for name, (shape, dtype) in DATASETS.items():
            self._f.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                chunks=(chunk_frames, *shape), compression="gzip", compression_opts=compression_level,
                shuffle=True)
        self._f["blendshapes"].attrs["names"] = np.array(BLENDSHAPE_NAMES, dtype=h5py.string_dtype())
        self._f["landmarks"].attrs["axes"] = "frame, landmark (MediaPipe index 0..477), (x, y, z)"
        self._f["landmarks"].attrs["units"] = ("x, y: fraction of image width, height (origin top-left); "
                                               "z: depth on the scale of x, smaller is nearer the camera")
        self._f["transform"].attrs["meaning"] = "MediaPipe facial transformation matrix: canonical face (cm) -> camera"
        self._f["head_pose"].attrs["columns"] = np.array(POSE_COLUMNS, dtype=h5py.string_dtype())
        self._f["head_pose"].attrs["units"] = "degree"
        self._f["head_pose"].attrs["convention"] = POSE_CONVENTION
        self._f["time_s"].attrs["units"] = "second (the video's own frame presentation times)"
        self._f["detected"].attrs["meaning"] = "a face was found; where False every face array is NaN"

    def append(self, **blocks: np.ndarray) -> None:
        """Append one block of frames; every dataset must be given, all with the same length."""
        lengths = {len(blocks[k]) for k in DATASETS}
        if len(lengths) != 1:
            raise ValueError(f"blocks differ in length: { {k: len(v) for k, v in blocks.items()} }")
        k = lengths.pop()
        if k == 0:
            return
        for name in DATASETS:
            ds = self._f[name]
            ds.resize(self.n + k, axis=0)
            ds[self.n:self.n + k] = blocks[name]
        self.n += k

    def read(self, name: str) -> np.ndarray:
        """Everything written so far to one dataset."""
        return self._f[name][()]

    def finish(self, video: dict[str, Any], provenance: dict[str, Any], summary: dict[str, Any]) -> None:
        """Write metadata, mark the file complete and close it."""
        g = self._f.create_group("video")
        for k, v in video.items():
            g.attrs[k] = v
        self._f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
        for k in (*KEY_ATTRS, "dis_version"):
            self._f.attrs[k] = provenance[k]
        if "smile_hash" in provenance:
            self._f.attrs["smile_hash"] = provenance["smile_hash"]
        for k, v in summary.items():
            self._f.attrs[k] = v
        self._f.attrs["status"] = "complete"
        self.close()

    def close(self) -> None:
        f, self._f = self._f, None
        if f:
            f.close()


@dataclasses.dataclass
class Extraction:
    """A per-video HDF5 file read back into memory."""

    path: Path
    attrs: dict[str, Any]
    video: dict[str, Any]
    blendshape_names: tuple[str, ...]
    time_s: np.ndarray
    detected: np.ndarray
    landmarks: np.ndarray
    blendshapes: np.ndarray
    transform: np.ndarray
    head_pose: np.ndarray
    smile: np.ndarray

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self.attrs["provenance"])


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_attrs(path: Path) -> dict[str, Any]:
    """Root attributes only (cheap): schema, status, hashes, frame counts."""
    with h5py.File(path, "r") as f:
        return {k: _plain(v) for k, v in f.attrs.items()}


def read_extraction(path: Path, skip: tuple[str, ...] = ()) -> Extraction:
    """Read a complete extraction file; ``skip`` names datasets not to load (e.g. 'landmarks')."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("schema") != SCHEMA:
            raise ValueError(f"{path}: not a DIS extraction file")
        if int(f.attrs.get("schema_version", -1)) > SCHEMA_VERSION:
            raise ValueError(f"{path}: schema version {f.attrs['schema_version']} is newer than this DIS")
        data = {name: (None if name in skip else f[name][()]) for name in DATASETS}
        names = tuple(_plain(n) for n in f["blendshapes"].attrs["names"])
        return Extraction(
            path=Path(path), attrs={k: _plain(v) for k, v in f.attrs.items()},
            video={k: _plain(v) for k, v in f["video"].attrs.items()} if "video" in f else {},
            blendshape_names=names, **data)


def iter_blocks(path: Path, names: Sequence[str], block: int = 1024):
    """Yield (first frame, *arrays) for blocks of frames of the datasets ``names``: exports of a long
    video never hold all of it in memory."""
    with h5py.File(path, "r") as f:
        n = f["time_s"].shape[0]
        for s in range(0, n, block):
            yield (s, *(f[k][s:s + block] for k in names))


KEY_ATTRS = ("video_sha256", "model_sha256", "config_hash", "fps_override", "extractor")


def content_key(attrs: dict[str, Any]) -> str:
    """An extraction's content key: video bytes, model, configuration, frame-rate override and the MediaPipe and
    OpenCV that ran, from the file's root attributes (or the values an extraction is expected to have). A file
    from before the versions were an attribute keeps the key its cohort step and models were made under."""
    keys = KEY_ATTRS if attrs.get("extractor") else KEY_ATTRS[:-1]
    return "|".join(str(attrs.get(k, "")) for k in keys)


def recorded_extractor(attrs: dict[str, Any]) -> str:
    """The MediaPipe and OpenCV an extraction was made with, as :func:`extractor_versions` writes them: its
    ``extractor`` attribute, or for a file from before it the versions its provenance's packages name (the OpenCV
    wheel's version less its build number: cv2's own); '' when neither says."""
    if attrs.get("extractor"):
        return str(attrs["extractor"])
    try:
        packages = json.loads(attrs.get("provenance") or "{}").get("packages", {})
    except (ValueError, TypeError, AttributeError):
        return ""
    mp, cv = str(packages.get("mediapipe", "absent")), str(packages.get("opencv-python-headless", "absent"))
    return "" if "absent" in (mp, cv) else f"mediapipe {mp}, opencv {'.'.join(cv.split('.')[:3])}"


def recorded_smile_hash(attrs: dict[str, Any]) -> str:
    """The hash of the smile rule an extraction's smile columns follow: its ``smile_hash`` attribute, or for a
    file from before it the rule its provenance's configuration names; '' when neither says."""
    from dis_core.config import config_hash

    if attrs.get("smile_hash"):
        return str(attrs["smile_hash"])
    rule = recorded_smile_rule(attrs)
    return "" if rule is None else config_hash(rule)


def recorded_smile_rule(attrs: dict[str, Any]):
    """The smile rule (:class:`SmileConfig`) an extraction's provenance names, or None when it names none."""
    from dis_core.extract.smiles import SmileConfig

    try:
        rule = json.loads(attrs.get("provenance") or "{}")["config"]["smile"]
        return SmileConfig(thresholds=rule["thresholds"], min_fraction=rule["min_fraction"])
    except (ValueError, TypeError, KeyError):
        return None


def newer_schema_text(path: Path, attrs: dict | None = None) -> str | None:
    """Why ``path`` must not be read or replaced by this DIS (a newer one wrote it), or None."""
    try:
        attrs = read_attrs(path) if attrs is None else attrs
    except (OSError, KeyError):
        return None
    if attrs.get("schema") == SCHEMA and int(attrs.get("schema_version", -1)) > SCHEMA_VERSION:
        return (f"{path} was written by a newer DIS (schema version {attrs.get('schema_version')}, this one reads "
                f"{SCHEMA_VERSION}): use that DIS, or another --out")
    return None


def check_complete(path: Path, expect: dict[str, str]) -> str | None:
    """Why ``path`` is not a complete output matching ``expect`` (attribute -> value), or None if it is."""
    if not Path(path).is_file():
        return "missing"
    try:
        attrs = read_attrs(path)
    except (OSError, KeyError) as e:
        return f"unreadable ({e.__class__.__name__})"
    if attrs.get("schema") != SCHEMA or attrs.get("status") != "complete":
        return "incomplete"
    if int(attrs.get("schema_version", -1)) > SCHEMA_VERSION:
        return newer_schema_text(path, attrs)
    if int(attrs.get("schema_version", -1)) != SCHEMA_VERSION:
        return "old schema"
    for k, v in expect.items():
        if (recorded_extractor(attrs) if k == "extractor" else attrs.get(k)) != v:
            return f"{k} changed"
    return None
