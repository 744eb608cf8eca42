"""Cohort, training, scoring and report on synthetic extraction files (no video, no MediaPipe)."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import pytest
import torch

from dis_core.cohort.stage import load_cohort, participant_features, prepare_cohort
from dis_core.features.build import EXTRA_FEATURE_SETS, FEATURE_SETS
from dis_core.model.config import FlowConfig, TrainConfig
from dis_core.model.stage import train_unit
from dis_core.report.config import ReportConfig
from dis_core.report.stage import report_unit
from dis_core.score.config import ScoreConfig
from dis_core.score.stage import load_scores, score_block_unit
from tests.synthrun import make_run

TINY = FlowConfig(layers=1, hidden=8, max_epochs=3, device="cpu")


def _train_and_score(out: Path, cfg: TrainConfig) -> None:
    c = load_cohort(out)
    for p in c.participants:
        r = train_unit(out, p, cfg)
        assert r.status == "ok", r.message
    r = score_block_unit(out, cfg, 0, 0, c.participants, ScoreConfig(min_test_frames=1))
    assert r.status == "ok", r.message


@pytest.mark.slow
def test_norm_workbooks_of_window_rows_label_each_window_by_its_own_video_and_centre(tmp_path):
    """Window rows (head_spectrum): each pair's workbook has one row per scored window, labelled with
    the data participant's video and the window's centre frame (once labelled with the covered frames of
    the first participant: another person's video, and frames that were not the rows)."""
    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=60), out)
    spec = FEATURE_SETS["head_spectrum"]
    cfg = TrainConfig(spec, TINY, min_train_frames=20)
    _train_and_score(out, cfg)
    r = report_unit(out, [spec.name], ReportConfig(norm_workbooks=True))
    assert r.status == "ok", r.message
    c = load_cohort(out)
    sc = load_scores(out, spec.name)
    for pj in c.participants:
        td = participant_features(c, pj, spec, "test")
        (uid, centres), = td.rows.items()
        assert uid == c.videos_of(pj)[0].unit_id and len(centres) == len(td.x) > 3
        assert len(td.frames[uid]) > 5 * len(centres)  # the covered frames are many more than the rows
        for pi in c.participants:
            wb = pd.read_excel(out / "report" / "norms" / spec.name / pi / f"{pj}.xlsx", sheet_name="norms")
            assert list(wb["unit_id"].unique()) == [uid] and set(wb["model"]) == {pi} and set(wb["data"]) == {pj}
            assert wb["frame"].tolist() == centres.tolist()
            np.testing.assert_allclose(wb["log_p"], sc.store.pair("flow", pi, pj)["log_p"])
        assert sc.test_data_frames[pj][uid].tolist() == centres.tolist()
    # a report without them removes an earlier report's: their models and people may no longer be the run's
    assert report_unit(out, [spec.name], ReportConfig(norm_workbooks=False)).status == "ok"
    assert not (out / "report" / "norms").exists()


def test_norm_workbooks_of_ids_holding_double_underscores_are_each_their_own(tmp_path):
    """Model x on y__z's data and model x__y on z's were both 'x__y__z.xlsx': one overwrote the other unsaid."""
    from types import SimpleNamespace as NS

    from dis_core.report.stage import _norm_workbooks

    def pairs(method):
        for pi, pj in (("x", "y__z"), ("x__y", "z")):
            yield pi, pj, {"unit_id": np.array([f"{pj}_s1"] * 2), "frame": np.array([0, 1]),
                           "log_p": np.array([-1.0, -2.0]), "norm": np.array([0.5, 0.5])}
    _norm_workbooks(tmp_path, [NS(feature_set="fs", per_frame=NS(pairs=pairs))], {"made_by": "test"})
    for pi, pj in (("x", "y__z"), ("x__y", "z")):
        wb = pd.read_excel(tmp_path / "fs" / pi / f"{pj}.xlsx", sheet_name="norms")
        assert set(wb["model"]) == {pi} and set(wb["data"]) == {pj} and set(wb["unit_id"]) == {f"{pj}_s1"}


def test_a_model_of_another_training_configuration_is_not_scored_as_the_runs(tmp_path):
    """An interrupted `dis train --max-epochs 60` left the plan at 60 over models trained with 2, and `dis score`
    scored them as the run's. A model whose recorded configuration is not the run's is left out, saying why."""
    from dis_core.score.stage import RunSource

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=40), out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20)
    for p in load_cohort(out).participants:
        assert train_unit(out, p, cfg).status == "ok"
    assert not isinstance(RunSource(out, cfg, ScoreConfig()).participant("p0"), str)
    other = dataclasses.replace(cfg, flow=dataclasses.replace(TINY, max_epochs=4))
    why = RunSource(out, other, ScoreConfig()).participant("p0")
    assert why == "model was trained under another training configuration than the run's: retrain (dis train)"


def test_part_files_of_a_killed_cohort_step_or_report_are_removed_by_the_next(tmp_path):
    """kill -9 during a report left `.excerpts_head_pose.png.part-...` in report/figures for good, a successful
    re-run beside it; so in cohort/, summary/ and the run folder."""
    from dis_core.extract.summary import write_extract_summary
    from dis_core.layout import RunLayout

    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=40)
    lay = RunLayout(out)
    places = (lay.cohort_dir, lay.report_dir, lay.figures_dir, lay.figures_dir / "participants", lay.summary_dir)
    for d in places:
        d.mkdir(parents=True, exist_ok=True)
        (d / ".x.png.part-1234-deadbeef").write_bytes(b"half")
    prepare_cohort(m, out)
    _train_and_score(out, TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20))
    assert report_unit(out, ["head_pose"], ReportConfig(excerpts_s=())).status == "ok"
    write_extract_summary(out, [], {})
    assert not [p for d in places for p in d.iterdir() if ".part-" in p.name]


def _blend(k: int, T: int) -> np.ndarray:
    """Participant k's blendshape scores: channel 0 never moves for anyone (exactly 0), channel 1 is
    fixed at 0.3 for participant 0 and moves for everyone else, the rest move."""
    rng = np.random.default_rng(100 + k)
    b = 1 / (1 + np.exp(-rng.normal(-2 + 0.3 * k, 1.0, (T, 52))))
    b[:, 0] = 0.0
    if k == 0:
        b[:, 1] = 0.3
    return b


@pytest.mark.slow
def test_dead_channels_are_dropped_and_a_channel_one_person_never_moves_is_fixed_not_floored(tmp_path):

    from dis_core.features.build import DEFAULT_FEATURE_SETS, LOGIT_EPS
    from dis_core.model.flows import load_density
    from dis_core.model.stage import BASELINE_NAME, MODEL_NAME, SUMMARY_NAME, model_dir

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=4, seconds=40, blend_of=_blend), out)
    c = load_cohort(out)
    spec = DEFAULT_FEATURE_SETS["blendshapes"]
    names = list(c.column_stats(spec).columns)
    assert c.column_stats(spec).dead == [names[0]]  # recorded by the cohort step (read back from cohort.json)
    cfg = TrainConfig(spec, FlowConfig(layers=1, hidden=8, max_epochs=20, device="cpu"), min_train_frames=20)
    _train_and_score(out, cfg)
    d0 = model_dir(out, spec.name, "p0")
    summary = json.loads((d0 / SUMMARY_NAME).read_text())
    assert summary["dropped_columns"] == [names[0]] and summary["fixed_columns"] == [names[1]]
    assert json.loads((model_dir(out, spec.name, "p1") / SUMMARY_NAME).read_text())["fixed_columns"] == []
    spread = c.column_stats(spec).spread_of([names[1]])[0]
    x1 = participant_features(c, "p1", spec, "test")
    assert x1.columns == names[1:]
    for name in (MODEL_NAME, BASELINE_NAME):
        m, blob = load_density(d0 / name)
        assert m.columns == names[1:] and blob["columns_treatment"]["fixed"] == [names[1]]
        lp = m.log_prob(x1.x, x1.columns)
        assert np.isfinite(lp).all() and lp.min() > -1e3, lp.min()
        # known answer: the fixed channel is N(p0's constant, the cohort's spread^2), independent of the rest
        centre = np.log(0.3 / 0.7) - np.median(np.log(0.3 / 0.7) * np.ones(1))  # session-centred: 0
        assert m.mean[0] == pytest.approx(centre, abs=1e-9) and m.std[0] == pytest.approx(spread)
        at_centre = x1.x.copy()
        at_centre[:, 0] = centre
        np.testing.assert_allclose(lp - m.log_prob(at_centre, x1.columns), -0.5 * ((x1.x[:, 0] - centre) / spread) ** 2,
                                   rtol=1e-6, atol=1e-6)
    assert spread > 0.5 and LOGIT_EPS == 1e-4


