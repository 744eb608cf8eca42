"""The training stage: one unit per (participant, feature set) fits the flow and the Gaussian baseline
on the participant's training frames, and writes OUT/models/<feature set>/<participant>/.

For a feature set whose TrainConfig.density is "pooled", one `pooled` unit first fits the flow and
the Gaussian on every participant's training rows centred on that participant's mean
(OUT/pooled/<feature set>/), and a participant's models are those shapes placed at their mean."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from dis_core.io.atomic import remove_stale_parts, write_text_atomic
from dis_core.cohort.stage import Cohort, load_cohort, participant_features
from dis_core.features.build import row_overlap
from dis_core.errors import DISError, at_time_limit, bug_line, disk_full
from dis_core.model.baselines import ARGaussian
from dis_core.model.config import TrainConfig, methods_of
from dis_core.model.flows import (MIN_FIT_ROWS, MIN_ROWS, ConstantColumns, Density, FlowFit, fit_gaussian, load_density, pick_device, purge_rows, save_density,
                                  train_flow)
from dis_core.config import plain
from dis_core.io.quiet import log_traceback
from dis_core.layout import TRACEBACK_LOG, RunLayout, UnitResult
from dis_core.model.result import TrainResult, in_current_terms, train_unit_id
from dis_core.io.provenance import provenance

MODEL_NAME = "model.pt"
BASELINE_NAME = "baseline.pt"
AR_NAME = "ar.pt"  # the autoregressive baseline (feature sets with lagged copies)
FILES = {"flow": MODEL_NAME, "gaussian": BASELINE_NAME, "ar": AR_NAME}  # method -> model file
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
        why = cohort.inapplicable(cfg.features)
        if why:
            res.status, res.message = "left_out", why
            return res
        cohort.check_reach(cfg.features)
        gone = cohort.gone_note(pid)
        if gone and not any(cohort.splits[e.unit_id].train.any() for e in cohort.videos_of(pid)):
            res.status, res.message = "left_out", f"participant {pid}: no training data: the split leaves none{gone}"
            return res  # their training session was left out: as the mirror case at scoring, not a failure
        d.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(d)
        data = participant_features(cohort, pid, cfg.features, "train")
        pooled_key = _pooled_key(out_root, cfg)  # '' for a density of one's own
        key = _unit_key(cohort, data, cfg, pooled_key)
        res.key = key
        if not force and _is_done(d, key, cfg):
            prev = in_current_terms(json.loads((d / SUMMARY_NAME).read_text()))
            prev.update(status="skipped", unit_id=res.unit_id, key=key)
            prev.setdefault("interpolated_frames", data.interpolated)  # before it was recorded: the same rows' count
            return TrainResult(**{k: prev[k] for k in prev if k in TrainResult.__dataclass_fields__})
        for name in (*FILES.values(), SUMMARY_NAME, LOSS_PNG):  # an earlier model of other inputs: scoring must not
            (d / name).unlink(missing_ok=True)  # find it when this attempt leaves the participant out or fails
        n = sum(len(f) for f in data.frames.values())  # frames (window rows: every frame their windows cover)
        res.train_frames, res.dropped_frames, res.interpolated_frames = n, data.dropped, data.interpolated
        if n < cfg.min_train_frames:
            videos = cohort.videos_of(pid)
            if videos and all(e.split == "test" for e in videos):
                raise DISError(f"participant {pid}: every usable video is split=test in the manifest, nothing trains "
                               f"their model{cohort.gone_note(pid)}")
            raise DISError(f"participant {pid}, {cfg.features.name}: only {n} usable training frames "
                           f"(need {cfg.min_train_frames}, TrainConfig.min_train_frames of the run plan)"
                           f"{data.still_note()}; add video")
        purge = row_overlap(cfg.features)
        if cfg.density == "pooled" and len(data.x) < purge + 2:  # as pooled_unit leaves them out of the shape
            res.status, res.message = "left_out", (
                f"participant {pid}, {cfg.features.name}: only {len(data.x)} training rows ({n} frames); the pooled "
                f"shape takes people with {purge + 2} (a validation row and the {purge} sharing its frames, one to fit)"
                f"{data.still_note()}")
            return res
        n_val = max(int(round(len(data.x) * cfg.flow.val_fraction)), 5)  # as train_flow holds them back
        if cfg.density != "pooled" and (len(data.x) < MIN_ROWS or len(data.x) - n_val - purge < MIN_FIT_ROWS):
            raise DISError(f"participant {pid}, {cfg.features.name}: only {len(data.x)} training rows ({n} frames); "
                           f"a flow needs {MIN_ROWS}, and {MIN_FIT_ROWS} to fit besides its {n_val} validation rows "
                           f"and the {purge} sharing their frames{data.still_note()}: add video")
        if not np.isfinite(data.x).all():
            raise DISError(f"participant {pid}, {cfg.features.name}: non-finite feature values in training data")
        stats = cohort.column_stats(cfg.features)
        spread = stats.spread_of(data.columns)
        if cfg.density == "pooled":  # a shape shared by the cohort: nobody's columns are constant in it
            tr, base = _placed(out_root, cfg, data, pooled_key)
        else:
            try:
                tr = train_flow(data.x, data.columns, cfg.flow, checkpoint=d / CHECKPOINT_NAME, cohort_spread=spread,
                                purge=purge, rule=FIT_RULE)
            except ConstantColumns:  # a frozen head: nothing to model, not a bug of DIS
                raise DISError(f"participant {pid}, {cfg.features.name}: every feature column is constant in the "
                               f"rows the flow fits, its training rows less the last {cfg.flow.val_fraction:.0%} that "
                               f"validate (a still image or a frozen stream?){data.still_note()}: add video") from None
            base = fit_gaussian(data.x, data.columns, cfg.flow.min_std, cohort_spread=spread)
        columns = {"dropped": list(stats.dead),  # dead in the whole cohort: not modelled by anyone
                   "fixed": [c for c, f in zip(data.columns, ~tr.density.free) if f]}  # constant here, see fit_scaler
        prov = provenance(cfg, participant_id=pid, basis_sha256=cohort.bases_sha256(cfg.features),
                          inputs=json.dumps(cohort.inputs_of(pid)),  # each video's content key | split rule
                          unit_key=key, dropped_columns=",".join(columns["dropped"]),
                          fixed_columns=",".join(columns["fixed"]), pooled_key=pooled_key)
        extra = {"participant_id": pid, "feature_spec": plain(cfg.features), "unit_key": key, "columns_treatment": columns,
                 "inputs": cohort.inputs_of(pid),
                 "basis_sha256": prov["basis_sha256"], "history": tr.history, "best_epoch": tr.best_epoch,
                 "train_frames": {u: f.tolist() for u, f in data.frames.items()},
                 "provenance": json.dumps(prov, default=str)}
        save_density(d / BASELINE_NAME, base, extra)
        if "ar" in methods_of(cfg):  # fitted on the flow's training rows, as the Gaussian (dis_core/model/baselines.py)
            save_density(d / AR_NAME, ARGaussian(cfg.flow.min_std, spread).fit(data.x, data.columns).density(), extra)
        save_density(d / MODEL_NAME, tr.density, extra)
        res.epochs, res.chosen_epoch = tr.epochs, tr.best_epoch + 1
        res.fit_rows, res.validation_rows, res.purged_rows, res.refit_rows = (
            tr.rows.get(k, 0) for k in ("fit", "validation", "purged", "refit"))
        res.best_val_loss = tr.best_val
        res.device = str(pick_device(cfg.flow.device))
        res.resumed_from_epoch = tr.resumed_from
        res.status, res.seconds = "ok", round(time.monotonic() - t0, 3)
        res.message = data.still_note().removeprefix("; ")  # a video that gave no rows, in the training sheet
        _loss_png(d / LOSS_PNG, tr.history, tr.best_epoch, f"{pid}: {cfg.features.name}", prov)
        summary = dataclasses.asdict(res)
        summary["inputs"] = cohort.inputs_of(pid)
        summary["dropped_columns"], summary["fixed_columns"] = columns["dropped"], columns["fixed"]
        summary["provenance"] = prov
        write_text_atomic(d / SUMMARY_NAME, json.dumps(summary, indent=2, default=str))
        (d / CHECKPOINT_NAME).unlink(missing_ok=True)
    except DISError as e:
        res.message = str(e)
    except Exception as e:  # a bug: one line here, the traceback in the unit's log
        if at_time_limit(e) or disk_full(e):  # not the unit's bug: the stage runner says which (graph.run_unit)
            raise
        res.log = str(d / TRACEBACK_LOG)
        log_traceback(d / TRACEBACK_LOG)
        res.message = f"participant {pid}, {cfg.features.name}: {bug_line(e)} (traceback: {res.log})"
    res.seconds = round(time.monotonic() - t0, 3)
    return res


# How a flow is fitted beyond its configuration, in every training key: models fitted by an earlier rule are
# refitted, not reused (validation rows kept clear of the training rows whose frames they share; a flow
# started as a Gaussian keeps that start when no epoch beats it on validation, refitted on every row; the pooled flow's rows centred on
# the rows it fits; the AR baseline's constant columns fixed at the cohort's spread).
FIT_RULE = ("validation purged of overlapping rows (8 s spectra every 0.5 s: 16); the start is a candidate, refitted "
            "on every row when kept; pooled rows centred on fitting rows; AR fixes constant columns")


def _unit_key(cohort: Cohort, data, cfg: TrainConfig, pooled_key: str = "") -> str:
    """Equal keys mean equal inputs: the exact training rows, configuration, basis, the content keys
    of the extractions and split they came from, and (pooled density) the pooled shape's key."""
    h = hashlib.sha256(np.ascontiguousarray(data.x).tobytes())
    h.update(json.dumps([FIT_RULE, plain(cfg), data.columns, cohort.bases_sha256(cfg.features),
                         cohort.inputs_of(data.participant_id),
                         cohort.column_stats(cfg.features).spread_of(data.columns).tolist()], sort_keys=True).encode())
    if pooled_key:
        h.update(pooled_key.encode())
    return h.hexdigest()[:32]


