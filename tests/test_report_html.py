"""The HTML report: self-contained (figures embedded, nothing fetched), every user string escaped,
and it renders in headless Chromium without console errors (tests/browser.py). The end-to-end check
on a real phantom run is tests/test_dis_phantom.py::test_html_report_renders_in_a_browser."""

from __future__ import annotations

import dataclasses
import json
import html
import os
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from dis_core.report import figures as F
from dis_core.report.comparisons import Finding
from dis_core.report.html import Figure, ParticipantSection, ReportPage, VideoQC, confusions, render_html
from tests.browser import chromium_path, inspect_page

EVIL = '<script>alert("x")</script>&<img src=http://example.com/a.png>'


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _page(tmp: Path, pid: str = EVIL, video: str = "a b/ü$x$.mp4") -> ReportPage:
    F.heatmap_png(tmp / "n.png", np.eye(3), ["a", "b", "c"], "scores", {})
    png = (tmp / "n.png").read_bytes()
    metrics = pd.DataFrame([{"feature_set": "head_pose", "method": m, "participants": 2, "chance_top1": 0.5,
                             **{f"{k}{s}": v for k, v in (("top1", 1.0), ("eer", 0.0), ("auc", 1.0))
                                for s in ("", "_lo", "_hi")}} for m in ("flow", "gaussian")])
    return ReportPage(
        title=f"DIS report: {pid}", summary=[("split rule", "cross-session"), ("manifest", video)], metrics=metrics,
        verdicts=[Finding(f"head_pose: the flows do NOT beat the Gaussian baseline ({pid})", tone="no")],
        partners=Finding("no partner test"),
        headline=Figure("Headline", "caption", png), feature_sets=[("head_pose", [Figure(f"Norms {pid}", pid, png)])],
        training=[], qc=[VideoQC("u1", pid, "s1", video, "ok", "", 100, 90, 2, 0.4, (png,), 7.0, 14.29),
                         VideoQC("u2", "p2", "s1", "bad.mp4", "failed", f"{video}: cannot decode", 0, 0, 0, 0.0)],
        smiles=pd.DataFrame({"participant_id": [pid], "smile_frame_fraction": [0.25]}),
        participants=[ParticipantSection(pid, "d1", ("s1", "s2"), ((pid, 3.0), ("p2", -1.0)), 1,
                                         Figure(f"Signature of {pid}", "", png))],
        failures=[{"stage": "extraction", "unit_id": "u2", "reason": f"{video}: cannot decode"}],
        provenance={"dis_version": "0.1.0", "config": {"note": pid}}, workbook="/x/dis_report.xlsx")


