"""The extraction stage: one video -> one HDF5 file, smile workbooks, landmark export and PCA figure.

:func:`extract_video` is the unit of work (one SLURM array task later); it never raises for bad
input, it returns an :class:`ExtractResult` whose ``status`` says what happened.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from dis_core.io.assets import ModelFile
from dis_core.io.atomic import atomic_path, remove_stale_parts
from dis_core.io.quiet import LOG_NAME, FdRedirect, log_traceback
from dis_core.errors import DISError, at_time_limit, disk_full
from dis_core.io.excel import Rows, write_workbook
from dis_core.extract.result import ExtractResult
from dis_core.layout import STATUS, RunLayout, slurm_task_id, started_message, time_limit_message, write_status
from dis_core.extract.config import ExtractConfig
from dis_core.extract.h5store import (LIBVER, ExtractionWriter, check_complete, content_key, iter_blocks,
                                     newer_schema_text, read_attrs, read_extraction, recorded_smile_hash,
                                     recorded_smile_rule)
from dis_core.extract.landmarker import BLENDSHAPE_NAMES, N_LANDMARKS, FaceTracker, extractor_versions
from dis_core.manifest import VideoEntry
from dis_core.extract.pca import StreamingPCA
from dis_core.extract.pose import head_pose
from dis_core.io.provenance import provenance, sha256_file
from dis_core.extract.smiles import SmileConfig, smile_frames, smile_seconds
from dis_core.extract.video import check_times, effective_fps, iter_frames, probe

SMILE_FRAMES_XLSX = "smile_frames.xlsx"
SMILE_SECONDS_XLSX = "smile_seconds.xlsx"
LANDMARKS_XLSX = "landmarks.xlsx"
LANDMARKS_PCA_PNG = "landmarks_pca.png"
TRUNCATED_SHARE = 0.9  # decoded frames spanning less than this share of the header's duration: warned as truncated
DERIVED = (SMILE_FRAMES_XLSX, SMILE_SECONDS_XLSX, LANDMARKS_XLSX, LANDMARKS_PCA_PNG)  # made from the HDF5 file
SMILE_OUTPUTS = (SMILE_FRAMES_XLSX, SMILE_SECONDS_XLSX)  # those that follow the smile rule


def _outputs(cfg: ExtractConfig) -> list[str]:
    names = list(SMILE_OUTPUTS)
    if cfg.landmark_workbook:
        names.append(LANDMARKS_XLSX)
    if cfg.landmark_pca_png:
        names.append(LANDMARKS_PCA_PNG)
    return names


def extract_video(entry: VideoEntry, out_root: Path, model: ModelFile, cfg: ExtractConfig = ExtractConfig(),
                  force: bool = False, progress: bool = True) -> ExtractResult:
    """Run one video through the stage; never raises for a bad video (the result says what failed).

    What C libraries print meanwhile (FFmpeg's decoder warnings, MediaPipe/TFLite/absl start-up lines)
    goes to OUT/videos/<unit>/extraction.log, not to the terminal (descriptors 1 and 2 are redirected)."""
    log = RunLayout(out_root).video_dir(entry.unit_id) / LOG_NAME
    new = not log.exists()
    try:
        with FdRedirect(log):
            return _extract_video(entry, out_root, model, cfg, force, progress)
    finally:
        if new and log.is_file() and not log.stat().st_size:
            log.unlink()  # nothing said: no log made in a folder this attempt did not write (another DIS's, say)


def attempt_header(entry: VideoEntry, model: ModelFile, cfg: ExtractConfig) -> str:
    """The log's line before an extraction attempt's output (a log gathers every attempt's): when, which DIS,
    which process or SLURM job, which inputs."""
    import datetime as _dt

    from dis_core import __version__

    job = slurm_task_id()
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return (f"--- {when} DIS {__version__}, process {os.getpid()}" + (f", SLURM job {job}" if job else "")
            + f": {entry.video} (participant {entry.participant_id}, session {entry.session}), face model sha256 "
            f"{model.sha256[:12]}..., extraction config {cfg.content_hash()[:12]}...")


# why a complete extraction on disk is done again (check_complete's reasons), as the summary says it
CHANGED = {"video_sha256 changed": "the video's content changed since its last extraction",
           "model_sha256 changed": "another face model than its last extraction",
           "config_hash changed": "another extraction configuration than its last extraction",
           "fps_override changed": "another fps override than its last extraction",
           "extractor changed": ("another MediaPipe or OpenCV, or older extraction rules of DIS, than its last "
                                 "extraction (or one that did not record them)"),
           "old schema": "its last extraction was written by an older DIS"}


def _extract_video(entry: VideoEntry, out_root: Path, model: ModelFile, cfg: ExtractConfig, force: bool,
                   progress: bool) -> ExtractResult:
    t0 = time.monotonic()
    base = ExtractResult(unit_id=entry.unit_id, participant_id=entry.participant_id, session=entry.session,
                         video=entry.video_rel)
    layout = RunLayout(out_root)
    d = layout.video_dir(entry.unit_id)
    started = False
    try:
        try:
            video_sha = sha256_file(entry.video)
        except OSError as e:
            raise DISError(f"{entry.video}: cannot read ({e.strerror})") from None
        from dis_core.extract.heal import claim_unit_dir, heal_exports

        newer = newer_schema_text(layout.extraction(entry.unit_id))
        if newer:  # an older DIS neither overwrites it (even with --force) nor writes into its folder
            base.message, base.record = f"{entry.video}: {newer}", False
            base.elapsed_s = round(time.monotonic() - t0, 3)
            return base
        foreign = claim_unit_dir(d, entry, video_sha)
        if foreign:  # not ours: write nothing there, not even a status
            base.message, base.record = f"{entry.video}: {foreign}", False
            base.elapsed_s = round(time.monotonic() - t0, 3)
            return base
        remove_stale_parts(d)
        (d / STATUS).unlink(missing_ok=True)  # never the last run's record: none while checking, then "started"
        expect = {"video_sha256": video_sha, "model_sha256": model.sha256, "config_hash": cfg.content_hash(),
                  "fps_override": float(entry.fps or 0.0), "extractor": extractor_versions()}
        base.key = content_key(expect)
        h5 = layout.extraction(entry.unit_id)
        why = None if force else check_complete(h5, expect)
        if not force and why is None:
            smiles, not_smiled = _smiles_of_rule(h5, entry, cfg)
            # smiles left under the file's rule: its smile workbooks are redone under that rule, not the run's
            kept_rule = recorded_smile_rule(read_attrs(h5)) if not_smiled else None
            redone = heal_exports(d, entry, dataclasses.replace(cfg, smile=kept_rule) if kept_rule else cfg)
            res = _judged(_result_from_file(base, h5), entry, h5)
            if res.detected_frames:
                res.status = "ok" if redone or smiles else "skipped"
                res.message = "; ".join(x for x in (SMILES_RECOMPUTED if smiles else not_smiled,
                                                    "redone: " + "; ".join(redone) if redone else "", res.message) if x)
                res.incomplete = bool(not_smiled)
            return res
        # the record jobs/graph.py:run_unit writes for other stages, once the folder is this unit's: an attempt
        # killed from outside (a SLURM time limit, out of memory) left no record, and the cohort step took the older
        # extraction beside it, made from other inputs (fps override, configuration or model) than it then recorded
        task = slurm_task_id()
        write_status(d, dataclasses.replace(base, status="failed", job=task, message=started_message(task)))
        started = True
        with open(d / LOG_NAME, "a", encoding="utf-8") as log:  # which attempt wrote the library lines below
            log.write(attempt_header(entry, model, cfg) + "\n")
        res = _extract(entry, d, h5, model, cfg, expect, progress, base)
        if why in CHANGED and not res.failed:  # say which input changed: the later stages redo this unit
            res.message = "; ".join(x for x in (f"re-extracted: {CHANGED[why]}", res.message) if x)
    except DISError as e:
        base.message = str(e)
        res = base
    except OSError as e:
        if disk_full(e):
            base.message = f"{entry.video}: disk full while writing {d}: free space, then rerun (finished videos are kept)"
        else:
            base.message = f"{entry.video}: {e.__class__.__name__}: {e}"
            log_traceback(d / LOG_NAME)
        res = base
    except Exception as e:  # a bug or an unexpected decoder fault: one line here, traceback in the log
        if at_time_limit(e):  # the folder is this unit's once started: its record says why it stopped (dis status
            if started:  # then says to give it more time; the "started" record alone read as a bare failure)
                write_status(d, dataclasses.replace(base, status="failed", job=slurm_task_id(),
                                                    message=time_limit_message(e)))
            raise
        base.message = f"{entry.video}: {e.__class__.__name__}: {e}"
        base.status = "failed"
        log_traceback(d / LOG_NAME)
        res = base
    except KeyboardInterrupt:  # Ctrl-C / SIGTERM: exports written before the HDF5 file must not outlive it
        from dis_core.extract.heal import drop_orphans

        drop_orphans(d)
        raise
    if res.status == "failed":
        from dis_core.extract.heal import drop_orphans

        drop_orphans(d)
    res.elapsed_s = round(time.monotonic() - t0, 3)
    if started:  # the outcome replaces the record that said it did not finish (jobs/graph.py records it again)
        write_status(d, res)
    return res


def _extract(entry: VideoEntry, d: Path, h5: Path, model: ModelFile, cfg: ExtractConfig, expect: dict,
             progress: bool, base: ExtractResult) -> ExtractResult:
    from tqdm import tqdm

    info = probe(entry.video)
    check_times(entry.video, entry.fps)
    prov = provenance(cfg, video=str(entry.video), video_sha256=expect["video_sha256"],
                      model_sha256=model.sha256, model_path=str(model.path), unit_id=entry.unit_id,
                      participant_id=entry.participant_id, session=entry.session, fps_override=expect["fps_override"],
                      extractor=expect["extractor"], smile_hash=cfg.smile_hash(),
                      config_hash=expect["config_hash"])  # of the content ("config" holds every option that ran)
    d.mkdir(parents=True, exist_ok=True)
    _check_free_space(entry, d, info.frame_count, cfg)
    with atomic_path(h5) as tmp:
        w = ExtractionWriter(tmp, cfg.chunk_frames, cfg.compression_level)
        try:
            buf: dict[str, list] = {k: [] for k in ("time_s", "detected", "landmarks", "blendshapes", "transform")}
            bar = tqdm(total=info.frame_count or None, desc=entry.unit_id[:40], unit="fr", leave=False,
                       disable=None if progress else True, mininterval=0.5)
            shape, wild = None, 0
            with FaceTracker(model.path, cfg.landmarker) as tracker:
                for fr in iter_frames(entry.video, entry.fps, cfg.square_pixels):
                    shape, wild = shape or fr.rgb.shape, wild + fr.wild_time
                    r = tracker.process(fr.rgb, fr.time_s)
                    buf["time_s"].append(fr.time_s)
                    buf["detected"].append(r.detected)
                    buf["landmarks"].append(r.landmarks)
                    buf["blendshapes"].append(r.blendshapes)
                    buf["transform"].append(r.matrix)
                    if len(buf["time_s"]) >= cfg.chunk_frames:
                        _flush(w, buf, cfg)
                    bar.update(1)
                _flush(w, buf, cfg)
                faces = {"n_wild_times": wild,
                         "n_other_face_frames": tracker.other_frames, "n_several_faces_frames": tracker.several_frames,
                         "several_faces_from_s": np.nan if tracker.several_from_s is None else tracker.several_from_s}
            bar.close()
            if w.n == 0:
                raise DISError(f"{entry.video}: no frame could be decoded (corrupt or truncated video)")
            summary, video_attrs = _summaries(w, info, entry, cfg, shape)
            summary.update(faces)
            w.finish(video_attrs, prov, summary)
        finally:
            w.close()
        _write_exports(tmp, d, entry, cfg, prov)
    for n in DERIVED:  # outputs of other options (e.g. landmarks.xlsx without --landmark-workbook) go
        if n not in _outputs(cfg):
            (d / n).unlink(missing_ok=True)
    return _judged(_result_from_file(base, h5), entry, h5)


FPS_OVERRIDE_NOTE = 0.01  # a manifest fps this far from the container's is said (29.97 for 30 is not)


def _raw_stream(video: Path) -> bool:
    """:func:`dis_core.extract.video.is_raw_stream`, False when the file cannot be read now."""
    from dis_core.extract.video import is_raw_stream

    try:
        return is_raw_stream(video)
    except OSError:
        return False


def _judged(res: ExtractResult, entry: VideoEntry, h5: Path) -> ExtractResult:
    """Status and message of a complete extraction, the same when it was made now as when a re-run finds it
    current: no face is a failure naming the file; a shorter span of frames than the container's header lists (a
    truncated file decodes up to its cut without an error) and a face in under half the frames are warnings.
    The span, not the count: Matroska's count is its duration x frame rate, far above the frames of a variable
    frame rate (a browser's or OBS's recording)."""
    if res.detected_frames == 0:
        res.status, res.message = "no_face", f"{entry.video}: no face detected in any of {res.frames} frames"
        return res
    res.status = "ok"
    warn = []
    with h5py.File(h5, "r") as f:
        a = f["video"].attrs
        count, rate, span = float(a.get("frame_count_header", 0)), float(a.get("fps_header", 0)), float(a["duration_s"])
        wild = int(f.attrs.get("n_wild_times", 0))
    if wild:
        warn.append(f"{wild} frame time(s) lay far past the frame before while the frames after fell back or "
                    "stalled, and were put one period after the frame before (damaged timestamps)")
    if entry.fps and rate > 0 and abs(entry.fps / rate - 1) > FPS_OVERRIDE_NOTE and not _raw_stream(entry.video):
        warn.append(f"the manifest's fps {entry.fps:g} overrides the container's {rate:.4g} (times and durations are "
                    f"{rate / entry.fps:.3g} times the container's)")
    rate = entry.fps or rate  # with the manifest's fps the span is frames / fps: so is the header's count
    listed = count / rate if count > 0 and rate > 0 else 0.0
    if span < TRUNCATED_SHARE * listed:
        warn.append(f"decoded {res.frames} frames over {span:.1f} s of the {listed:.1f} s its header lists "
                    "(truncated or damaged? a copy trimmed without re-encoding lists the frames before its cut too)")
    if res.detection_rate < 0.5:
        warn.append(f"face found in only {100 * res.detection_rate:.0f}% of frames")
    if res.several_faces_frames or res.other_face_frames:
        warn.append(f"more than one face in {res.several_faces_frames} frames; {res.other_face_frames} frames showed "
                    "only someone else's face and count as no face (the participant's is the largest face at the "
                    "start, then the one nearest their last)")
    res.message = f"{entry.video}: {'; '.join(warn)}" if warn else ""
    return res


def _check_free_space(entry: VideoEntry, d: Path, frames: int, cfg: ExtractConfig) -> None:
    """Fail before the work, not after it, when the outputs cannot fit (HDF5 copes badly with ENOSPC)."""
    import shutil

    # bytes a frame, compressed: the HDF5 file measured ~3,900 (900 frames of a real face: 3.5 MB), the smile
    # workbooks and figure a few hundred more; an earlier extraction stays until the new one replaces it
    per_frame = 4_500 + (12_000 if cfg.landmark_workbook else 0)
    need = max(frames, 1) * per_frame + 256_000
    free = shutil.disk_usage(d).free
    if free < need:
        raise DISError(f"{entry.video}: disk full in {d}: {free / 1e6:.1f} MB free, about {need / 1e6:.1f} MB "
                       + (f"needed for the {frames:,} frames its header lists (a header far above the video's true "
                          "length, as one wild timestamp makes, asks for too much); " if frames > 0 else "needed; ")
                       + "free space, then rerun (finished videos are kept)")


def _flush(w: ExtractionWriter, buf: dict[str, list], cfg: ExtractConfig) -> None:
    if not buf["time_s"]:
        return
    blk = {k: np.asarray(v) for k, v in buf.items()}
    blk["head_pose"] = head_pose(blk["transform"]).astype(np.float32)
    blk["smile"] = smile_frames(blk["blendshapes"], BLENDSHAPE_NAMES, cfg.smile)
    w.append(**blk)
    for v in buf.values():
        v.clear()


SMILES_RECOMPUTED = "smiles recomputed from the stored blendshapes under another smile rule (MediaPipe not run again)"


def _smiles_of_rule(h5: Path, entry: VideoEntry, cfg: ExtractConfig) -> tuple[bool, str]:
    """:func:`_recompute_smiles`, and why it failed ('' when it did not): a current extraction whose smiles could
    not be recomputed (a full disk, a rule naming no blendshape) is kept, for every stage but the smile summary
    (a failed unit left the cohort, and every model was trained again, then again once it was fixed)."""
    try:
        return _recompute_smiles(h5, entry, cfg), ""
    except DISError as e:
        return False, f"smiles not recomputed under the run's smile rule: {e}"
    except Exception as e:  # noqa: BLE001 - a full disk in h5py, a rule's unknown blendshape name
        if at_time_limit(e):
            raise
        return False, f"smiles not recomputed under the run's smile rule ({e.__class__.__name__}: {e}): {entry.video}"


def _recompute_smiles(h5: Path, entry: VideoEntry, cfg: ExtractConfig) -> bool:
    """Bring a current extraction's smile columns, counts and record to the run's smile rule, from the blendshapes
    it stores: the rule only thresholds what MediaPipe measured, which a new threshold re-ran on every video (and
    then every model was trained again). The file is replaced in one rename, then its smile workbooks (a kill
    between them leaves workbooks of the older rule, which :func:`heal_exports` redoes); False when it follows
    the rule."""
    import json
    import shutil

    from dis_core.config import plain

    if recorded_smile_hash(read_attrs(h5)) == cfg.smile_hash():
        return False
    need, free = h5.stat().st_size + 1_000_000, shutil.disk_usage(h5.parent).free  # a copy is changed, then renamed
    if free < need:
        raise DISError(f"{entry.video}: disk full in {h5.parent}: {free / 1e6:.1f} MB free, about {need / 1e6:.1f} MB "
                       "needed to recompute its smiles under the new rule: free space, then rerun")
    with atomic_path(h5) as tmp:
        shutil.copyfile(h5, tmp)
        with h5py.File(tmp, "r+", libver=LIBVER) as f:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["blendshapes"].attrs["names"]]
            n, step = f["time_s"].shape[0], 4096
            smi = np.concatenate([smile_frames(f["blendshapes"][s:s + step], names, cfg.smile)
                                  for s in range(0, n, step)] or [np.zeros(0, bool)])
            f["smile"][...] = smi
            secs = smile_seconds(f["time_s"][()], f["detected"][()], smi, cfg.smile)
            prov = json.loads(f.attrs["provenance"])
            prov["config"]["smile"] = plain(cfg.smile)
            prov["smile_hash"] = cfg.smile_hash()
            # what made the smile columns now; the rest of the record is still what MediaPipe's run made
            prov["smiles_recomputed"] = provenance(cfg.smile)
            f.attrs["provenance"] = json.dumps(prov, sort_keys=True)
            f.attrs["smile_hash"] = cfg.smile_hash()
            f.attrs["n_smile_frames"] = int(smi.sum())
            f.attrs["n_smile_seconds"] = int(secs["smile"].sum())
    _write_exports(h5, h5.parent, entry, cfg, prov, only=set(SMILE_OUTPUTS))
    return True


def _summaries(w: ExtractionWriter, info, entry: VideoEntry, cfg: ExtractConfig, shape) -> tuple[dict, dict]:
    t, det, smi = w.read("time_s"), w.read("detected"), w.read("smile")
    fps = float(entry.fps) if entry.fps else effective_fps(t, info.fps)
    secs = smile_seconds(t, det, smi, cfg.smile)
    n = len(t)
    duration = float(t[-1] - t[0] + 1.0 / fps) if n else 0.0
    summary = {"n_frames": n, "n_detected": int(det.sum()), "n_smile_frames": int(smi.sum()),
               "n_seconds": int(len(secs)), "n_face_seconds": int((secs["detected_frames"] > 0).sum()),
               "n_smile_seconds": int(secs["smile"].sum()), "fps": fps}
    video = {"path": str(entry.video), "fps": fps, "fps_header": info.fps,
             "fps_source": "manifest override" if entry.fps else "frame timestamps",
             "frame_count": n, "frame_count_header": info.frame_count,
             # the decoded frames' size: after the container's rotation (phone video) is applied
             "width": int(shape[1]), "height": int(shape[0]), "width_header": info.width,
             "height_header": info.height, "duration_s": duration, "codec": info.codec,
             "pixel_aspect": info.pixel_aspect}  # the stream's (width / width_header once stretched to square pixels)
    return summary, video


def _write_exports(h5: Path, d: Path, entry: VideoEntry, cfg: ExtractConfig, prov: dict,
                   only: set[str] | None = None) -> None:
    """Workbooks and figure derived from the (not yet committed) HDF5 file, streamed block by block
    (``only``: just these outputs)."""
    want = set(_outputs(cfg)) if only is None else set(only)
    names = [name for name, _ in cfg.smile.thresholds]
    cols = [BLENDSHAPE_NAMES.index(n) for n in names]
    rule = pd.DataFrame(list(cfg.smile.thresholds), columns=["blendshape", "threshold (score must exceed)"])
    if SMILE_FRAMES_XLSX in want:
        frames = Rows(["frame", "time_s", "detected", "smile", *names], _smile_frame_rows(h5, cols))
        write_workbook(d / SMILE_FRAMES_XLSX, {"smile_frames": frames, "rule": rule}, prov)
    if SMILE_SECONDS_XLSX in want:
        x = read_extraction(h5, skip=("landmarks", "transform", "blendshapes", "head_pose"))  # 13 bytes a frame
        secs = smile_seconds(x.time_s, x.detected, x.smile, cfg.smile)
        rule_s = pd.DataFrame({"min_fraction": [cfg.smile.min_fraction], "fps": [x.attrs.get("fps")]})
        write_workbook(d / SMILE_SECONDS_XLSX, {"smile_seconds": secs, "rule": rule_s}, prov)
    if cfg.landmark_workbook and LANDMARKS_XLSX in want:
        write_workbook(d / LANDMARKS_XLSX, {"landmarks": Rows(landmark_header(), _landmark_rows(h5))}, prov)
    if cfg.landmark_pca_png and LANDMARKS_PCA_PNG in want:
        _pca_png(h5, d / LANDMARKS_PCA_PNG, entry, prov)


def _smile_frame_rows(h5: Path, cols: list[int]):
    """frame, time_s, detected, smile and the rule's blendshape scores (empty where no face was found)."""
    for start, t, det, smi, bs in iter_blocks(h5, ("time_s", "detected", "smile", "blendshapes")):
        scores = bs[:, cols].astype(float)
        for j in range(len(t)):
            vals = [v if v == v else None for v in scores[j].tolist()] if det[j] else [None] * len(cols)
            yield [start + j, float(t[j]), bool(det[j]), bool(smi[j]), *vals]


def landmark_header() -> list[str]:
    """Landmark export columns: frame, time_s, then x_i, y_i for i = 0..477 (MediaPipe index order)."""
    cols = ["frame", "time_s"]
    for i in range(N_LANDMARKS):
        cols += [f"x_{i}", f"y_{i}"]
    return cols


def _landmark_rows(h5: Path):
    for start, t, det, lm in iter_blocks(h5, ("time_s", "detected", "landmarks")):
        xy = lm[:, :, :2].reshape(len(lm), -1).astype(float)
        for j in range(len(t)):
            vals = [None if not np.isfinite(v) else v for v in xy[j]] if not det[j] else xy[j].tolist()
            yield [start + j, float(t[j]), *vals]


def _pca_png(h5: Path, path: Path, entry: VideoEntry, prov: dict) -> None:
    from dis_core.report.figures import landmark_pca_png  # matplotlib: imported only when a figure is drawn

    acc = StreamingPCA(N_LANDMARKS * 2)
    for _, lm in iter_blocks(h5, ("landmarks",)):
        acc.update(lm[:, :, :2].reshape(len(lm), -1))
    if acc.n < 3:
        landmark_pca_png(path, np.zeros((0, 2)), np.zeros(0), np.zeros(2),
                         f"Landmark PCA: {entry.participant_id} / {entry.session}: "
                         f"too few frames with a face ({acc.n})", prov)
        return
    model = acc.fit(2)
    scores, times = [], []
    for _, t, det, lm in iter_blocks(h5, ("time_s", "detected", "landmarks")):
        scores.append(model.transform(lm[det][:, :, :2].reshape(int(det.sum()), -1)))
        times.append(t[det])
    landmark_pca_png(path, np.concatenate(scores), np.concatenate(times), model.explained_ratio,
                     f"Landmark PCA: {entry.participant_id} / {entry.session}\n{Path(entry.video_rel).name}", prov)


def face_seconds_of(attrs: dict, h5: Path) -> int:
    """Seconds with a face: recorded since 5 December 2026, counted from the frames in a file made before."""
    if "n_face_seconds" in attrs:
        return int(attrs["n_face_seconds"])
    x = read_extraction(h5, skip=("landmarks", "transform", "blendshapes", "head_pose"))
    return int((smile_seconds(x.time_s, x.detected, x.smile, SmileConfig())["detected_frames"] > 0).sum())


def _result_from_file(base: ExtractResult, h5: Path) -> ExtractResult:
    a = read_attrs(h5)
    return dataclasses.replace(
        base, frames=int(a["n_frames"]), detected_frames=int(a["n_detected"]),
        smile_frames=int(a["n_smile_frames"]), smile_seconds=int(a["n_smile_seconds"]), smile_hash=recorded_smile_hash(a),
        seconds=int(a["n_seconds"]), face_seconds=face_seconds_of(a, h5), fps=float(a["fps"]), output=os.path.abspath(h5),
        other_face_frames=int(a.get("n_other_face_frames", 0)), several_faces_frames=int(a.get("n_several_faces_frames", 0)))
