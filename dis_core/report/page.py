"""Gathers the HTML report's records from a scored run (the I/O edge of dis_core/report/html.py)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dis_core.cohort.stage import Cohort
from dis_core.io.atomic import write_text_atomic
from dis_core.report.html import (Figure, ParticipantSection, ReportPage, confusions, embedded_signatures,
                                  gather_video_qc, png_figure, read_head_pose, render_html)
from dis_core.extract.summary import read_summary_table
from dis_core.features.build import FEATURE_SETS, row_word
from dis_core.layout import RunLayout
from dis_core.report.comparisons import Finding
from dis_core.score.evaluate import FeatureSetScores

# whose flows the signature figure's confusions read, first that scored the participant: head motion over
# seconds (DIS's default signature), then per frame (short recordings, where head_spectrum does not apply)
SIGNATURE_FEATURE_SETS = ("head_spectrum", "head_pose")


def safe_name(s: str) -> str:
    """A file-name-safe, collision-free stem for a user id."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:40]
    return f"{stem}_{hashlib.sha1(s.encode()).hexdigest()[:6]}"


def write_html_report(cohort: Cohort, results: list[FeatureSetScores], metrics: pd.DataFrame,
                      summary: pd.DataFrame, verdicts: list[Finding], partners: Finding, failures: list[dict],
                      smiles: pd.DataFrame | None, prov: dict[str, Any], workbook: Path,
                      held_out: str = "held-out data", excerpts: dict[str, tuple[str, ...]] | None = None,
                      face_images: bool = True, smiles_note: str = "", qc_table: pd.DataFrame | None = None) -> Path:
    """Draw the report-only figures, gather QC and signatures, and write OUT/report/dis_report.html. ``qc_table``:
    the workbook's extraction_qc sheet, gap columns included (else OUT/summary/extraction_qc.csv is read)."""
    from dis_core.report.figures import headline_png

    figs = cohort.layout.figures_dir
    if len(metrics):
        headline_png(figs / "headline.png", metrics.to_dict(orient="records"),
                     f"Identification and verification ({held_out}): DIS (flow) vs baseline, with chance", prov)
    fs_figs = []
    for r in results:
        fs = r.feature_set
        fs_figs.append((fs, [f for f in (
            png_figure(figs / f"heatmap_{fs}.png", f"Score matrix ({fs})",
                       "Rows: each participant's model; columns: each participant's held-out data. Colour: for each "
                       "column, the models' trimmed mean log-likelihoods (the pair scores) as z-scores against the other models (t-norm: "
                       "which model fits these frames best; the scores the headline EER and AUC use), clipped at "
                       "the stated limit. Squares mark own data, dots the best model for each column (tied models each "
                       "get one; a lone dot in the square: identified). Participants are ordered by dyad (or by clustering). "
                       "Raw scores: workbook sheet scores_" + fs),
            png_figure(figs / f"roc_det_{fs}.png", f"ROC and DET ({fs})",
                       "Verification: genuine pairs are a model with its own participant's held-out data. Solid: "
                       "t-normalised scores (the headline), dashed: z-normalised, dotted: raw. DET axes are on the "
                       "normal-deviate scale."),
            png_figure(figs / f"norms_{fs}.png", f"Per-{row_word(fs)[:-1]} norms ({fs})",
                       f"How far each {row_word(fs)[:-1]}'s log-likelihood lies from the model's mean on its own "
                       "held-out data, for own, partner and stranger data (log axis)."),
            png_figure(figs / f"participant_map_{fs}.png", f"Who moves like whom ({fs})",
                       "Participants placed so that distances follow their pair similarity (classical MDS, equal "
                       "scales): the similarity of two people is the mean of the z-normed and t-normed scores of "
                       "each one's model on the other's held-out data, both ways round (standard deviations above "
                       "the other pairs); dyad partners joined. A map of two dimensions keeps only part of the "
                       "dissimilarities (the title gives the share of all the eigenvalues, by magnitude, that it holds: negative ones, where the similarities are not distances, count against it): read "
                       "near and far, not exact distances; the pairs sheet has every similarity."),
            png_figure(figs / f"excerpts_{fs}.png", f"How many seconds identify a person ({fs})",
                       "Top-1 identification and EER when each identification sees only an excerpt of the held-out "
                       "video (consecutive spans of each length), beside the whole held-out session; points and 95% "
                       "bootstrap intervals over participants, chance in red. Workbook sheet excerpts, with the "
                       "flow minus each baseline, paired (Holm-adjusted p where 10 or more people have excerpts). An excerpt is cut from rows built on "
                       "the whole session (its reference rotation, gains and medians): an upper bound for a "
                       "recording only that long."),
        ) if f is not None]))
    lm = png_figure(figs / "landmark_pca.png", "Landmarks in the cohort PCA basis",
                    "Each participant's aligned landmarks on the cohort's first two principal components (fitted on "
                    "training frames only): training frames in blue, held-out frames in orange; axes shared by all "
                    "panels and spanning every frame.")
    if lm is not None and fs_figs:  # in the landmarks section, else the last; before its excerpts figure, which
        into = dict(fs_figs).get("landmarks", fs_figs[-1][1])  # the section's excerpt lines follow
        at = next((k for k, f in enumerate(into) if f.title.startswith("How many seconds")), len(into))
        into.insert(at, lm)
    training = [f for f in (png_figure(figs / f"loss_curves_{r.feature_set}.png", f"Training curves ({r.feature_set})",
                                       "Negative log-likelihood per epoch (in the flow's whitened units) on the "
                                       "rows it fits and on its validation rows (the last 15% of training, and for "
                                       "window rows, the rows before them that share their frames are used for "
                                       "neither: the training sheet counts each); the dotted line is the epoch kept "
                                       "(early stopping). A kept start is refitted on every training row.") for r in results) if f is not None]
    qc_csv = cohort.layout.summary_dir / "extraction_qc.csv"
    if qc_table is None and qc_csv.is_file():
        qc_table = read_summary_table(qc_csv)
    qc = gather_video_qc(cohort.out_root, qc_table, thumbs=face_images)
    run = _run_record(cohort.out_root)
    rows = [(str(k), str(v)) for k, v in zip(summary["item"], summary["value"])]
    rows += [("output folder", str(cohort.out_root)), ("manifest", run.get("manifest", "")),
             ("manifest sha256", prov.get("manifest_sha256", "") or "not recorded"),
             ("face model sha256", run.get("plan", {}).get("model", {}).get("sha256", "")),
             ("cohort record sha256", prov.get("cohort_sha256", "")), ("executor", run.get("executor", "")),
             ("DIS version", prov.get("dis_version", "")),
             ("source revision", prov.get("source_revision", "") or "not recorded"),
             ("software", ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items())),
             ("python / platform", f"{prov.get('python', '')} / {prov.get('platform', '')}")]
    page = ReportPage(
        title=f"DIS report: {cohort.out_root.name}", summary=rows, metrics=metrics, verdicts=verdicts,
        partners=partners, headline=png_figure(figs / "headline.png", "Headline figures",
                                               "Points with 95% bootstrap intervals over participants; red ticks "
                                               "mark chance (1/N for top-1, 0.5 for EER and AUC). Under 10 people "
                                               "EER and AUC are grey and hollow: no claim, as in the table (their "
                                               "intervals over so few people are too narrow)."),
        feature_sets=fs_figs, training=training, qc=qc, smiles=smiles,
        participants=_participants(figs / "participants", cohort, results, prov), failures=failures,
        provenance=prov, workbook=str(workbook), held_out=held_out, excerpt_lines=excerpts or {},
        face_images=face_images, smiles_note=smiles_note)
    path = cohort.layout.report_page
    write_text_atomic(path, render_html(page))
    return path


