"""The report's identification from excerpts of the held-out data (I/O edge of dis_core.score.excerpts):
row times from the extractions, per-row log p streamed from the score blocks, one table per run."""

from __future__ import annotations

import json

import h5py
import numpy as np

from dis_core.cohort.stage import Cohort
from dis_core.errors import at_time_limit
from dis_core.extract.h5store import read_extraction
from dis_core.report.comparisons import MIN_PEOPLE, VERDICT_METRICS, chance_text, supported
from dis_core.report.config import ReportConfig
from dis_core.score.blocks import SUMMARY
from dis_core.score.evaluate import FeatureSetScores
from dis_core.score.excerpts import drop_thin, excerpt_labels, excerpt_rows, full_rows, holm_family, stream_excerpts
from dis_core.score.stats import draws_for_family, p_text, signed

EXCERPT_RULE = ("consecutive whole spans of each held-out video, each (model, excerpt) scored by the run's pair-score "
                "rule on the rows inside it, excerpts with under half the rows their video gives a gap-free span left out; top-1: the "
                "mean over people of each one's share of excerpts identified among all models; AUC/EER: each "
                "excerpt's t-norm, a person weighing as one; intervals: bootstrap over participants; p: paired bootstrap (top-1's "
                "difference held also to its jackknife over people, whose models the draws keep fixed, and to Newcombe's "
                "paired score interval, the methods paired excerpt by excerpt), "
                "top1_p_holm and eer_p_holm Holm-adjusted over one family: every feature set, length and baseline that "
                "10 people or more reach, on top-1 and EER (the metrics the flow-vs-baseline verdicts weigh; AUC's p "
                "unadjusted; with fewer people no claim is made and the Holm p is empty); the rows are the whole "
                "session's, built on its reference rotation, gains and medians (within a session, on the training "
                "frames'): an excerpt is a cut of a session, and its figures an upper bound for a recording only "
                "that long, which would estimate them from its own seconds")


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


def _frame_steps(video: np.ndarray, units: np.ndarray, frame_times: dict) -> np.ndarray:
    """Per held-out row, the median frame step of its video (what a row a frame would hold per second)."""
    step = {}
    for k, u in enumerate(dict.fromkeys(units.tolist())):
        t = frame_times[u]
        step[k] = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    return np.array([step[k] for k in video.tolist()], float)


def _checked(pairs, rows_of: dict):
    """The store's pairs as (model, data, log p), each checked to hold its data's rows in the labelled order."""
    for pi, pj, v in pairs:
        units, frames = rows_of[pj]
        if not (np.array_equal(v["frame"], frames) and np.array_equal(v["unit_id"], units)):
            raise ValueError(f"the rows of {pj} scored by {pi}'s model are not in the order of {pj}'s own")
        yield pi, pj, v["log_p"]


VERDICT = ("top1", "eer")  # the metrics of the family, as for the whole-session flow-vs-baseline verdicts