def test_lagged_rows_get_the_autoregressive_baseline_fitted_and_scored_on_the_flows_rows(tmp_path):
    """head_lags trains flow, Gaussian and AR on the same training rows; the AR's scores in the blocks
    are the trimmed mean of its log p(present | past) on each participant's held-out rows."""
    from dis_core.model.baselines import ARGaussian
    from dis_core.model.config import methods_of
    from dis_core.model.flows import fit_gaussian
    from dis_core.score.scoring import pair_score

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=30), out)
    cfg = TrainConfig(EXTRA_FEATURE_SETS["head_lags"], TINY, min_train_frames=20)
    assert methods_of(cfg) == ("flow", "gaussian", "ar")
    _train_and_score(out, cfg)
    c, sc = load_cohort(out), load_scores(out, "head_lags")
    assert set(sc.s) == {"flow", "gaussian", "ar"}
    tr = {p: participant_features(c, p, cfg.features, "train") for p in c.participants}
    te = {p: participant_features(c, p, cfg.features, "test") for p in c.participants}
    for i, pi in enumerate(sc.participants):
        ar = ARGaussian().fit(tr[pi].x, tr[pi].columns)
        ga = fit_gaussian(tr[pi].x, tr[pi].columns)  # the Gaussian baseline: the same rows as well
        for j, pj in enumerate(sc.participants):
            assert sc.s["ar"][i, j] == pytest.approx(pair_score(ar.score_samples(te[pj].x)), rel=1e-9)
            assert sc.s["gaussian"][i, j] == pytest.approx(pair_score(ga.log_prob(te[pj].x, tr[pi].columns)),
                                                           rel=1e-9)
        blob = torch_blob(c.layout.model_dir("head_lags", pi) / "model.pt")  # and the flow's rows are these
        assert blob["train_frames"] == {u: f.tolist() for u, f in tr[pi].frames.items()}


def test_a_pooled_feature_set_places_the_cohort_shape_at_each_participants_mean(tmp_path):
    """The pooled stage fits one shape on every participant's centred training rows; a participant's flow
    and Gaussian are that shape moved to their training mean, and training waits for the shape."""
    from dis_core.layout import RunLayout
    from dis_core.model.flows import load_density
    from dis_core.model.stage import BASELINE_NAME, MODEL_NAME, pooled_unit

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=40), out)
    cfg = TrainConfig(FEATURE_SETS["head_spectrum"], TINY, min_train_frames=20, density="pooled")
    first = train_unit(out, "p0", cfg)
    assert first.status == "failed" and "pooled shape is missing" in first.message
    r = pooled_unit(out, cfg)
    assert r.status == "ok", r.message
    assert pooled_unit(out, cfg).status == "skipped"
    c, lay = load_cohort(out), RunLayout(out)
    # a damaged shape is fitted again (it was skipped as current, and every participant failed on it), and a
    # damaged checkpoint is only not resumed from (it failed every training, --force too, with torch's advice to
    # load it unsafely)
    kept = (lay.pooled_dir("head_spectrum") / MODEL_NAME).read_bytes()
    (lay.pooled_dir("head_spectrum") / MODEL_NAME).write_bytes(b"garbage")
    (lay.pooled_dir("head_spectrum") / "train_ckpt.pt").write_bytes(b"garbage")
    again = pooled_unit(out, cfg)
    assert again.status == "ok" and again.key == r.key, again.message
    # full batches: the same fit (the bytes differ only by the provenance's creation time)
    before, after = (torch.load(io.BytesIO(b), weights_only=True)
                     for b in (kept, (lay.pooled_dir("head_spectrum") / MODEL_NAME).read_bytes()))
    assert before.keys() == after.keys() and before["history"] == after["history"]
    for k, v in before["state_dict"].items():
        assert torch.equal(v, after["state_dict"][k]), k
    rec = json.loads((lay.pooled_dir("head_spectrum") / "train.json").read_text())
    assert rec["provenance"]["unit_key"] == rec["key"] == r.key and rec["provenance"]["participants"] == c.participants
    shape, _ = load_density(lay.pooled_dir("head_spectrum") / MODEL_NAME)
    gshape, _ = load_density(lay.pooled_dir("head_spectrum") / BASELINE_NAME)
    _train_and_score(out, cfg)
    for p in c.participants:
        x = participant_features(c, p, cfg.features, "train")
        flow, blob = load_density(lay.model_dir("head_spectrum", p) / MODEL_NAME)
        gauss, _ = load_density(lay.model_dir("head_spectrum", p) / BASELINE_NAME)
        np.testing.assert_allclose(flow.offset, x.x.mean(axis=0))
        v = participant_features(c, p, cfg.features, "test").x
        np.testing.assert_allclose(flow.log_prob(v, x.columns), shape.log_prob(v - flow.offset, x.columns), rtol=1e-6)
        np.testing.assert_allclose(gauss.log_prob(v, x.columns), gshape.log_prob(v - x.x.mean(axis=0), x.columns),
                                   rtol=1e-9)
        assert "pooled_key" in blob["provenance"]
    lay.cohort_record.write_text(lay.cohort_record.read_text().replace("{", "{ ", 1))  # another cohort step
    again = train_unit(out, "p0", cfg)
    assert again.status == "failed" and "pooled shape was fitted on another cohort step" in again.message


def test_an_extraction_under_another_fps_override_than_the_manifest_now_is_not_used(tmp_path):
    """The manifest's fps of a video changed after its extraction (`dis cohort` without `dis extract`): the
    cohort step used frame times of the old rate and recorded the new row. It now leaves the video out, saying
    to extract it again."""
    import dataclasses

    out = tmp_path / "out"
    m = make_run(out, n=4, seconds=30)
    assert len(prepare_cohort(m, out).entries) == 4
    now = dataclasses.replace(m, entries=tuple(dataclasses.replace(e, fps=30.0) if e.participant_id == "p0" else e
                                               for e in m.entries))
    c = prepare_cohort(now, out)
    assert [e.participant_id for e in c.entries] == ["p1", "p2", "p3"]
    assert [x["reason"] for x in c.left_out] == ["extraction was made under another fps override than the manifest's "
                                                 "now (30.0): run dis extract (it extracts this video again)"]