def test_every_user_string_is_escaped_and_nothing_is_fetched(tmp_path):
    text = render_html(_page(tmp_path))
    p = _Tags()
    p.feed(text)
    tags = [t for t, _ in p.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in text
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == 4 and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    srcs = [a.get("src", "") + a.get("href", "") for _, a in p.tags]
    assert not any(s.startswith(("http:", "https:", "//")) for s in srcs)
    assert "a b/ü$x$.mp4" in text  # shown as written
    # the terms a first reader meets are defined on the page, before the verdicts that use them
    assert "<td class='num'>7.0</td><td class='num'>14.29</td>" in text  # each video's duration and frame rate
    terms = text.index("<summary>Terms</summary>")
    assert terms < text.index("verdict ") < text.index("id='qc'") and all(f"<dt>{k}</dt>" in text for k in ("top-1 identification",
                                                                                  "verification: AUC, EER"))


def test_each_verdict_gets_the_tone_of_what_it_claims(tmp_path):
    """Red when the flows do NOT beat a baseline (one of two beaten is not enough), green when they beat it,
    neutral with too few people to tell (whose sentence names the baseline too, so it must not read as a win)
    and for feature-set comparisons: the tone comes from the verdict, not from reading its sentence."""
    from types import SimpleNamespace as NS

    from dis_core.report.comparisons import baseline_verdict, feature_set_verdict

    def cmp(top1_lo, eer_hi):  # top-1 better by 0.2 and EER lower by 0.1, intervals as given, p 0.001
        return {"top1_diff": 0.2, "top1_diff_lo": top1_lo, "top1_diff_hi": 0.35, "top1_p": 0.001,
                "eer_diff": -0.1, "eer_diff_lo": -0.2, "eer_diff_hi": eer_hi, "eer_p": 0.001}

    beat, level = cmp(0.05, -0.01), cmp(-0.05, 0.05)
    twelve = [f"p{k}" for k in range(12)]
    verdicts = {"no": baseline_verdict(NS(feature_set="a", participants=twelve,
                                          comparisons={"gaussian": beat, "ar": level})),
                "ok": baseline_verdict(NS(feature_set="b", participants=twelve, comparisons={"gaussian": beat})),
                "info": baseline_verdict(NS(feature_set="c", participants=["x", "y"], comparisons={"gaussian": beat})),
                "info ": feature_set_verdict([])}
    assert "the flows beat the Gaussian baseline" in verdicts["no"].text
    assert "the flows do NOT beat the autoregressive baseline" in verdicts["no"].text
    text = render_html(dataclasses.replace(_page(tmp_path, pid="p1"), verdicts=list(verdicts.values())))
    p = _Tags()
    p.feed(text)
    tones = [a["class"] for t, a in p.tags if t == "p" and a.get("class", "").startswith("verdict")]
    assert tones == [f"verdict {k.strip()}" for k in verdicts]


def test_confusions_put_the_own_model_first_then_the_best_impostors():
    s = np.array([[0.0, -1.0, -5.0], [-3.0, 0.0, -2.0], [-0.5, -4.0, 0.0]])
    c = confusions(s, 0, ["a", "b", "c"], k=3)
    assert [n for n, _ in c] == ["a", "c", "b"]  # for a's data, c's model scores -0.5, b's -3


def _need_chromium() -> None:
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI: chromium must be installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")


def test_page_renders_in_headless_chromium(tmp_path):
    _need_chromium()
    path = tmp_path / "r.html"
    path.write_text(render_html(_page(tmp_path)), encoding="utf-8")
    res = inspect_page(path, tmp_path / "shot.png", height=1200)
    assert res["errors"] == []
    assert len(res["images"]) == 4
    assert all(i["complete"] and i["natural_w"] > 0 and i["shown_w"] > 0 for i in res["images"])
    assert all(u.startswith(("file:", "data:")) for u in res["requests"])
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_qc_thumbnails_of_a_real_extraction_seek_to_the_same_frames(tmp_path, samples, model, monkeypatch, make_manifest):
    """A real video through extraction; its QC row counts the frames, and the thumbnails it gets by seeking
    (each frame's decoder time checked against the extraction's) are the very frames (same pixels, same
    landmarks) decoding in order gives; a seek that lands on another frame's time falls back to decoding. A video
    replaced since (another file at its path) gets no pictures, which drew its landmarks on the other's frames."""
    import shutil

    from dis_core.extract.stage import extract_video
    from dis_core.extract.summary import qc_table
    from dis_core.manifest import load_manifest
    from dis_core.report import html as H

    video = Path(shutil.copy(samples["single_face.mp4"], tmp_path / "v.mp4"))
    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(video)}]))
    res = extract_video(m.entries[0], tmp_path / "out", model, progress=False)
    assert res.status == "ok"
    qc = qc_table([res])
    with h5py.File(res.output, "r") as f:
        t = f["time_s"][()]
    want = [int(q * (len(t) - 1)) for q in (0.1, 0.5, 0.9)]
    assert H._seek_frames(Path(video), want, t) is not None  # this file seeks to the recorded times
    assert H._seek_frames(Path(video), want, t + (t[1] - t[0])) is None  # a frame later than recorded: refused
    seek = H.gather_video_qc(tmp_path / "out", qc)
    monkeypatch.setattr(H, "_seek_frames", lambda *a: None)  # what decoding in order gives
    seq = H.gather_video_qc(tmp_path / "out", qc)
    assert seq[0].frames == res.frames and seq[0].detected_frames == res.detected_frames
    with h5py.File(res.output, "r") as f:  # the decoded duration, not a count of seconds holding frames
        assert seq[0].seconds == pytest.approx(float(f["video"].attrs["duration_s"])) and seq[0].fps == pytest.approx(res.fps)
    assert len(seq[0].thumbs) == 3 and seq[0].thumbs == seek[0].thumbs
    assert H.gather_video_qc(tmp_path / "out", qc, thumbs=False)[0].thumbs == ()  # --no-face-images
    monkeypatch.undo()
    shutil.copy(samples["WolfgangLanger_Pexels.mp4"], video)
    (other,) = H.gather_video_qc(tmp_path / "out", qc)
    assert other.thumbs == () and other.message == f"no pictures: {video} is no longer the video that was extracted"


