"""The report's identification from excerpts of the held-out data (I/O edge of dis_core.score.excerpts):
row times from the extractions, per-row log p streamed from the score blocks, one table per run."""

from __future__ import annotations

import numpy as np

from dis_core.cohort.stage import Cohort
from dis_core.extract.h5store import read_extraction
from dis_core.features.build import FEATURE_SETS
from dis_core.report.config import ReportConfig
from dis_core.score.evaluate import FeatureSetScores
from dis_core.score.excerpts import excerpt_labels, excerpt_rows, stream_excerpts

EXCERPT_RULE = ("consecutive whole spans of each held-out video, each (model, excerpt) scored by the pair-score rule "
                "on the rows inside it; top-1: each person's share of excerpts identified among all models; "
                "AUC/EER: each excerpt's t-norm, a person weighing as one; intervals: bootstrap over participants")


def excerpt_lines(rows: list[dict]) -> list[str]:
    """The terminal's lines: per feature set, top-1 from its shortest excerpts for every method, with
    intervals and chance."""
    out = []
    for fs in dict.fromkeys(x["feature_set"] for x in rows):
        mine = [x for x in rows if x["feature_set"] == fs and x["row"] == "method"]
        L = min(x["seconds"] for x in mine)
        parts = [f"{x['method']} {x['top1']:.2f} [{x['top1_lo']:.2f}, {x['top1_hi']:.2f}]" for x in mine
                 if x["seconds"] == L]
        out.append(f"excerpts of {L:g} s, {fs}: top-1 " + ", ".join(parts) + f", chance {mine[0]['chance_top1']:.2f}")
    return out


def held_out_rows(cohort: Cohort, r: FeatureSetScores, pid: str):
    """(times of pid's held-out rows, their video index, {video index: (first held-out frame's start, last
    one's end)}) in the order the score blocks hold the rows (a window row's time is its centre)."""
    d = r.per_frame.pair("flow", pid, pid)
    units = list(dict.fromkeys(d["unit_id"].tolist()))
    times = np.empty(len(d["frame"]))
    video = np.empty(len(d["frame"]), np.int64)
    spans = {}
    for k, u in enumerate(units):
        x = read_extraction(cohort.layout.extraction(u), skip=("landmarks", "blendshapes", "transform"))
        t = np.asarray(x.time_s, np.float64)
        at = d["unit_id"] == u
        times[at], video[at] = t[d["frame"][at]], k
        held = np.flatnonzero(cohort.splits[u].test)
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        spans[k] = (float(t[held[0]]), float(t[held[-1]] + step))
    return times, video, spans


def excerpt_table(cohort: Cohort, results: list[FeatureSetScores], cfg: ReportConfig
                  ) -> tuple[list[dict], dict[str, str]]:
    """Rows of every feature set x length x method (and the flow minus each baseline, paired), and per
    feature set a note of what was not computed and why."""
    rows, notes = [], {}
    for r in results:
        fs, n = r.feature_set, len(r.participants)
        if not cfg.excerpts_s:
            continue
        if n > cfg.excerpt_max_people:
            notes[fs] = (f"{n:,} participants: more than ReportConfig.excerpt_max_people ({cfg.excerpt_max_people}); "
                         "excerpts not computed")
            continue
        spec = FEATURE_SETS.get(fs)
        w, hop = (spec.window_s, spec.hop_s) if spec is not None and spec.window != "none" else (0.0, 0.0)
        lengths = [float(v) for v in cfg.excerpts_s if v >= w]
        held = {p: held_out_rows(cohort, r, p) for p in r.participants}
        labels = {L: {p: excerpt_labels(t, v, L, w, hop, sp) for p, (t, v, sp) in held.items()} for L in lengths}
        reached = [L for L in lengths if sum(bool((labels[L][p] >= 0).any()) for p in r.participants) >= 2]
        skipped = sorted(set(cfg.excerpts_s) - set(reached))
        if skipped:
            notes[fs] = ("no excerpt of " + ", ".join(f"{v:g}" for v in skipped) + " s for two people or more "
                         f"(held-out data too short{f', or shorter than a {w:g} s window' if w else ''})")
        if not reached:
            continue
        ex = {m: stream_excerpts(((pi, pj, v["log_p"]) for pi, pj, v in r.per_frame.pairs(m)), r.participants,
                                 {L: labels[L] for L in reached}) for m in r.methods}
        for L in reached:
            mrows, comps = excerpt_rows({m: ex[m][L] for m in r.methods}, n, "flow")
            rows += [{"feature_set": fs, "seconds": L, "row": "method", **x} for x in mrows]
            rows += [{"feature_set": fs, "seconds": L, "row": "difference", **c} for c in comps]
    return rows, notes
