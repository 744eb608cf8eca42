"""The HTML report: one self-contained page per run (figures embedded as base64 PNG, no script, no
network; past MAX_SIGNATURES participants the further signatures are links to their PNG beside it), the
page people open first; the Excel workbook stays as the data behind it.

Gathering (reading HDF5, decoding a few video frames, drawing figures) happens in :func:`gather_*`
at the edge; :func:`render_html` is a pure function from those records to the page text. Every user
string (participant ids, file names, messages) is escaped.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dis_core.features.motion import local_period
from dis_core.layout import RunLayout
from dis_core.report.comparisons import Finding, at_chance, at_chance_text, chance_text
from dis_core.io.provenance import version_text
from dis_core.score.stats import p_text, signed

THUMBS_PER_VIDEO = 3
MAX_THUMB_VIDEOS = 60  # beyond this, thumbnails only for videos with problems (the page stays light)
MAX_SIGNATURES = 60  # signatures embedded in the page (~0.3 MB each); the others are linked PNG files
SEQUENTIAL_MAX_FRAMES = 3000  # longer videos are seeked for thumbnails instead of decoded from the start

METHOD_LABELS = {"flow": "DIS (flow)", "gaussian": "baseline (Gaussian)", "ar": "baseline (autoregressive)"}


@dataclasses.dataclass(frozen=True)
class VideoQC:
    """One video's extraction quality as the report shows it."""

    unit_id: str
    participant_id: str
    session: str
    video: str
    status: str
    message: str
    frames: int
    detected_frames: int
    gaps: int  # runs of frames without a face
    longest_gap_s: float
    thumbs: tuple[bytes, ...] = ()  # PNG bytes of a few frames with their landmarks drawn
    seconds: float = float("nan")  # the decoded video's duration (its extraction's duration_s) and frame rate
    fps: float = float("nan")

    @property
    def detection_rate(self) -> float:
        return self.detected_frames / self.frames if self.frames else 0.0


@dataclasses.dataclass(frozen=True)
class Figure:
    """An embedded figure: a title, a caption saying how to read it, and the PNG bytes."""

    title: str
    caption: str
    png: bytes


@dataclasses.dataclass(frozen=True)
class ParticipantSection:
    participant_id: str
    dyad: str
    videos: tuple[str, ...]
    confused: tuple[tuple[str, float], ...]  # (participant, t-norm score of this person's data), own first
    rank_of_own: float | None  # rank of the own model for this person's data (1 = identified; ties share a mid-rank)
    figure: Figure | None  # embedded in the page
    link: str = ""  # the signature's PNG beside the page, when it is not embedded (MAX_SIGNATURES)
    feature_set: str = ""  # whose flows ``confused`` and ``rank_of_own`` read (the figure's)
    other_sets: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = ()  # (set, rank, confused) of the
    # participant's other head-motion feature sets, so no one set's view stands alone


@dataclasses.dataclass(frozen=True)
class ReportPage:
    """Everything the page shows, already computed."""

    title: str
    summary: list[tuple[str, str]]
    metrics: pd.DataFrame
    verdicts: list[Finding]  # tone: ok the flows beat a baseline, no they do not, info neither claim
    partners: Finding
    headline: Figure | None
    feature_sets: list[tuple[str, list[Figure]]]
    training: list[Figure]
    qc: list[VideoQC]
    smiles: pd.DataFrame | None
    participants: list[ParticipantSection]
    failures: list[dict]
    provenance: dict[str, Any]
    workbook: str
    held_out: str = "held-out data"  # what the held-out data are, by the split rule (within-session said so)
    # feature set -> its lines on identification from excerpts, flow vs baselines (report.excerpts.excerpt_lines)
    excerpt_lines: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    face_images: bool = True  # frames of the videos in the QC table (ReportConfig.face_images)
    smiles_note: str = ""  # which of the cohort's videos the smile table lacks, and why


