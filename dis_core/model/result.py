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
    interpolated_frames: int = 0  # bridged detector gaps the training rows read (FeatureSpec.max_gap_s)
    epochs: int = 0
    chosen_epoch: int = 0  # the epoch kept (best validation), counted as the loss figures do from 1; 0: no epoch
    # beat the flow's start, its Ledoit-Wolf Gaussian, so the 'flow' is that Gaussian
    best_val_loss: float = float("nan")
    seconds: float = 0.0
    device: str = ""
    resumed_from_epoch: int = 0


def train_unit_id(feature_set: str, pid: str) -> str:
    return f"{feature_set}/{pid}"