def test_someone_left_out_of_scoring_and_retrained_since_is_scored_again_and_a_span_of_no_models_scores(tmp_path):
    """p3 is left out of scoring for too few held-out frames. Its model, damaged and made again by dis train,
    made the report refuse the scores, and dis score skipped every block as current, so the refusal never
    cleared: the block's key now holds the model files of those it left out. With blocks of two, p4 alone in
    the last span and left out too, that span's blocks (no model row) failed in h5py on every run."""
    from dis_core.errors import DISError
    from dis_core.model.stage import MODEL_NAME
    from dis_core.score.config import block_grid

    out = tmp_path / "out"
    frames = 30 * 15
    short = lambda k, si: range(int(frames * 0.6), frames) if k >= 3 else ()  # noqa: E731 - too few held out
    prepare_cohort(make_run(out, n=5, seconds=30, hidden_of=short), out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY)
    c = load_cohort(out)
    assert all(train_unit(out, p, cfg).status == "ok" for p in c.participants)
    sc = ScoreConfig(min_test_frames=60, block_size=2)
    score = lambda: {rc: score_block_unit(out, cfg, *rc, c.participants, sc).status  # noqa: E731
                     for rc in block_grid(len(c.participants), sc)}
    assert set(score().values()) == {"ok"}
    got = load_scores(out, "head_pose")
    assert got.participants == ["p0", "p1", "p2"] and {x["participant_id"] for x in got.left_out} == {"p3", "p4"}
    f = c.layout.model_dir("head_pose", "p3") / MODEL_NAME
    f.write_bytes(b"garbage")
    time.sleep(1.1)  # a model's bytes hold its creation time to the second: retrained, they differ
    assert train_unit(out, "p3", cfg).status == "ok"
    with pytest.raises(DISError, match=r"p3's model was trained, retrained or removed since p3 was left out"):
        load_scores(out, "head_pose")
    assert "ok" in score().values()  # the blocks that left p3 out are scored again, not skipped
    assert load_scores(out, "head_pose").participants == ["p0", "p1", "p2"]
    assert set(score().values()) == {"skipped"}


@pytest.mark.parametrize("damage", ["cohort.json", "cohort.json {}", "split.npz", "split.npz cut"])
def test_a_damaged_cohort_record_is_one_line_naming_its_file(tmp_path, damage):
    """Garbage in cohort/cohort.json or cohort/split.npz failed every later unit as an internal error
    (JSONDecodeError, a pickle refusal), naming no file. Each unit now says which file and what to do."""
    from dis_core.layout import RunLayout

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=30), out)
    lay = RunLayout(out)
    path = lay.cohort_record if damage.startswith("cohort.json") else lay.split_record
    if damage == "cohort.json {}":
        path.write_text("{}")
    elif damage == "split.npz cut":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(b"garbage\n")
    r = train_unit(out, "p0", TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20))
    assert r.status == "failed" and "\n" not in r.message, r.message
    assert r.message.startswith(f"{path}: not a readable ") and r.message.endswith(
        f": rerun the cohort step (dis cohort --out {out})"), r.message
    assert "internal error" not in r.message


def test_frame_windows_are_reduced_by_a_basis_of_training_windows_that_models_record(tmp_path):
    """head_windows: the cohort step fits the PCA basis on the training windows only (rewriting every test
    frame leaves it unchanged), records it with its hash, and models trained on it are refused once the
    cohort's basis is another."""
    import dataclasses

    import h5py

    from dis_core.cohort.stage import save_cohort
    from dis_core.features.build import base_values, video_features
    from dis_core.features.temporal import fit_window_basis
    from dis_core.layout import RunLayout
    from dis_core.model.config import default_train_config, methods_of
    from dis_core.model.flows import load_density
    from dis_core.model.stage import MODEL_NAME
    from dis_core.extract.h5store import read_extraction
    from dis_core.score.stage import RunSource

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=30), out)
    c, lay = load_cohort(out), RunLayout(out)
    spec = EXTRA_FEATURE_SETS["head_windows"]
    assert default_train_config(spec).density == "own" and methods_of(default_train_config(spec)) == ("flow", "gaussian")
    rec = json.loads(lay.cohort_record.read_text())["window_bases"]["head_windows"]
    basis = c.window_basis(spec)
    assert rec["sha256"] == basis.sha256 and lay.window_basis("head_windows").is_file()
    # known answer: the PCA of every video's raw training windows
    raw = []
    for e in c.entries:
        x = read_extraction(lay.extraction(e.unit_id))
        tr = c.splits[e.unit_id].train
        v, cols = base_values("head_rotation", transform=x.transform, fit=tr)
        raw.append(video_features(v, cols, x.time_s, tr, tr, spec).x)
    again = fit_window_basis(np.concatenate(raw), video_features(v, cols, x.time_s, tr, tr, spec).columns, spec.k)
    np.testing.assert_allclose(np.abs(basis.components), np.abs(again.components), atol=1e-9)
    # the test frames never shape it
    for e in c.entries:
        test = c.splits[e.unit_id].test
        with h5py.File(lay.extraction(e.unit_id), "r+") as f:
            m = f["transform"][:]
            m[test, :3, :3] = m[test, :3, :3][:, ::-1]  # another head motion altogether
            f["transform"][:] = m
    assert prepare_cohort(_manifest_of(c), out).window_basis(spec).sha256 == basis.sha256
    # trained and scored on the 12 axes; the models record the basis
    cfg = TrainConfig(spec, TINY, min_train_frames=20)
    _train_and_score(out, cfg)
    _, blob = load_density(lay.model_dir("head_windows", "p0") / MODEL_NAME)
    assert blob["basis_sha256"].endswith(basis.sha256) and load_scores(out, "head_windows").s["flow"].shape == (3, 3)
    assert participant_features(c, "p0", spec, "test").columns == [f"wpc{i}" for i in range(1, 13)]
    # another cohort basis: the models are stale, scoring says why
    c = load_cohort(out)
    other = dataclasses.replace(basis, components=basis.components[::-1].copy())
    c.window_bases["head_windows"] = (c.window_bases["head_windows"][0], other)
    save_cohort(c)
    assert "another landmark or window basis" in RunSource(out, cfg, ScoreConfig(min_test_frames=1)).participant("p0")
    assert score_block_unit(out, cfg, 0, 0, c.participants, ScoreConfig(min_test_frames=1)).status == "failed"
    lay.window_basis("head_windows").write_bytes(basis.to_bytes())  # a file that is not the recorded basis
    with pytest.raises(Exception, match="is not the window basis"):
        load_cohort(out)


def _manifest_of(c):
    from dis_core.manifest import Manifest

    return Manifest(c.out_root.parent / "manifest.csv", tuple(c.entries), ())


def test_a_window_feature_set_that_does_not_fit_short_recordings_is_left_out_with_the_reason(tmp_path):
    """10 s single-session videos split within the session leave a 2 s test part: no 8 s window fits, so
    the cohort step records that head_spectrum does not apply; its pooled, training and scoring units are
    left out (done, not failed) saying why, and the report lists it. With 40 s videos it applies."""

    from dis_core.layout import RunLayout
    from dis_core.model.config import default_train_config
    from dis_core.model.stage import pooled_unit
    from dis_core.report.stage import evaluate_run

    spec = FEATURE_SETS["head_spectrum"]
    out = tmp_path / "short"
    c = prepare_cohort(make_run(out, n=3, seconds=10), out)
    why = c.inapplicable(spec)
    assert why.startswith("head_spectrum does not apply to this cohort: 0 participant(s)") and "8 s of face" in why
    assert json.loads(RunLayout(out).cohort_record.read_text())["not_applicable"]["head_spectrum"]["reason"] == why
    assert "head_spectrum" not in load_cohort(out).feature_stats
    cfg = default_train_config(spec)
    units = [pooled_unit(out, cfg), train_unit(out, "p0", cfg), score_block_unit(out, cfg, 0, 0, c.participants)]
    assert all(u.status == "left_out" and u.done and u.message == why for u in units)
    _, results, problems = evaluate_run(out, ["head_spectrum"])
    assert not results and problems == [{"stage": "cohort", "feature_set": "head_spectrum", "reason": why}]
    # 45 s videos hold out 9 s: a window or two each, scored (frames in complete windows count, not rows)
    long = tmp_path / "long"
    c = prepare_cohort(make_run(long, n=3, seconds=45), long)
    assert c.inapplicable(spec) is None and len(participant_features(c, "p0", spec, "test").x) < 20
    tiny = TrainConfig(spec, TINY, min_train_frames=20, density="pooled")
    assert pooled_unit(long, tiny).status == "ok"
    _train_and_score(long, tiny)
    assert load_scores(long, "head_spectrum").s["flow"].shape == (3, 3)
    # two sessions of 10 s (the phantom's default): each trains on 5 windows, too few to validate on one apart
    # from the 16 sharing its frames (the pooled stage failed with a ValueError and stopped every feature set)
    two = tmp_path / "two"
    c = prepare_cohort(make_run(two, n=3, seconds=10, sessions=2), two)
    assert c.inapplicable(spec).endswith("it needs at least 16.5 s of face for training and 8 s of face for testing")
    assert pooled_unit(two, cfg).status == "left_out"


