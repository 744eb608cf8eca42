"""What one extraction unit reports: light to import (no OpenCV, no MediaPipe), so the cohort step
and the run summaries can read extraction outcomes without loading the extraction machinery."""

from __future__ import annotations

import dataclasses

from dis_core.layout import UnitResult


@dataclasses.dataclass(kw_only=True)
class ExtractResult(UnitResult):
    """What happened to one video. status: ok | no_face | skipped | failed."""

    participant_id: str = ""
    session: str = ""
    video: str = ""
    frames: int = 0
    detected_frames: int = 0
    smile_frames: int = 0
    smile_seconds: int = 0
    smile_hash: str = ""  # the smile rule the smile counts follow ('' in a record from before 6 December 2026:
    # collect_extract_results reads it from the HDF5 file)
    seconds: int = 0
    face_seconds: int | None = None  # seconds with a face in a frame, the denominator of smile_seconds (None: a record
    # from before 5 December 2026 lacks it; collect_extract_results counts it from the HDF5 file)
    fps: float = float("nan")
    other_face_frames: int = 0  # frames where only someone else's face was found (counted as no face)
    several_faces_frames: int = 0  # frames with more than one face in view
    output: str = ""

    @property
    def detection_rate(self) -> float:
        return self.detected_frames / self.frames if self.frames else 0.0
