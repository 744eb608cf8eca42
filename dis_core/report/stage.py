"""The cohort report: one Excel workbook, PNG figures, score arrays, and the headline for the terminal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dis_core.io.atomic import atomic_path, write_text_atomic
from dis_core.cohort.stage import Cohort
from dis_core.errors import at_time_limit
from dis_core.io.excel import SHEET_MAX_COLUMNS, SHEET_MAX_ROWS, Rows, plain_cell, write_rows_csv, write_workbook
from dis_core.report.comparisons import (VERDICT_METRICS, FEW_PEOPLE, Finding, partner_refusal, at_chance, at_chance_text, baseline_holm, baseline_verdict,
                                         chance_text, feature_set_verdict, partner_family)
from dis_core.score.stats import MIN_PEOPLE, p_text, pair_similarity
from dis_core.report.config import ReportConfig
from dis_core.report.excerpts import EXCERPT_RULE, excerpt_lines, excerpt_table
from dis_core.report.html import with_gap_columns
from dis_core.io.provenance import HASH_NAMES, made_by, provenance, sha256_file
from dis_core.extract.summary import read_summary_table
from dis_core.layout import RunLayout, UnitResult
from dis_core.score.evaluate import FeatureSetScores
from dis_core.score.scoring import SCORE_RULE, feature_set_comparisons, relation, tnorm
from dis_core.score.synchrony import cohort_synchrony, synchrony_text



def write_report(cohort: Cohort, results: list[FeatureSetScores], problems: list[dict], prov: dict[str, Any],
                 cfg: ReportConfig = ReportConfig()) -> tuple[Path, str]:
    """Write OUT/report/; return the workbook path and the headline text."""
    d = cohort.layout.report_dir
    figs = cohort.layout.figures_dir
    figs.mkdir(parents=True, exist_ok=True)
    lay = cohort.layout  # the page, workbook and summary first: a report stopped half-way (SIGTERM, a failure) left
    # the earlier page and summary beside the new workbook, and no file said which run they were of
    for old in [lay.report_page, lay.report_summary, lay.workbook, *figs.glob("*.png"), *figs.glob("participants/*.png"),
                *d.glob("scores_*.npz")]:  # every figure
        old.unlink(missing_ok=True)  # and matrix is made again below or not at all: an earlier report's headline, map,
        # signature of other people or a feature set's matrices not reported now must not outlive it
    prov = {**prov, **report_inputs(cohort, results, prov)}
    sheets: dict[str, pd.DataFrame] = {}
    headline: list[str] = []
    verdicts: list[Finding] = []
    summary_rows = []
    p_holm = baseline_holm(results)
    # the headline: a feature set's name and N, then its methods one per line, each name in one column
    lead = {r.feature_set: f"{r.feature_set} N={len(r.participants):3d}" for r in results}
    w = max([len(x) for x in lead.values()], default=0)
    for r in results:
        for m in r.methods:
            row = {"feature_set": r.feature_set, "method": m, "participants": len(r.participants)}
            row.update({k: v for k, v in r.methods[m].metrics.items()})
            summary_rows.append(row)
        verdicts.append(baseline_verdict(r, p_holm))
        names = {"flow": "flow", "gaussian": "gaussian", "ar": "autoregressive"}
        for k, m in enumerate(x for x in names if x in r.methods):
            mt = r.methods[m].metrics
            headline.append(f"  {lead[r.feature_set] if k == 0 else '':{w}s}  {names[m]} {_ci(mt, 'top1', 'top-1')}  "
                            f"{_ci(mt, 'eer', 'EER')}  {_ci(mt, 'auc', 'AUC')}")
        low = {names[m]: at_chance(r.methods[m].metrics, len(r.participants)) for m in names if m in r.methods}
        same: dict[str, list[str]] = {}  # methods with the same list said once ("flow and gaussian not above ...")
        for m, x in low.items():
            if x:
                same.setdefault(at_chance_text(x), []).append(m)
        tested = ", ".join(f"{names[m]} {p_text(r.methods[m].metrics['top1_chance_p'])}" for m in names
                           if m in r.methods and r.methods[m].metrics.get("top1_chance_p") is not None)
        headline.append(f"  {'':{w}s}  chance: top-1 {chance_text(r.methods['flow'].metrics['chance_top1'])}"
                        + (f" (p of doing as well by chance: {tested})" if tested else "") + ", "
                        "EER 0.5, AUC 0.5" + "".join(f"; {' and '.join(ms)}{'' if x == FEW_PEOPLE else ' not above chance'}: {x}"
                                                     for x, ms in same.items()))  # the caveat alone is no finding
    summary = pd.DataFrame(summary_rows)
    fs_rows = feature_set_comparisons([(r.feature_set, r.participants, {m: r.methods[m].s for m in r.methods})
                                       for r in results])
    verdicts.append(feature_set_verdict(fs_rows))
    partners = partner_family(results)
    split_rule = split_rule_text(cohort)
    info = pd.DataFrame({"item": ["participants in cohort", "split rule", "videos used", "videos left out", "feature sets scored",
                                  "baseline comparison", "pair score", "verification scores", "intervals", "partner tests"] + [f"verdict {i + 1}" for i in range(len(verdicts))],
                         "value": [len(cohort.participants), split_rule, len(cohort.entries), len(cohort.left_out),
                                   ", ".join(r.feature_set for r in results) + (
                                       "; not scored (see 'What failed' / sheet left_out): "
                                       + ", ".join(x["feature_set"] for x in problems) if problems else ""),
                                   "one Gaussian per participant "
                                   "(Ledoit-Wolf covariance) on the flow's training rows (all of them), and for rows with lagged "
                                   "copies a linear-Gaussian autoregressive model p(present | past) "
                                   f"(densities, and how each flow started: {density_text(prov, [r.feature_set for r in results])})",
                                   SCORE_RULE,
                                   "auc/eer: t-norm (each score against the other models' scores of the same "
                                   "data); *_raw: raw mean log-likelihood; *_znorm: per-model z-norm over impostor "
                                   "data (*_raw and *_znorm: supplementary, with intervals from the same draws; methods are compared on t-norm)", "95% percentile bootstrap over participants (people resampled, 1,000 "
                                   "draws from seed 0, the same people in every method's draws; top-k widened where needed to hold the Wilson interval of the rate, which a "
                                   "percentile interval near 0 or 1 does not, and the point +- 1.96 jackknife standard errors over people (their "
                                   "model and data removed), which the draws, keeping the models, do not see; top-k's lower bound at least "
                                   "top-1's; top-1 against chance: top1_chance_p, the share of 9,999 random assignments (every one up to 7 people) of models to "
                                   "held-out data identifying as many, 'not above chance' over 0.05; below 10 people the AUC and EER intervals "
                                   "are unreliable, a draw holding about 63% of them and its t-norm fewer impostors, "
                                   "and no claim is made; near the ceiling (AUC 0.95 or more, EER 0.05 or less) with "
                                   "fewer than 30 people, simulated coverage of the AUC and EER intervals was 0.76-0.95, "
                                   "not 0.95: read them as too narrow there); flow vs baseline and feature set vs feature set: paired bootstrap of the "
                                   "difference, p = 2 (k + 1) / (B + 1) with k of B draws across 0, B as the family "
                                   "of tests needs for Holm (at least 1,000; column draws); top-1's difference held also to "
                                   "its jackknife over people, and its p to the normal p of that (the draws keep the models "
                                   "fixed), and to Newcombe's paired score interval of the two rates; exact McNemar on top-1 (sheet comparisons; it assumes people independent, "
                                   "which a broad model that outscores many of them breaks: read it beside the bootstrap p). "
                                   "The t-norm standardises an impostor score within a cohort that holds it (the genuine "
                                   "score is left out of its own), a bias of about +0.02 AUC at 10 people shared by every method", partners.text] + [v.text for v in verdicts]})
    revisions = stage_revisions(cohort, results, prov)
    info.loc[len(info)] = ["source revisions by stage", revisions]
    ex_rows, ex_notes = excerpt_table(cohort, results, cfg)
    for r in results:
        _excerpt_figure(figs, r, [x for x in ex_rows if x["feature_set"] == r.feature_set and x["row"] == "method"],
                        prov, ex_notes)
    info.loc[len(info)] = ["excerpts", excerpts_text(cfg, ex_rows, ex_notes)]
    sync = cohort_synchrony(cohort)  # None unless the manifest marks sessions time_locked
    if sync is not None:
        info.loc[len(info)] = ["synchrony tests", synchrony_text(*sync)]
        sheets["synchrony"] = pd.DataFrame(sync[0]) if sync[0] else pd.DataFrame({"note": [sync[1]]})
    sheets["summary"] = info
    sheets["metrics"] = summary
    dyad_rows, train_rows = [], []
    for r in results:
        fl = r.methods["flow"]
        for kind, a in (("scores", fl.s), ("ranks", fl.ranks)):
            sheets[f"{kind}_{r.feature_set}"[:31]] = (
                _labelled(a, r.participants) if len(r.participants) < SHEET_MAX_COLUMNS else
                pd.DataFrame({"note": [f"{len(r.participants):,} participants: more columns than a sheet holds; the "
                                       f"score matrices are in scores_{r.feature_set}.npz beside this workbook "
                                       "(ranks: 1 = the highest score in a data column)"]}))
        for m in r.methods:
            ms = r.methods[m]
            if ms.dyads:
                dyad_rows.append({"feature_set": r.feature_set, "method": m, "comparison": "partner_vs_stranger",
                                  **ms.dyads})
        for pid, t in r.training.items():
            train_rows.append({"feature_set": r.feature_set,
                               **{k: v for k, v in t.items() if not isinstance(v, (dict, list)) and k != "elapsed_s"}})
            # elapsed_s: the runner's, set after a unit wrote its summary (0 there); seconds is the fit's
        _figures(figs, r, prov)
        with atomic_path(d / f"scores_{r.feature_set}.npz") as tmp, open(tmp, "wb") as f:  # a file object: no ".npz" added
            np.savez_compressed(f, participants=np.array(r.participants),
                                provenance=np.array(json.dumps(prov, default=str)),  # np.load(...)["provenance"].item()
                                **{f"s_{m}": r.methods[m].s for m in r.methods})
    sheets["pairs"], pairs_file = _pairs_sheet(cohort, results)
    if pairs_file:  # a table too long for a sheet is named by its hash in the workbook's and the page's provenance
        prov = {**prov, "pairs_csv_sha256": sha256_file(cohort.layout.pairs_table)}
    sheets["dyads"] = (pd.DataFrame(dyad_rows) if dyad_rows else
                       pd.DataFrame({"note": [f"no partner test: {partner_refusal(results)}"]}))
    # each row carries the Holm p its verdict uses and names its family: flow vs baseline (top-1 and EER of every
    # set and baseline; AUC outside it) and feature set vs feature set (every pair, method and metric)
    fam_m = f"flow vs baseline: {len(p_holm)} test(s) (feature sets x baselines x top-1, EER; {MIN_PEOPLE}+ people)"
    fam_f = (f"feature sets: {sum(x['participants'] >= MIN_PEOPLE for x in fs_rows) * 3} test(s) (pairs x methods x "
             f"top-1, EER, AUC; {MIN_PEOPLE}+ common people)")
    none = f"none (fewer than {MIN_PEOPLE} people: no claim)"
    sheets["comparisons"] = pd.DataFrame([{"comparison": "method", "feature_set": r.feature_set, "a": "flow",
                                           "b": b, "participants": len(r.participants), **c,
                                           **{f"{k}_p_holm": p_holm.get((r.feature_set, b, k), float("nan"))  # NaN: too few people to test
                                              for k, _, _ in VERDICT_METRICS},
                                           "holm_family": fam_m if len(r.participants) >= MIN_PEOPLE else none}
                                          for r in results for b, c in r.comparisons.items()]
                                         + [{**x, "holm_family": fam_f if x["participants"] >= MIN_PEOPLE else none}
                                            for x in fs_rows])
    sheets["training"] = pd.DataFrame(train_rows)
    sheets["excerpts"] = (pd.DataFrame(ex_rows) if ex_rows else
                          pd.DataFrame({"note": [excerpts_text(cfg, ex_rows, ex_notes)]}))
    left = [{"stage": "cohort", **x} for x in cohort.left_out]
    for r in results:
        left += [{"stage": "scoring", **x} for x in r.left_out]
    left += [{"stage": "scoring", **x} for x in problems]
    sheets["left_out"] = pd.DataFrame(left) if left else pd.DataFrame({"note": ["nothing was left out"]})
    qc = cohort.layout.summary_dir / "extraction_qc.csv"
    if qc.is_file():
        sheets["extraction_qc"] = with_gap_columns(read_summary_table(qc), cohort.out_root)
    sm = cohort.layout.summary_dir / "smile_summary.csv"
    smiles = ""
    if sm.is_file():
        per_video = read_summary_table(sm)
        rule = prov.get("smile_hash") or _recorded_smile_rule(cohort.layout)
        if rule:  # the run's rule only: a summary of an older rule, of videos whose smiles were not recomputed under
            # it (a dis extract stopped part-way), or from before rows named their rule, is not the run's table
            ours = per_video.get("smile_hash", pd.Series("", index=per_video.index)).fillna("").astype(str) == rule
            per_video = per_video[ours]
            smiles = smiles_note(set(per_video["unit_id"]), [e.unit_id for e in cohort.entries])
        if len(per_video):
            g = per_video.groupby("participant_id")
            face_s = {"face_seconds": g["face_seconds"].sum()} if "face_seconds" in per_video else {}  # since 5 Dec 2026
            tab = sheets["smiles"] = pd.DataFrame({
                "videos": g.size(), "frames": g["frames"].sum(), "detected_frames": g["detected_frames"].sum(),
                "smile_frames": g["smile_frames"].sum(), "seconds": g["seconds"].sum(), **face_s,
                "smile_seconds": g["smile_seconds"].sum()}).reset_index()
            tab["smile_frame_fraction"] = tab["smile_frames"] / tab["detected_frames"]
            if face_s:
                tab["smile_second_fraction"] = tab["smile_seconds"] / tab["face_seconds"].where(tab["face_seconds"] > 0)
    _landmark_pca(figs, cohort, prov)
    wb = cohort.layout.workbook
    write_workbook(wb, sheets, prov)
    if not pairs_file:  # the pairs fit the workbook: a file of an earlier, larger run would be stale
        cohort.layout.pairs_table.unlink(missing_ok=True)
    shutil.rmtree(d / "norms", ignore_errors=True)  # an earlier report's: other models, people or layout
    if cfg.norm_workbooks:
        _norm_workbooks(d / "norms", results, prov)
    held_out = held_out_words(cohort)
    page = _html(cohort, results, problems, summary, info, verdicts, partners, sheets, prov, wb, held_out,
                 {fs: tuple(excerpt_lines([x for x in ex_rows if x["feature_set"] == fs]))
                  for fs in dict.fromkeys(x["feature_set"] for x in ex_rows)}, cfg.face_images, smiles)
    text = "\n".join([f"DIS report ({held_out}; 95% bootstrap intervals over participants):",
                      f"  split: {split_rule}", f"  pair score: {SCORE_RULE}"] + headline + ["  " + _line(v) for v in verdicts]
                     + [f"  partners: {_line(partners)}"] + [f"  {x}" for x in excerpt_lines(ex_rows)]
                     + ([f"  synchrony: {synchrony_text(*sync)}"] if sync is not None else [])
                     + ([f"  left out: {len(left)} (see sheet left_out)"] if left else [])
                     + ([f"  smiles: {smiles}"] if smiles else [])
                     + ([f"  source revisions {revisions}"] if revisions.startswith("differ") else [])
                     + [f"  made by: {made_by(prov, tuple(HASH_NAMES), 'the provenance sheet')}",
                        f"  report: {page}", f"  data:   {wb}"])
    write_text_atomic(cohort.layout.report_summary, text + "\n")
    return wb, text


def smiles_note(shown: set[str], videos: list[str]) -> str:
    """What the smile table lacks of the cohort's videos ``videos`` (those with a row under the run's rule:
    ``shown``), or ''."""
    n = sum(v not in shown for v in videos)
    return "" if not n else (f"{n} of the cohort's {len(videos)} videos are not in the smile table: their smile counts "
                             "are not recorded under the run's smile rule (dis extract recomputes them without "
                             "MediaPipe and dis cohort writes the smile summary again; dis run does both)")


def _recorded_smile_rule(layout: RunLayout) -> str:
    """The smile rule's hash of the plan run.json records ('' without one): a report made outside the stage graph
    holds the smile table to it as well."""
    from dis_core.config import config_hash

    try:
        return config_hash(json.loads(layout.run_record.read_text())["plan"]["extract"]["smile"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _line(f: Finding) -> str:
    """A finding for the terminal: its brief where it has one (a family of many claims, each in the report)."""
    return f"{f.brief}; each is listed in the report" if f.brief else f.text


def _html(cohort: Cohort, results: list[FeatureSetScores], problems: list[dict], metrics: pd.DataFrame,
          info: pd.DataFrame, verdicts: list[Finding], partners: Finding, sheets: dict, prov: dict,
          wb: Path, held_out: str, excerpts: dict[str, tuple[str, ...]], face_images: bool = True,
          smiles: str = "") -> Path:
    """The self-contained HTML report (dis_core/report/page.py) beside the workbook."""
    from dis_core.report.page import report_failures, write_html_report

    qc = sheets.get("extraction_qc")
    fails = report_failures(cohort.left_out, results, problems, qc)
    general = info[~info["item"].str.startswith("verdict")].copy()  # verdicts get their own place on the page
    if partners.brief:  # and so do the partner tests: the summary says them in a line
        general.loc[general["item"] == "partner tests", "value"] = f"{partners.brief} (each test under Identification)"
    return write_html_report(cohort, results, metrics, general, verdicts, partners, fails,
                             sheets.get("smiles"), prov, wb, held_out, excerpts, face_images, smiles, qc)


def evaluate_run(out_root: Path, feature_sets: list[str]) -> tuple[Cohort, list[FeatureSetScores], list[dict]]:
    """Every feature set's scores read back (stale ones refused: of another cohort step, of models since
    retrained, of blocks whose last run did not finish) and evaluated; the flows compared with their
    baselines and the partner tests, each as one family across the run; feature sets without scores become
    problems with the reason."""
    from dis_core.cohort.stage import load_cohort
    from dis_core.errors import DISError
    from dis_core.score.evaluate import adjust_partner_tests, compare_with_baselines, evaluate
    from dis_core.score.groups import cohort_grouping
    from dis_core.score.stage import load_scores

    cohort = load_cohort(out_root)
    cohort.check_extractions()  # scores of a video replaced since the cohort step would be another video's
    results, problems = [], []
    for fs in feature_sets:
        try:
            sc = load_scores(out_root, fs)
        except DISError as e:  # no current scores: the cohort step's reason if it found the set does not apply
            na = cohort.not_applicable.get(fs)
            problems.append({"stage": "cohort", "feature_set": fs, "reason": na["reason"]} if na else
                            {"feature_set": fs, "reason": str(e).removeprefix(f"{fs}: ")})
            continue
        results.append(evaluate(sc, lambda pids=sc.participants: cohort_grouping(cohort, pids)[0]))
    compare_with_baselines(results)
    adjust_partner_tests(results)
    return cohort, results, problems


def report_unit(out_root: Path, feature_sets: list[str], cfg: ReportConfig = ReportConfig(),
                prov_inputs: dict | None = None) -> UnitResult:
    """The report stage: evaluate the run's scores and write OUT/report/."""
    import time

    from dis_core.errors import DISError

    from dis_core.io.atomic import remove_stale_parts

    t0 = time.monotonic()
    res = UnitResult(unit_id="report")
    lay = RunLayout(out_root)
    for d in (lay.report_dir, lay.figures_dir, lay.figures_dir / "participants"):  # a killed report's part files
        remove_stale_parts(d)
    try:
        cohort, results, problems = evaluate_run(out_root, feature_sets)
        write_report(cohort, results, problems, provenance(cfg, feature_sets=list(feature_sets),
                                                           **(prov_inputs or {})), cfg)
        res.message = "; ".join(f"{p['feature_set']}: {p['reason']}" for p in problems)
        # the page and workbook say what failed; with no feature set reported nothing usable came out (exit 1)
        res.status = "ok" if results else "failed"
        res.incomplete = any(p.get("stage") != "cohort" for p in problems)  # failed, not inapplicable, sets
        if not results:
            res.message = (f"no feature set could be reported ({res.message or 'none requested'}); what failed is on "
                           f"{cohort.layout.report_page}")
    except DISError as e:
        res.message = str(e)
    res.elapsed_s = round(time.monotonic() - t0, 3)
    return res