def test_window_bases_come_only_from_the_cohort_step(tmp_path):
    """A window basis is fitted once, by the cohort step (for the named sets and the run's own specs), and
    never refitted by a unit; a missing basis file is named, not a traceback."""
    import dataclasses

    from dis_core.errors import DISError
    from dis_core.layout import RunLayout

    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=30)
    custom = dataclasses.replace(EXTRA_FEATURE_SETS["head_windows"], name="my_windows", window_s=1.0)
    c = prepare_cohort(m, out)
    with pytest.raises(DISError, match="fitted no window basis for this definition.*rerun the cohort step"):
        c.window_basis(custom)
    c = prepare_cohort(m, out, specs=[custom])
    assert load_cohort(out).window_basis(custom).sha256 == c.window_basis(custom).sha256
    RunLayout(out).window_basis("my_windows").unlink()
    with pytest.raises(DISError, match="window_basis_my_windows.npz: the window basis .* cannot be read"):
        load_cohort(out)


def test_the_cohort_landmark_basis_is_the_one_shot_fit_of_the_training_shapes(tmp_path):
    """The cohort step fits the landmark basis a video at a time (memory independent of the cohort's size):
    it equals one SVD of every video's aligned, median-centred training shapes (written out here); with a
    Procrustes reference drawn from a few frames only, the axes stay the same, and cohort.json says how many
    frames went into each."""

    from dis_core.cohort.config import CohortConfig
    from dis_core.extract.h5store import read_extraction
    from dis_core.features.build import landmark_points, mean_shape, procrustes_align
    from dis_core.layout import RunLayout

    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=20)
    c = prepare_cohort(m, out, CohortConfig(basis_frames_per_video=10_000))
    pts = []
    for e in c.entries:
        x = read_extraction(RunLayout(out).extraction(e.unit_id))
        sel = c.splits[e.unit_id].train & x.detected
        pts.append(landmark_points(x.landmarks[sel], int(x.video["width"]), int(x.video["height"])))
    ref = mean_shape(np.concatenate(pts))
    aligned = [procrustes_align(p, ref).reshape(len(p), -1) for p in pts]
    centred = np.concatenate([a - np.median(a, axis=0) for a in aligned])
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(c.basis.reference, ref, atol=1e-12)
    np.testing.assert_allclose(c.basis.mean, np.concatenate(aligned).mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(np.abs(c.basis.components), np.abs(vt[:c.config.basis_k]), atol=1e-9)
    np.testing.assert_allclose(c.basis.explained, s[:c.config.basis_k] ** 2 / (s ** 2).sum(), atol=1e-12)
    n = len(centred)
    assert json.loads(RunLayout(out).cohort_record.read_text())["basis_frames"] == {"pca": n, "reference": n}
    few = prepare_cohort(m, out, CohortConfig(basis_frames_per_video=10_000, basis_reference_frames=30))
    assert few.basis.sha256 != c.basis.sha256 and few.basis_frames == {"pca": n, "reference": 30}
    cos = np.abs(np.sum(few.basis.components[:3] * vt[:3], axis=1))
    assert cos.min() > 0.999, cos


def test_masks_or_a_landmark_basis_changed_after_the_cohort_step_are_refused(tmp_path):
    """cohort.json names the train/test masks (by their content) and the landmark basis by their hashes: the same
    cohort gives the same record again, and a file changed or removed afterwards is refused by name instead of
    being read."""
    import shutil

    from dis_core.errors import DISError
    from dis_core.layout import RunLayout

    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=20)
    c = prepare_cohort(m, out)
    lay = RunLayout(out)
    doc = json.loads(lay.cohort_record.read_text())
    masks, basis = lay.split_record.read_bytes(), lay.landmark_basis.read_bytes()
    assert prepare_cohort(m, out).basis.sha256 == doc["basis_sha256"] == c.basis.sha256
    assert lay.split_record.read_bytes() == masks and json.loads(lay.cohort_record.read_text()) == doc
    keep = tmp_path / "keep"
    shutil.copytree(lay.cohort_dir, keep)
    with np.load(lay.split_record) as z:  # the same masks in other bytes (uncompressed): the content is what counts
        same = {k: z[k] for k in z.files}
    np.savez(lay.split_record, **same)
    assert lay.split_record.read_bytes() != masks and load_cohort(out).splits.keys() == c.splits.keys()
    with np.load(lay.split_record) as z:
        flipped = {k: (~z[k] if k.startswith("test__") else z[k]) for k in z.files}
    np.savez_compressed(lay.split_record, **flipped)
    with pytest.raises(DISError, match=r"split.npz does not hold the train/test masks that .*cohort.json records "
                                       r"\(changed since the cohort step\): rerun the cohort step"):
        load_cohort(out)
    shutil.copy(keep / lay.split_record.name, lay.split_record)
    lay.landmark_basis.unlink()
    with pytest.raises(DISError, match=r"landmark_basis.npz: the landmark basis .*cohort.json records cannot be read "
                                       r"\(FileNotFoundError\): rerun the cohort step"):
        load_cohort(out)
    lay.landmark_basis.write_bytes(basis[: len(basis) // 2])  # truncated (a full disk): named, not a bug
    with pytest.raises(DISError, match=r"landmark_basis.npz: the landmark basis .*cohort.json records cannot be read "
                                       r"\(ValueError\): rerun the cohort step"):
        load_cohort(out)
    lay.landmark_basis.write_bytes(basis)
    assert load_cohort(out).basis.sha256 == c.basis.sha256


def test_the_procrustes_reference_shares_frames_out_fairly_within_its_cap():
    from dis_core.cohort.stage import reference_shares

    assert reference_shares([300, 100], 1000).tolist() == [300, 100]  # everything fits: every frame
    assert reference_shares([300] * 20 + [100] * 20, 8000).tolist() == [300] * 20 + [100] * 20
    # over the cap: short videos keep all theirs, the long ones share the rest alike
    assert reference_shares([300] * 10 + [10] * 50, 2500).tolist() == [200] * 10 + [10] * 50
    assert reference_shares([5, 50, 500], 100).tolist() == [5, 47, 47]
    got = reference_shares([300] * 7, 10)  # fewer frames than videos x 1 would need: L = 1
    assert got.tolist() == [1] * 7
    many = reference_shares([300] * 50, 10)  # more videos than the cap: one frame from 10 of them, spread
    assert many.sum() == 10 and set(many.tolist()) == {0, 1} and many[0] == many[-1] == 1


def test_a_pair_table_longer_than_a_sheet_goes_to_a_csv_beside_the_workbook(tmp_path, monkeypatch):
    """Pairs grow as N^2 x methods x feature sets: about 500 people with two feature sets fill an Excel
    sheet. Then every pair goes to report/pairs.csv.gz (the same rows and columns) and the sheet says
    so; a later run whose pairs fit takes the file away. The sheet's limit is lowered here to 4 people."""

    import dis_core.report.stage as report_stage
    from dis_core.io.provenance import sha256_file, version_text

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=4, seconds=30), out)
    spec = FEATURE_SETS["head_pose"]
    _train_and_score(out, TrainConfig(spec, TINY, min_train_frames=20))
    wb, csv = out / "report" / "dis_report.xlsx", out / "report" / "pairs.csv.gz"
    assert report_unit(out, [spec.name]).status == "ok"
    sheet = pd.read_excel(wb, sheet_name="pairs")
    assert len(sheet) == 2 * 4 * 4 and not csv.exists()  # flow and Gaussian, 4 x 4 pairs each
    assert sheet["score"].notna().all() and set(sheet["relation"]) >= {"self", "stranger"}
    npz = np.load(out / "report" / "scores_head_pose.npz")  # each row is its pair's cell of the matrices
    pids = list(npz["participants"])
    for m in ("flow", "gaussian"):
        rows = sheet[sheet["method"] == m]
        i, j = rows["model_participant"].map(pids.index), rows["data_participant"].map(pids.index)
        np.testing.assert_allclose(rows["score"], npz[f"s_{m}"][i, j], rtol=1e-12)
        assert (rows["rank_of_model_for_data"] == 1).sum() == 4  # one best model per data column
        # the similarity the map and the partner test read, the same on both rows of a pair, empty for oneself
        from dis_core.score.stats import pair_similarity

        sim = pair_similarity(npz[f"s_{m}"])
        off = i.to_numpy() != j.to_numpy()
        np.testing.assert_allclose(rows["similarity"][off], sim[i, j][off], rtol=1e-12)
        assert rows["similarity"][~off].isna().all()
    training = pd.read_excel(wb, sheet_name="training").set_index("participant_id")
    flows = sheet[sheet["method"] == "flow"]
    assert (flows["held_out_rows"].to_numpy() == training.loc[flows["data_participant"], "held_out_rows"].to_numpy()).all()
    # what the report was made from: the split that ran, the cohort record and the very score matrices
    prov = dict(pd.read_excel(wb, sheet_name="provenance").astype(str).values)
    assert prov["cohort_sha256"] == load_cohort(out).layout.cohort_sha256()
    assert "within-session" in prov["split_rule"]
    assert len(prov["scores_sha256_head_pose"]) == 64
    assert pd.read_excel(wb, sheet_name="dyads")["alternative"].str.startswith("one-sided").all()
    summary = (out / "report" / "summary.txt").read_text()
    assert "pair score: mean per-frame log-likelihood after trimming" in summary
    if prov["source_revision"] != "unknown":  # a git checkout or the image: the commit beside the version
        assert f"made by: DIS {prov['dis_version']} ({prov['source_revision'][:12]}" in summary
    assert f"made by: {version_text(prov)}; face model not recorded, manifest not recorded, cohort record " \
           f"{prov['cohort_sha256'][:12]} (sha256 prefixes" in summary  # a report made outside a run: no plan
    # the arrays people load for re-analysis carry the same record as the workbook
    npz_prov = json.loads(npz["provenance"].item())
    assert npz_prov["cohort_sha256"] == prov["cohort_sha256"] and npz_prov["split_rule"] == prov["split_rule"]
    assert npz_prov["dis_version"] == prov["dis_version"] and "pairs_csv_sha256" not in prov

    monkeypatch.setattr(report_stage, "SHEET_MAX_ROWS", 31)
    assert report_unit(out, [spec.name]).status == "ok"
    note = pd.read_excel(wb, sheet_name="pairs")["note"][0]
    assert note.startswith("32 pairs") and "pairs.csv.gz" in note
    pd.testing.assert_frame_equal(pd.read_csv(csv), sheet, check_dtype=False)
    prov = dict(pd.read_excel(wb, sheet_name="provenance").astype(str).values)
    assert prov["pairs_csv_sha256"] == sha256_file(csv)  # the table too long for a sheet, named by its hash

    monkeypatch.undo()
    assert report_unit(out, [spec.name]).status == "ok"
    assert not csv.exists() and len(pd.read_excel(wb, sheet_name="pairs")) == 32


