"""The extraction stage's configuration (light to import: part of every run plan; its hash decides
whether an extraction output is reused)."""

from __future__ import annotations

import dataclasses

from dis_core.extract.landmarker import LandmarkerConfig
from dis_core.extract.smiles import SmileConfig


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Everything that changes extraction outputs (its hash decides whether an output is reused)."""

    landmarker: LandmarkerConfig = LandmarkerConfig()
    smile: SmileConfig = SmileConfig()
    landmark_workbook: bool = False  # costs about as much as extraction itself; opt in (the demo does)
    landmark_pca_png: bool = True
    chunk_frames: int = 256
    compression_level: int = 4