def report_inputs(cohort: Cohort, results: list[FeatureSetScores], prov: dict[str, Any]) -> dict[str, str]:
    """What the report was made from, for its provenance: the split rule that ran, the hashes of the
    cohort record and of each feature set's score matrices (every method, in order), and of the manifest
    when the plan did not record the one it was made from."""
    import hashlib

    out = {"split_rule": split_rule_text(cohort), "cohort_sha256": cohort.layout.cohort_sha256()}
    manifest = Path(str(prov.get("manifest", "")))
    if not prov.get("manifest_sha256") and prov.get("manifest") and manifest.is_file():
        out["manifest_sha256"] = sha256_file(manifest)  # no plan recorded it (a report made outside a run)
    for r in results:
        h = hashlib.sha256("\n".join(r.participants).encode())
        for m in r.methods:
            h.update(m.encode() + np.ascontiguousarray(r.methods[m].s, dtype=np.float64).tobytes())
        out[f"scores_sha256_{r.feature_set}"] = h.hexdigest()
    return out


def stage_revisions(cohort: Cohort, results: list[FeatureSetScores], prov: dict[str, Any]) -> str:
    """Which source revision made each stage's outputs (extractions, cohort, models, this report), each with
    how many outputs it made; led by 'differ:' when the stages ran different code (a run resumed after an
    update re-uses the outputs whose inputs did not change, made by the code of their day)."""
    from collections import Counter

    from dis_core.extract.h5store import read_attrs

    def rev(p: Any) -> str:
        p = json.loads(p) if isinstance(p, str) else p
        r = str((p or {}).get("source_revision") or "not recorded")
        return r[:12] + ("-dirty" if r.endswith("-dirty") else "") if r != "not recorded" else r

    def read(fn, *a) -> str:
        try:
            return rev(fn(*a))
        except (OSError, ValueError, KeyError, TypeError):
            return "not readable"

    stages = {"extraction": Counter(read(lambda p: read_attrs(p).get("provenance"), cohort.layout.extraction(e.unit_id))
                                    for e in cohort.entries),
              "cohort": Counter([read(lambda p: json.loads(p.read_text()), cohort.layout.cohort_dir / "provenance.json")]),
              "training": Counter(rev(t.get("provenance")) for r in results for t in r.training.values()),
              "report": Counter([rev(prov)])}
    text = "; ".join(f"{name} " + ", ".join(f"{r}" + (f" ({n})" if len(c) > 1 or n > 1 else "") for r, n in c.most_common())
                     for name, c in stages.items() if c)
    seen = {r.removesuffix("-dirty") for c in stages.values() for r in c if r not in ("not recorded", "not readable")}
    return f"differ: {text}" if len(seen) > 1 else text


