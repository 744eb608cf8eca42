"""The report's identification from excerpts of the held-out data, on a synthetic run read back from
the workbook and the page (dis_core.report.excerpts over dis_core.score.excerpts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dis_core.cohort.stage import load_cohort, participant_features, prepare_cohort
from dis_core.extract.h5store import read_extraction
from dis_core.features.build import FEATURE_SETS
from dis_core.model.config import TrainConfig
from dis_core.report.config import ReportConfig
from dis_core.report.stage import report_unit
from dis_core.score.excerpts import excerpt_labels, excerpt_rows, excerpt_scores
from dis_core.score.stage import load_scores
from dis_core.score.stats import holm
from tests.synthrun import make_run
from tests.test_synthetic_run import TINY, _train_and_score


def test_the_report_identifies_from_excerpts_as_the_pure_functions_do(tmp_path):
    """4 people x 2 sessions of 40 s (cross-session split): head_spectrum's held-out windows give 5 excerpts
    of 8 s and 2 of 16 s a person, none of 60 s (said in the summary). The workbook's figures equal the
    pure functions on the score blocks' per-row log p with labels from the windows' own frame times; the
    page shows the figure; a cohort above the cap gets a note instead, and an earlier figure goes."""
    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=4, seconds=40, sessions=2), out)
    spec = FEATURE_SETS["head_spectrum"]
    _train_and_score(out, TrainConfig(spec, TINY, min_train_frames=20))
    r = report_unit(out, [spec.name], ReportConfig(excerpts_s=(8.0, 16.0, 60.0)))
    assert r.status == "ok", r.message
    c = load_cohort(out)
    sheet = pd.read_excel(c.layout.workbook, sheet_name="excerpts")
    summary = pd.read_excel(c.layout.workbook, sheet_name="summary").set_index("item")["value"]
    assert "fewer than two people have an excerpt of 60 s (held-out data too short" in summary["excerpts"] and "computed for head_spectrum" in summary["excerpts"]
    text = (c.layout.report_summary).read_text()  # the terminal's text: the 8 s line with intervals and chance
    flow8 = sheet[(sheet["seconds"] == 8) & (sheet["method"] == "flow")].iloc[0]
    assert (f"excerpts of 8 s, head_spectrum: top-1 flow {flow8['top1']:.2f} [{flow8['top1_lo']:.2f}, "
            f"{flow8['top1_hi']:.2f}], gaussian") in text and "chance 0.25" in text
    d8 = sheet[(sheet["seconds"] == 8) & (sheet["row"] == "difference")].iloc[0]  # 4 people: no claim either way
    assert (f"; flow - gaussian: top-1 {d8['top1_diff']:+.3f} [{d8['top1_diff_lo']:+.3f}, {d8['top1_diff_hi']:+.3f}]: "
            "no claim") in text and text.count(": no claim") >= 2  # no Holm p: 4 people are not in the family
    assert np.isnan(d8["top1_p_holm"]) and d8["holm_family"] == "none (fewer than 10 people: no claim)"
    head = text.splitlines()
    i = next(k for k, ln in enumerate(head) if ln.startswith("  head_spectrum N=  4  flow top-1"))
    assert head[i + 1].index("gaussian top-1") == head[i].index("flow top-1") == head[i + 2].index("chance")
    sc = load_scores(out, spec.name)
    pids = c.participants
    labels = {}
    for p in pids:
        td = participant_features(c, p, spec, "test")
        (uid, centres), = td.rows.items()
        t = read_extraction(c.layout.extraction(uid), skip=("landmarks", "blendshapes", "transform")).time_s
        labels[p] = (np.asarray(t, float)[centres], float(t[0]), float(t[-1]) + 1 / 15)
    for length, per_person in ((8.0, 5), (16.0, 2)):
        lab = [excerpt_labels(tt, np.zeros(len(tt), int), length, 8.0, 0.5, {0: (a, b)}) for tt, a, b in labels.values()]
        assert all(np.unique(x[x >= 0]).size == per_person for x in lab)
        ex = {m: excerpt_scores([[sc.store.pair(m, pi, pj)["log_p"] for pj in pids] for pi in pids], lab)
              for m in ("flow", "gaussian")}
        rows = sheet[(sheet["seconds"] == length) & (sheet["row"] == "method")].set_index("method")
        assert sorted(rows.index) == ["flow", "gaussian"] and (rows["excerpts"] == 4 * per_person).all()
        want, (cmp,) = excerpt_rows(ex, len(pids), [("flow", "gaussian")])
        for iv in want:
            for k in ("top1", "auc", "eer"):
                assert rows.loc[iv["method"], [k, f"{k}_lo", f"{k}_hi"]].tolist() == pytest.approx([iv[k], iv[f"{k}_lo"], iv[f"{k}_hi"]])
        d = sheet[(sheet["seconds"] == length) & (sheet["row"] == "difference")]
        assert d[["a", "b"]].values.tolist() == [["flow", "gaussian"]]
        assert d["eer_diff"].iloc[0] == pytest.approx(cmp["eer_diff"])
        assert d[["top1_diff_lo", "top1_diff_hi"]].values[0].tolist() == pytest.approx([cmp["top1_diff_lo"], cmp["top1_diff_hi"]])
    assert not (sheet["seconds"] == 60).any()
    d = sheet[sheet["row"] == "difference"]  # 4 people: no length is in the family (excerpt_family below)
    assert d[["top1_p_holm", "eer_p_holm"]].isna().all().all()
    assert "auc_p_holm" not in d  # AUC is outside the family, as for the whole-session verdicts
    assert (sheet["draws"] == 1000).all() and (d["holm_family"] == "none (fewer than 10 people: no claim)").all()
    assert "Holm-adjusted over one family: every feature set, length and baseline" in summary["excerpts"]
    assert "an excerpt is a cut of a session, and its figures an upper bound for a recording only that long" in summary["excerpts"]
    fig = c.layout.figures_dir / f"excerpts_{spec.name}.png"
    assert fig.is_file()
    page = (c.layout.report_dir / "dis_report.html").read_text()
    assert f"How many seconds identify a person ({spec.name})" in page
    # above the cap: a note, no figure (the earlier one removed), nothing computed
    r = report_unit(out, [spec.name], ReportConfig(excerpt_max_people=3))
    assert r.status == "ok", r.message
    sheet = pd.read_excel(c.layout.workbook, sheet_name="excerpts")
    assert "more than ReportConfig.excerpt_max_people (3)" in sheet["note"].iloc[0]
    assert not fig.exists()
    assert "How many seconds identify a person" not in (c.layout.report_dir / "dis_report.html").read_text()


def test_per_frame_rows_of_a_within_session_split_across_blocks_and_a_failure_that_stays_a_note(tmp_path, monkeypatch):
    """head_pose (a row per frame), one 60 s video each, the last 20% held out, scored in 2 x 2 blocks: the
    excerpts start at the first held-out frame (48 s), so each person has one 8 s excerpt of 120 rows and no
    16 s one; the sheet agrees with the pure functions on rows streamed from every block. An error inside
    the section becomes the feature set's note: the report is still written, without the figure."""
    from dis_core.score.config import ScoreConfig, block_grid
    from dis_core.score.stage import score_block_unit
    from dis_core.model.stage import train_unit

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=4, seconds=60, sessions=1), out)
    spec = FEATURE_SETS["head_pose"]
    cfg = TrainConfig(spec, TINY, min_train_frames=20)
    c = load_cohort(out)
    for p in c.participants:
        assert train_unit(out, p, cfg).status == "ok"
    sc_cfg = ScoreConfig(min_test_frames=1, block_size=2)
    for r_, c_ in block_grid(len(c.participants), sc_cfg):
        assert score_block_unit(out, cfg, r_, c_, c.participants, sc_cfg).status == "ok"
    r = report_unit(out, [spec.name], ReportConfig(excerpts_s=(8.0, 16.0)))
    assert r.status == "ok", r.message
    sheet = pd.read_excel(c.layout.workbook, sheet_name="excerpts")
    rows = sheet[sheet["row"] == "method"].set_index("method")
    assert rows["seconds"].tolist() == [8.0, 8.0] and (rows["excerpts"] == 4).all()
    assert (rows["rows_per_excerpt_median"] == 120).all() and (rows["rows_per_excerpt_min"] == 120).all()
    summary = pd.read_excel(c.layout.workbook, sheet_name="summary").set_index("item")["value"]
    assert "fewer than two people have an excerpt of 16 s" in summary["excerpts"]
    sc = load_scores(out, spec.name)
    pids = c.participants
    lab = []
    for p in pids:
        (uid, frames), = participant_features(c, p, spec, "test").rows.items()
        t = read_extraction(c.layout.extraction(uid), skip=("landmarks", "blendshapes", "transform")).time_s
        held = np.flatnonzero(c.splits[uid].test)
        assert held[0] == 720 and frames[0] >= 720  # the last 12 s of 60 at 15 fps
        lab.append(excerpt_labels(np.asarray(t, float)[frames], np.zeros(len(frames), int), 8.0, spans={0: (48.0, 60.0)}))
    ex = excerpt_scores([[sc.store.pair("flow", pi, pj)["log_p"] for pj in pids] for pi in pids], lab)
    iv = excerpt_rows({"flow": ex}, len(pids))[0][0]
    assert rows.loc["flow", ["top1", "eer", "eer_hi"]].tolist() == pytest.approx([iv["top1"], iv["eer"], iv["eer_hi"]])
    assert (c.layout.figures_dir / "excerpts_head_pose.png").is_file()

    def broken(*a, **k):
        raise RuntimeError("a block written by older code")
    monkeypatch.setattr("dis_core.report.excerpts.stream_excerpts", broken)  # a fault no real run reproduces on demand
    r = report_unit(out, [spec.name], ReportConfig())
    assert r.status == "ok", r.message
    summary = pd.read_excel(c.layout.workbook, sheet_name="summary").set_index("item")["value"]
    assert "; not computed: RuntimeError: a block written by older code" in summary["excerpts"].split("head_pose: ", 1)[1]
    assert not (c.layout.figures_dir / "excerpts_head_pose.png").exists()


