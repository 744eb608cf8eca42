"""The extraction stage's configuration (light to import: part of every run plan; its hash decides
whether an extraction output is reused)."""

from __future__ import annotations

import dataclasses

from dis_core.extract.landmarker import LandmarkerConfig
from dis_core.extract.smiles import SmileConfig


EXPORT_FIELDS = ("landmark_workbook", "landmark_pca_png", "chunk_frames", "compression_level")
# the smile rule content_hash puts in place of the run's: the default rule of 6 December 2026, written out so that
# a new default rule recomputes smiles, not every extraction and model
KEY_SMILE = SmileConfig(thresholds=(("mouthSmileLeft", 0.2137), ("mouthSmileRight", 0.2070),
                                    ("mouthPressLeft", 0.00176), ("mouthPressRight", 0.01248),
                                    ("eyeSquintLeft", 0.3632), ("eyeSquintRight", 0.4324)), min_fraction=0.5)


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Everything that changes extraction outputs: the landmarker changes the HDF5 file's content
    (:meth:`content_hash` decides whether it is reused), the smile rule only its smile columns (recomputed from
    the stored blendshapes when it changes: :meth:`smile_hash`); the rest only which exports sit beside it
    (:func:`dis_core.extract.heal.heal_exports` adds or removes them) or how it is stored."""

    landmarker: LandmarkerConfig = LandmarkerConfig()
    smile: SmileConfig = SmileConfig()
    square_pixels: bool = True  # a stream of non-square pixels is stretched to what it shows (video.iter_frames)
    landmark_workbook: bool = False  # costs about as much as extraction itself; opt in (the demo does)
    landmark_pca_png: bool = True
    chunk_frames: int = 256
    compression_level: int = 4

    def content_hash(self) -> str:
        """The hash of what MediaPipe put in the HDF5 file: the whole configuration's with the export and storage
        options and the smile rule at their defaults (a run with default options keeps the hash it always had).
        A workbook asked for once re-extracted every video and redid every later stage; so did a smile threshold,
        which no model reads."""
        from dis_core.config import config_hash

        defaults = ExtractConfig()
        return config_hash(dataclasses.replace(self, smile=KEY_SMILE, **{f: getattr(defaults, f) for f in EXPORT_FIELDS}))

    def smile_hash(self) -> str:
        """The hash of the smile rule the file's smile columns and smile workbooks follow."""
        from dis_core.config import config_hash

        return config_hash(self.smile)
