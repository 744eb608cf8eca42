"""The cohort step between extraction and training: which videos are usable, the train/test split,
and the bases fitted once for everyone on training frames only (landmarks; windows of frames). Written to OUT/cohort/ and read back by every
training and scoring unit, so all of them see the same frames, split and feature space.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from dis_core.io.atomic import write_bytes_atomic, write_text_atomic
from dis_core.config import from_doc, plain, to_doc
from dis_core.errors import DISError
from dis_core.features.build import (FEATURE_SETS, FRAME_PERIOD_BOUND_S, FeatureSpec, LandmarkBasis, LandmarkMoments,
                                     VideoFeatures, base_values, landmark_points, mean_shape, reach_s, row_overlap,
                                     video_features)
from dis_core.features.temporal import RowMoments, WindowBasis, window_basis_of
from dis_core.extract.h5store import check_complete, content_key, read_attrs, read_extraction
from dis_core.layout import RunLayout, read_status
from dis_core.manifest import Manifest, VideoEntry
from dis_core.cohort.config import CohortConfig
from dis_core.cohort.split import VideoSplit, assign_splits, check_gap

@dataclasses.dataclass
class Cohort:
    """What every later unit needs to build identical features."""

    out_root: Path
    entries: list[VideoEntry]  # usable videos only
    left_out: list[dict]  # videos that cannot be used, with the reason
    splits: dict[str, VideoSplit]
    basis: LandmarkBasis | None
    config: CohortConfig
    extraction_keys: dict[str, str] = dataclasses.field(default_factory=dict)  # unit_id -> content key used
    # feature set name -> its columns' spread over the cohort's training rows (:class:`ColumnStats`)
    feature_stats: dict[str, ColumnStats] = dataclasses.field(default_factory=dict)
    # window="frames" feature set name -> (its spec, plain; the PCA basis of its training windows)
    window_bases: dict[str, tuple[dict, WindowBasis]] = dataclasses.field(default_factory=dict)
    # named window feature set -> {"spec": plain spec, "reason": why it does not apply to this cohort}
    not_applicable: dict[str, dict] = dataclasses.field(default_factory=dict)
    # how many training frames the landmark basis was fitted on: {"pca": ..., "reference": ...}
    basis_frames: dict[str, int] = dataclasses.field(default_factory=dict)

    def gone_note(self, pid: str) -> str:
        """'; N video(s) of pid left out at the cohort step (unit: reason; ...)', or '' when none was: the unit
        names the session (a lost test session read as "no face detected", saying not which)."""
        gone = [f"{x['unit_id']}: {x['reason']}" for x in self.left_out
                if x.get("participant_id") == pid and x.get("unit_id")]
        return f"; {len(gone)} video(s) left out at the cohort step ({'; '.join(gone)})" if gone else ""

    def inapplicable(self, spec: FeatureSpec) -> str | None:
        """Why ``spec`` does not apply to this cohort, as the cohort step found (None if it applies or
        was not checked): its units are then left out with this reason rather than failed."""
        got = self.not_applicable.get(spec.name)
        return got["reason"] if got is not None and got["spec"] == plain(spec) else None

    def check_reach(self, spec: FeatureSpec) -> None:
        """Raise DISError when the within-session gap is shorter than how far ``spec``'s rows look from their
        frame (:func:`dis_core.cohort.split.check_gap`): checked by every unit, since a feature set may be trained
        against a cohort whose step never saw it."""
        problem = check_gap(self.splits, self.config.split, {spec.name: reach_s(spec)})
        if problem:
            raise DISError(problem)

    def window_basis(self, spec: FeatureSpec) -> WindowBasis | None:
        """The window basis of a ``window="frames"`` spec (None for other specs), as the cohort step fitted
        and recorded it. Never refitted elsewhere: every unit must project on the same bytes."""
        if spec.window != "frames":
            return None
        got = self.window_bases.get(spec.name)
        if got is None or got[0] != plain(spec):
            why = self.inapplicable(spec)
            raise DISError(why or f"{spec.name}: the cohort step fitted no window basis for this definition of the "
                                  f"feature set: rerun the cohort step with it (dis cohort --out {self.out_root})")
        return got[1]

    def bases_sha256(self, spec: FeatureSpec) -> str:
        """The fitted bases a feature set's rows depend on: the landmark basis ('' without one) and, for
        window="frames" rows, their window basis. Models record it; scoring refuses models of other bases."""
        lm = self.basis.sha256 if self.basis is not None else ""
        wb = self.window_basis(spec)
        return lm if wb is None else f"{lm}|{wb.sha256}"

    def column_stats(self, spec: FeatureSpec) -> ColumnStats:
        """The cohort's column statistics of ``spec``: as recorded by the cohort step (every named feature
        set), else computed now from every participant's training rows (a custom spec; slow, kept in memory)."""
        st = self.feature_stats.get(spec.name)
        if st is None or st.spec != plain(spec):
            st = self.feature_stats[spec.name] = cohort_column_stats(self, spec)
        return st

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.out_root)

    def check_extraction(self, unit_id: str, attrs: dict) -> None:
        """Refuse an extraction that is not the one the cohort step used (its video replaced and extracted
        again since): its features, models and scores would mix two videos under one unit."""
        want = self.extraction_keys.get(unit_id)
        if want is not None and content_key(attrs) != want:
            raise DISError(f"{self.layout.extraction(unit_id)}: extracted again since the cohort step (another video "
                           "content, model or configuration): rerun the cohort step and the stages after it (dis "
                           f"cohort, dis train, dis score, dis report --out {self.out_root}; or dis run)")

    def check_extractions(self) -> None:
        """:meth:`check_extraction` of every video the cohort uses (root attributes only)."""
        for e in self.entries:
            path = self.layout.extraction(e.unit_id)
            try:
                attrs = read_attrs(path)
            except OSError as err:
                raise DISError(f"{path}: the extraction the cohort step used cannot be read ({err.__class__.__name__}): "
                               f"rerun the extraction and cohort steps (dis run)") from None
            self.check_extraction(e.unit_id, attrs)

    def inputs_of(self, pid: str) -> dict[str, str]:
        """The content keys of a participant's extractions and their split: what a model of them was made from."""
        return {e.unit_id: f"{self.extraction_keys.get(e.unit_id, '')}|{self.splits[e.unit_id].rule}"
                for e in self.videos_of(pid)}

    @property
    def participants(self) -> list[str]:
        return sorted({e.participant_id for e in self.entries})

    @property
    def split_rules(self) -> str:
        """The split rules in use, comma-separated (what provenance records name)."""
        return ",".join(sorted({sp.rule for sp in self.splits.values()}))

    def dyad(self, pid: str) -> str:
        return next((e.dyad or "" for e in self.entries if e.participant_id == pid), "")

    def videos_of(self, pid: str) -> list[VideoEntry]:
        return [e for e in self.entries if e.participant_id == pid]


