"""The scoring stage's configuration (light to import: part of every run plan)."""

from __future__ import annotations

import dataclasses

from dis_core.score.scoring import TRIM


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """Which participants can be scored, and how a pair's per-frame log p becomes one score."""

    min_test_frames: int = 20
    trim: float = TRIM