def participant_columns(cohort: Cohort) -> dict[str, dict[str, str]]:
    """Extra manifest columns that are one value per participant (condition, group, age...): they go
    into the pair table as model_<column> and data_<column>, for grouping and tests."""
    values: dict[str, dict[str, set[str]]] = {}
    for e in cohort.entries:
        for k, v in e.extra:
            values.setdefault(k, {}).setdefault(e.participant_id, set()).add(v)
    keep = [k for k, per in values.items()
            if all(len(v) == 1 for v in per.values()) and len(per) == len(cohort.participants)]
    return {p: {k: next(iter(values[k][p])) for k in keep} for p in cohort.participants}


def _ci(m: dict, key: str, label: str) -> str:
    return f"{label} {m[key]:.2f} [{m[key + '_lo']:.2f}, {m[key + '_hi']:.2f}]"


def density_text(prov: dict[str, Any], feature_sets: list[str]) -> str:
    """How each feature set's densities were formed (TrainConfig.density) and its flow started
    (FlowConfig.init), from the plan that ran."""
    plan = {t["features"]["name"]: t for t in (prov.get("plan") or {}).get("train", [])}
    words = {"own": "own (each participant's rows alone)",
             "pooled": "pooled (one shape fitted on every participant's training rows centred on their own mean (the "
                       "flow's on the mean of the rows it fits, so its validation rows do not set their centre), "
                       "placed at each participant's mean)"}
    starts = {"gaussian": "the flow started as the Gaussian of its rows, kept unless an epoch beat it on "
                          "validation", "random": "the flow started at random"}
    out = []
    for fs in feature_sets:
        t = plan.get(fs, {})
        flow = t.get("flow") or {}
        kind, init = t.get("density", "own"), flow.get("init", "random")  # before init: random
        out.append(f"{fs}: {words.get(kind, kind)}{', ' + starts.get(init, init) + ', ' + flow_text(flow) if t else ''}")
    return "; ".join(out)


