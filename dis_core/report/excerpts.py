"""The report's identification from excerpts of the held-out data (I/O edge of dis_core.score.excerpts):
row times from the extractions, per-row log p streamed from the score blocks, one table per run."""

from __future__ import annotations

import json

import h5py
import numpy as np

from dis_core.cohort.stage import Cohort
from dis_core.extract.h5store import read_extraction
from dis_core.report.config import ReportConfig
from dis_core.score.blocks import SUMMARY
from dis_core.score.evaluate import FeatureSetScores
from dis_core.score.excerpts import drop_thin, excerpt_labels, excerpt_rows, family_draws, holm_family, stream_excerpts

EXCERPT_RULE = ("consecutive whole spans of each held-out video, each (model, excerpt) scored by the run's pair-score "
                "rule on the rows inside it, excerpts with under half the rows of the fullest one left out; top-1: the "
                "mean over people of each one's share of excerpts identified among all models; AUC/EER: each "
                "excerpt's t-norm, a person weighing as one; intervals: bootstrap over participants; p: paired bootstrap, "
                "<metric>_p_holm Holm-adjusted over a feature set's comparisons at every length and metric")


def block_settings(r: FeatureSetScores) -> tuple[float, float, float]:
    """(window seconds, hop seconds, trim) the feature set was scored with, from its score blocks' provenance
    (the run's own feature spec and score rule, not the named defaults); (0, 0) for per-frame rows."""
    folder = next(iter(sorted(r.per_frame.folders.items())))[1]
    with h5py.File(folder / SUMMARY, "r") as f:
        prov = json.loads(f.attrs["provenance"])
    spec = prov["train_config"]["features"]
    windowed = spec.get("window", "none") != "none"
    return (float(spec["window_s"]) if windowed else 0.0, float(spec["hop_s"]) if windowed else 0.0,
            float(prov["config"]["trim"]))


def held_out_rows(cohort: Cohort, r: FeatureSetScores, pid: str, frame_times: dict):
    """(times of pid's held-out rows, their video index, {video index: (first held-out frame's start, last
    one's end)}, (unit ids, frames) of the rows) in the order the score blocks hold them (a window row's time
    is its centre); ``frame_times`` keeps each video's frame times read once for every feature set."""
    d = r.per_frame.pair("flow", pid, pid)
    units = list(dict.fromkeys(d["unit_id"].tolist()))
    times = np.empty(len(d["frame"]))
    video = np.empty(len(d["frame"]), np.int64)
    spans = {}
    for k, u in enumerate(units):
        if u not in frame_times:
            x = read_extraction(cohort.layout.extraction(u), skip=("landmarks", "blendshapes", "transform"))
            frame_times[u] = np.asarray(x.time_s, np.float64)
        t = frame_times[u]
        at = d["unit_id"] == u
        times[at], video[at] = t[d["frame"][at]], k
        held = np.flatnonzero(cohort.splits[u].test)
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        spans[k] = (float(t[held[0]]), float(t[held[-1]] + step))
    return times, video, spans, (d["unit_id"], d["frame"])


def _checked(pairs, rows_of: dict):
    """The store's pairs as (model, data, log p), each checked to hold its data's rows in the labelled order."""
    for pi, pj, v in pairs:
        units, frames = rows_of[pj]
        if not (np.array_equal(v["frame"], frames) and np.array_equal(v["unit_id"], units)):
            raise ValueError(f"the rows of {pj} scored by {pi}'s model are not in the order of {pj}'s own")
        yield pi, pj, v["log_p"]


