"""DIS end to end on phantom cohorts: real faces, known person-specific head dynamics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from dis_core.cohort.stage import load_cohort, participant_features
from dis_core.features.build import DEFAULT_FEATURE_SETS
from dis_core.model.flows import load_density
from dis_core.manifest import load_manifest
from dis_core.phantom.render import PhantomConfig, make_cohort
from dis_core.layout import RunLayout
from dis_core.report.comparisons import at_chance
from dis_core.report.stage import evaluate_run
from dis_core.score.scoring import score_matrix
from dis_core.score.stats import holm
from dis_core.model.stage import MODEL_NAME, model_dir
from dis_core.model.config import default_train_config
from jobs.local import run_pipeline

HEAD = [default_train_config(DEFAULT_FEATURE_SETS["head_pose"])]


def _pipeline(manifest, out: Path, model):
    """dis run on this machine, then the run's findings read back as the report stage made them."""
    o = run_pipeline(manifest, out, model, HEAD, executor="local", workers=2, log=lambda *_: None)
    _, results, problems = evaluate_run(out, ["head_pose"])
    return o.results["extract"], o.results["train"], results, problems, RunLayout(out).workbook


def _cohort_run(root: Path, samples, model, swap: bool):
    cfg = PhantomConfig(participants=6, sessions=2, duration_s=20.0, fps=15.0, seed=0, swap_faces=swap)
    manifest = load_manifest(make_cohort(root / "videos", cfg, samples, model.path))
    ex, tr, results, problems, wb = _pipeline(manifest, root / "run", model)
    assert not problems and all(not r.failed for r in ex) and all(not r.failed for r in tr)
    return root / "run", results[0], wb


@pytest.fixture(scope="module")
def same_faces(tmp_path_factory, samples, model):
    return _cohort_run(tmp_path_factory.mktemp("phantom_same"), samples, model, swap=False)


@pytest.fixture(scope="module")
def swapped_faces(tmp_path_factory, samples, model):
    return _cohort_run(tmp_path_factory.mktemp("phantom_swap"), samples, model, swap=True)


# The swapped-face cohort is a second whole pipeline run (about 90 s on 2 cores): it runs with `make test-all`,
# beside the stricter 12-person swapped-face, moved-camera phantom (tests/test_identify_phantom.py).
@pytest.mark.parametrize("which", ["same_faces", pytest.param("swapped_faces", marks=pytest.mark.slow)])
def test_head_pose_dis_identifies_held_out_sessions(request, which):
    out, r, wb = request.getfixturevalue(which)
    fl, ga = r.methods["flow"].metrics, r.methods["gaussian"].metrics
    print(f"{which}: flows top-1 {fl['top1']:.2f} EER {fl['eer']:.3f} AUC {fl['auc']:.3f}; "
          f"Gaussian top-1 {ga['top1']:.2f} EER {ga['eer']:.3f}")
    assert len(r.participants) == 6
    # a bound against chance, not this draw's 6 of 6: 4 or more of 6 by guessing has p = 0.0087 (binomial, 1/6);
    # the report's own reading of the row: top-1 told apart from chance, EER and AUC not claimed on 6 people
    assert fl["top1"] >= 4 / 6
    assert at_chance(fl, len(r.participants)) == ["EER and AUC: too few people to tell (under 10)"]


@pytest.mark.slow
def test_swapped_sessions_really_show_other_faces(swapped_faces):
    out, r, wb = swapped_faces
    c = load_cohort(out)
    faces = {(e.participant_id, e.session): dict(e.extra)["face"] for e in c.entries}
    assert all(faces[(p, "s1")] != faces[(p, "s2")] for p in c.participants)


def test_workbook_score_matrix_equals_the_computed_one(same_faces):
    out, r, wb = same_faces
    sheet = pd.read_excel(wb, sheet_name="scores_head_pose", index_col=0)
    assert list(sheet.index) == r.participants and list(sheet.columns) == r.participants
    np.testing.assert_allclose(sheet.to_numpy(), r.methods["flow"].s, rtol=0, atol=1e-9)
    # and recomputed from the saved models and the held-out frames
    c = load_cohort(out)
    spec = DEFAULT_FEATURE_SETS["head_pose"]
    data = [participant_features(c, p, spec, "test") for p in r.participants]
    models = [load_density(model_dir(out, "head_pose", p) / MODEL_NAME)[0] for p in r.participants]
    s = score_matrix([[m.log_prob(d.x, d.columns) for d in data] for m in models])
    np.testing.assert_allclose(s, r.methods["flow"].s, rtol=1e-6)


