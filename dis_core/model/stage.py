"""The training stage: one unit per (participant, feature set) fits the flow and the Gaussian baseline
on the participant's training frames, and writes OUT/models/<feature set>/<participant>/."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import traceback
from pathlib import Path

import numpy as np

from dis_core.io.atomic import remove_stale_parts, write_text_atomic
from dis_core.cohort.stage import Cohort, load_cohort, participant_features
from dis_core.errors import DISError
from dis_core.model.config import TrainConfig
from dis_core.model.flows import fit_gaussian, load_density, pick_device, save_density, train_flow
from dis_core.config import plain
from dis_core.layout import RunLayout
from dis_core.model.result import TrainResult, train_unit_id
from dis_core.io.provenance import provenance

MODEL_NAME = "model.pt"
BASELINE_NAME = "baseline.pt"
CHECKPOINT_NAME = "train_ckpt.pt"
SUMMARY_NAME = "train.json"
LOSS_PNG = "loss.png"

def model_dir(out_root: Path, feature_set: str, pid: str) -> Path:
    return RunLayout(out_root).model_dir(feature_set, pid)


def train_unit(out_root: Path, pid: str, cfg: TrainConfig, force: bool = False) -> TrainResult:
    """Train one participant's flow and baseline for one feature set; never raises for bad data."""
    t0 = time.monotonic()
    fs = cfg.features.name
    res = TrainResult(unit_id=train_unit_id(fs, pid), participant_id=pid, feature_set=fs)
    d = model_dir(out_root, fs, pid)
    try:
        cohort = load_cohort(out_root)
        if pid not in cohort.participants:
            why = "; ".join(x["reason"] for x in cohort.left_out if x["participant_id"] == pid) or "no usable video"
            res.status, res.message = "left_out", f"participant {pid} was left out at the cohort step ({why})"
            return res
        d.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(d)
        data = participant_features(cohort, pid, cfg.features, "train")
        key = _unit_key(cohort, data, cfg)
        res.key = key
        if not force and _is_done(d, key):
            prev = json.loads((d / SUMMARY_NAME).read_text())
            prev.update(status="skipped", unit_id=res.unit_id, key=key)
            return TrainResult(**{k: prev[k] for k in prev if k in TrainResult.__dataclass_fields__})
        n = sum(len(f) for f in data.frames.values())  # frames (window rows: every frame their windows cover)
        res.train_frames, res.dropped_frames = n, data.dropped
        if n < cfg.min_train_frames:
            raise DISError(f"participant {pid}, {cfg.features.name}: only {n} usable training frames "
                           f"(need {cfg.min_train_frames}); add video or lower min_train_frames")
        if not np.isfinite(data.x).all():
            raise DISError(f"participant {pid}, {cfg.features.name}: non-finite feature values in training data")
        stats = cohort.column_stats(cfg.features)
        spread = stats.spread_of(data.columns)
        tr = train_flow(data.x, data.columns, cfg.flow, checkpoint=d / CHECKPOINT_NAME, cohort_spread=spread)
        base = fit_gaussian(data.x, data.columns, cfg.flow.min_std, cohort_spread=spread)
        columns = {"dropped": list(stats.dead),  # dead in the whole cohort: not modelled by anyone
                   "fixed": [c for c, f in zip(data.columns, ~tr.density.free) if f]}  # constant here, see fit_scaler
        prov = provenance(cfg, participant_id=pid, basis_sha256=cohort.basis.sha256 if cohort.basis is not None else "",
                          unit_key=key, dropped_columns=",".join(columns["dropped"]),
                          fixed_columns=",".join(columns["fixed"]))
        extra = {"participant_id": pid, "feature_spec": plain(cfg.features), "unit_key": key, "columns_treatment": columns,
                 "inputs": cohort.inputs_of(pid),
                 "basis_sha256": prov["basis_sha256"], "history": tr.history, "best_epoch": tr.best_epoch,
                 "train_frames": {u: f.tolist() for u, f in data.frames.items()},
                 "provenance": json.dumps(prov, default=str)}
        save_density(d / BASELINE_NAME, base, extra)
        save_density(d / MODEL_NAME, tr.density, extra)
        res.epochs, res.best_epoch = tr.epochs, tr.best_epoch
        res.best_val_loss = float(tr.history["val"][tr.best_epoch])
        res.device = str(pick_device(cfg.flow.device))
        res.resumed_from_epoch = tr.resumed_from
        res.status, res.seconds = "ok", round(time.monotonic() - t0, 3)
        _loss_png(d / LOSS_PNG, tr.history, tr.best_epoch, f"{pid}: {cfg.features.name}", prov)
        summary = dataclasses.asdict(res)
        summary["inputs"] = cohort.inputs_of(pid)
        summary["dropped_columns"], summary["fixed_columns"] = columns["dropped"], columns["fixed"]
        write_text_atomic(d / SUMMARY_NAME, json.dumps(summary, indent=2))
        (d / CHECKPOINT_NAME).unlink(missing_ok=True)
    except DISError as e:
        res.message = str(e)
    except Exception as e:  # a bug: one line here, the traceback in the log
        res.message = f"participant {pid}, {cfg.features.name}: {e.__class__.__name__}: {e}"
        traceback.print_exc()
    res.seconds = round(time.monotonic() - t0, 3)
    return res


def _unit_key(cohort: Cohort, data, cfg: TrainConfig) -> str:
    """Equal keys mean equal inputs: the exact training rows, configuration, basis, and the content keys
    of the extractions and split they came from."""
    h = hashlib.sha256(np.ascontiguousarray(data.x).tobytes())
    h.update(json.dumps([plain(cfg), data.columns, cohort.basis.sha256 if cohort.basis is not None else "",
                         cohort.inputs_of(data.participant_id),
                         cohort.column_stats(cfg.features).spread_of(data.columns).tolist()], sort_keys=True).encode())
    return h.hexdigest()[:32]


def _is_done(d: Path, key: str) -> bool:
    try:
        s = json.loads((d / SUMMARY_NAME).read_text())
        if s.get("key") != key or s.get("status") != "ok":
            return False
        _, blob = load_density(d / MODEL_NAME)
        return blob.get("unit_key") == key and (d / BASELINE_NAME).is_file()
    except Exception:
        return False


def _loss_png(path: Path, hist: dict, best: int, title: str, prov: dict) -> None:
    from dis_core.report.figures import loss_curve_png

    loss_curve_png(path, hist, best, title, prov)
