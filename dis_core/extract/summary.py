"""Run summaries: counts per status, the list of failures, the QC table, and the exit code."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from dis_core.io.atomic import write_text_atomic
from dis_core.errors import exit_code
from dis_core.extract.result import ExtractResult
from dis_core.io.excel import read_safe_csv, safe_frame, write_workbook
from dis_core.layout import RunLayout, read_status
from dis_core.io.provenance import made_by


def _fps(fps: float | None) -> float | None:
    """A frame rate for people: the rate measured from frame times to 6 decimals (15.000000000000053 is 15)."""
    return None if fps is None else round(float(fps), 6)


def qc_table(results: Sequence[Any]) -> pd.DataFrame:
    """One row per unit with its status, frames and detection rate."""
    rows = []
    for r in results:
        d = dataclasses.asdict(r)
        d["detection_rate"] = round(r.detection_rate, 4)
        d["fps"] = _fps(r.fps)
        rows.append(d)
    return pd.DataFrame(rows)


def format_summary(stage: str, results: Sequence[Any], where: Path | None = None) -> str:
    """Human summary: counts, frames, detection rate, then one line per failure."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    frames = sum(r.frames for r in results)
    det = sum(r.detected_frames for r in results)

    failed = counts.get("failed", 0) + counts.get("no_face", 0)
    lines = [
        f"{stage}: {len(results)} video(s): {counts.get('ok', 0)} ok, {counts.get('skipped', 0)} skipped "
        f"(already done), {failed} failed ({counts.get('no_face', 0)} without a face)",
        f"  frames: {frames}, face detected in {det} ({100 * det / frames:.1f}%)" if frames else "  frames: 0",
    ]
    warned: dict[str, list[str]] = {}  # one line per warning: a new smile rule warned of every video of a cohort
    for r in results:
        if r.failed:
            lines.append(f"  FAILED {r.unit_id}: {r.message}")
        elif r.message:
            warned.setdefault(r.message, []).append(r.unit_id)
    for message, units in warned.items():
        who = units[0] if len(units) == 1 else f"{len(units)} units ({units[0]}, ...; each in extraction_qc.csv)"
        lines.append(f"  warning {who}: {message}")
    if where:
        lines.append(f"  summary: {where}")
    return "\n".join(lines)


def write_extract_summary(out_root: Path, results: Sequence[Any], prov: dict[str, Any], smile_hash: str = "") -> Path:
    """Write OUT/summary/extract_summary.{json,txt,csv} and the cohort smile table (of the videos whose smiles
    follow the rule of ``smile_hash``, when given); return the folder."""
    from dis_core.io.atomic import remove_stale_parts

    d = RunLayout(out_root).summary_dir
    d.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(d)  # a killed summary's part files
    qc = qc_table(results)
    write_text_atomic(d / "extract_summary.json", json.dumps(
        {"stage": "extract", "exit_code": exit_code(results), "units": qc.to_dict(orient="records"),
         "provenance": prov}, indent=2, default=str))
    write_text_atomic(d / "extract_summary.txt", format_summary("extract", results) + "\n  made by: "
                      + made_by(prov, ("model_sha256", "manifest_sha256"), "extract_summary.json") + "\n")
    write_text_atomic(d / "extraction_qc.csv", safe_frame(qc).to_csv(index=False))
    smiles = smile_table(results, smile_hash)
    write_text_atomic(d / "smile_summary.csv", safe_frame(smiles).to_csv(index=False))
    write_workbook(d / "smile_summary.xlsx", {"per_video": smiles}, prov)
    return d


# The columns of the QC and smile tables that hold text (ids, names, messages), whatever they look like.
TEXT_COLUMNS = ("unit_id", "status", "message", "key", "log", "job", "participant_id", "session", "video", "output",
                "smile_hash")


def read_summary_table(path: Path) -> pd.DataFrame:
    """OUT/summary/extraction_qc.csv or smile_summary.csv as written: ids such as ``007`` or ``NA`` and names
    starting with ``-`` come back unchanged (pandas' guesses made them 7, missing and ``'-…``)."""
    return read_safe_csv(path, TEXT_COLUMNS)


OTHER_SMILES = "its smiles follow another smile rule than the run's (left out of the smile summary): run dis extract"