def flow_text(flow: dict[str, Any]) -> str:
    """A flow's architecture in words (FlowConfig as recorded in the plan)."""
    from dis_core.model.config import FlowConfig

    base = FlowConfig()  # a field the record lacks had its default
    parts = []
    if flow.get("spline_bins"):
        parts.append(f"a spline of {flow['spline_bins']} bins on each axis")
    if flow.get("layers", base.layers):
        parts.append(f"{flow.get('layers', base.layers)} MAF layer(s) of {flow.get('hidden', base.hidden)} units")
    return " then ".join(parts)


def held_out_words(cohort: Cohort) -> str:
    """What the held-out data are, for headings and figure titles: a within-session split says that it measures
    consistency within a session, and a cohort of several rules says so (the run summary gives each)."""
    from dis_core.cohort.split import manifest_split_kind

    kinds = set()
    for pid in cohort.participants:
        es = cohort.videos_of(pid)
        kinds |= {manifest_split_kind(es) if cohort.splits[e.unit_id].rule == "manifest" else cohort.splits[e.unit_id].rule
                  for e in es}
    within = {"temporal", "manifest/within-session"}
    if kinds and kinds <= within:
        return "held-out end of each session: within-session consistency, not recognition on another day"
    if kinds & within:
        return "held-out data, of mixed split rules: some within a session (see the run summary)"
    return "held-out sessions" if kinds else "held-out data"