class TooFewWindows(DISError):
    """The cohort's training frames hold too few complete windows to fit a window basis."""


def prepare_cohort(manifest: Manifest, out_root: Path, cfg: CohortConfig = CohortConfig(),
                   specs: Sequence[FeatureSpec] = (), expect: dict[str, Any] | None = None) -> Cohort:
    """Decide usable videos and the split, fit the landmark basis; for every named feature set and every
    one of ``specs`` (the run's; they win over a named set of the same name) fit the window basis, decide
    whether it applies and record the column statistics; write OUT/cohort/. ``expect``: the run's extraction
    inputs (``model_sha256``, ``config_hash``, ``extractor``): an extraction made from others is left out."""
    from dis_core.io.atomic import remove_stale_parts

    out_root = Path(out_root)
    remove_stale_parts(RunLayout(out_root).cohort_dir)  # a killed cohort step's part files
    usable, left_out, times, detected, keys = [], [], {}, {}, {}
    contents: dict[tuple[str, str], str] = {}  # (participant, video sha256) -> the first unit of that content
    for e in manifest.entries:
        h5 = RunLayout(out_root).extraction(e.unit_id)
        why = extraction_problem(out_root, e, h5, expect or {})
        if why:
            left_out.append({"unit_id": e.unit_id, "participant_id": e.participant_id, "reason": f"extraction {why}"})
            continue
        try:  # every dataset, so that damage anywhere costs this video here (a damaged blendshapes block stopped
            # the whole step later, naming no file); the large arrays are dropped at once
            x = read_extraction(h5)
            x.landmarks = x.transform = x.blendshapes = None
        except (OSError, KeyError, ValueError) as err:  # damaged on disk: this video only
            left_out.append({"unit_id": e.unit_id, "participant_id": e.participant_id,
                             "reason": f"extraction unreadable: {h5}: {err}"})
            continue
        twin = contents.setdefault((e.participant_id, str(x.attrs.get("video_sha256", e.unit_id))), e.unit_id)
        if twin != e.unit_id:  # allow_duplicate within a participant: never tested on frames trained on
            left_out.append({"unit_id": e.unit_id, "participant_id": e.participant_id,
                             "reason": f"{e.video}: the same video content as this participant's {twin}"})
            continue
        if not x.detected.any():
            left_out.append({"unit_id": e.unit_id, "participant_id": e.participant_id, "reason": "no face detected"})
            continue
        slow = too_slow(x.time_s)
        if slow:
            left_out.append({"unit_id": e.unit_id, "participant_id": e.participant_id, "reason": f"{e.video}: {slow}"})
            continue
        usable.append(e)
        times[e.unit_id] = x.time_s
        detected[e.unit_id] = x.detected
        keys[e.unit_id] = content_key(x.attrs)
    if not usable:
        why = list(dict.fromkeys(f"{x['unit_id']}: {x['reason']}" for x in left_out))
        more = f"; and {len(why) - 3} more" if len(why) > 3 else ""
        raise DISError("no usable video in the cohort (every extraction failed, found no face or is too slow): "
                       + "; ".join(why[:3]) + more)
    splits = assign_splits(usable, times, cfg.split, planned=manifest.entries, detected=detected)
    basis, basis_frames = _fit_basis(out_root, usable, splits, detected, cfg)
    cohort = Cohort(out_root, usable, left_out, splits, basis, cfg, keys, basis_frames=basis_frames)
    for spec in {**FEATURE_SETS, **{s.name: s for s in specs}}.values():
        if spec.source == "landmarks" and basis is None:
            continue
        try:
            if spec.window == "frames":  # before the column statistics, which are of the reduced rows
                cohort.window_bases[spec.name] = (plain(spec), cohort_window_basis(cohort, spec))
            why = window_coverage(cohort, spec)
        except TooFewWindows as e:  # videos shorter than the window
            why = str(e)
        if why:
            cohort.not_applicable[spec.name] = {"spec": plain(spec), "reason": why}
            continue
        cohort.feature_stats[spec.name] = cohort_column_stats(cohort, spec)
    save_cohort(cohort)
    return cohort