def collect_extract_results(manifest, out_root: Path, smile_hash: str = "") -> list[ExtractResult]:
    """Every video's recorded extraction outcome (a unit that left no record failed: see its log). With the
    run's ``smile_hash``, a finished one whose smiles follow another rule (a `dis extract` under a new rule that
    did not reach it) says so: no model reads smiles, so the cohort step uses it, but its smile counts are not
    the run's."""
    from dis_core.extract.h5store import newer_schema_text
    from dis_core.extract.heal import folder_owner
    from dis_core.io.owner import IDENTITY, differs

    layout = RunLayout(out_root)
    out = []
    for e in manifest.entries:
        d = layout.video_dir(e.unit_id)
        owner, row = folder_owner(d) or {}, {"participant_id": e.participant_id, "session": e.session, "video": e.video_rel}
        other = [f"{k} '{owner[k]}' (this row: '{row[k]}')" for k in IDENTITY if k in owner and differs(k, owner[k], row[k])]
        if not other and owner.get("video_path", str(e.video)) != str(e.video) and owner.get("video_sha256"):
            other = _other_video(owner, e)  # another path: the same input only if the same content (a moved video)
        newer = None if other else newer_schema_text(layout.extraction(e.unit_id))
        if newer:  # refused by extraction, which writes nothing there: the newer DIS's record is not this run's
            other = [newer]
        r = None if other else read_status(d, ExtractResult)  # another input's record says nothing of this row
        if other:
            why = newer or f"{d} belongs to another input ({other[0]})"
            r = ExtractResult(unit_id=e.unit_id, participant_id=e.participant_id, session=e.session,
                              video=e.video_rel, message=f"{e.video}: {why}")
        elif r is None:
            r = ExtractResult(unit_id=e.unit_id, participant_id=e.participant_id, session=e.session,
                              video=e.video_rel, message="no result: the task did not finish (see its log)")
        elif (r.face_seconds is None or not r.smile_hash) and layout.extraction(e.unit_id).is_file():
            from dis_core.extract.h5store import read_attrs, recorded_smile_hash
            from dis_core.extract.stage import face_seconds_of

            h5 = layout.extraction(e.unit_id)  # not the recorded path: the run folder may have moved since
            try:  # recorded before they were: from the file
                attrs = read_attrs(h5)
                r.smile_hash = r.smile_hash or recorded_smile_hash(attrs)
                if r.face_seconds is None:
                    r.face_seconds = face_seconds_of(attrs, h5)
            except (OSError, KeyError, ValueError):
                pass  # an unreadable file: the cohort step names it; the table leaves the count empty
        if smile_hash and r.status in ("ok", "skipped") and r.smile_hash and r.smile_hash != smile_hash:
            r.message = "; ".join(x for x in (r.message, OTHER_SMILES) if x)
        out.append(r)
    return out


def _other_video(owner: dict, e) -> list[str]:
    """[why] when the folder's video (another path) has other content than this row's, else [] (as the
    extraction's own check, dis_core/io/owner.py: the same row with its video moved is the same input)."""
    from dis_core.io.provenance import sha256_file

    try:
        same = sha256_file(e.video) == owner["video_sha256"]
    except OSError:  # unreadable now: the row's own record says so (extraction's "cannot read")
        same = True
    return [] if same else [f"video {owner['video_path']} with other content (this row: {e.video})"]


def smile_table(results: Sequence[Any], smile_hash: str = "") -> pd.DataFrame:
    """Cohort smile summary per video (aggregated per participant by the report): smiling seconds out of the
    seconds with a face, as smiling frames out of the frames with one; with ``smile_hash``, without the videos
    whose smiles follow another rule (counts of two rules summed into one table meant neither); each row names
    its rule (``smile_hash``, '' where it could not be read), which the report holds to the run's."""
    rows = []
    for r in results:
        if r.status in ("ok", "skipped") and not (smile_hash and r.smile_hash and r.smile_hash != smile_hash):
            rows.append({
                "unit_id": r.unit_id, "participant_id": r.participant_id, "session": r.session, "video": r.video,
                "fps": _fps(r.fps), "frames": r.frames, "detected_frames": r.detected_frames,
                "smile_frames": r.smile_frames,
                "smile_frame_fraction": r.smile_frames / r.detected_frames if r.detected_frames else float("nan"),
                "seconds": r.seconds, "face_seconds": float("nan") if r.face_seconds is None else r.face_seconds,
                "smile_seconds": r.smile_seconds,
                "smile_second_fraction": r.smile_seconds / r.face_seconds if r.face_seconds else float("nan"),
                "smile_hash": r.smile_hash,
            })
    return pd.DataFrame(rows, columns=["unit_id", "participant_id", "session", "video", "fps", "frames",
                                       "detected_frames", "smile_frames", "smile_frame_fraction", "seconds",
                                       "face_seconds", "smile_seconds", "smile_second_fraction", "smile_hash"])