def gap_stats(time_s: np.ndarray, detected: np.ndarray) -> tuple[int, float]:
    """Number of runs of frames without a face, and the longest one in seconds (frame-time span
    from the last face frame before it to the first after it, or to the video's ends)."""
    det = np.asarray(detected, bool)
    t = np.asarray(time_s, float)
    if len(det) == 0:
        return 0, 0.0
    edges = np.flatnonzero(np.diff(np.r_[0, (~det).astype(int), 0]))
    starts, ends = edges[::2], edges[1::2]  # [start, end) of each gap
    if len(starts) == 0:
        return 0, 0.0
    steps = local_period(t) if len(t) > 1 else np.zeros(1)  # the period around each gap, as the features read it
    longest = 0.0
    for s, e in zip(starts, ends):
        period = float(steps[min(max(s - 1, 0), len(steps) - 1)])
        t0 = t[s - 1] if s > 0 else t[0] - period
        t1 = t[e] if e < len(t) else t[-1] + period
        longest = max(longest, float(t1 - t0 - period))
    return int(len(starts)), max(longest, 0.0)


def with_gap_columns(qc: pd.DataFrame, out_root: Path) -> pd.DataFrame:
    """The extraction QC table with the page's gap columns (:func:`gap_stats` of each video's extraction file;
    empty where the file is missing or unreadable), so that the workbook holds what the page shows."""
    import h5py

    gaps, longest = [], []
    for uid in qc.get("unit_id", pd.Series(dtype=str)).astype(str):
        g = (None, None)
        try:
            with h5py.File(RunLayout(out_root).extraction(uid), "r") as f:
                g = gap_stats(f["time_s"][()], f["detected"][()])
        except (OSError, KeyError, ValueError):
            pass
        gaps.append(g[0])
        longest.append(g[1])
    return qc.assign(gaps=pd.array(gaps, dtype="Int64"), longest_gap_s=pd.array(longest, dtype="Float64"))


def gather_video_qc(out_root: Path, qc: pd.DataFrame | None, thumbs: bool = True) -> list[VideoQC]:
    """Per video of OUT/summary/extraction_qc.csv: status, detection, gaps (the table's gap columns where it has
    them, :func:`with_gap_columns`) and (for the first MAX_THUMB_VIDEOS videos, and any with problems) a few frames
    with their landmarks."""
    import h5py

    out: list[VideoQC] = []
    if qc is None or not len(qc):
        return out
    for k, row in enumerate(qc.to_dict(orient="records")):
        uid = str(row.get("unit_id", ""))
        h5 = RunLayout(out_root).extraction(uid)
        gaps, longest, pics, duration, note = 0, 0.0, (), float("nan"), ""
        if h5.is_file():
            try:
                with h5py.File(h5, "r") as f:
                    duration = _number(f["video"].attrs.get("duration_s")) if "video" in f else duration
                    t, det = f["time_s"][()], f["detected"][()].astype(bool)
                    known = row.get("gaps"), row.get("longest_gap_s")  # the workbook's (with_gap_columns): computed once
                    gaps, longest = ((int(known[0]), float(known[1])) if not pd.isna(known[0]) and not pd.isna(known[1])
                                     else gap_stats(t, det))
                    problem = str(row.get("status")) not in ("ok", "skipped") or (len(det) and det.mean() < 0.9)
                    if thumbs and (k < MAX_THUMB_VIDEOS or problem):
                        video = f["video"].attrs.get("path", "") if "video" in f else ""
                        video = Path(video.decode() if isinstance(video, bytes) else str(video))
                        if _replaced(video, f.attrs.get("video_sha256")):  # its landmarks on another video's frames
                            note = f"no pictures: {video} is no longer the video that was extracted"
                        else:
                            pics = _thumbnails(video, det, f["landmarks"], t)
            except (OSError, KeyError, ValueError):
                pass
        msg = row.get("message", "")
        msg = "; ".join(x for x in ("" if msg is None or (isinstance(msg, float) and np.isnan(msg)) else str(msg), note)
                        if x)
        out.append(VideoQC(uid, str(row.get("participant_id", "")), str(row.get("session", "")),
                           str(row.get("video", "")), STATUS_WORDS.get(str(row.get("status", "")), str(row.get("status", ""))),
                           msg,
                           int(row.get("frames") or 0), int(row.get("detected_frames") or 0), gaps, longest, pics,
                           duration, _number(row.get("fps"))))
    return out


def _replaced(video: Path, sha: Any) -> bool:
    """Whether the file at ``video`` holds other bytes than the extraction's (``sha``, its video_sha256)."""
    from dis_core.io.provenance import sha256_file

    sha = sha.decode() if isinstance(sha, bytes) else sha
    try:
        return bool(sha) and video.is_file() and sha256_file(video) != sha
    except OSError:
        return False  # unreadable: _thumbnails shows nothing


