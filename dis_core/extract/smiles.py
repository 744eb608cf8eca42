"""Smile detection from blendshapes: per frame by thresholds, per second from the real frame times."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

# The research workflow's rule: a frame smiles when all six scores exceed these thresholds.
DEFAULT_THRESHOLDS = (
    ("mouthSmileLeft", 0.2137),
    ("mouthSmileRight", 0.2070),
    ("mouthPressLeft", 0.00176),
    ("mouthPressRight", 0.01248),
    ("eyeSquintLeft", 0.3632),
    ("eyeSquintRight", 0.4324),
)


@dataclasses.dataclass(frozen=True)
class SmileConfig:
    """Smile rule: every named blendshape must exceed its threshold; a second smiles when at least
    ``min_fraction`` of its face-detected frames smile."""

    thresholds: tuple[tuple[str, float], ...] = DEFAULT_THRESHOLDS
    min_fraction: float = 0.5

    def __post_init__(self):
        # plain floats and tuples: a rule of min_fraction 1 read back from run.json as 1.0 is the same rule (its hash
        # decides whether smiles are recomputed)
        object.__setattr__(self, "thresholds", tuple((str(n), float(t)) for n, t in self.thresholds))
        object.__setattr__(self, "min_fraction", float(self.min_fraction))
        if not (0.0 < self.min_fraction <= 1.0):  # NaN too
            raise ValueError(f"smile min_fraction {self.min_fraction!r} must be above 0 and at most 1 (at 0 every "
                             "second with a face smiles, even with no smiling frame)")


def smile_frames(blendshapes: np.ndarray, names: tuple[str, ...] | list[str], cfg: SmileConfig) -> np.ndarray:
    """(T, 52) scores -> (T,) bool; frames without a face (NaN) never smile."""
    idx = {n: i for i, n in enumerate(names)}
    missing = [n for n, _ in cfg.thresholds if n not in idx]
    if missing:
        raise KeyError(f"unknown blendshape name(s) in smile thresholds: {missing}")
    bs = np.asarray(blendshapes, dtype=np.float64)
    cols = [idx[n] for n, _ in cfg.thresholds]
    thr = np.array([t for _, t in cfg.thresholds])
    with np.errstate(invalid="ignore"):
        return np.all(bs[:, cols] > thr, axis=1)


def smile_seconds(times_s: np.ndarray, detected: np.ndarray, smiling: np.ndarray, cfg: SmileConfig) -> pd.DataFrame:
    """Aggregate per whole second of video time (floor of each frame's own timestamp), every second from the
    first frame's to the last's: a second without a frame (a gap in a variable-rate recording) is a row with
    0 frames, as a second without a face is one with 0 detected frames, so rows line up with the clock.

    Columns: second, start_s, frames, detected_frames, smile_frames, smile_fraction, smile. ``smile`` is
    missing (pandas' NA, an empty cell in Excel) for a second without a face: unknown, not "not smiling" (a
    video whose face left after 2 smiling seconds of 10 read as smiling 20% of its seconds, where it smiled in
    every second it showed). Because the bins come from the frame times, the number of frames per second
    follows the real fps.
    """
    t = np.asarray(times_s, dtype=float)
    sec = np.floor(t).astype(np.int64)
    df = pd.DataFrame({"second": sec, "det": np.asarray(detected, bool), "smi": np.asarray(smiling, bool)})
    g = df.groupby("second", sort=True)
    first, last = (int(sec.min()), int(sec.max()) + 1) if len(sec) else (0, 0)
    every = pd.RangeIndex(first, last, name="second")
    out = pd.DataFrame({
        "frames": g.size(),
        "detected_frames": g["det"].sum(),
        "smile_frames": g["smi"].sum(),
    }).reindex(every, fill_value=0).astype(np.int64).reset_index()
    out.insert(1, "start_s", out["second"].astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = out["smile_frames"] / out["detected_frames"].where(out["detected_frames"] > 0)
    out["smile_fraction"] = frac.astype(float)
    out["smile"] = (out["smile_fraction"] >= cfg.min_fraction).astype("boolean").mask(out["detected_frames"] == 0)
    return out