def excerpt_table(cohort: Cohort, results: list[FeatureSetScores], cfg: ReportConfig
                  ) -> tuple[list[dict], dict[str, str]]:
    """Rows of every feature set x length x method (and the flow minus each baseline, paired, Holm over the
    run's family of them), and per feature set a note of what was not computed and why. An optional
    section: a feature set whose excerpts fail gets the error as its note, never a failed report."""
    notes, frame_times, ready = {}, {}, []
    for r in results if cfg.excerpts_s else []:
        fs, n = r.feature_set, len(r.participants)
        if n > cfg.excerpt_max_people:
            notes[fs] = (f"{n:,} participants: more than ReportConfig.excerpt_max_people ({cfg.excerpt_max_people}); "
                         "excerpts not computed")
            continue
        try:
            lab, why = _labelled(cohort, r, cfg, frame_times)
        except Exception as e:  # noqa: BLE001 - the rest of the report stands without this section
            if at_time_limit(e):  # SLURM's time limit: the task stops
                raise
            lab, why = None, f"not computed: {type(e).__name__}: {e}"
        if why:
            notes[fs] = why
        if lab is not None:
            ready.append((r, lab))
    # the family's size is known before any draw, so that every comparison gets the draws Holm needs
    tests = sum(sum(_people(lab[1][L]) >= MIN_PEOPLE for L in lab[2]) * (len(r.methods) - 1) * len(VERDICT)
                for r, lab in ready)  # a length too few people reach makes no claim, so is not in the family
    n_boot = draws_for_family(tests)
    family = f"excerpts: {tests} test(s) (feature sets x lengths x baselines x top-1, EER; {MIN_PEOPLE}+ people)"
    rows, diffs = [], []
    for r, lab in ready:
        try:
            got, comps = _scored(r, lab, n_boot)
        except Exception as e:  # noqa: BLE001
            if at_time_limit(e):  # SLURM's time limit: the task stops
                raise
            notes[r.feature_set] = "; ".join(x for x in (notes.get(r.feature_set), f"not computed: {type(e).__name__}: {e}") if x)
            continue
        rows += got
        diffs += [{**c, "draws": n_boot, "holm_family": family} for c in comps]
    rows += excerpt_family(diffs)
    fs_rank = {r.feature_set: k for k, r in enumerate(results)}
    return sorted(rows, key=lambda x: (fs_rank[x["feature_set"]], x["seconds"])), notes  # stable: methods first


def _labelled(cohort: Cohort, r: FeatureSetScores, cfg: ReportConfig, frame_times: dict):
    """(held-out rows, excerpt labels per length, lengths that two people or more reach) of a feature set, or
    None, and the note of what is missing."""
    n = len(r.participants)
    w, hop, trim = block_settings(r)
    held = {p: held_out_rows(cohort, r, p, frame_times) for p in r.participants}
    lengths = [float(v) for v in cfg.excerpts_s if v >= w]
    steps = {p: _frame_steps(v, rows[0], frame_times) for p, (_, v, _, rows) in held.items()}
    labels = {L: drop_thin({p: excerpt_labels(t, v, L, w, hop, sp) for p, (t, v, sp, _) in held.items()},
                           {p: np.array([full_rows(L, w, hop, s) for s in steps[p]]) for p in held})
              for L in lengths}
    people = {L: _people(labels[L]) for L in lengths}
    reached = [L for L in lengths if people[L] >= 2]
    why = []
    if len(reached) < len(cfg.excerpts_s):
        why.append("fewer than two people have an excerpt of " + " or ".join(f"{v:g}" for v in cfg.excerpts_s if v not in reached)
                   + f" s (held-out data too short{f', or shorter than the {w:g} s window' if w else ''})")
    some = [f"{L:g} s: {people[L]} of {n} people" for L in reached if people[L] < n]
    if some:
        why.append("excerpts of only some people (" + "; ".join(some) + ")")
    return ((held, labels, reached, trim) if reached else None), "; ".join(why)


def excerpt_family(diffs: list[dict]) -> list[dict]:
    """The flow-minus-baseline rows with their Holm p over the family of those 10 people or more reach (with
    excerpts); the others make no claim, so their Holm p is NaN: in the family they could only raise the rest's."""
    fam = [d for d in diffs if d["people"] >= MIN_PEOPLE]
    return holm_family(fam, VERDICT) + [{**d, "holm_family": f"none (fewer than {MIN_PEOPLE} people: no claim)",
                                         **{f"{k}_p_holm": float("nan") for k in VERDICT}}
                                        for d in diffs if d["people"] < MIN_PEOPLE]


def _people(labels: dict) -> int:
    """The people with an excerpt in ``labels`` (one length's: pid -> each row's excerpt, -1 for none)."""
    return sum(bool((np.asarray(a) >= 0).any()) for a in labels.values())