def _run_record(out_root: Path) -> dict:
    try:
        return json.loads(RunLayout(out_root).run_record.read_text())
    except (OSError, ValueError):
        return {}


def _placing_sets(results: list[FeatureSetScores]) -> list[FeatureSetScores]:
    """The feature sets a participant's section reads: the scored head-motion sets, the signature's preference
    first, then in the run's order; a run without any reads its first feature set instead."""
    head = [r for r in results if r.feature_set in SIGNATURE_FEATURE_SETS or
            getattr(FEATURE_SETS.get(r.feature_set), "source", "").startswith("head_")]
    head.sort(key=lambda r: (list(SIGNATURE_FEATURE_SETS) + [r.feature_set]).index(r.feature_set))
    return head or results[:1]


def _placings(results: list[FeatureSetScores]) -> dict[str, list[tuple[str, float, tuple[tuple[str, float], ...]]]]:
    """Per participant, (feature set, rank of the own flow, confusions) for every set of :func:`_placing_sets`
    that scored them (each set's t-norm computed once: per participant it cost O(N^2) at N = 1,000)."""
    from dis_core.score.scoring import tnorm

    out: dict[str, list] = {}
    for r in _placing_sets(results):
        tn = tnorm(np.asarray(r.methods["flow"].s, float))
        for j, pid in enumerate(r.participants):
            out.setdefault(pid, []).append((r.feature_set, float(r.methods["flow"].ranks[j, j]),
                                            confusions(r.methods["flow"].s, j, r.participants, tn=tn)))
    return out