def test_excerpt_lines_say_in_words_whether_the_flow_beats_each_baseline():
    """The whole-session rule: a metric is supported when its interval excludes 0 and its Holm p < 0.05, on 10
    people or more; EER lower is better."""
    from dis_core.report.excerpts import excerpt_lines

    method = {"feature_set": "fs", "seconds": 8.0, "row": "method", "top1": 0.8, "top1_lo": 0.7, "top1_hi": 0.9,
              "people": 40, "participants": 40, "chance_top1": 0.025, "eer": 0.1, "eer_lo": 0.05, "eer_hi": 0.15}
    diff = {"feature_set": "fs", "seconds": 8.0, "row": "difference", "participants": 40, "people": 40, "a": "flow", "b": "ar",
            "top1_diff": 0.05, "top1_diff_lo": 0.01, "top1_diff_hi": 0.09, "top1_p_holm": 0.01,
            "eer_diff": 0.02, "eer_diff_lo": 0.005, "eer_diff_hi": 0.04, "eer_p_holm": 0.03}
    (line,) = excerpt_lines([{**method, "method": "flow"}, {**method, "method": "ar", "eer": 0.08}, diff])
    assert "; EER flow 0.100 [0.050, 0.150], ar 0.080 [0.050, 0.150] (chance 0.5); flow - ar" in line  # +0.020
    assert line.endswith("; flow - ar: top-1 +0.050 [+0.010, +0.090], Holm p 0.010: better (supported), "
                         "EER +0.020 [+0.005, +0.040], Holm p 0.030: worse (supported)")
    (line,) = excerpt_lines([{**method, "method": "flow"}, {**diff, "top1_p_holm": 0.2, "eer_diff_lo": -0.01}])
    assert line.count("no supported difference") == 2
    (line,) = excerpt_lines([{**method, "method": "flow"}, {**diff, "people": 9}])  # 40 participants, 9 with excerpts
    assert line.count(": no claim") == 2