def _scored(r: FeatureSetScores, lab, n_boot: int) -> tuple[list[dict], list[dict]]:
    """A feature set's method rows and its flow-minus-baseline rows (before Holm), every length."""
    held, labels, reached, trim = lab
    fs, n = r.feature_set, len(r.participants)
    rows_of = {p: h[3] for p, h in held.items()}
    ex = {m: stream_excerpts(_checked(r.per_frame.pairs(m), rows_of), r.participants,
                             {L: labels[L] for L in reached}, trim) for m in r.methods}
    pairs = [("flow", m) for m in r.methods if m != "flow"]
    out, diffs = [], []
    for L in reached:
        per = np.concatenate([np.unique(a[a >= 0], return_counts=True)[1] for a in labels[L].values()])
        mrows, comps = excerpt_rows({m: ex[m][L] for m in r.methods}, n, pairs, n_boot=n_boot)
        info = {"participants": n, "rows_per_excerpt_median": float(np.median(per)), "rows_per_excerpt_min": int(per.min()),
                "draws": n_boot}
        out += [{"feature_set": fs, "seconds": L, "row": "method", **x, **info} for x in mrows]
        people = min(x["people"] for x in mrows)  # the verdicts' 10-person rule counts who has excerpts
        diffs += [{"feature_set": fs, "seconds": L, "row": "difference", "participants": n, "people": people, **c}
                  for c in comps]
    return out, diffs


def excerpt_lines(rows: list[dict]) -> list[str]:
    """The terminal's lines: per feature set, top-1 and EER from its shortest excerpts for every method, with
    intervals, chance and how many people had such excerpts; then the flow minus each baseline in words, by the
    rule of the whole-session verdicts (:func:`dis_core.report.comparisons.supported`). The EERs are printed so
    that an EER difference can be read against the figures it is taken from."""
    out = []
    for fs in dict.fromkeys(x["feature_set"] for x in rows):
        mine = [x for x in rows if x["feature_set"] == fs and x["row"] == "method"]
        L = min(x["seconds"] for x in mine)
        at = [x for x in mine if x["seconds"] == L]
        parts = [f"{x['method']} {x['top1']:.2f} [{x['top1_lo']:.2f}, {x['top1_hi']:.2f}]" for x in at]
        who = f" ({at[0]['people']} of {at[0]['participants']} people)" if at[0]["people"] < at[0]["participants"] else ""
        diffs = [x for x in rows if x["feature_set"] == fs and x["row"] == "difference" and x["seconds"] == L]
        eers = [f"{x['method']} {x['eer']:.3f} [{x['eer_lo']:.3f}, {x['eer_hi']:.3f}]" for x in at if "eer" in x]
        out.append(f"excerpts of {L:g} s, {fs}{who}: top-1 " + ", ".join(parts) + f", chance {chance_text(at[0]['chance_top1'])}"
                   + (f"; EER {', '.join(eers)} (chance 0.5)" if eers else "") + "".join(f"; {_verdict(d)}" for d in diffs))
    return out


def _verdict(d: dict) -> str:
    """The flow minus a baseline on excerpts, top-1 and EER with intervals and Holm p, each in the words of the
    whole-session verdicts (their 10-person rule counts the people who have excerpts)."""
    parts = []
    for key, label, better in VERDICT_METRICS:
        diff, ok = d[f"{key}_diff"], supported(d, key)
        word = ("no claim" if d["people"] < MIN_PEOPLE else "better (supported)" if ok and better * diff > 0
                else "worse (supported)" if ok else "no supported difference")
        held = "" if d["people"] < MIN_PEOPLE else f", Holm p {p_text(d[f'{key}_p_holm'])}"  # not in the family
        parts.append(f"{label} {signed(diff, 3)} [{signed(d[f'{key}_diff_lo'], 3)}, {signed(d[f'{key}_diff_hi'], 3)}]"
                     f"{held}: {word}")
    return f"{d['a']} - {d['b']}: " + ", ".join(parts)