def test_participants_without_a_signature_do_not_take_the_pages_embedded_places(tmp_path, monkeypatch):
    """The page embeds up to a cap of signatures; a participant whose videos cannot be read has no signature
    and must not use up a place that another participant's signature would fill."""
    import functools

    import dis_core.report.page as page
    from dis_core.report.html import embedded_signatures

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=4, seconds=30), out)
    c = load_cohort(out)
    for e in c.videos_of("p0") + c.videos_of("p1"):  # first in cohort order: before, they took both places
        c.layout.extraction(e.unit_id).unlink()
    monkeypatch.setattr(page, "embedded_signatures", functools.partial(embedded_signatures, cap=2))
    secs = {s.participant_id: s for s in page._participants(tmp_path / "figs", c, [], {})}
    assert secs["p0"].figure is None and secs["p1"].figure is None and not secs["p0"].link
    assert secs["p2"].figure is not None and secs["p3"].figure is not None


def test_a_models_loss_figure_names_its_inputs_and_the_per_frame_scores_their_cohort(tmp_path):
    """A loss figure copied into a supplement can be traced to each video's content key and the split rule that
    made it, a logp.h5 read on its own to the cohort record and split rules."""

    import h5py

    from dis_core.io.readback import output_provenance

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=30), out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20)
    _train_and_score(out, cfg)
    c = load_cohort(out)
    png = output_provenance(c.layout.model_dir("head_pose", "p1") / "loss.png")
    # its videos' content keys and split rule (a model outlives a cohort step run again with the same inputs)
    assert json.loads(png["inputs"]) == c.inputs_of("p1") and png["basis_sha256"] == c.bases_sha256(cfg.features)
    assert all(v.endswith("|temporal") for v in json.loads(png["inputs"]).values()), png["inputs"]
    rec = json.loads((c.layout.model_dir("head_pose", "p1") / "train.json").read_text())  # the same record
    assert {k: rec["provenance"][k] for k in png} == png and rec["provenance"]["unit_key"] == rec["key"]
    with h5py.File(c.layout.score_block_dir("head_pose", 0, 0) / "logp.h5", "r") as f:
        prov = json.loads(f.attrs["provenance"])
    assert prov["cohort_sha256"] == c.layout.cohort_sha256() and prov["split_rules"] == "temporal"


def test_scoring_refuses_a_model_whose_training_frames_include_held_out_ones(tmp_path):
    """The guard behind 'nothing is scored on frames it was trained on': a model file recording a held-out
    frame among its training frames fails the score block, naming the participant and the video."""
    import torch

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=4, seconds=30), out)
    spec = FEATURE_SETS["head_pose"]
    cfg = TrainConfig(spec, TINY, min_train_frames=20)
    _train_and_score(out, cfg)  # the untouched run scores
    c = load_cohort(out)
    uid, test = next(iter(participant_features(c, "p1", spec, "test").frames.items()))
    path = c.layout.model_dir(spec.name, "p1") / "model.pt"
    blob = torch.load(path, weights_only=True)
    assert not np.intersect1d(blob["train_frames"][uid], test).size
    blob["train_frames"][uid] = np.append(blob["train_frames"][uid], test[3]).tolist()
    torch.save(blob, path)
    r = score_block_unit(out, cfg, 0, 0, c.participants, ScoreConfig(min_test_frames=1))
    assert r.status == "failed"
    assert f"participant p1: 1 held-out frames of {uid} were used in training" in r.message