# why an extraction on disk made from other inputs than the run's is not used (check_complete's reasons)
OTHER_INPUTS = {
    "fps_override changed": "was made under another fps override than the manifest's now ({fps})",
    "model_sha256 changed": "was made with another face model than the run's",
    "config_hash changed": "was made under another extraction configuration than the run's",
    "extractor changed": ("was made by another MediaPipe or OpenCV, or under older extraction rules, than "
                          "this DIS's ({extractor})")}


def extraction_problem(out_root: Path, e: VideoEntry, h5: Path, expect: dict[str, Any]) -> str | None:
    """Why the extraction on disk is not usable for this row now: incomplete, made from other content than the
    video's current bytes (a replaced video) or from other inputs than the row's and the run's (``expect``), or this
    run's extraction of it failed."""
    from dis_core.extract.heal import unit_dir_problem
    from dis_core.io.provenance import sha256_file

    try:
        sha = sha256_file(e.video)
    except OSError as err:
        return f"unusable: the video cannot be read now ({err.strerror or err.__class__.__name__}); an older extraction is not used"
    why = check_complete(h5, {"video_sha256": sha, "fps_override": float(e.fps or 0.0), **expect})
    if why == "video_sha256 changed":
        return "is of another video content than the current file (the video was replaced and its extraction failed)"
    if why in OTHER_INPUTS:  # an edited fps, another model, configuration or library whose re-extraction never ran
        # (a task cancelled while pending, a pack's units after a time-out): its values are not the run's
        return (OTHER_INPUTS[why].format(fps=e.fps or "none", extractor=expect.get("extractor", "?"))
                + ": run dis extract (it extracts this video again)")
    if why and why.startswith("unreadable"):
        why = f"{why}: {h5}"
    st = read_status(RunLayout(out_root).video_dir(e.unit_id))
    failed = st is not None and st.status == "failed"
    if why:  # why the extraction of this very file failed (a decode error), not only that its output is missing
        of_this = failed and st.message and sha in str(getattr(st, "key", "")).split("|")
        return f"{why}: the last extraction of this file failed ({st.message})" if of_this else why
    foreign = unit_dir_problem(h5.parent, e, sha)
    if foreign:
        return f"unusable: {foreign}"
    if failed:
        return f"failed in the last run ({st.message}); an older extraction is not used"
    return None