def test_a_page_without_face_images_shows_no_frame_and_says_so(tmp_path):
    """The QC table embeds frames of every video (faces: identifying). A page to share is made without them."""
    with_faces = render_html(_page(tmp_path))
    without = render_html(dataclasses.replace(_page(tmp_path), face_images=False))
    assert "with landmarks" in with_faces and "with landmarks" not in without
    assert "made with --no-face-images" in without and "--no-face-images" not in with_faces


def test_a_large_cohort_embeds_a_bounded_number_of_signatures_and_links_the_others(tmp_path):
    """A signature is ~0.3 MB: 1,000 of them would make a page no browser opens. Up to MAX_SIGNATURES are
    embedded, the misidentified first; the others are linked PNG files, and the page says so."""
    from dis_core.report.html import embedded_signatures

    ranks = [("a", 1), ("b", 3), ("c", None), ("d", 2), ("e", 1)]
    assert embedded_signatures(ranks, cap=10) == {"a", "b", "c", "d", "e"}
    assert embedded_signatures(ranks, cap=3) == {"b", "d", "a"}  # missed ones first, then cohort order
    assert embedded_signatures(ranks, cap=1) == {"b"}

    page = _page(tmp_path)
    linked = ParticipantSection("q<1>", "", ("s1",), (), 2, None, "figures/participants/signature_q_1.png")
    text = render_html(dataclasses.replace(page, participants=page.participants + [linked]))
    p = _Tags()
    p.feed(text)
    assert [a["href"] for t, a in p.tags if t == "a" and "signature" in a.get("href", "")] == \
        ["figures/participants/signature_q_1.png"]
    assert "embeds 1 of the 2 participants' signatures" in text
    assert "The page embeds" not in render_html(page)  # everyone embedded: nothing to say