def test_under_the_cross_session_default_only_last_session_frames_are_scored(tmp_path):
    """Two sessions a person and no split column: the cohort step trains on the first and holds out the
    second; every frame scored is a frame of a held-out video and none is one the model trained on."""
    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=4, seconds=20, sessions=2), out)
    c = load_cohort(out)
    assert {sp.rule for sp in c.splits.values()} == {"cross-session"}
    spec = FEATURE_SETS["head_pose"]
    _train_and_score(out, TrainConfig(spec, TINY, min_train_frames=20))
    sc = load_scores(out, spec.name)
    assert sc.participants == c.participants
    for p in c.participants:
        held_out = {e.unit_id for e in c.videos_of(p) if e.session == "s2"}
        scored = sc.test_data_frames[p]
        assert set(scored) == held_out and all(len(f) for f in scored.values())
        trained = torch_blob(c.layout.model_dir(spec.name, p) / "model.pt")["train_frames"]
        assert set(trained) == {e.unit_id for e in c.videos_of(p) if e.session == "s1"}
        for u, frames in scored.items():
            assert c.splits[u].test[frames].all() and not c.splits[u].train.any()


def torch_blob(path):
    import torch

    return torch.load(path, weights_only=True)


def test_the_split_in_words_says_whether_a_manifest_split_tests_on_another_session():
    """A manifest's split column tests on other sessions (p1: s1 train, s2 test) or within one (p2: two videos
    of s1, one of them test; p3 tests on s2 but also trains on it): the summary says which, and counts them."""
    from types import SimpleNamespace as NS

    from dis_core.report.stage import split_rule_text

    rows = [("p1", "s1", "train"), ("p1", "s2", "test"), ("p2", "s1", "train"), ("p2", "s1", "test"),
            ("p3", "s1", ""), ("p3", "s2", "train"), ("p3", "s2", "test"), ("p4", "s1", ""), ("p4", "s2", "")]
    entries = [NS(participant_id=p, session=s, split=sp, unit_id=f"{p}-{k}") for k, (p, s, sp) in enumerate(rows)]
    rules = {"p4": "cross-session"}
    cohort = NS(entries=entries, splits={e.unit_id: NS(rule=rules.get(e.participant_id, "manifest")) for e in entries})
    assert split_rule_text(cohort) == (
        "cross-session: trained on the sessions listed first in the manifest, tested on the last one listed (1 participant(s)); "
        "the manifest's split column, tested on sessions not trained on (1 participant(s)); "
        "the manifest's split column, with a session both trained and tested on (measures within-session "
        "consistency, not recognition on another day) (2 participant(s))")


def test_a_video_extracted_again_after_the_cohort_step_is_refused_until_the_cohort_step_runs(tmp_path):
    """A video replaced and extracted again without the later stages (dis extract, then dis report) once
    left the report showing the old video's scores without a word: the report and training now refuse the
    extraction the cohort step did not use, naming its file; after the cohort step and the stages after it
    the report is of the new video."""
    from dis_core.layout import RunLayout
    from tests.synthrun import synthetic_extraction

    out = tmp_path / "out"
    m = make_run(out, n=4, seconds=40)
    prepare_cohort(m, out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20)
    _train_and_score(out, cfg)
    no_excerpts = ReportConfig(excerpts_s=())
    assert report_unit(out, ["head_pose"], no_excerpts).status == "ok"
    before = load_scores(out, "head_pose").s["flow"].copy()
    e = m.entries[2]
    h5 = RunLayout(out).extraction(e.unit_id)
    e.video.write_bytes(b"another video under the same name")
    synthetic_extraction(h5, e.video, 40, 15.0, seed=77)
    r = report_unit(out, ["head_pose"], no_excerpts)
    assert r.status == "failed" and f"{h5}: extracted again since the cohort step" in r.message
    t = train_unit(out, e.participant_id, cfg, force=True)
    assert t.status == "failed" and f"{h5}: extracted again since the cohort step" in t.message
    assert train_unit(out, "p0", cfg).status == "skipped"  # the others' inputs did not change
    prepare_cohort(m, out)
    _train_and_score(out, cfg)
    assert report_unit(out, ["head_pose"], no_excerpts).status == "ok"
    after = load_scores(out, "head_pose").s["flow"]
    assert not np.allclose(after[:, 2], before[:, 2]) and np.allclose(after[:2, :2], before[:2, :2])


def test_a_report_with_no_feature_set_to_report_fails_and_says_why_once(tmp_path):
    """A report of feature sets none of which has scores says so on its page and fails, so that the command
    exits 1 ('nothing usable came out'), not 0; each reason is named once with its feature set (it read
    'head_pose: head_pose: ...'). With one set scored and one not, the report stands and lists the other,
    and the workbook's flow-vs-baseline rows carry the Holm p their verdicts use (they were empty; none on fewer
    than ten people, who are no test of the family)."""
    from jobs.local import Outcome

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=40), out)
    r = report_unit(out, ["head_pose"], ReportConfig(excerpts_s=()))
    assert r.status == "failed" and r.message.startswith("no feature set could be reported (head_pose: ")
    assert "head_pose: head_pose" not in r.message
    page = (out / "report" / "dis_report.html").read_text()
    assert "What failed" in page and "head_pose" in page
    assert Outcome(results={"report": [r]}).exit_code == 1  # the table every command exits by
    _train_and_score(out, TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20))
    (out / "report" / "scores_blendshapes.npz").write_bytes(b"an earlier report's")  # a set scored before
    r = report_unit(out, ["head_pose", "blendshapes"], ReportConfig(excerpts_s=()))
    assert r.status == "ok" and r.message.startswith("blendshapes: ") and "blendshapes: blendshapes" not in r.message
    assert not (out / "report" / "scores_blendshapes.npz").exists() and (out / "report" / "scores_head_pose.npz").exists()
    # a report that lacks a set whose scores are missing is done, but `dis report` exited 0 beside its summary's
    # failure: 3, as when units fail
    assert r.incomplete and Outcome(results={"report": [r]}).exit_code == 3
    assert not report_unit(out, ["head_pose"], ReportConfig(excerpts_s=())).incomplete
    # three people: EER and AUC cannot be told from chance; methods saying the same are named once together; all
    # three identified is not above chance either: a random assignment of three models does it once in six (the
    # Wilson interval of 3 of 3, [0.44, 1.00], said it was); 1/6 exactly, over every assignment (0.169 from draws)
    summary = (out / "report" / "summary.txt").read_text()
    chance = next(ln for ln in summary.splitlines() if "chance: top-1" in ln)
    assert chance.endswith("(p of doing as well by chance: flow 0.167, gaussian 0.167), EER 0.5, AUC 0.5; flow and "
                           "gaussian not above chance: top-1; EER and AUC: too few people to tell (under 10)")
    from dis_core.layout import RunLayout

    training = pd.read_excel(RunLayout(out).workbook, sheet_name="training")
    assert "elapsed_s" not in training and (training["seconds"] > 0).all()  # the fit's time, not a runner's 0
    row = pd.read_excel(RunLayout(out).workbook, sheet_name="comparisons").query("comparison == 'method'").iloc[0]
    assert row["participants"] == 3 and row["b"] == "gaussian"  # the verdict's Holm p, traceable in the workbook
    # three people: no claim below ten, so no test of the verdicts' family either (it would dilute the others')
    assert row["holm_family"] == "none (fewer than 10 people: no claim)"
    assert np.isnan(row["top1_p_holm"]) and np.isnan(row["eer_p_holm"]) and np.isfinite(row["top1_p"])
    # a failed report again in the same folder: the last report's headline figure was embedded under "No feature
    # set could be scored" (its points and intervals, of other scores)
    assert (RunLayout(out).figures_dir / "headline.png").is_file()
    ghost = RunLayout(out).figures_dir / "participants" / "signature_left_the_cohort.png"  # an earlier cohort's
    ghost.write_bytes((RunLayout(out).figures_dir / "headline.png").read_bytes())
    r = report_unit(out, ["blendshapes"], ReportConfig(excerpts_s=()))
    assert not ghost.exists()
    page = (out / "report" / "dis_report.html").read_text()
    assert r.status == "failed" and 'alt="Headline figures"' not in page
    assert [p.name for p in RunLayout(out).figures_dir.glob("*.png")] == ["landmark_pca.png"]  # the cohort's, current