def _fit_basis(out_root: Path, entries: Sequence[VideoEntry], splits: dict[str, VideoSplit],
               detected: dict[str, np.ndarray], cfg: CohortConfig) -> tuple[LandmarkBasis | None, dict[str, int]]:
    """The landmark basis from (subsampled) training frames, in two passes over the videos so that memory
    does not grow with the cohort: the Procrustes reference shape from at most ``basis_reference_frames``
    of those frames (:func:`reference_shares`), then the PCA of each video's centred shapes, a video at a
    time. Also returns how many frames went into each (recorded in cohort.json). The videos are taken in the
    order of their ids and each video's frames evenly spaced, as the window basis takes them: one random stream
    drawn video after video made every video's frames depend on the ones listed before it, so reordering the
    manifest changed the basis (components by up to 0.10) and retrained every landmark model."""
    picks: dict[str, np.ndarray] = {}
    for e in sorted(entries, key=lambda e: e.unit_id):
        sel = np.flatnonzero(splits[e.unit_id].train & detected[e.unit_id])
        if len(sel) > cfg.basis_frames_per_video:
            sel = sel[np.linspace(0, len(sel) - 1, cfg.basis_frames_per_video).round().astype(int)]
        if len(sel):
            picks[e.unit_id] = sel
    if sum(len(s) for s in picks.values()) < cfg.basis_k + 2:
        return None, {}
    shares = reference_shares([len(s) for s in picks.values()], cfg.basis_reference_frames)
    spread = {u: s[np.linspace(0, len(s) - 1, k).round().astype(int)] if k < len(s) else s
              for (u, s), k in zip(picks.items(), shares) if k}
    sample = {u: _points(out_root, u, s) for u, s in spread.items()}  # at most basis_reference_frames shapes
    fit = LandmarkMoments(mean_shape(np.concatenate(list(sample.values()))))
    for u, s in picks.items():  # each video's centred shapes: motion, not identity
        fit.add(sample[u] if u in spread and len(spread[u]) == len(s) else _points(out_root, u, s))
    return fit.basis(cfg.basis_k), {"pca": fit.moments.n, "reference": int(sum(shares))}


def reference_shares(sizes: Sequence[int], cap: int) -> np.ndarray:
    """How many of each video's basis frames the Procrustes reference uses, at most ``cap`` in all: every
    frame when they fit; else the same number L from every video (all of a video's frames when it has
    fewer), the largest L that fits; with more videos than ``cap``, one frame from ``cap`` videos spread
    over the cohort. Videos, not frames, then weigh alike in the reference."""
    n = np.asarray(sizes, int)
    if n.sum() <= cap:
        return n
    if len(n) > cap:
        out = np.zeros_like(n)
        out[np.linspace(0, len(n) - 1, cap).round().astype(int)] = 1
        return out
    lo, hi = 1, int(n.max())  # L = 1 fits: len(n) <= cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if np.minimum(n, mid).sum() <= cap else (lo, mid - 1)
    return np.minimum(n, lo)