def test_the_excerpt_family_holds_the_lengths_ten_people_reach():
    """Holm over top-1 and EER of the rows 10 people or more reach; a row of 5 people makes no claim and stays
    out (in the family it raised the others' adjusted p)."""
    from dis_core.report.excerpts import excerpt_family

    diffs = [{"feature_set": "f", "seconds": 8.0, "people": 12, "top1_p": 0.01, "eer_p": 0.2},
             {"feature_set": "f", "seconds": 16.0, "people": 10, "top1_p": 0.03, "eer_p": 0.5},
             {"feature_set": "g", "seconds": 8.0, "people": 5, "top1_p": 0.001, "eer_p": 0.001}]
    got = {(r["feature_set"], r["seconds"]): r for r in excerpt_family(diffs)}
    ps = holm([0.01, 0.2, 0.03, 0.5])
    assert [got["f", 8.0]["top1_p_holm"], got["f", 8.0]["eer_p_holm"], got["f", 16.0]["top1_p_holm"],
            got["f", 16.0]["eer_p_holm"]] == pytest.approx(ps)
    assert np.isnan(got["g", 8.0]["top1_p_holm"]) and np.isnan(got["g", 8.0]["eer_p_holm"])
    assert got["g", 8.0]["holm_family"].startswith("none (fewer than 10 people")