def split_rule_text(cohort: Cohort) -> str:
    """The split rule(s) in words, with how many participants each one covers; a manifest's split says
    whether it tests on sessions not trained on or within a session."""
    from dis_core.cohort.split import RULE_TEXT, manifest_split_kind

    videos: dict[str, list] = {}
    for e in cohort.entries:
        videos.setdefault(e.participant_id, []).append(e)
    by_rule: dict[str, set[str]] = {}
    for pid, entries in videos.items():
        for rule in {cohort.splits[e.unit_id].rule for e in entries}:
            by_rule.setdefault(manifest_split_kind(entries) if rule == "manifest" else rule, set()).add(pid)
    return "; ".join(f"{RULE_TEXT.get(r, r)} ({len(p)} participant(s))" for r, p in sorted(by_rule.items()))


PAIR_COLUMNS = ["feature_set", "method", "model_participant", "data_participant", "model_dyad", "data_dyad",
                "relation", "score", "z_score", "t_score", "similarity", "rank_of_model_for_data", "held_out_rows",
                "mean_norm", "median_norm"]
# z_score: the pair's score standardised over the model's impostor data (z-norm); t_score: over the data's impostor
# models (t-norm: the heatmaps' colours and the headline AUC and EER); similarity: the two people's pair similarity
# (stats.pair_similarity: the mean of z- and t-norm both ways round; the map and the partner test read it; the same
# on both rows of a pair); held_out_rows: the data's rows scored (frames, or windows of window feature sets)