def _points(out_root: Path, unit: str, frames: np.ndarray) -> np.ndarray:
    """A video's landmarks of ``frames`` in pixels (n, 478, 2)."""
    path = RunLayout(out_root).extraction(unit)
    try:
        x = read_extraction(path, skip=("transform", "blendshapes"))
        return landmark_points(x.landmarks[frames], int(x.video["width"]), int(x.video["height"]))
    except (OSError, KeyError, ValueError) as err:
        raise DISError(f"{path}: the landmarks cannot be read ({err}): extract this video again (delete its "
                       "folder under videos/) or remove its row, then rerun the cohort step") from None


def save_cohort(c: Cohort) -> None:
    lay = c.layout
    lay.cohort_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{k}__{uid}": getattr(s, k) for uid, s in c.splits.items() for k in ("train", "test")})
    write_bytes_atomic(lay.split_record, buf.getvalue())
    if c.basis is not None:
        write_bytes_atomic(lay.landmark_basis, c.basis.to_bytes())
    for name, (_, wb) in c.window_bases.items():
        write_bytes_atomic(lay.window_basis(name), wb.to_bytes())
    doc = {
        "entries": [_entry_doc(e) for e in c.entries],
        "left_out": c.left_out,
        "split": {uid: s.summary() for uid, s in c.splits.items()},
        "split_sha256": masks_sha256(c.splits),
        "basis_sha256": c.basis.sha256 if c.basis is not None else None,
        "basis_explained_variance": c.basis.explained.tolist() if c.basis is not None else None,
        "basis_frames": c.basis_frames,
        "extraction_keys": c.extraction_keys,
        "config": to_doc(c.config),
        "feature_stats": {k: dataclasses.asdict(v) for k, v in c.feature_stats.items()},
        "not_applicable": c.not_applicable,
        "window_bases": {k: {"spec": spec, "sha256": wb.sha256, "explained_variance": wb.explained.tolist()}
                         for k, (spec, wb) in c.window_bases.items()},
    }
    write_text_atomic(c.layout.cohort_record, json.dumps(doc, indent=2, default=str))


def _entry_doc(e: VideoEntry) -> dict:
    d = dataclasses.asdict(e)
    d["video"] = str(e.video)
    d["extra"] = [list(p) for p in e.extra]
    return d