def test_feature_set_comparisons_are_listed_one_per_item(tmp_path):
    """The feature-set finding (report.comparisons.feature_set_verdict) reads as its family, then the
    supported differences and those without support, one comparison per list item, nothing lost; the
    workbook's line holds the same claims."""
    from dis_core.report.comparisons import feature_set_verdict

    def row(fs, d):
        return {"feature_set": fs, "method": "flow", "participants": 12,
                **{f"{k}{s}": v for k in ("top1", "eer", "auc")
                   for s, v in (("_diff", d), ("_diff_lo", d - 0.1), ("_diff_hi", d + 0.1), ("_p_holm", 0.001))}}

    v = feature_set_verdict([row("a vs b", 0.5), row("a vs c", 0.0)])
    text = render_html(dataclasses.replace(_page(tmp_path, pid="p1"), verdicts=[v]))
    items = [ul.split("</li>")[:-1] for ul in text.split("<ul class='tests'>")[1:3]]
    yes, no = ([i.replace("<li>", "") for i in ul] for ul in items)
    assert len(yes) == 3 and yes[0].startswith("a better than b on top-1 (flow, 12 people: a - b +0.50 [+0.40, +0.60]")
    assert "b better than a on EER (flow, 12 people: b - a -0.50 [-0.60, -0.40]" in yes[1]  # lower EER is better
    assert no == ["a vs c (flow): top-1, EER, AUC"]
    assert "supported differences:" in text and "no supported difference:" in text
    assert "<p class='verdict info'>feature sets (2 feature-set comparison(s) x 3 metrics" in text
    assert v.text == f"{v.head}; supported differences: {'; '.join(yes)}; no supported difference: {no[0]}"
    assert v.brief == "feature sets: 3 of 6 paired differences supported after Holm (2 comparison(s) x 3 metrics)"
    few = feature_set_verdict([row("a vs b", 0.5), {**row("a vs c", 0.5), "participants": 9}])
    assert few.brief == ("feature sets: 3 of 3 paired differences supported after Holm (1 comparison(s) x 3 metrics; "
                         "1 more comparison(s) on fewer than 10 people: no claim either way)")
    # none on 10 people: nothing was tested, which is no finding ("0 of 6 supported" read as one)
    assert feature_set_verdict([{**row("a vs c", 0.5), "participants": 9}]).brief == (
        "feature sets: no claim, all 1 comparison(s) on fewer than 10 common people (none tested)")
    # a claim on t-norm scores that the raw or z-norm scores turn round says so (a few impostor scores of -5e5
    # made head_pose 'better' than blendshapes on t-norm EER, and 0.29 worse on raw scores)
    turned = feature_set_verdict([{**row("a vs b", 0.5), "eer_raw_diff": -0.29, "eer_znorm_diff": 0.1}])
    eer_claim = next(t for t in turned.lists[0][1] if " on EER " in t)
    assert eer_claim.endswith("Holm p 0.001; on raw scores the other way round (+0.29): the claim rests on the t-norm)")
    assert "z-norm" not in eer_claim and "other way" not in turned.lists[0][1][0]
    none = feature_set_verdict([row("a vs c", 0.0)])
    assert "<p class='note'>supported differences: none</p>" in render_html(
        dataclasses.replace(_page(tmp_path, pid="p1"), verdicts=[none]))


def test_partner_tests_are_listed_one_per_item_after_the_family(tmp_path):
    from types import SimpleNamespace as NS

    from dis_core.report.comparisons import partner_family

    t = {"observed": 0.3, "ci_lo": 0.1, "ci_hi": 0.5, "null_mean": 0.0, "p": 0.01, "p_holm": 0.02}
    fam = partner_family([NS(feature_set="head_pose", methods={"flow": NS(dyads=t), "gaussian": NS(dyads=t)})])
    text = render_html(dataclasses.replace(_page(tmp_path, pid="p1"), partners=fam))
    items = text.split("<ul class='tests'>")[1].split("</ul>")[0].split("</li>")[:-1]
    assert [i.split(":")[0] for i in items] == ["<li>head_pose/flow", "<li>head_pose/gaussian"]
    assert fam.text == "; ".join([fam.head] + [html.unescape(i.replace("<li>", "")) for i in items])  # workbook
    assert "Holm-corrected; each gives the observed partner statistic" in text  # the family stays one paragraph
    assert fam.brief == ("2 of 2 one-sided permutation test(s) supported after Holm (partners more alike than "
                         "pseudo-couples): head_pose/flow, head_pose/gaussian")
    weak = partner_family([NS(feature_set="a", methods={"flow": NS(dyads=t), "gaussian": NS(dyads={**t, "p_holm": 0.2})}),
                           NS(feature_set="b", methods={"flow": NS(dyads={**t, "p_holm": 0.05})})])
    assert weak.brief.startswith("1 of 3 one-sided") and weak.brief.endswith("pseudo-couples): a/flow")
    # three couples: 15 re-pairings, p no lower than 1/15, which two tests' Holm lift to 0.13: none could be supported
    three = {**t, "p": 1 / 15, "p_holm": 2 / 15, "p_floor": 1 / 15}
    fam3 = partner_family([NS(feature_set="a", methods={"flow": NS(dyads=three), "gaussian": NS(dyads=three)})])
    assert fam3.brief.endswith("; none could be: too few couples for any p after Holm to reach 0.05")
    assert "none could be" not in fam.brief and "none could be" not in weak.brief
    assert partner_family([]).brief == ""  # no family: its text is short already


