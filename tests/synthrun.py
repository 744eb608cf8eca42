"""A run folder without videos: synthetic extraction files written directly, then the real cohort,
training, scoring and report functions (fast tests of everything after extraction)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dis_core.config import to_doc
from dis_core.extract.config import ExtractConfig
from dis_core.extract.h5store import KEY_ATTRS, ExtractionWriter
from dis_core.extract.landmarker import N_BLENDSHAPES, N_LANDMARKS, extractor_versions
from dis_core.manifest import Manifest, VideoEntry, unit_id


def synthetic_extraction(path: Path, video: Path, seconds: float, fps: float, seed: int,
                         blend=None, hidden=(), still: float = 0.0) -> None:
    """One video's extraction: a wobbling head, moving landmarks and blendshapes (``blend`` (T, 52)
    overrides the blendshape scores); no face in the frames ``hidden`` (detector gaps: NaN, as extraction
    writes them); the head frozen on its first rotation for the first ``still`` share of frames (a stream
    that froze)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fps)) / fps
    n = len(t)
    f = rng.uniform(0.2, 1.5, 3)
    rv = 0.1 * np.sin(2 * np.pi * f * t[:, None] + rng.uniform(0, 6, 3)) + 0.01 * rng.normal(size=(n, 3))
    rv[:int(still * n)] = rv[0]
    tr = np.zeros((n, 4, 4), np.float32)
    tr[:, :3, :3] = Rotation.from_rotvec(rv).as_matrix()
    tr[:, 3, 3] = 1
    base = np.random.default_rng(99).uniform(0.3, 0.7, (N_LANDMARKS, 3))
    lm = base[None] + 0.01 * rng.normal(size=(1, N_LANDMARKS, 3)) \
        + 0.003 * np.sin(2 * np.pi * f[0] * t)[:, None, None] * rng.normal(size=(1, N_LANDMARKS, 3))
    lm = lm + 0.0005 * rng.normal(size=lm.shape)
    if blend is None:
        blend = 1 / (1 + np.exp(-(rng.normal(-3, 1, N_BLENDSHAPES) + rng.normal(size=(n, N_BLENDSHAPES)))))
    lm, blend, hp = np.array(lm, np.float32), np.array(blend, np.float32), np.degrees(rv).astype(np.float32)
    detected = np.ones(n, bool)
    detected[list(hidden)] = False
    for a in (lm, blend, tr, hp):
        a[~detected] = np.nan
    w = ExtractionWriter(path)
    w.append(time_s=t, detected=detected, landmarks=lm, blendshapes=blend, transform=tr, head_pose=hp,
             smile=np.zeros(n, bool))
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    # the inputs a run's plan in the tests expects (a placeholder face model, the default configuration, this DIS's
    # MediaPipe and OpenCV): the cohort step leaves out an extraction made from others
    prov = {"video_sha256": sha, "model_sha256": "0" * 64, "config_hash": ExtractConfig().content_hash(),
            "dis_version": "test", "fps_override": 0.0, "extractor": extractor_versions(),
            "config": to_doc(ExtractConfig()), "smile_hash": ExtractConfig().smile_hash()}
    assert set(KEY_ATTRS) <= set(prov)
    seconds = np.unique(np.floor(t))
    w.finish({"width": 640, "height": 480, "fps": fps}, prov,  # the counts a real extraction records
             {"n_frames": n, "n_detected": int(detected.sum()), "n_smile_frames": 0, "n_seconds": len(seconds),
              "n_face_seconds": len(np.unique(np.floor(t[detected]))), "n_smile_seconds": 0, "fps": fps})


def make_run(out: Path, n: int = 4, seconds: float = 40.0, fps: float = 15.0, blend_of=None,
             sessions: int = 1, hidden_of=None, still_of=None) -> Manifest:
    """``n`` participants in ``n // 2`` dyads, ``sessions`` videos each and no split column (one session:
    the temporal split; more: the cross-session default); ``blend_of(k, T)`` optionally gives participant
    k's blendshape scores, ``hidden_of(k, session index)`` the frames of their video without a face,
    ``still_of(k, session index)`` the share of its first frames on which the head is frozen.
    Returns the manifest (extractions written)."""
    from dis_core.layout import RunLayout

    out = Path(out)
    entries = []
    for k in range(n):
        pid = f"p{k}"
        for si in range(sessions):
            session = f"s{si + 1}"
            name = f"{pid}.mp4" if sessions == 1 else f"{pid}_{session}.mp4"
            video = out.parent / "videos" / name
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes((f"not a video {k}" + ("" if sessions == 1 else f" {session}")).encode())
            e = VideoEntry(row=len(entries) + 2, participant_id=pid, session=session, video=video, video_rel=name,
                           dyad=f"d{k // 2}", unit_id=unit_id(pid, session, name))
            h5 = RunLayout(out).extraction(e.unit_id)
            h5.parent.mkdir(parents=True, exist_ok=True)
            T = int(seconds * fps)
            synthetic_extraction(h5, video, seconds, fps, seed=k + 1000 * si,
                                 blend=None if blend_of is None else blend_of(k, T),
                                 hidden=() if hidden_of is None else hidden_of(k, si),
                                 still=0.0 if still_of is None else still_of(k, si))
            entries.append(e)
    return Manifest(out.parent / "manifest.csv", tuple(entries), ())
