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
    # beat the flow's start, its Ledoit-Wolf Gaussian, so the 'flow' is that Gaussian, refitted on every row
    best_val_loss: float = float("nan")
    # the flow's training rows (a pooled shape's, for a pooled density): fitted, validating, purged between them
    # (sharing frames with validation rows); refit: the rows a kept start was refitted on (0: not kept)
    fit_rows: int = 0
    validation_rows: int = 0
    purged_rows: int = 0
    refit_rows: int = 0
    seconds: float = 0.0
    device: str = ""
    resumed_from_epoch: int = 0


def in_current_terms(summary: dict) -> dict:
    """A training summary (train.json) in today's terms: one written before the epoch was counted from 1 had
    best_epoch (0-based, -1 for the Gaussian start), now chosen_epoch = best_epoch + 1."""
    if "chosen_epoch" in summary or "best_epoch" not in summary:
        return summary
    return {**{k: v for k, v in summary.items() if k != "best_epoch"}, "chosen_epoch": summary["best_epoch"] + 1}


def train_unit_id(feature_set: str, pid: str) -> str:
    return f"{feature_set}/{pid}"