def test_a_video_slower_than_the_features_assume_is_left_out_naming_its_file(tmp_path):
    """Below 10 fps (less half a frame of jitter) bridging, velocity windows and the spectral bands lose their
    meaning (a 2 fps video stopped the cohort step for everyone with a band that held no bin): the video is
    left out, naming its file and its rate."""
    from dis_core.cohort.stage import too_slow
    from dis_core.errors import DISError

    assert too_slow(np.arange(100) / 10.0) is None and too_slow(np.arange(100) / 9.6) is None
    assert too_slow(np.arange(100) / 5.0).startswith("5 frames a second, below the 10 DIS's motion features assume")
    assert too_slow(np.zeros(1)) is None
    out = tmp_path / "slow"
    m = make_run(out, n=2, seconds=20, fps=5)
    with pytest.raises(DISError, match=f"too slow\\): {m.entries[0].unit_id}: {m.entries[0].video}: 5 frames a second"):
        prepare_cohort(m, out)


def test_split_cells_that_leave_nothing_to_train_or_test_on_are_said_in_the_manifests_terms(tmp_path):
    """p0's two videos are split=test; p1 marks s1 train and leaves s2 empty (an empty cell trains once another
    row of the participant has a split). p0's training fails naming the split, p1 is left out at scoring
    naming it; the others are trained and scored. (Before: 'only 0 usable training frames ... lower
    min_train_frames', which no command sets, and 'the split leaves none'.)"""
    import dataclasses

    from dis_core.score.stage import load_scores

    out = tmp_path / "out"
    m = make_run(out, n=4, seconds=20, sessions=2)
    marks = {("p0", "s1"): "test", ("p0", "s2"): "test", ("p1", "s1"): "train"}
    m = dataclasses.replace(m, entries=tuple(dataclasses.replace(e, split=marks.get((e.participant_id, e.session)))
                                             for e in m.entries))
    prepare_cohort(m, out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20)
    r = train_unit(out, "p0", cfg)
    assert r.failed and r.message == "participant p0: every usable video is split=test in the manifest, nothing trains their model"
    for p in ("p1", "p2", "p3"):
        assert train_unit(out, p, cfg).status == "ok"
    r = score_block_unit(out, cfg, 0, 0, load_cohort(out).participants, ScoreConfig(min_test_frames=1))
    sc = load_scores(out, "head_pose")
    assert sc.participants == ["p2", "p3"]
    why = {x["participant_id"]: x["reason"] for x in sc.left_out}
    assert why["p1"] == ("no held-out data: no usable video is split=test in the manifest (an empty split cell trains "
                         "once another of the participant's rows has one)")
    # a participant whose split=test video was left out at the cohort step is told so, not that none is marked
    c = load_cohort(out)
    c.left_out.append({"unit_id": "p1_s9_x", "participant_id": "p1", "reason": "x.mp4: 5 frames a second, below the 10"})
    assert c.gone_note("p1") == "; 1 video(s) left out at the cohort step (p1_s9_x: x.mp4: 5 frames a second, below the 10)"
    c.left_out.append({"unit_id": "p1_s2_y", "participant_id": "p1", "reason": "no face detected"})  # which session
    assert c.gone_note("p1").endswith("; p1_s2_y: no face detected)") and c.gone_note("p1").startswith("; 2 video(s)")
    assert c.gone_note("p2") == ""


def test_bridged_detector_gaps_are_counted_for_training_and_held_out_rows(tmp_path):
    """Single frames without a face inside a participant's video are bridged for velocity windows, and the
    report's training sheet counts them per part (they were counted, then lost before any output): at 15 fps
    a head_pose velocity window reaches exactly 3 frames either side, so each isolated hidden frame in the
    middle of a part is read by some row, once. Frames hidden: 3 in p0's training part, 1 in its held-out part."""
    from dis_core.layout import RunLayout

    out = tmp_path / "out"
    hidden = [60, 120, 180, 560]  # the within-session split holds out the last 20% (from frame 480)
    prepare_cohort(make_run(out, n=3, seconds=40, hidden_of=lambda k, si: hidden if k == 0 else []), out)
    c = load_cohort(out)
    (uid,) = [e.unit_id for e in c.videos_of("p0")]
    assert c.splits[uid].train[hidden[:3]].all() and c.splits[uid].test[hidden[3]]
    _train_and_score(out, TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20))
    r = report_unit(out, ["head_pose"], ReportConfig(excerpts_s=()))
    assert r.status == "ok", r.message
    t = pd.read_excel(RunLayout(out).workbook, sheet_name="training").set_index("participant_id")
    assert t.loc["p0", "interpolated_frames"] == 3 and t.loc["p0", "held_out_interpolated_frames"] == 1
    assert (t.loc[["p1", "p2"], ["interpolated_frames", "held_out_interpolated_frames"]] == 0).all().all()
    # hidden frames are not rows, and the cut counts frames with a face: 120 of p0's 596 are held out, from frame
    # 479 (p1's from 480), so its training part ends a frame earlier
    assert t.loc["p0", "train_frames"] == t.loc["p1", "train_frames"] - 3 - 1
    # a model trained before these counts (best_epoch counted from 0, no interpolated_frames) is reused and read
    # in today's terms: the epoch counted from 1 and the bridged frames of the same rows
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20)
    summary = RunLayout(out).model_dir("head_pose", "p0") / "train.json"
    doc = json.loads(summary.read_text())
    chosen = doc.pop("chosen_epoch")
    doc.pop("interpolated_frames")
    summary.write_text(json.dumps({**doc, "best_epoch": chosen - 1}))
    again = train_unit(out, "p0", cfg)
    assert again.status == "skipped" and (again.chosen_epoch, again.interpolated_frames) == (chosen, 3)
    assert score_block_unit(out, cfg, 0, 0, c.participants, ScoreConfig(min_test_frames=1), force=True).status == "ok"
    assert report_unit(out, ["head_pose"], ReportConfig(excerpts_s=())).status == "ok"
    t = pd.read_excel(RunLayout(out).workbook, sheet_name="training").set_index("participant_id")
    assert "best_epoch" not in t and t.loc["p0", "chosen_epoch"] == chosen