def pair_table(results: list[FeatureSetScores], traits: dict[str, dict[str, str]]) -> Rows:
    """Every (feature set, method, model, data) pair as a row, streamed: N^2 rows per method, never all
    in memory; the manifest's per-participant columns as model_<column> and data_<column>."""
    keys = list(next(iter(traits.values()), {}))
    header = PAIR_COLUMNS + [f"model_{k}" for k in keys] + [f"data_{k}" for k in keys]

    def rows():
        for r in results:
            pids, dy = r.participants, r.dyads
            tr = [[traits.get(p, {}).get(k) for k in keys] for p in pids]  # strings (None when missing)
            frames = [r.test_frames[p] for p in pids]
            for m, ms in r.methods.items():
                tn, sim = tnorm(ms.s), pair_similarity(ms.s)
                for i, pi in enumerate(pids):
                    s, z, t, rk = ms.s[i].tolist(), ms.z[i].tolist(), tn[i].tolist(), ms.ranks[i].tolist()
                    mean, median, si = ms.norm_mean[i].tolist(), ms.norm_median[i].tolist(), sim[i].tolist()
                    for j, pj in enumerate(pids):  # the floats may be NaN: plain_cell makes them empty
                        yield [r.feature_set, m, pi, pj, dy[i], dy[j], relation(dy, i, j), plain_cell(s[j]),
                               plain_cell(z[j]), plain_cell(t[j]), plain_cell(si[j]), float(rk[j]), frames[j],
                               plain_cell(mean[j]), plain_cell(median[j])] + tr[i] + tr[j]
    return Rows(header, rows())