# the last extraction command's action, as a reader of the page takes it: "skipped" read as "this video was skipped"
STATUS_WORDS = {"skipped": "ok (extracted earlier)"}


def _number(x: Any) -> float:
    """A CSV cell as a float, NaN when empty or not a number."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _thumbnails(video: Path, det: np.ndarray, landmarks, times: np.ndarray) -> tuple[bytes, ...]:
    """Frames at 10%, 50% and 90% of the video (the nearest with a face if any) with landmarks drawn. Seeked
    to, each checked against the time extraction recorded for it (``times``); a short video whose seeking
    lands elsewhere is decoded in order instead, exactly the frames extraction saw (decoding to 90% of every
    video was half of a 40-person report's time)."""
    from dis_core.extract.video import iter_frames
    from dis_core.report.figures import frame_thumbnail_png

    n = len(det)
    if n == 0 or not video.is_file():
        return ()
    want = []
    for q in np.linspace(0.1, 0.9, THUMBS_PER_VIDEO):
        i = int(q * (n - 1))
        faces = np.flatnonzero(det)
        if len(faces):
            i = int(faces[np.argmin(np.abs(faces - i))])
        if i not in want:
            want.append(i)
    draw = lambda i, rgb: frame_thumbnail_png(rgb, np.asarray(landmarks[i]) if det[i] else None)  # noqa: E731
    pics = []
    try:
        seeked = _seek_frames(video, want, times)
        if seeked is None and n > SEQUENTIAL_MAX_FRAMES:  # never decode an hour for 3 pictures: unchecked seeks
            seeked = _seek_frames(video, want, None)
        if seeked is not None:
            return tuple(draw(i, seeked[i]) for i in want if i in seeked)
        for fr in iter_frames(video):  # decode in order: exactly the frames extraction saw
            if fr.index in want:
                pics.append(draw(fr.index, fr.rgb))
            if fr.index >= max(want):
                break
    except Exception:  # a video that no longer decodes: the QC row still says what extraction saw
        return tuple(pics)
    return tuple(pics)


def _seek_frames(video: Path, want: Sequence[int], times: np.ndarray | None) -> dict[int, np.ndarray] | None:
    """{frame index: RGB as extraction saw it} by seeking. With ``times`` (the extraction's), None when a frame
    cannot be read or its decoder time is not the one recorded for that index (within half a frame period);
    without, unchecked, leaving out frames that cannot be read."""
    import cv2

    from dis_core.extract.video import shown_rgb, square_pixel_view

    cap = cv2.VideoCapture(str(video))
    got: dict[int, np.ndarray] = {}
    try:
        aspect, turned = square_pixel_view(cap)
        half = 0.5 * float(np.median(np.diff(times))) if times is not None and len(times) > 1 else None
        for i in want:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, bgr = cap.read()
            if times is not None and not (ok and half is not None and
                                          abs(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 - float(times[i])) <= half):
                return None
            if ok:
                got[i] = shown_rgb(bgr, aspect, turned)
    finally:
        cap.release()
    return got


def read_head_pose(h5: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frame times and yaw/pitch/roll in degrees (NaN where no face) of one extraction file."""
    import h5py

    with h5py.File(h5, "r") as f:
        t = f["time_s"][()].astype(float)
        hp = f["head_pose"][()].astype(float)
        det = f["detected"][()].astype(bool)
    hp[~det] = np.nan
    return t, hp


def confusions(s: np.ndarray, j: int, pids: Sequence[str], k: int = 4,
               tn: np.ndarray | None = None) -> tuple[tuple[str, float], ...]:
    """The models that fit participant j's held-out data best, by per-data t-normalised score:
    their own model first, then the k-1 others ranked highest (``tn``: tnorm(s), when the caller has it)."""
    from dis_core.score.scoring import tnorm

    col = (tnorm(np.asarray(s, float)) if tn is None else tn)[:, j]
    others = [i for i in np.argsort(-np.nan_to_num(col, nan=-np.inf)) if i != j][: k - 1]
    return tuple([(pids[j], float(col[j]))] + [(pids[i], float(col[i])) for i in others])


def png_figure(path: Path, title: str, caption: str) -> Figure | None:
    """A figure file read for embedding (None when it was not drawn)."""
    p = Path(path)
    return Figure(title, caption, p.read_bytes()) if p.is_file() else None


# ---------------------------------------------------------------- rendering (pure)

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2327;
     background:#fafafa;line-height:1.45}
header{background:#22313f;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#cfd8dc;font-size:13px}
nav{position:sticky;top:0;background:#eceff1;border-bottom:1px solid #cfd8dc;padding:6px 28px;z-index:2;font-size:13px}
nav a{margin-right:14px;color:#1f5f8b;text-decoration:none} nav a:hover{text-decoration:underline}
main{padding:8px 28px 40px;max-width:1500px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:19px;margin:4px 0 10px;border-bottom:2px solid #e0e0e0;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d9d9d9;padding:3px 8px;text-align:left;vertical-align:top}
table.kv th{white-space:nowrap;width:1%} td.thumbs{white-space:nowrap} td.thumbs img{width:140px;height:auto} div.wide{overflow-x:auto}
ul.tests{font-size:13px;color:#455a64;margin:4px 0}
th{background:#f3f5f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fdecea} tr.warn td{background:#fff8e1}
figure{margin:10px 0 18px} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#455a64;max-width:1100px}
.thumbs img{height:110px;width:auto;margin-right:4px;border:1px solid #ccc}
.verdict{font-size:14px;margin:4px 0} .ok{color:#1b5e20} .no{color:#b71c1c}
.note{font-size:13px;color:#455a64} details{margin:6px 0} dt{font-weight:600} pre{font-size:12px;white-space:pre-wrap;
     background:#f5f5f5;padding:8px;border-radius:4px;max-height:420px;overflow:auto}
"""


TERMS = (  # what a first reader of the page needs, in the page's order
    ("top-1 identification", "the share of people whose own model gives their held-out data the highest score of "
     "all N models (ties share the credit); chance is 1/N"),
    ("verification: AUC, EER", "every model against every person's data: own pairs should score above other pairs. "
     "AUC is the probability that an own pair outscores another pair (chance 0.5); the equal error rate (EER) is "
     "where false accepts equal false rejects (chance 0.5; lower is better). DET: false rejects against false "
     "accepts on normal-deviate axes"),
    ("t-norm, z-norm", "a score standardised against the other models' scores of the same data (t-norm: the "
     "headline's AUC and EER, the heatmaps) or against the same model's scores of the other people's data (z-norm)"),
    ("flow, baseline", "the flow is each person's normalizing-flow density (a spline or masked autoregressive flow, "
     "MAF) that starts, by default, as a Ledoit-Wolf (shrunk-covariance) Gaussian of its fitting rows: their training "
     "rows less the validation rows that choose its epoch and the rows before them that share their frames (the "
     "summary's baseline row says how each feature set's flow started in this run). The baseline is a Ledoit-Wolf "
     "Gaussian of all their training rows (it has no epoch to choose), scored on the same held-out rows; a flow "
     "that kept its Gaussian start is refitted on all those rows too, and is then the baseline (for a conditional "
     "flow, the autoregressive one)"),
    ("paired difference, Holm, McNemar", "flow minus baseline on the same bootstrap draws of people; p-values are "
     "Holm-adjusted over every comparison of the family (comparisons on 10 or more people; fewer make no claim "
     "and have no Holm p), and McNemar's exact test counts the people one method "
     "identifies and the other does not"),
    ("partner test", "partners' similarity minus their similarity to strangers, against re-pairings of the same "
     "people into pseudo-couples (exact over every pairing when there are few); its interval is an expanded "
     "percentile bootstrap over couples, widened for few couples"),
    ("participant map (MDS)", "classical multidimensional scaling: people placed so that distances follow their pair "
     "similarity"),
)


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _img(png: bytes, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    w = f' width="{width}"' if width else ""
    return f'<img{w} alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def css_width(png: bytes, css_dpi: float = 100.0) -> int | None:
    """Display width in CSS pixels for a figure saved at some dpi: its size in inches at ``css_dpi``
    (a 200-dpi figure shows at half its pixel width, as sharp as the screen allows)."""
    import io

    from PIL import Image

    try:
        im = Image.open(io.BytesIO(png))
        dpi = float(im.info.get("dpi", (css_dpi, css_dpi))[0]) or css_dpi
        return int(round(im.size[0] * css_dpi / dpi))
    except Exception:
        return None


def _figure(f: Figure | None) -> str:
    if f is None:
        return ""
    return (f"<figure>{_img(f.png, f.title, css_width(f.png))}<figcaption><b>{_e(f.title)}.</b> "
            f"{_e(f.caption)}</figcaption></figure>")


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else f"{v:.{digits}f}"
    return _e(v)


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = "".join(f'<td class="num">{_fmt(v, digits)}</td>' if isinstance(v, (int, float, np.number))
                        and not isinstance(v, bool) else f"<td>{_e(v)}</td>" for v in rec)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _ci(m: dict, k: str) -> str:
    return f"{m[k]:.2f} [{m[k + '_lo']:.2f}, {m[k + '_hi']:.2f}]"


def _headline_table(metrics: pd.DataFrame) -> str:
    rows = []
    for m in metrics.to_dict(orient="records"):
        rows.append("<tr>" + "".join([
            f"<td>{_e(m['feature_set'])}</td>", f"<td>{METHOD_LABELS.get(m['method'], m['method'])}</td>",
            f"<td class='num'>{int(m['participants'])}</td>",
            f"<td class='num'>{_ci(m, 'top1')}</td>", f"<td class='num'>{chance_text(m['chance_top1'])}"
            + (f" (p {p_text(m['top1_chance_p'])})" if np.isfinite(m.get("top1_chance_p", np.nan)) else "") + "</td>",
            f"<td class='num'>{_ci(m, 'eer')}</td>", f"<td class='num'>{_ci(m, 'auc')}</td>",
            f"<td>{_e(at_chance_text(at_chance(m)) or 'none')}</td>"]) + "</tr>")
    return ("<table><thead><tr><th>feature set</th><th>method</th><th>participants</th>"
            "<th>top-1 identification [95% CI]</th><th>chance top-1 (p of doing as well by chance)</th>"
            "<th>EER [95% CI] (chance 0.50)</th><th>AUC [95% CI] (chance 0.50)</th>"
            "<th>not above chance (top-1: p above 0.05; EER, AUC: the interval holds it), or worse</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _qc_table(qc: list[VideoQC], images: bool = True) -> str:
    rows = []
    for v in qc:
        cls = "bad" if v.status in ("failed", "no_face") else "warn" if (v.message or v.detection_rate < 0.9) else ""
        thumbs = "".join(_img(p, f"{v.unit_id} frame {k + 1} with landmarks") for k, p in enumerate(v.thumbs))
        rows.append(
            f'<tr class="{cls}"><td>{_e(v.participant_id)}</td><td>{_e(v.session)}</td><td>{_e(v.video)}</td>'
            f"<td>{_e(v.status)}</td><td class='num'>{_fmt(v.seconds, 1)}</td><td class='num'>{_fmt(v.fps, 2)}</td>"
            f"<td class='num'>{v.frames}</td>"
            f"<td class='num'>{100 * v.detection_rate:.1f}%</td><td class='num'>{v.gaps}</td>"
            f"<td class='num'>{v.longest_gap_s:.2f}</td><td>{_e(v.message)}</td>"
            + (f"<td class='thumbs'>{thumbs}</td>" if images else "") + "</tr>")
    return ("<table><thead><tr><th>participant</th><th>session</th><th>video</th><th>status</th><th>duration (s)</th>"
            "<th>frames a second</th><th>frames</th>"
            "<th>face detected</th><th>gaps</th><th>longest gap (s)</th><th>message</th>"
            + ("<th>frames at 10/50/90% with landmarks</th>" if images else "") + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def _fit_words(rank: float | None, confused: Sequence[tuple[str, float]]) -> str:
    """How one feature set's flows placed a participant's held-out data, for people."""
    conf = ", ".join(f"{_e(n)} ({signed(v)})" for n, v in confused[1:])
    said = ("not scored" if rank is None else
            "identified (own model ranks first)" if rank == 1 else f"own model ranks {rank:g}")
    return f"{said}; the other models that fit it best: {conf or 'n/a'}"


def _participant(p: ParticipantSection) -> str:
    sets = [(p.feature_set, p.rank_of_own, p.confused)] + list(p.other_sets)
    held = "".join(f"<li>{_e(fs) + ' flows: ' if fs else ''}{_fit_words(r, c)}.</li>" for fs, r, c in sets)
    return (f'<h3 id="p-{_e(p.participant_id)}">{_e(p.participant_id)}'
            f"{' (dyad ' + _e(p.dyad) + ')' if p.dyad else ''}</h3>"
            f"<p class='note'>videos: {_e(', '.join(p.videos))}. Held-out data:</p><ul class='tests'>{held}</ul>"
            f"{_figure(p.figure)}"
            + (f"<p class='note'><a href=\"{_e(p.link)}\">signature (PNG)</a></p>" if p.figure is None and p.link else ""))


def embedded_signatures(ranks: Sequence[tuple[str, int | None]], cap: int = MAX_SIGNATURES) -> set[str]:
    """Whose signature the page embeds: every participant when they fit ``cap``; otherwise the ones their
    own model did not identify (rank > 1) first, then the others, each in cohort order, up to ``cap``."""
    missed = [p for p, r in ranks if r is not None and r > 1]
    rest = [p for p, r in ranks if not (r is not None and r > 1)]
    return set((missed + rest)[:cap])


def _finding(f: Finding, cls: str, lead: str = "") -> str:
    """A finding as its head, then each of its lists one claim per item (an empty list said as 'none')."""
    out = [f"<p class='{cls}'>{_e(lead + f.head)}</p>"]
    for label, items in f.lists:
        if label:
            out.append(f"<p class='note'>{_e(label)}:{'' if items else ' none'}</p>")
        if items:
            out.append("<ul class='tests'>" + "".join(f"<li>{_e(t)}</li>" for t in items) + "</ul>")
    return "".join(out)


def render_html(page: ReportPage) -> str:
    """The page text: pure, from the gathered records."""
    nav = [("summary", "Run summary"), ("headline", "Identification"), ("qc", "Extraction QC")]
    nav += [(f"fs-{_e(fs)}", _e(fs)) for fs, _ in page.feature_sets]
    nav += [("training", "Training"), ("smiles", "Smiles"), ("participants", "Participants"),
            ("failures", "What failed"), ("provenance", "Provenance")]
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           f"<title>{_e(page.title)}</title><style>{_CSS}</style></head><body>",
           f"<header><h1>{_e(page.title)}</h1><p>{_e(version_text(page.provenance))}, "
           f"created {_e(page.provenance.get('created_utc', ''))}. Data behind the figures: "
           f"{_e(page.workbook)} (the per-frame traces: each video's extraction.h5; the norm "
           f"histograms' counts: the score blocks)</p></header>",
           "<nav>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in nav) + "</nav><main>"]
    out.append("<section id='summary'><h2>Run summary</h2><table class='kv'><tbody>"
               + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in page.summary)
               + "</tbody></table></section>")
    out.append(f"<section id='headline'><h2>Identification and verification ({_e(page.held_out)})</h2>")
    out.append(_headline_table(page.metrics) if len(page.metrics) else "<p>No feature set could be scored.</p>")
    out.append("<p class='note'>Intervals: 95% percentile bootstrap over participants (1,000 draws from seed 0; paired "
               "comparisons draw as many as their family needs for Holm's correction, sheet comparisons); top-1 "
               "widened where needed to hold the Wilson score interval of the rate, which a percentile interval near "
               "0 or 1 does not (it has no width when everyone is identified), and the point +- 1.96 standard errors "
               "of the jackknife over people (each person's model and data removed in turn): the draws keep the N "
               "models, so a model that outscores several people's own at once is not in them. Whether top-1 is above "
               "chance is a permutation test (p beside chance: the share of 9,999 random assignments (every one, exactly, up to 7 people) of the models to "
               "the held-out data that identify as many), not its interval. AUC and EER are on "
               "t-norm scores; the metrics sheet gives them on raw and z-norm scores too, with intervals, for a reader to check that a "
               "conclusion does not rest on the normalisation. "
               "The baselines are fitted on the flow's training rows (all of them, with the ones the flow holds back "
               "to choose its epoch) and scored on the same held-out rows: one Gaussian per participant, and for rows with lagged copies a linear-Gaussian autoregressive model p(present | past); "
               "pooled feature sets place one shape shared by the cohort at each participant's mean. "
               "Landmarks and blendshapes carry the face's shape as well as its movement (the landmark basis is fitted "
               "on centred shapes, and a face at rest sets its blendshapes' levels): where a person shows the same face "
               "in training and held-out videos, their identification can be of the face, not of how it moves. The "
               "head-motion sets see the face only through MediaPipe's pose.</p>")
    out.append("<details class='note'><summary>Terms</summary><dl>" + "".join(
        f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in TERMS) + "</dl></details>")
    out += [_finding(v, f"verdict {v.tone}") for v in page.verdicts]
    out.append(_finding(page.partners, "note", "Partner vs stranger: "))
    out.append(_figure(page.headline) + "</section>")
    nq = len(page.qc)
    bad = sum(v.status in ("failed", "no_face") for v in page.qc)
    out.append(f"<section id='qc'><h2>Extraction QC</h2><p class='note'>{nq} video(s), {bad} failed. Detection = "
               "frames in which MediaPipe found a face; a gap is a run of frames without one. Red rows failed, "
               "yellow rows have a warning or less than 90% detection."
               + ("" if page.face_images else " No frames of the videos are shown: the report was made with "
                  "--no-face-images.") + "</p>")
    out.append(f"<div class='wide'>{_qc_table(page.qc, page.face_images)}</div>" if page.qc
               else "<p>No extraction summary found.</p>")
    out.append("</section>")
    for fs, figs in page.feature_sets:
        out.append(f"<section id='fs-{_e(fs)}'><h2>Feature set: {_e(fs)}</h2>"
                   + "".join(_figure(f) for f in figs)
                   + "".join(f"<p class='note'>{_e(x[0].upper() + x[1:])}</p>" for x in page.excerpt_lines.get(fs, ())) + "</section>")
    out.append("<section id='training'><h2>Training</h2>" + "".join(_figure(f) for f in page.training)
               + ("" if page.training else "<p>No training curves.</p>") + "</section>")
    out.append("<section id='smiles'><h2>Smiles</h2>")
    out.append(_table(page.smiles) if page.smiles is not None and len(page.smiles)
               else "<p>No smile summary.</p>")
    if page.smiles_note:
        out.append(f"<p class='verdict no'>{_e(page.smiles_note)}</p>")
    out.append("<p class='note'>Per participant over all their videos: a second smiles when at least the "
               "configured fraction of its face frames satisfy the smile rule (see the per-video workbooks).</p>"
               "</section>")
    out.append("<section id='participants'><h2>Participants: the signature</h2><p class='note'>Per participant: "
               "head yaw/pitch/roll over time for each session (training and held-out), the spectrum of the "
               "head's angular speed over each session's longest run of frames with a face (a description of its rhythm: "
               "head_spectrum models per-axis band power of the rotation with each session's gain divided out, which "
               "this plot keeps), and whose models "
               "of the feature set named in the figure's title fit their held-out data best (per-data t-normalised "
               "score: standard deviations above the other models): head_spectrum's, DIS's head-motion signature, "
               "where it scored the participant, else head_pose's, else another head-motion set's (a run without "
               "one: its first feature set's). The list above each figure gives every head-motion feature set's "
               "placing.</p>")
    shown = sum(p.figure is not None for p in page.participants)
    if any(p.figure is None and p.link for p in page.participants):
        out.append(f"<p class='note'>The page embeds {shown} of the {len(page.participants)} participants' "
                   f"signatures (up to {MAX_SIGNATURES}: the participants whose own model did not rank first come "
                   "first, then the others in cohort order); the others are linked PNG files in "
                   "figures/participants/ beside this page.</p>")
    out += [_participant(p) for p in page.participants]
    out.append("</section>")
    out.append("<section id='failures'><h2>What failed and why</h2>")
    if page.failures:
        cols = list(dict.fromkeys(k for f in page.failures for k in f))
        out.append(_table(pd.DataFrame(page.failures, columns=cols).fillna("")))
    else:
        out.append("<p>Nothing failed and nothing was left out.</p>")
    out.append("</section>")
    out.append("<section id='provenance'><h2>Provenance</h2><details><summary>software versions, configuration, "
               "hashes</summary><pre>" + _e(json.dumps(page.provenance, indent=2, sort_keys=True, default=str))
               + "</pre></details></section>")
    out.append("</main></body></html>")
    return "\n".join(out)