# ------------------------------------------------------------------------------------ pooled shape
def pooled_rows(xs: list[np.ndarray], val_fraction: float, purge: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The pooled flow's rows and validation mask. The mask: the last ``val_fraction`` of each participant's
    rows (in time order), so every person validates; at most as many as leave one row to fit before the
    ``purge`` rows that share frames with them (a person with purge + 2 rows validates on one). Each
    participant's rows are centred on the mean of their fitting rows (neither validation nor purged): a
    validation row, like a held-out one at scoring, never helps set the centre it is judged from (centred on
    all rows, validation looked 0.5-0.8 nats a row better than held-out data and stopped later)."""
    rows, val = [], []
    for x in xs:
        v = np.zeros(len(x), bool)
        v[len(x) - max(min(int(round(len(x) * val_fraction)), len(x) - purge - 1), 1):] = True
        rows.append(x - x[~v & ~purge_rows(v, purge)].mean(axis=0))
        val.append(v)
    return np.concatenate(rows), np.concatenate(val)


def centred_rows(xs: list[np.ndarray]) -> np.ndarray:
    """Every participant's rows centred on their own mean, stacked: the pooled Gaussian's rows (all training
    rows, as the Gaussian of one's own; it is placed at that mean to score)."""
    return np.concatenate([x - x.mean(axis=0) for x in xs])


def _pooled_key(out_root: Path, cfg: TrainConfig) -> str:
    """The recorded key of the feature set's pooled shape ('' for a density of one's own)."""
    if cfg.density != "pooled":
        return ""
    lay = RunLayout(out_root)
    try:
        rec = json.loads((lay.pooled_dir(cfg.features.name) / SUMMARY_NAME).read_text())
        key, sha = rec["key"], rec["cohort_sha256"]
    except (OSError, ValueError, KeyError):
        raise DISError(f"{cfg.features.name}: the pooled shape is missing (run the pooled stage: dis train "
                       "runs it first)") from None
    if sha != lay.cohort_sha256():
        raise DISError(f"{cfg.features.name}: the pooled shape was fitted on another cohort step; run the pooled "
                       "stage again (dis train runs it first)")
    return key


def _placed(out_root: Path, cfg: TrainConfig, data, pooled_key: str) -> tuple[FlowFit, Density]:
    """The pooled flow (with its loss history) and Gaussian placed at this participant's mean; the shape's
    files must be the ones its recorded key (:func:`_pooled_key`, checked against the cohort step) names."""
    d = RunLayout(out_root).pooled_dir(cfg.features.name)
    flow, blob = load_density(d / MODEL_NAME)
    gauss, gblob = load_density(d / BASELINE_NAME)
    if {blob.get("unit_key"), gblob.get("unit_key")} != {pooled_key} or flow.columns != data.columns:
        raise DISError(f"{cfg.features.name}: the pooled shape's files do not match its record or these "
                       "features; run the pooled stage again (dis pooled --force)")
    mu = data.x.mean(axis=0)
    hist = {k: list(v) for k, v in blob["history"].items()}
    return (FlowFit(flow.placed(mu), hist, int(blob["best_epoch"]), len(hist["val"]), 0.0, 0, dict(blob.get("rows") or {})),
            gauss.placed(mu))


def pooled_unit(out_root: Path, cfg: TrainConfig, force: bool = False) -> UnitResult:
    """Fit a feature set's pooled shape (flow and Gaussian) on every trainable participant's centred
    training rows; participants below ``min_train_frames`` are left out of it as they are of training."""
    fs = cfg.features.name
    lay = RunLayout(out_root)
    res = UnitResult(unit_id=f"pooled/{fs}")
    d = lay.pooled_dir(fs)
    try:
        cohort = load_cohort(out_root)
        why = cohort.inapplicable(cfg.features)
        if why:
            res.status, res.message = "left_out", why
            return res
        cohort.check_reach(cfg.features)
        d.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(d)
        datas = [participant_features(cohort, p, cfg.features, "train") for p in cohort.participants]
        purge = row_overlap(cfg.features)  # a participant's validation row, the rows sharing its frames, one to fit
        used = [x for x in datas if len(x.x) >= purge + 2 and sum(len(f) for f in x.frames.values()) >= cfg.min_train_frames]
        if len(used) < 2:
            raise DISError(f"{fs}: a pooled shape needs at least 2 participants with {cfg.min_train_frames} usable "
                           f"training frames and {purge + 2} rows; {len(used)} have them")
        x, val = pooled_rows([u.x for u in used], cfg.flow.val_fraction, purge)
        xg = centred_rows([u.x for u in used])
        if not np.isfinite(xg).all():
            raise DISError(f"{fs}: non-finite feature values in the training rows of the pooled shape")
        cohort_sha = lay.cohort_sha256()
        h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
        h.update(json.dumps([FIT_RULE, plain(cfg), used[0].columns, cohort_sha, [u.participant_id for u in used]]).encode())
        key = res.key = h.hexdigest()[:32]
        try:
            prev = json.loads((d / SUMMARY_NAME).read_text())
            if not force and prev.get("key") == key and _files_of(d, key, (MODEL_NAME, BASELINE_NAME)):
                res.status, res.message = "skipped", prev.get("message", "")
                return res
        except (OSError, ValueError):
            pass
        tr = train_flow(x, used[0].columns, cfg.flow, checkpoint=d / CHECKPOINT_NAME, val=val, purge=purge,
                        refit_rows=xg, rule=FIT_RULE)  # a kept start is the pooled Gaussian's shape
        base = fit_gaussian(xg, used[0].columns, cfg.flow.min_std)
        prov = provenance(cfg, unit_key=key, cohort_sha256=cohort_sha,
                          participants=[u.participant_id for u in used],
                          rule="the Gaussian's rows centred on each participant's training mean, the flow's on the "
                               "mean of the rows it fits; validation: the last "
                               f"{cfg.flow.val_fraction:g} of each participant's rows, the {purge} rows before them "
                               "(sharing frames with them) unused by the flow")
        extra = {"unit_key": key, "cohort_sha256": cohort_sha, "history": tr.history, "best_epoch": tr.best_epoch,
                 "rows": tr.rows, "participants": [u.participant_id for u in used],
                 "provenance": json.dumps(prov, default=str)}
        save_density(d / BASELINE_NAME, base, extra)
        save_density(d / MODEL_NAME, tr.density, extra)
        _loss_png(d / LOSS_PNG, tr.history, tr.best_epoch, f"pooled shape: {fs}", prov)
        res.status = "ok"
        best = "the start (its Gaussian)" if tr.best_epoch < 0 else f"epoch {tr.best_epoch + 1}"
        res.message = (f"{fs}: pooled shape of {len(used)} participant(s), {len(x)} rows ({tr.rows['fit']} fitted, "
                       f"{tr.rows['validation']} validating, {tr.rows['purged']} purged), {tr.epochs} epochs, kept {best}"
                       + (f", refitted on all {tr.rows['refit']} rows" if tr.rows.get("refit") else ""))
        write_text_atomic(d / SUMMARY_NAME, json.dumps({"key": key, "message": res.message, "cohort_sha256": cohort_sha,
                                                        "participants": [u.participant_id for u in used],
                                                        "provenance": prov}, indent=2, default=str))
        (d / CHECKPOINT_NAME).unlink(missing_ok=True)
    except DISError as e:
        res.message = str(e)
    except Exception as e:  # a bug: one line here, the traceback in the unit's log
        if at_time_limit(e) or disk_full(e):  # not the unit's bug: the stage runner says which (graph.run_unit)
            raise
        res.log = str(d / TRACEBACK_LOG)
        log_traceback(d / TRACEBACK_LOG)
        res.message = f"pooled shape of {fs}: {bug_line(e)} (traceback: {res.log})"
    return res


def _is_done(d: Path, key: str, cfg: TrainConfig) -> bool:
    try:
        s = json.loads((d / SUMMARY_NAME).read_text())
        if s.get("key") != key or s.get("status") != "ok":
            return False
        # every method's file must load: a damaged baseline was skipped as current, while scoring left its person out
        return _files_of(d, key, [FILES[m] for m in methods_of(cfg)])
    except Exception:
        return False


def _files_of(d: Path, key: str, names) -> bool:
    """Whether every model file ``names`` in ``d`` loads and was made under ``key``: a damaged one is made again
    (a damaged pooled shape was skipped as current, and every participant of its feature set failed on it)."""
    try:
        return all(load_density(d / n)[1].get("unit_key") == key for n in names)
    except Exception:
        return False


def _loss_png(path: Path, hist: dict, best: int, title: str, prov: dict) -> None:
    from dis_core.report.figures import loss_curve_png

    loss_curve_png(path, hist, best, title, prov)