def test_report_has_baseline_comparison_sheets_and_figures(same_faces):
    out, r, wb = same_faces
    book = openpyxl.load_workbook(wb, read_only=True)
    for name in ("summary", "metrics", "scores_head_pose", "ranks_head_pose", "pairs", "dyads", "training",
                 "left_out", "extraction_qc", "provenance"):
        assert name in book.sheetnames, name
    book.close()
    metrics = pd.read_excel(wb, sheet_name="metrics")
    assert set(metrics["method"]) == {"flow", "gaussian"}
    summary = pd.read_excel(wb, sheet_name="summary")
    verdict = " ".join(summary["value"].astype(str))
    # six people: below the comparisons' minimum of 10, the verdict claims nothing either way
    assert "too few people to tell whether the flows beat the Gaussian baseline" in verdict
    assert "do NOT beat" not in verdict and "(only 6 people: no claim below 10)" in verdict
    assert "flow - baseline" in verdict and "Holm" in verdict and "cross-session" not in verdict
    assert ("head_pose: own (each participant's rows alone), the flow started as the Gaussian of its rows, kept unless "
            "an epoch beat it on validation, a spline of 8 bins on each axis" in verdict)
    m = metrics.set_index("method")
    for k in ("top1", "eer", "auc"):
        assert (m[f"{k}_lo"] <= m[k] + 1e-12).all() and (m[k] <= m[f"{k}_hi"] + 1e-12).all()
    assert np.allclose(m["chance_top1"], 1 / 6)
    pairs = pd.read_excel(wb, sheet_name="pairs")
    assert len(pairs) == 2 * 36 and set(pairs["relation"]) == {"self", "partner", "stranger"}
    # a manifest column with one value per participant (the face shown) reaches the pair table
    faces = {e.participant_id: dict(e.extra)["face"] for e in load_cohort(out).entries}
    assert dict(zip(pairs["data_participant"], pairs["data_face"])) == faces
    assert dict(zip(pairs["model_participant"], pairs["model_face"])) == faces
    dy = pd.read_excel(wb, sheet_name="dyads")
    assert set(dy["comparison"]) == {"partner_vs_stranger"} and len(dy) == 2
    assert {"observed", "ci_lo", "ci_hi", "p", "p_holm", "effect_size"} <= set(dy.columns)
    assert (dy["p"] > 0).all()
    np.testing.assert_allclose(dy["p_holm"], holm(dy["p"]))  # the two methods' partner tests are one family
    # the partner family: whole in the workbook; a line in the page's summary and the terminal, whose count
    # is the workbook's (each test is listed in its own place on the page)
    k = int((dy["p_holm"] < 0.05).sum())
    brief = f"{k} of 2 one-sided permutation test(s) supported after Holm"
    assert str(summary.set_index("item").loc["partner tests", "value"]).count("Holm p") == 2
    page = (RunLayout(out).report_dir / "dis_report.html").read_text(encoding="utf-8")
    row = page.split("<th>partner tests</th><td>")[1].split("</td>")[0]
    assert row.startswith(brief) and row.endswith("(each test under Identification)") and "Holm p" not in row
    assert page.count("against pseudo-couples") == 2  # the tests, listed once, under Identification
    # what the run was made from, in the page's summary: the manifest it was planned from and the cohort record
    from dis_core.io.provenance import sha256_file

    manifest = Path(json.loads(RunLayout(out).run_record.read_text())["manifest"])
    assert f"<th>manifest sha256</th><td>{sha256_file(manifest)}</td>" in page
    assert f"<th>cohort record sha256</th><td>{RunLayout(out).cohort_sha256()}</td>" in page
    terminal = [ln for ln in (RunLayout(out).report_dir / "summary.txt").read_text().splitlines()
                if ln.startswith("  partners: ")]
    assert len(terminal) == 1 and terminal[0].startswith(f"  partners: {brief}") and "Holm p" not in terminal[0]
    cmp = pd.read_excel(wb, sheet_name="comparisons")
    assert {"top1_diff", "top1_diff_lo", "top1_diff_hi", "top1_mcnemar_p", "eer_diff"} <= set(cmp.columns)
    figs = RunLayout(out).figures_dir
    for f in ("heatmap_head_pose.png", "roc_det_head_pose.png", "norms_head_pose.png",
              "loss_curves_head_pose.png", "landmark_pca.png", "participant_map_head_pose.png"):
        assert (figs / f).stat().st_size > 10_000, f
    for p in r.participants:
        assert (model_dir(out, "head_pose", p) / "loss.png").is_file()