def _pairs_sheet(cohort: Cohort, results: list[FeatureSetScores]) -> tuple[Rows | pd.DataFrame, bool]:
    """The pair table as a sheet; when it is longer than a sheet holds (about 500 people with two feature
    sets), written to OUT/report/pairs.csv.gz and the sheet saying so. Returns (sheet, file written)."""
    table = pair_table(results, participant_columns(cohort))
    n = sum(len(r.methods) * len(r.participants) ** 2 for r in results)
    if n <= SHEET_MAX_ROWS:
        return table, False
    path = cohort.layout.pairs_table
    write_rows_csv(path, table)
    return pd.DataFrame({"note": [f"{n:,} pairs: more rows than a sheet holds ({SHEET_MAX_ROWS:,}); every pair is "
                                  f"in {path.name} beside this workbook, with the columns this sheet would have"]}), True


def _labelled(a: np.ndarray, pids: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(a, columns=pids)
    df.insert(0, "model \\ data", pids)
    return df


def _figures(figs: Path, r: FeatureSetScores, prov: dict) -> None:
    from dis_core.report.figures import HEADLINE_STYLE, heatmap_png, loss_grid_png, participant_map_png, roc_det_png
    from dis_core.score.scoring import dyad_pairs
    from dis_core.score.stats import classical_mds, mds_share

    fs = r.feature_set
    fl = r.methods["flow"]
    heatmap_png(figs / f"heatmap_{fs}.png", fl.s, r.participants,
                f"{fs}: held-out data scored by every model (flows)", prov, dyads=r.dyads)
    curves = {}
    for m in r.methods:
        for k, (fpr, tpr) in r.methods[m].roc.items():
            key = {"t-norm": "auc", "raw": "auc_raw", "z-norm": "auc_znorm"}[k]
            mm = r.methods[m].metrics
            ci = f" [{mm[key + '_lo']:.3f}, {mm[key + '_hi']:.3f}]"
            curves[f"{HEADLINE_STYLE.get(m, ('', m))[1]}, {k} (AUC {mm[key]:.3f}{ci})"] = (fpr, tpr)
    roc_det_png(figs / f"roc_det_{fs}.png", curves, f"{fs}: verification, genuine = own held-out data", prov)
    from dis_core.features.build import row_word
    from dis_core.report.norm_hist import norms_hist_png  # from the blocks' histogram counts, never every frame

    rows = row_word(fs)
    norms_hist_png(figs / f"norms_{fs}.png", r.norm_bins, fl.norm_hist,
                   f"{fs}: per-{rows[:-1]} norms by relation (flows)", prov, rows)
    if len(r.participants) >= 3:
        coords, w = classical_mds(pair_similarity(fl.s), k=len(r.participants), similarity=True)
        coords, share = coords[:, :2], mds_share(w)
        participant_map_png(figs / f"participant_map_{fs}.png", coords, r.participants, dyad_pairs(r.dyads),
                            f"{fs}: who moves like whom (classical MDS of the symmetric pair similarity, flows; "
                            + (f"2 dimensions hold {100 * share:.0f}% of the eigenvalues by magnitude)" if np.isfinite(share)
                               else "no pair is more similar than another: nothing to map)"), prov)
    losses = [(p, *r.histories[p]) for p in r.participants if p in r.histories]
    if len(losses) > 1 and all(c[1:] == losses[0][1:] for c in losses):  # a pooled shape: one curve, not N copies
        losses = [(f"pooled shape (shared by {len(losses)} participants)", *losses[0][1:])]
    loss_grid_png(figs / f"loss_curves_{fs}.png", losses, f"{fs}: training curves", prov)


def _excerpt_figure(figs: Path, r: FeatureSetScores, rows: list[dict], prov: dict, notes: dict[str, str]) -> None:
    """Identification against seconds of held-out video; an earlier run's figure goes when there is none
    (a figure that fails is a note, not a failed report)."""
    from dis_core.report.figures import excerpts_png

    path = figs / f"excerpts_{r.feature_set}.png"
    path.unlink(missing_ok=True)
    if not rows:
        return
    try:
        excerpts_png(path, rows, {m: r.methods[m].metrics for m in r.methods},
                     f"{r.feature_set}: identification from excerpts of the held-out data", prov)
    except Exception as e:  # noqa: BLE001 - the sheet keeps the figures' numbers
        if at_time_limit(e):  # SLURM's time limit: the task stops
            raise
        path.unlink(missing_ok=True)
        notes[r.feature_set] = "; ".join(x for x in (notes.get(r.feature_set), f"no figure: {type(e).__name__}: {e}") if x)


def excerpts_text(cfg: ReportConfig, rows: list[dict], notes: dict[str, str]) -> str:
    """The summary's line on excerpts: the rule, the lengths, and what was not computed and why."""
    if not cfg.excerpts_s:
        return "not computed (ReportConfig.excerpts_s is empty)"
    done = sorted({x["feature_set"] for x in rows})
    head = (f"identification from excerpts of {', '.join(f'{v:g}' for v in cfg.excerpts_s)} s of held-out video "
            f"(sheet excerpts): {EXCERPT_RULE}")
    tail = "; ".join(f"{fs}: {why}" for fs, why in notes.items())
    return head + (f"; computed for {', '.join(done)}" if done else "; computed for no feature set") + (
        f"; {tail}" if tail else "")


def _landmark_pca(figs: Path, cohort: Cohort, prov: dict) -> None:
    """Held-out and training frames of each participant in the cohort landmark basis (first 2 axes)."""
    from dis_core.features.build import FeatureSpec
    from dis_core.report.figures import landmark_pca_grid_png
    from dis_core.cohort.stage import participant_features

    if cohort.basis is None:
        return
    spec = FeatureSpec("landmark_pca", "landmarks", center="none", velocity=False, k=len(cohort.basis.components))
    scores, n_train = {}, {}
    for pid in cohort.participants:
        parts = [participant_features(cohort, pid, spec, p, drop_dead=False).x for p in ("train", "test")]
        n_train[pid] = len(parts[0])
        parts = [p[:, :2] for p in parts if len(p)]
        if parts:
            scores[pid] = np.concatenate(parts)
    landmark_pca_grid_png(figs / "landmark_pca.png", scores, cohort.basis.explained,
                          "Aligned landmarks in the cohort PCA basis, per participant", prov, n_train)


def _norm_workbooks(d: Path, results: list[FeatureSetScores], prov: dict) -> None:
    """norms/<feature set>/<model's participant>/<data's participant>.xlsx, each row naming both: a folder per
    model, since ids may hold '__' (x on y__z and x__y on z were one file, 'x__y__z.xlsx', one overwriting the
    other)."""
    for r in results:  # streamed from the score blocks' files, one pair in memory at a time
        for pi, pj, v in r.per_frame.pairs("flow"):
            n = len(v["frame"])
            rows = zip([pi] * n, [pj] * n, v["unit_id"].tolist(), v["frame"].tolist(), v["log_p"].tolist(),
                       v["norm"].tolist())
            write_workbook(d / r.feature_set / pi / f"{pj}.xlsx",
                           {"norms": Rows(["model", "data", "unit_id", "frame", "log_p", "norm"], rows)}, prov)