def excerpt_table(cohort: Cohort, results: list[FeatureSetScores], cfg: ReportConfig
                  ) -> tuple[list[dict], dict[str, str]]:
    """Rows of every feature set x length x method (and the flow minus each baseline, paired), and per
    feature set a note of what was not computed and why. An optional section: a feature set whose excerpts
    fail gets the error as its note, never a failed report."""
    rows, notes, frame_times = [], {}, {}
    for r in results if cfg.excerpts_s else []:
        fs, n = r.feature_set, len(r.participants)
        if n > cfg.excerpt_max_people:
            notes[fs] = (f"{n:,} participants: more than ReportConfig.excerpt_max_people ({cfg.excerpt_max_people}); "
                         "excerpts not computed")
            continue
        try:
            got, why = _feature_set(cohort, r, cfg, frame_times)
        except Exception as e:  # noqa: BLE001 - the rest of the report stands without this section
            got, why = [], f"not computed: {type(e).__name__}: {e}"
        rows += got
        if why:
            notes[fs] = why
    return rows, notes


def _feature_set(cohort: Cohort, r: FeatureSetScores, cfg: ReportConfig, frame_times: dict) -> tuple[list[dict], str]:
    fs, n = r.feature_set, len(r.participants)
    w, hop, trim = block_settings(r)
    held = {p: held_out_rows(cohort, r, p, frame_times) for p in r.participants}
    lengths = [float(v) for v in cfg.excerpts_s if v >= w]
    labels = {L: drop_thin({p: excerpt_labels(t, v, L, w, hop, sp) for p, (t, v, sp, _) in held.items()})
              for L in lengths}
    people = {L: sum(bool((labels[L][p] >= 0).any()) for p in r.participants) for L in lengths}
    reached = [L for L in lengths if people[L] >= 2]
    why = []
    if len(reached) < len(cfg.excerpts_s):
        why.append("fewer than two people have an excerpt of " + " or ".join(f"{v:g}" for v in cfg.excerpts_s if v not in reached)
                   + f" s (held-out data too short{f', or shorter than the {w:g} s window' if w else ''})")
    some = [f"{L:g} s: {people[L]} of {n} people" for L in reached if people[L] < n]
    if some:
        why.append("excerpts of only some people (" + "; ".join(some) + ")")
    if not reached:
        return [], "; ".join(why)
    rows_of = {p: h[3] for p, h in held.items()}
    ex = {m: stream_excerpts(_checked(r.per_frame.pairs(m), rows_of), r.participants,
                             {L: labels[L] for L in reached}, trim) for m in r.methods}
    pairs = [("flow", m) for m in r.methods if m != "flow"]
    n_boot = family_draws(len(reached), len(pairs))
    out, diffs = [], []
    for L in reached:
        per = np.concatenate([np.unique(a[a >= 0], return_counts=True)[1] for a in labels[L].values()])
        mrows, comps = excerpt_rows({m: ex[m][L] for m in r.methods}, n, pairs, n_boot=n_boot)
        info = {"participants": n, "rows_per_excerpt_median": float(np.median(per)), "rows_per_excerpt_min": int(per.min())}
        out += [{"feature_set": fs, "seconds": L, "row": "method", **x, **info} for x in mrows]
        diffs += [{"feature_set": fs, "seconds": L, "row": "difference", **c, "draws": n_boot} for c in comps]
    return sorted(out + holm_family(diffs), key=lambda x: x["seconds"]), "; ".join(why)  # stable: by length


def excerpt_lines(rows: list[dict]) -> list[str]:
    """The terminal's lines: per feature set, top-1 from its shortest excerpts for every method, with
    intervals, chance and how many people had such excerpts."""
    out = []
    for fs in dict.fromkeys(x["feature_set"] for x in rows):
        mine = [x for x in rows if x["feature_set"] == fs and x["row"] == "method"]
        L = min(x["seconds"] for x in mine)
        at = [x for x in mine if x["seconds"] == L]
        parts = [f"{x['method']} {x['top1']:.2f} [{x['top1_lo']:.2f}, {x['top1_hi']:.2f}]" for x in at]
        who = f" ({at[0]['people']} of {at[0]['participants']} people)" if at[0]["people"] < at[0]["participants"] else ""
        out.append(f"excerpts of {L:g} s, {fs}{who}: top-1 " + ", ".join(parts) + f", chance {at[0]['chance_top1']:.2f}")
    return out