def test_the_headline_says_what_the_held_out_data_are(tmp_path):
    """A within-session split measures consistency within a session: the heading and the terminal said only
    'held-out data'. The words come from the cohort's split rules, mixed rules said so."""
    from dis_core.cohort.stage import prepare_cohort
    from dis_core.report.stage import held_out_words
    from tests.synthrun import make_run

    one = prepare_cohort(make_run(tmp_path / "one", n=3, seconds=12, sessions=1), tmp_path / "one")
    assert held_out_words(one).startswith("held-out end of each session: within-session consistency")
    two = prepare_cohort(make_run(tmp_path / "two", n=3, seconds=12, sessions=2), tmp_path / "two")
    assert held_out_words(two) == "held-out sessions"
    page = dataclasses.replace(_page(tmp_path, pid="p1"), held_out=held_out_words(one))
    assert "<h2>Identification and verification (held-out end of each session: within-session" in render_html(page)


def test_the_report_names_each_stages_source_revision_and_says_when_they_differ(tmp_path):
    """The header named only the report's revision: extractions made by older code (a resumed run re-uses them)
    went unsaid. Each stage's revisions are counted, led by 'differ:' when stages ran different code."""
    from types import SimpleNamespace as NS

    from dis_core.cohort.stage import prepare_cohort
    from dis_core.report.stage import stage_revisions
    from tests.synthrun import make_run

    c = prepare_cohort(make_run(tmp_path / "r", n=3, seconds=12, sessions=1), tmp_path / "r")
    a, b = "a" * 40, "b" * 40
    same = [NS(training={p: {"provenance": {"source_revision": a}} for p in c.participants})]
    text = stage_revisions(c, same, {"source_revision": a})
    assert "training aaaaaaaaaaaa (3); report aaaaaaaaaaaa" in text and not text.startswith("differ")
    assert "extraction " in text and "cohort " in text
    mixed = [NS(training={**same[0].training, "p0": {"provenance": json.dumps({"source_revision": b + "-dirty"})}})]
    text = stage_revisions(c, mixed, {"source_revision": a})
    assert text.startswith("differ: ") and "aaaaaaaaaaaa (2), bbbbbbbbbbbb-dirty (1)" in text


def test_not_above_chance_names_intervals_that_hold_chance_or_lie_below_it():
    from dis_core.report.comparisons import at_chance

    row = dict(top1_lo=0.3, top1_hi=0.6, chance_top1=0.05, eer_lo=0.10, eer_hi=0.20, auc_lo=0.80, auc_hi=0.90)
    assert at_chance(row) == []
    assert at_chance({**row, "top1_lo": 0.0, "eer_hi": 0.5, "auc_lo": 0.45}) == ["top-1", "EER", "AUC"]
    assert at_chance({**row, "top1_hi": 0.04, "top1_lo": 0.0, "eer_lo": 0.55, "eer_hi": 0.7, "auc_lo": 0.3,
                      "auc_hi": 0.45}) == ["top-1 worse than chance", "EER worse than chance", "AUC worse than chance"]
    # two people: every bootstrap draw of EER and AUC is the same pair (an interval of width 0, here "above
    # chance"): below 10 people they are not told apart from chance, top-1 (Wilson-widened) still is
    two = {**row, "eer_lo": 0.0, "eer_hi": 0.0, "auc_lo": 1.0, "auc_hi": 1.0, "top1_lo": 0.34, "top1_hi": 1.0,
           "chance_top1": 0.5, "participants": 2}
    assert at_chance(two) == ["top-1", "EER and AUC: too few people to tell (under 10)"]
    assert at_chance({**two, "participants": 10}) == ["top-1"]
    assert at_chance({**row, "participants": 40}, people=4)[-1] == "EER and AUC: too few people to tell (under 10)"


