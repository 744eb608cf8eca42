"""The cohort step's configuration (light to import: part of every run plan)."""

from __future__ import annotations

import dataclasses

from dis_core.cohort.split import SplitConfig


@dataclasses.dataclass(frozen=True)
class CohortConfig:
    """The split and the landmark basis: fitted on training frames of all participants."""

    split: SplitConfig = SplitConfig()
    basis_k: int = 8
    basis_frames_per_video: int = 300  # subsample of each video's training frames for the bases' PCA
    basis_reference_frames: int = 10000  # at most this many of them, spread over the videos, for the Procrustes mean