def _participants(figs: Path, cohort: Cohort, results: list[FeatureSetScores], prov: dict) -> list[ParticipantSection]:
    """One section per participant of the cohort: head-motion traces per session, spectrum, and how each
    head-motion feature set's flows placed their held-out data (the figure shows the signature set's)."""
    from dis_core.report.figures import signature_png

    figs.mkdir(parents=True, exist_ok=True)
    scored = _placings(results)
    placed = {pid: scored.get(pid, []) for pid in cohort.participants}
    # only participants with a signature count against the page's cap (traces are read again below rather
    # than held: at N = 1,000 with long sessions they would not fit in the report job's memory)
    embed = embedded_signatures([(pid, placed[pid][0][1] if placed[pid] else None)
                                 for pid in cohort.participants if _traces(cohort, pid)])
    out = []
    for pid in cohort.participants:
        sessions = _traces(cohort, pid)
        fs, rank, confused = placed[pid][0] if placed[pid] else ("", None, ())
        fig, link = None, ""
        if sessions:
            path = figs / f"signature_{safe_name(pid)}.png"
            fs_note = f" (confusions: {fs} flows)" if confused else ""
            signature_png(path, sessions, list(confused), f"{pid}: head-motion signature{fs_note}", prov)
            if pid in embed:
                fig = Figure(f"Signature of {pid}", "Top: yaw, pitch and roll per session; bottom: spectrum of the "
                             "head's angular speed over each session's longest run of frames with a face; right: models that fit the held-out data best"
                             + (f" ({fs} flows)." if confused else " (none: not scored)."),
                             path.read_bytes())
            else:
                link = path.relative_to(cohort.layout.report_dir).as_posix()
        out.append(ParticipantSection(pid, cohort.dyad(pid), tuple(e.session for e in cohort.videos_of(pid)),
                                      confused, rank, fig, link, fs, tuple(placed[pid][1:])))
    return out


def _traces(cohort: Cohort, pid: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, time, head pose) of each of the participant's videos that can be read, in session order."""
    sessions = []
    for e in cohort.videos_of(pid):
        sp = cohort.splits.get(e.unit_id)
        role = ("held-out" if sp is not None and sp.test.any() and not sp.train.any() else
                "training" if sp is not None and sp.train.any() and not sp.test.any() else
                "training + held-out")
        try:
            t, hp = read_head_pose(cohort.layout.extraction(e.unit_id))
        except (OSError, KeyError):
            continue
        sessions.append((f"session {e.session} ({role})", t, hp))
    return sessions


def report_failures(cohort_left: list[dict], results: list[FeatureSetScores], problems: list[dict],
                    qc: pd.DataFrame | None) -> list[dict]:
    """Every failure and exclusion with its stage and reason, extraction failures first."""
    rows: list[dict] = []
    if qc is not None and len(qc):
        for x in qc.to_dict(orient="records"):
            if x.get("status") in ("failed", "no_face"):
                rows.append({"stage": "extraction", "unit_id": x.get("unit_id", ""),
                             "participant_id": x.get("participant_id", ""), "reason": x.get("message", "")})
    failed = {x["unit_id"] for x in rows if x["unit_id"]}  # the cohort step leaves these out for the same reason
    rows += [{"stage": "cohort", **x} for x in cohort_left if x.get("unit_id", "") not in failed]
    for r in results:
        rows += [{"stage": "scoring", **x} for x in r.left_out]
    rows += [{"stage": "scoring", **x} for x in problems]
    return [{k: ("" if isinstance(v, float) and np.isnan(v) else v) for k, v in x.items()} for x in rows]