def test_excerpt_verdicts_stand_in_their_feature_sets_section(tmp_path):
    page = dataclasses.replace(_page(tmp_path, pid="p1"), excerpt_lines={
        "head_pose": ("excerpts of 8 s, head_pose: top-1 flow 0.68 [0.52, 0.80]",),
        "landmarks": ("excerpts of 8 s, landmarks: top-1 flow 0.13",)})
    section = render_html(page).split("<section id='fs-head_pose'>")[1].split("</section>")[0]
    assert "<p class='note'>Excerpts of 8 s, head_pose: top-1 flow 0.68 [0.52, 0.80]</p>" in section
    assert "landmarks" not in section


def test_a_failed_video_is_listed_once_under_what_failed():
    """An extraction failure (and a video without a face) was listed twice: by the QC table and again by the
    cohort step, which leaves the same unit out for the same reason; other cohort exclusions stay."""
    import pandas as pd

    from dis_core.report.page import report_failures

    qc = pd.DataFrame([{"unit_id": "a", "participant_id": "pa", "status": "failed", "message": "cannot decode"},
                       {"unit_id": "b", "participant_id": "pb", "status": "no_face", "message": "no face"},
                       {"unit_id": "c", "participant_id": "pc", "status": "ok", "message": ""}])
    left = [{"unit_id": "a", "participant_id": "pa", "reason": "extraction failed"},
            {"unit_id": "b", "participant_id": "pb", "reason": "no face detected"},
            {"unit_id": "c", "participant_id": "pc", "reason": "c.mp4: 5 frames a second, below the 10"}]
    rows = report_failures(left, [], [], qc)
    assert [(r["stage"], r["unit_id"]) for r in rows] == [("extraction", "a"), ("extraction", "b"), ("cohort", "c")]


def test_participant_sections_read_every_head_motion_set_signature_first(tmp_path):
    """The figure's confusions come from head_spectrum (DIS's head-motion signature) where it scored the
    participant, else head_pose; the list above the figure gives every head-motion set's placing, and a
    landmark set is not a head-motion signature unless the run has no other."""
    from types import SimpleNamespace

    from dis_core.report.page import _placings
    from dis_core.score.scoring import ranks

    def scored(fs, pids, s):
        s = np.asarray(s, float)
        return SimpleNamespace(feature_set=fs, participants=pids, methods={"flow": SimpleNamespace(s=s, ranks=ranks(s))})

    pose = scored("head_pose", ["a", "b", "c", "d"], -9 + 9 * np.eye(4))  # everyone identified
    # a's data: d's model fits best, then a's own, then c's, then b's
    spec = scored("head_spectrum", ["a", "b", "c", "d"], [[0, 0, 0, 0], [-8, 0, -5, -5], [-3, -5, 0, -5],
                                                          [4, -5, -5, 0]])
    lms = scored("landmarks", ["a", "b", "c", "d"], np.eye(4))
    got = _placings([lms, pose, spec])
    assert [(fs, r) for fs, r, _ in got["a"]] == [("head_spectrum", 2.0), ("head_pose", 1.0)]
    assert [n for n, _ in got["a"][0][2]] == ["a", "d", "c", "b"]  # own model first, then the others by score
    assert [fs for fs, _, _ in _placings([lms, pose])["c"]] == ["head_pose"]
    assert [fs for fs, _, _ in _placings([lms])["a"]] == ["landmarks"]  # no head-motion set in the run

    fs, rank, conf = got["a"][0]
    section = ParticipantSection("a", "", ("s1", "s2"), conf, rank, None, "", fs, tuple(got["a"][1:]))
    page = _page(tmp_path)
    text = render_html(dataclasses.replace(page, participants=[section]))
    line = text[text.index('id="p-a"'):]
    assert ("<li>head_spectrum flows: own model ranks 2; the other models that fit it best: d" in line
            and "<li>head_pose flows: identified (own model ranks first)" in line)