def load_cohort(out_root: Path) -> Cohort:
    """Read OUT/cohort/ back (as written by :func:`prepare_cohort`)."""
    out_root = Path(out_root)
    lay = RunLayout(out_root)
    if not lay.cohort_record.is_file():
        raise DISError(f"{lay.cohort_record} not found: run the cohort step first (dis cohort --out {out_root})")
    rerun = f"rerun the cohort step (dis cohort --out {out_root})"
    try:  # damaged (garbage, cut short, another program's): one line naming the file, not a bug in every unit
        doc = json.loads(lay.cohort_record.read_text())
        entries = []
        for x in doc["entries"]:
            x = dict(x)
            x["video"] = Path(x["video"])
            x["extra"] = tuple(tuple(p) for p in x["extra"])
            entries.append(VideoEntry(**x))
        rules = {e.unit_id: doc["split"][e.unit_id]["rule"] for e in entries}
        left_out, config = list(doc["left_out"]), from_doc(CohortConfig, doc["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DISError(f"{lay.cohort_record}: not a readable cohort record ({e.__class__.__name__}: {e}): "
                       f"{rerun}") from None
    if not lay.split_record.is_file():
        raise DISError(f"{lay.split_record} not found: the train/test masks that {lay.cohort_record} records; {rerun}")
    try:
        with np.load(lay.split_record, allow_pickle=False) as z:
            missing = [e.unit_id for e in entries
                       if f"train__{e.unit_id}" not in z.files or f"test__{e.unit_id}" not in z.files]
            splits = {} if missing else {e.unit_id: VideoSplit(z[f"train__{e.unit_id}"], z[f"test__{e.unit_id}"],
                                                               rules[e.unit_id]) for e in entries}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DISError(f"{lay.split_record}: not a readable file of train/test masks ({e.__class__.__name__}: "
                       f"{e}): {rerun}") from None
    if missing:
        raise DISError(f"{lay.split_record} holds no train/test masks of {missing[0]}, which {lay.cohort_record} "
                       f"lists (an interrupted cohort step?): {rerun}")
    if doc.get("split_sha256") not in (None, masks_sha256(splits)):  # None: a record from before the hash
        raise DISError(f"{lay.split_record} does not hold the train/test masks that {lay.cohort_record} records "
                       f"(changed since the cohort step): {rerun}")
    basis = (_recorded_basis(LandmarkBasis, lay.landmark_basis, doc["basis_sha256"], "landmark basis",
                             lay.cohort_record, rerun) if doc.get("basis_sha256") else None)
    windows = {k: (w["spec"], _recorded_basis(WindowBasis, lay.window_basis(k), w["sha256"], "window basis",
                                              lay.cohort_record, rerun))
               for k, w in doc.get("window_bases", {}).items()}
    return Cohort(out_root, entries, left_out, splits, basis, config,
                  doc.get("extraction_keys", {}),
                  {k: ColumnStats(**v) for k, v in doc.get("feature_stats", {}).items()}, windows,
                  doc.get("not_applicable", {}), doc.get("basis_frames", {}))


def masks_sha256(splits: dict[str, VideoSplit]) -> str:
    """The train/test masks' content, video by video (not split.npz's compressed bytes, which another zlib
    could change: this hash is part of the cohort record, whose hash every later unit depends on)."""
    h = hashlib.sha256()
    for uid in sorted(splits):
        sp = splits[uid]
        h.update(f"{uid}:{len(sp.train)}:{sp.rule}|".encode())
        h.update(np.packbits(np.asarray(sp.train, bool)).tobytes() + np.packbits(np.asarray(sp.test, bool)).tobytes())
    return h.hexdigest()


def _recorded_basis(cls, path: Path, sha256: str, what: str, record: Path, rerun: str):
    """The basis the cohort record names by its hash, read from ``path``; a missing, unreadable or other file is
    refused by name instead of being used."""
    try:
        basis = cls.from_file(path)
    except (OSError, ValueError, KeyError) as e:
        raise DISError(f"{path}: the {what} {record} records cannot be read ({e.__class__.__name__}): {rerun}") from None
    if basis.sha256 != sha256:
        raise DISError(f"{path} is not the {what} {record} records: {rerun}")
    return basis


@dataclasses.dataclass
class ParticipantData:
    """A participant's feature rows for one part (train or test), and exactly which frames they are."""

    participant_id: str
    part: str
    x: np.ndarray
    columns: list[str]
    frames: dict[str, np.ndarray]  # unit_id -> every frame the rows were computed from (window rows: all covered)
    dropped: int
    rows: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # unit_id -> one frame per row, in
    # row order (per-frame rows: the frame; window rows: the window's centre frame)
    interpolated: int = 0  # bridged frames (detector gaps filled) that some row read: QC, as dropped
    still: list[str] = dataclasses.field(default_factory=list)  # videos without rows: a head that does not move

    def still_note(self) -> str:
        """Why rows may be missing beyond faces and windows: '' or a clause naming the still videos."""
        return (f"; the head hardly moves in {', '.join(self.still)} (more than half of the frames that set its "
                "gain are one rotation: a still image or a frozen stream?), which gives no rows" if self.still else "")


def participant_features(c: Cohort, pid: str, spec: FeatureSpec, part: str, drop_dead: bool = True) -> ParticipantData:
    """Feature rows of one participant's ``part`` ('train' or 'test') frames, videos in manifest order;
    without the columns dead in the whole cohort (``drop_dead``), so every model and data set of a
    feature set has the same columns."""
    if drop_dead:
        data = participant_features(c, pid, spec, part, drop_dead=False)
        dead = set(c.column_stats(spec).dead)
        if dead and data.columns:
            keep = np.array([col not in dead for col in data.columns])
            data.x, data.columns = data.x[:, keep], [col for col in data.columns if col not in dead]
        return data
    if part not in ("train", "test"):
        raise ValueError(part)
    xs, frames, rows, cols, dropped, bridged, still = [], {}, {}, None, 0, 0, []
    for e in c.videos_of(pid):
        sp = c.splits[e.unit_id]
        select = sp.train if part == "train" else sp.test
        if not select.any():
            continue
        vf = _video_features(c, e, spec, select, sp.train, c.window_basis(spec))
        cols = vf.columns
        xs.append(vf.x)
        frames[e.unit_id] = vf.frames if vf.covered is None else vf.covered  # window rows: every frame covered
        rows[e.unit_id] = vf.frames
        dropped += vf.dropped
        bridged += vf.interpolated
        if vf.still:
            still.append(e.unit_id)
    if cols is None:
        cols = []
        x = np.zeros((0, 0))
    else:
        x = np.concatenate(xs)
    return ParticipantData(pid, part, x, cols, frames, dropped, rows, bridged, still)


def _video_features(c: Cohort, e: VideoEntry, spec: FeatureSpec, select: np.ndarray, fit: np.ndarray,
                    window_basis: WindowBasis | None = None) -> VideoFeatures:
    needed = "transform" if spec.source == "head_rotation" else spec.source
    skip = tuple(n for n in ("landmarks", "blendshapes", "transform") if n != needed)
    h5 = RunLayout(c.out_root).extraction(e.unit_id)
    try:
        x = read_extraction(h5, skip=skip)
    except (OSError, KeyError, ValueError) as err:  # damaged since the cohort step read it: say which file
        raise DISError(f"{h5}: extraction unreadable ({err}); extract it again (dis extract --force) and rerun "
                       "dis cohort") from None
    c.check_extraction(e.unit_id, x.attrs)
    lm = None
    if spec.source == "landmarks":
        if c.basis is None:
            raise DISError("landmark features requested but the cohort has no landmark basis")
        lm = landmark_points(x.landmarks, int(x.video["width"]), int(x.video["height"]))
    values, columns = base_values(spec.source, head_pose=x.head_pose, landmarks_xy=lm, blendshapes=x.blendshapes,
                                  blendshape_names=x.blendshape_names, basis=c.basis,
                                  transform=x.transform, fit=fit)
    return video_features(values, columns, x.time_s, select, fit, spec, window_basis)


def too_slow(times: np.ndarray) -> str | None:
    """Why a video's frame rate is below the one DIS's features assume (FRAME_PERIOD_BOUND_S: gap bridging,
    velocity windows, the split's gap, spectral bands up to 5 Hz), None if it is not. Half a frame a second of
    tolerance: a 10 fps camera's timestamps jitter."""
    t = np.asarray(times, np.float64)
    if len(t) < 2:
        return None
    rate = 1.0 / max(float(np.median(np.diff(t))), 1e-12)
    floor = 1.0 / FRAME_PERIOD_BOUND_S
    if rate >= floor - 0.5:
        return None
    return (f"{rate:.3g} frames a second, below the {floor:g} DIS's motion features assume (check the manifest's "
            "fps column if the file's timestamps are wrong)")


def window_coverage(c: Cohort, spec: FeatureSpec) -> str | None:
    """Why window rows do not apply to this cohort (None if they do): fewer than two participants have a
    complete window in the test part of their split and, in the training part, enough windows to hold out a
    validation window apart from every window sharing a frame with it and still fit one
    (:func:`dis_core.features.build.row_overlap` + 2), so nothing could be identified."""
    if spec.window == "none":
        return None
    need = row_overlap(spec) + 2
    both = [p for p in c.participants
            if len(participant_features(c, p, spec, "train", drop_dead=False).x) >= need
            and len(participant_features(c, p, spec, "test", drop_dead=False).x)]
    if len(both) >= 2:
        return None
    train_s = spec.window_s + (need - 1) * spec.hop_s
    return (f"{spec.name} does not apply to this cohort: {len(both)} participant(s) have {need} complete "
            f"{spec.window_s:g} s windows of face in the training part of their split and one in the test part "
            f"(2 are needed); it needs at least {train_s:g} s of face for training and {spec.window_s:g} s of face "
            "for testing")


def cohort_window_basis(c: Cohort, spec: FeatureSpec) -> WindowBasis:
    """Fit a window="frames" spec's PCA basis on the cohort's training windows (at most
    ``basis_frames_per_video`` windows of each video, evenly spaced): test frames never shape it."""
    m, cols = None, None
    for e in c.entries:
        sp = c.splits[e.unit_id]
        if not sp.train.any():
            continue
        vf = _video_features(c, e, spec, sp.train, sp.train)  # raw windows
        x = vf.x
        if len(x) > c.config.basis_frames_per_video:
            x = x[np.linspace(0, len(x) - 1, c.config.basis_frames_per_video).round().astype(int)]
        if m is None:
            m, cols = RowMoments(len(vf.columns)), vf.columns
        m.add(x)  # one video at a time: memory does not grow with the cohort
    n = m.n if m is not None else 0
    if n < spec.k + 2:
        raise TooFewWindows(f"{spec.name} does not apply to this cohort: the cohort's training frames give {n} complete {spec.window_s:g} s windows, "
                       f"too few for a {spec.k}-dimensional window basis")
    return window_basis_of(m, cols, spec.k)


# A column whose spread over the whole cohort's training rows is at most DEAD_SPREAD (in its own units:
# logits, radians, degrees, basis coordinates, log power) carries nothing: it is dropped for everyone.
DEAD_SPREAD = 1e-6


@dataclasses.dataclass
class ColumnStats:
    """One feature set's columns over the cohort's training rows: pooled spread (std), and the dead ones."""

    spec: dict  # the FeatureSpec they were computed for (plain)
    columns: list[str]
    spread: list[float]
    rows: int
    dead: list[str]

    def spread_of(self, columns: list[str]) -> np.ndarray:
        """The spreads of ``columns`` (a model's columns, dead ones dropped), in that order."""
        at = dict(zip(self.columns, self.spread))
        return np.array([at[c] for c in columns], np.float64)


def pooled_spread(parts: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
    """Std of the rows of all ``parts`` together, combined part by part (exact, no sum-of-squares
    cancellation: a constant column gives exactly 0). Returns (spread per column, rows)."""
    n, mean, m2 = 0, None, None
    for x in parts:
        if not len(x):
            continue
        k, mu, v = len(x), x.mean(axis=0), ((x - x.mean(axis=0)) ** 2).sum(axis=0)
        if mean is None:
            n, mean, m2 = k, mu, v
            continue
        d = mu - mean
        mean = mean + d * k / (n + k)
        m2 = m2 + v + d ** 2 * n * k / (n + k)
        n += k
    if mean is None:
        return np.zeros(0), 0
    return np.sqrt(m2 / n), n


def cohort_column_stats(c: Cohort, spec: FeatureSpec) -> ColumnStats:
    """Spread of every column of ``spec`` over all participants' training rows; dead: spread <= DEAD_SPREAD.
    Participant by participant: memory does not grow with the cohort."""
    cols: list[str] = []

    def parts():
        for pid in c.participants:
            d = participant_features(c, pid, spec, "train", drop_dead=False)
            if d.columns:
                cols[:] = d.columns
                yield d.x

    spread, n = pooled_spread(parts())
    dead = [col for col, s in zip(cols, spread) if not s > DEAD_SPREAD]
    return ColumnStats(plain(spec), list(cols), [float(v) for v in spread], int(n), dead)