def test_nothing_is_scored_on_training_frames(same_faces):
    """Every scored frame is a test frame of the cohort's split (the phantom manifest's session split), in a
    video held out entirely, and none is among the frames the model records as trained on (the cross-session
    default: tests/test_synthetic_run.py)."""
    out, r, wb = same_faces
    c = load_cohort(out)
    assert {sp.rule for sp in c.splits.values()} == {"manifest"}
    for p in r.participants:
        _, blob = load_density(model_dir(out, "head_pose", p) / MODEL_NAME)
        trained = {u: set(v) for u, v in blob["train_frames"].items()}
        assert r.test_data_frames[p] and sum(len(f) for f in r.test_data_frames[p].values()) > 0
        for u, frames in r.test_data_frames[p].items():
            sp = c.splits[u]
            assert sp.test[frames].all() and not sp.train.any()  # a held-out video, only test frames scored
            assert not trained.get(u, set()) & set(frames.tolist())


def test_a_replaced_video_never_reuses_its_old_extraction(same_faces, tmp_path, model):
    """A finished run, then one video is replaced by a file that cannot be decoded: the re-run leaves
    that video out with its reason and scores no one from the stale extraction."""
    import shutil

    out, r, _ = same_faces
    videos = tmp_path / "videos"
    shutil.copytree(out.parent / "videos", videos)
    shutil.copytree(out, tmp_path / "run", ignore=shutil.ignore_patterns("*.lock", "lock"))
    manifest = load_manifest(videos / "manifest.csv")
    victim = next(e for e in manifest.entries if e.split == "test")
    victim.video.write_bytes(b"this is not a video any more\n" * 100)
    manifest = load_manifest(videos / "manifest.csv")
    ex, tr, results, problems, wb = _pipeline(manifest, tmp_path / "run", model)
    assert [x.unit_id for x in ex if x.failed] == [victim.unit_id]
    c = load_cohort(tmp_path / "run")
    why = {x["unit_id"]: x["reason"] for x in c.left_out}
    assert "another video content than the current file" in why[victim.unit_id]
    assert victim.participant_id not in results[0].participants
    assert sorted(results[0].participants) == sorted(p for p in r.participants if p != victim.participant_id)
    left = pd.read_excel(wb, sheet_name="left_out")
    assert victim.unit_id in set(left["unit_id"].dropna())


def test_models_and_scores_of_another_cohort_step_are_never_used(same_faces, tmp_path, model):
    """The cohort step is redone with another split after training: scoring refuses every model
    (they were trained on other rows), and the report refuses the scores made before."""
    import shutil

    from dis_core.cohort.config import CohortConfig
    from dis_core.cohort.split import SplitConfig
    from dis_core.cohort.stage import prepare_cohort
    from dis_core.layout import read_status
    from jobs.local import run_pipeline as run

    out, r, _ = same_faces
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir, ignore=shutil.ignore_patterns("*.lock"))
    manifest = load_manifest(out.parent / "videos" / "manifest.csv")
    prepare_cohort(manifest, run_dir, CohortConfig(split=SplitConfig(rule="within-session")))
    _, results, problems = evaluate_run(run_dir, ["head_pose"])
    assert not results and "made from another cohort step" in problems[0]["reason"]
    o = run(manifest, run_dir, model, HEAD, stages=["score"], log=lambda *_: None)
    st = read_status(RunLayout(run_dir).score_block_dir("head_pose", 0, 0))
    assert o.exit_code == 1 and st.failed and "fewer than two participants" in st.message
    from dis_core.score.stage import _models

    _, _, _, left = _models(load_cohort(run_dir), HEAD[0].features)
    # the new split also refits the landmark basis (fitted on training frames), which is checked first
    assert len(left) == 6 and all(x["reason"].startswith("model was trained on another") and "retrain" in x["reason"]
                                  for x in left)


def test_html_report_renders_in_a_browser(same_faces):
    """The run's HTML report in headless Chromium: no console error, every figure of the report folder
    embedded in the page and rendered at a non-zero size, nothing fetched; a screenshot beside it."""
    import base64

    from tests.browser import inspect_page
    from tests.test_report_html import _need_chromium

    _need_chromium()
    out, r, wb = same_faces
    page = RunLayout(out).report_dir / "dis_report.html"
    text = page.read_text(encoding="utf-8")
    figs = sorted(RunLayout(out).figures_dir.rglob("*.png"))
    assert len(figs) >= 7 + len(r.participants)  # heatmap, ROC/DET, norms, map, PCA, loss, headline; signatures
    for f in figs:
        assert base64.b64encode(f.read_bytes()).decode() in text, f"{f.name} is not embedded"
    shot = RunLayout(out).report_dir / "screenshot.png"
    res = inspect_page(page, shot)
    assert res["errors"] == [], res["errors"]
    assert all(u.startswith(("file:", "data:")) for u in res["requests"]) and not res["failed_requests"]
    imgs = res["images"]
    assert len(imgs) >= len(figs) + 3 * 12  # and three QC thumbnails per video
    assert all(i["complete"] and i["natural_w"] > 0 and i["shown_w"] > 0 and i["shown_h"] > 0 for i in imgs)
    assert shot.stat().st_size > 50_000
