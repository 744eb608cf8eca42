"""What one training unit reports: light to import (no torch), for the stage graph and run summaries."""

from __future__ import annotations

import dataclasses

from dis_core.layout import UnitResult


@dataclasses.dataclass(kw_only=True)
class TrainResult(UnitResult):
    """What happened to one training unit (``<feature set>/<participant>``). status: ok | skipped |
    left_out (the participant has no usable video) | failed."""

    participant_id: str = ""
    feature_set: str = ""
    train_frames: int = 0
    dropped_frames: int = 0
    epochs: int = 0
    best_epoch: int = -1
    best_val_loss: float = float("nan")
    seconds: float = 0.0
    device: str = ""
    resumed_from_epoch: int = 0


def train_unit_id(feature_set: str, pid: str) -> str:
    return f"{feature_set}/{pid}"