def test_a_model_retrained_to_other_weights_on_the_same_inputs_is_scored_again(tmp_path):
    """A block's key held each model's input key only: `dis train --force` under another torch (or on a GPU)
    gives other weights from the same rows, and every block skipped as current, reporting the old models'
    scores. The models' bytes are in the key now."""
    import torch

    from dis_core.errors import DISError
    from dis_core.model.stage import MODEL_NAME

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=30), out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY)
    _train_and_score(out, cfg)
    c = load_cohort(out)
    again = lambda: score_block_unit(out, cfg, 0, 0, c.participants, ScoreConfig(min_test_frames=1))  # noqa: E731
    assert again().status == "skipped"
    f = c.layout.model_dir("head_pose", c.participants[0]) / MODEL_NAME
    blob = torch.load(f, weights_only=True)
    name = [k for k in blob["state_dict"] if k.endswith(".weight")][-1]  # the last layer: a Gaussian start zeroes it
    blob["state_dict"][name] = blob["state_dict"][name] + 0.01  # same inputs, same unit key, other weights
    before = load_scores(out, "head_pose").s["flow"][0].copy()
    torch.save(blob, f)
    with pytest.raises(DISError, match=rf"head_pose: the scores of 1 participant\(s\) are not of their current models "
                                       rf"\({c.participants[0]}'s model was retrained or removed since it was scored\)"):
        load_scores(out, "head_pose")  # the report reads no scores of a model that is gone
    assert again().status == "ok"
    assert not np.array_equal(load_scores(out, "head_pose").s["flow"][0], before)
    # a damaged model file costs its person, said in one line naming the file (an UnpicklingError of seven lines
    # failed the whole block), and dis train makes it again
    f.write_bytes(np.random.default_rng(0).bytes(4000))
    r = again()
    assert r.status == "ok", r.message
    got = load_scores(out, "head_pose")
    assert got.participants == c.participants[1:]
    (why,) = [x["reason"] for x in got.left_out if x["participant_id"] == c.participants[0]]
    assert why.startswith(f"model cannot be read ({f}: not a readable model file (damaged or cut short: ")
    assert "\n" not in why and "weights_only" not in why  # torch's advice is no cure for a damaged file
    assert train_unit(out, c.participants[0], cfg).status == "ok" and again().status == "ok"
    assert load_scores(out, "head_pose").participants == c.participants
    # the baseline's file too: training skipped it as current (it loaded the flow's only) and the person was lost
    from dis_core.model.stage import BASELINE_NAME

    (f.parent / BASELINE_NAME).write_bytes(np.random.default_rng(1).bytes(3000))
    assert again().status == "ok" and load_scores(out, "head_pose").participants == c.participants[1:]
    assert train_unit(out, c.participants[0], cfg).status == "ok" and again().status == "ok"
    assert load_scores(out, "head_pose").participants == c.participants
    # someone left out of scoring (no model) and trained since: the report left them out with the old reason
    from dis_core.model.stage import FILES

    for name in FILES.values():
        (f.parent / name).unlink(missing_ok=True)
    assert again().status == "ok" and load_scores(out, "head_pose").participants == c.participants[1:]
    assert train_unit(out, c.participants[0], cfg).status == "ok"
    with pytest.raises(DISError, match=rf"head_pose: the scores of 1 participant\(s\) are not of their current models "
                                       rf"\({c.participants[0]}'s model was trained, retrained or removed since "
                                       rf"{c.participants[0]} was left out of scoring\)"):
        load_scores(out, "head_pose")
    assert again().status == "ok" and load_scores(out, "head_pose").participants == c.participants
    # and its training record: one garbage train.json failed the whole feature set's scoring as an internal error
    (f.parent / "train.json").write_text("x")
    assert again().status == "ok"
    got = load_scores(out, "head_pose")
    assert got.participants == c.participants[1:]
    assert [x["reason"] for x in got.left_out if x["participant_id"] == c.participants[0]] == [
        f"{f.parent / 'train.json'}: not a readable training record (JSONDecodeError): retrain (dis train)"]
    assert train_unit(out, c.participants[0], cfg).status == "ok" and again().status == "ok"
    assert load_scores(out, "head_pose").participants == c.participants


def test_a_report_stopped_half_way_leaves_no_page_of_the_run_before(tmp_path, monkeypatch):
    """SIGTERM (or a failure) half-way through a report removed the earlier figures and matrices but kept the
    earlier page and summary beside the new workbook. The earlier page, workbook and summary go first now, and
    the next report makes them all. (The interrupt is raised where the landmark figure is drawn: a signal
    cannot be timed to a point inside the report for real.)"""
    from dis_core.layout import RunLayout
    from dis_core.report import stage as report_stage
    from dis_core.report.stage import report_unit

    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=30), out)
    _train_and_score(out, TrainConfig(FEATURE_SETS["head_pose"], TINY))
    lay = RunLayout(out)
    made = (lay.report_page, lay.report_summary, lay.workbook)
    assert report_unit(out, ["head_pose"], ReportConfig(excerpts_s=())).status == "ok"
    assert all(p.is_file() for p in made)

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_stage, "_landmark_pca", stopped)
    with pytest.raises(KeyboardInterrupt):
        report_unit(out, ["head_pose"], ReportConfig(excerpts_s=()))
    assert not any(p.exists() for p in made)
    monkeypatch.undo()
    assert report_unit(out, ["head_pose"], ReportConfig(excerpts_s=())).status == "ok"
    assert all(p.is_file() for p in made)


def test_the_report_config_decides_whether_the_page_shows_faces(tmp_path):
    """dis report --no-face-images reaches the page: its QC section says no frame is shown."""
    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=30), out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY)
    _train_and_score(out, cfg)
    for faces in (True, False):
        assert report_unit(out, ["head_pose"], ReportConfig(face_images=faces, excerpts_s=())).status == "ok"
        page = (out / "report" / "dis_report.html").read_text()
        assert ("made with --no-face-images" in page) is not faces


def test_too_few_window_rows_are_a_clear_reason_not_a_crash_or_a_model_out_of_the_shape(tmp_path):
    """An own flow on 23 spectral rows kept 2 to fit once validation (5) and the rows sharing its frames (16) were
    set aside: LinAlgError, reported as a bug. A participant with fewer rows than the pooled shape takes was left
    out of the shape yet got a model placed at the mean of a few overlapping windows."""
    from dis_core.model.stage import pooled_unit

    out = tmp_path / "own"
    prepare_cohort(make_run(out, n=3, seconds=19, sessions=2), out)  # 19 s to train on: 23 windows
    r = train_unit(out, "p0", TrainConfig(FEATURE_SETS["head_spectrum"], TINY, min_train_frames=20))
    assert r.status == "failed" and "internal error" not in r.message, r.message
    assert "only 23 training rows" in r.message and "10 to fit besides its 5 validation rows and the 16" in r.message
    out = tmp_path / "pooled"
    hidden = lambda k, s: range(0, 450) if (k, s) == (2, 0) else ()  # noqa: E731  p2 trains on 10 s: 5 windows
    prepare_cohort(make_run(out, n=3, seconds=40, sessions=2, hidden_of=hidden), out)
    cfg = TrainConfig(FEATURE_SETS["head_spectrum"], TINY, min_train_frames=20, density="pooled")
    assert pooled_unit(out, cfg).status == "ok"
    assert [train_unit(out, p, cfg).status for p in ("p0", "p1")] == ["ok", "ok"]
    lay = load_cohort(out).layout
    import shutil

    shutil.copytree(lay.model_dir("head_spectrum", "p0"), lay.model_dir("head_spectrum", "p2"))  # an earlier model
    r = train_unit(out, "p2", cfg)
    assert r.status == "left_out" and "only 5 training rows" in r.message and "takes people with 18" in r.message
    assert not (lay.model_dir("head_spectrum", "p2") / "model.pt").exists(), "scoring must not find an earlier model"


def test_the_landmark_basis_does_not_depend_on_the_manifests_order(tmp_path):
    """Each video's basis frames came from one random stream drawn video after video in manifest order: the same
    videos listed the other way round gave another basis (and retrained every landmark model)."""
    import dataclasses

    from dis_core.cohort.config import CohortConfig

    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=20)
    cfg = CohortConfig(basis_frames_per_video=50)  # a subsample of each video's training frames
    a = prepare_cohort(m, out, cfg)
    b = prepare_cohort(dataclasses.replace(m, entries=list(reversed(m.entries))), out, cfg)
    assert a.basis is not None and a.basis.sha256 == b.basis.sha256 and a.basis_frames == b.basis_frames


def test_a_full_disk_while_training_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """Training caught a full disk itself and said 'OSError: [Errno 28] ... (traceback: ...)', a bug report; the
    stage runner now says it in one line, as extraction does, with the file that could not be written."""
    import errno

    import dis_core.model.stage as ms
    from dis_core.io.assets import ModelFile
    from jobs.graph import Plan, run_unit

    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=20)
    prepare_cohort(m, out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], TINY, min_train_frames=20)
    plan = Plan(out=out, manifest=m.path, model=ModelFile(tmp_path / "model.task", "0" * 64), train=(cfg,))
    target = out / "models" / "x" / "train.json"

    def full(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(ms, "write_text_atomic", full)
    r = run_unit("train", plan, ("head_pose", m.participants[0]))
    assert r.failed and r.message == (f"disk full while writing {target}: free space, then run again (finished units "
                                      "are kept)")
