"""The cohort step's split and its inputs: the rule comes from the manifest's rows, not from which videos
happened to be usable; a participant is never tested on content they were trained on; a damaged
extraction or an interrupted cohort step is named, not a bare library error."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import dis_core.cohort.stage as stage
from dis_core.cohort.split import SplitConfig, assign_splits
from dis_core.cohort.stage import load_cohort, prepare_cohort
from dis_core.errors import DISError
from dis_core.layout import RunLayout
from dis_core.manifest import Manifest, VideoEntry
from tests.synthrun import make_run, synthetic_extraction


def _two_sessions_p0_s2_faceless(out):
    T = 12 * 15
    return make_run(out, n=3, seconds=12, sessions=2, hidden_of=lambda k, si: range(T) if (k, si) == (0, 1) else ())


def test_a_participant_whose_last_session_is_unusable_is_not_resplit_within_an_earlier_session(tmp_path):
    out = tmp_path / "out"
    c = prepare_cohort(_two_sessions_p0_s2_faceless(out), out)
    rules = {c.splits[e.unit_id].rule for e in c.videos_of("p0")}
    assert rules == {"cross-session"} and not any(c.splits[e.unit_id].test.any() for e in c.videos_of("p0")), rules


def test_a_manifest_split_whose_test_video_is_unusable_is_not_replaced_by_a_temporal_split(tmp_path):
    out = tmp_path / "out"
    m = _two_sessions_p0_s2_faceless(out)
    m = Manifest(m.path, tuple(dataclasses.replace(e, split="test" if e.session == "s2" else None) for e in m.entries), ())
    c = prepare_cohort(m, out)
    assert {c.splits[e.unit_id].rule for e in c.videos_of("p0")} == {"manifest"}


def test_identical_content_is_never_both_trained_and_tested_for_one_participant(tmp_path):
    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=12, sessions=2)
    e1, e2 = m.entries[0], m.entries[1]  # p0 s1, p0 s2
    e2.video.write_bytes(e1.video.read_bytes())  # s2 is a copy of s1 (allow_duplicate=yes in a manifest)
    synthetic_extraction(RunLayout(out).extraction(e2.unit_id), e2.video, 12, 15, seed=0)
    synthetic_extraction(RunLayout(out).extraction(e1.unit_id), e1.video, 12, 15, seed=0)
    c = prepare_cohort(m, out)  # the copy is left out, with why; p0 keeps its first session (and no test)
    assert e2.unit_id not in [e.unit_id for e in c.entries]
    why = [x["reason"] for x in c.left_out if x["unit_id"] == e2.unit_id]
    assert why == [f"{e2.video}: the same video content as this participant's {e1.unit_id}"]
    keys = lambda part: {c.extraction_keys[e.unit_id] for e in c.videos_of("p0") if getattr(c.splits[e.unit_id], part).any()}
    assert not keys("train") & keys("test"), "the same extraction content is trained and tested"


def _damage(h5, dataset: str):
    """Overwrite the first stored chunk of ``dataset`` in the HDF5 file ``h5`` (as a failing disk would)."""
    import h5py

    with h5py.File(h5, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    raw = bytearray(h5.read_bytes())
    raw[info.byte_offset: info.byte_offset + info.size] = b"\xff" * info.size
    h5.write_bytes(bytes(raw))
    return h5


@pytest.mark.parametrize("dataset", ["landmarks", "transform", "blendshapes"])
def test_a_damaged_extraction_is_left_out_naming_its_file(tmp_path, dataset):
    """Damage in the transform or blendshapes stopped the whole cohort step with a bare h5py error naming no file
    (the first read skipped them; the column statistics read them later): it costs that video, said with its path."""
    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=12, sessions=2)
    bad = _damage(RunLayout(out).extraction(m.entries[2].unit_id), dataset)
    c = prepare_cohort(m, out)
    (why,) = [x["reason"] for x in c.left_out if x.get("unit_id") == m.entries[2].unit_id]
    assert why.startswith(f"extraction unreadable: {bad}: ")
    assert m.entries[2].unit_id not in [e.unit_id for e in c.entries]
    # damaged after the cohort step: the unit that reads it says which file, in one line
    from dis_core.cohort.stage import participant_features
    from dis_core.features.build import FEATURE_SETS

    spec = {"landmarks": "landmarks", "transform": "head_pose", "blendshapes": "blendshapes"}[dataset]
    later = _damage(RunLayout(out).extraction(m.entries[0].unit_id), dataset)
    with pytest.raises(DISError, match=f"^{later}: extraction unreadable \\("):
        participant_features(c, m.entries[0].participant_id, FEATURE_SETS[spec], "train")


def test_within_session_rule_splits_each_session_on_its_own():
    """A forced within-session split holds out the end of every session, never a whole short session."""
    es = [VideoEntry(row=2, participant_id="p", session="s1", video=Path("/a.mp4"), video_rel="a.mp4", unit_id="a"),
          VideoEntry(row=3, participant_id="p", session="s2", video=Path("/b.mp4"), video_rel="b.mp4", unit_id="b")]
    times = {"a": np.arange(450) / 15, "b": np.arange(60) / 15}  # 30 s and 4 s
    sp = assign_splits(es, times, SplitConfig(rule="within-session", test_fraction=0.2, gap_s=1.0))
    assert sp["a"].test.sum() == 90 and sp["a"].test[-90:].all()
    assert sp["b"].test.sum() == 12 and sp["b"].test[-12:].all() and sp["b"].train[:48 - 15].all()
    assert {s.rule for s in sp.values()} == {"temporal"}


def test_sessions_listed_out_of_their_numbers_order_are_said_with_the_one_held_out(tmp_path):
    """A manifest sorted as text lists s1, s10, s2: the cross-session split holds out the last listed (s2), as
    documented, and nothing said so. The cohort step now names such participants; labels without numbers, a
    manifest's own split and the within-session rule say nothing; nor do labels that differ in more than one
    number (pre1/post1, dates)."""
    from dis_core.cohort.split import session_order_note
    from jobs import graph

    def rows(pid, sessions, split=None):
        return [VideoEntry(row=2, participant_id=pid, session=x, video=Path(f"/{pid}{x}.mp4"), video_rel=f"{pid}{x}.mp4",
                           unit_id=f"{pid}{x}", split=split) for x in sessions]

    es = (rows("p1", ["s1", "s10", "s2"]) + rows("p2", ["s1", "s2", "s10"]) + rows("p3", ["post", "pre"])
          + rows("p5", ["pre1", "post1"]) + rows("p6", ["15-11-2026", "07-12-2026"]) + rows("p7", ["T1_pre", "T1_post"]))
    assert session_order_note(es) == ("sessions listed out of their numbers' order, the last listed held out: "
                                      "p1 (s1, s10, s2: s2 held out) (list each participant's sessions in the order "
                                      "filmed)")
    assert session_order_note(es, "within-session") == ""
    assert session_order_note(rows("p4", ["2", "1"], split="test")) == ""
    many = [e for k in range(5) for e in rows(f"q{k}", ["v2", "v1"])]
    assert session_order_note(many).endswith("q2 (v2, v1: v1 held out) and 2 more (list each participant's sessions "
                                             "in the order filmed)")
    # in the cohort step's line: p0's sessions listed s2 first
    from dis_core.io.assets import ModelFile
    from tests.conftest import write_manifest

    m = make_run(tmp_path / "out", n=2, seconds=20, sessions=2)
    listed = sorted(m.entries, key=lambda e: (e.participant_id, e.participant_id == "p0" and e.session == "s1"))
    path = write_manifest(tmp_path / "videos" / "cohort.csv", [
        {"participant_id": e.participant_id, "session": e.session, "video": e.video.name} for e in listed])
    plan = graph.Plan(out=tmp_path / "out", manifest=path, model=ModelFile(tmp_path / "model.task", "0" * 64))
    r = graph.run_unit("cohort", plan, "cohort")
    assert r.status == "ok" and r.message.endswith("; sessions listed out of their numbers' order, the last listed held "
                                                   "out: p0 (s2, s1: s1 held out) (list each participant's sessions in "
                                                   "the order filmed)"), r.message


def test_an_interrupted_cohort_step_is_named_not_a_bare_key_error(tmp_path, monkeypatch):
    """Killed between split.npz and cohort.json after a video dropped out: the old record is refused by name."""
    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=12, sessions=2)
    prepare_cohort(m, out)
    m.entries[5].video.write_bytes(b"replaced, not extracted again")

    def killed(path, text):
        raise SystemExit("killed before cohort.json")

    monkeypatch.setattr(stage, "write_text_atomic", killed)
    with pytest.raises(SystemExit):
        prepare_cohort(m, out)
    monkeypatch.undo()
    with pytest.raises(DISError, match=f"split.npz holds no train/test masks of {m.entries[5].unit_id}.*rerun the cohort step"):
        load_cohort(out)


def test_no_usable_video_names_the_units(tmp_path):
    out = tmp_path / "out"
    m = make_run(out, n=1, seconds=12, sessions=1, hidden_of=lambda k, si: range(12 * 15))
    with pytest.raises(DISError, match=f"{m.entries[0].unit_id}: no face detected"):
        prepare_cohort(m, out)


def test_a_participant_whose_first_session_is_unusable_is_left_out_of_training_saying_why(tmp_path):
    """The rule comes from the manifest, so the usable second session is all held out: training leaves the
    participant out naming the lost session (it failed with 'only 0 usable training frames ... add video')."""
    from dis_core.features.build import FEATURE_SETS
    from dis_core.model.config import TrainConfig
    from dis_core.model.stage import train_unit

    out = tmp_path / "out"
    m = make_run(out, n=3, seconds=12, sessions=2, hidden_of=lambda k, si: range(180) if (k, si) == (0, 0) else ())
    prepare_cohort(m, out)
    r = train_unit(out, "p0", TrainConfig(FEATURE_SETS["head_pose"]))
    assert r.status == "left_out" and "no training data: the split leaves none; 1 video(s) left out" in r.message
    assert "no face detected" in r.message
    assert train_unit(out, "p1", TrainConfig(FEATURE_SETS["head_pose"])).status == "ok"


def test_a_video_whose_head_does_not_move_gives_no_gain_normalised_rows_and_says_why(tmp_path):
    """p0's test session froze on one rotation for 60 % of its frames: its robust spread is 0, and dividing by
    the floored gain multiplied the moving frames' rotations by up to 1e6 (log band powers ~28, lags ~2.5e5).
    Now the gain-normalised sets get no rows from it and the reason names it; so do per-frame sets, since its
    frames repeat one frame (a frozen stream, motion.frozen_repeats); every other video's rows are unchanged (the
    same values as a run without the frozen video)."""
    from dis_core.cohort.stage import participant_features
    from dis_core.features.build import FEATURE_SETS

    out, ref_out = tmp_path / "out", tmp_path / "ref"
    m = make_run(out, n=3, seconds=40, sessions=2, still_of=lambda k, si: 0.6 if (k, si) == (0, 1) else 0.0)
    c, ref = prepare_cohort(m, out), prepare_cohort(make_run(ref_out, n=3, seconds=40, sessions=2), ref_out)
    frozen = m.entries[1].unit_id
    for name in ("head_spectrum", "head_lags"):
        spec = FEATURE_SETS[name]
        test = participant_features(c, "p0", spec, "test")
        assert test.x.shape == (0, len(test.columns)) and test.still == [frozen]
        assert test.dropped == 600 and test.still_note().startswith(f"; the head hardly moves in {frozen} ")
        train = participant_features(c, "p0", spec, "train")
        assert train.still == [] and train.still_note() == ""
        np.testing.assert_array_equal(train.x, participant_features(ref, "p0", spec, "train").x)
    pose = participant_features(c, "p0", FEATURE_SETS["head_pose"], "test")  # frozen on 60%: a frozen stream
    assert len(pose.x) == 0 and pose.still == [frozen]
    # beside a usable training session, a frozen one costs only its rows, and the training record names it
    from dis_core.model.config import TrainConfig
    from dis_core.model.stage import train_unit

    out3 = tmp_path / "three"
    m3 = make_run(out3, n=3, seconds=40, sessions=3, still_of=lambda k, si: 0.6 if (k, si) == (0, 0) else 0.0)
    prepare_cohort(m3, out3)
    lags = TrainConfig(FEATURE_SETS["head_lags"], dataclasses.replace(TrainConfig(FEATURE_SETS["head_lags"]).flow,
                                                                        max_epochs=2))
    r = train_unit(out3, "p0", lags)
    assert r.status == "ok" and r.message.startswith(f"the head hardly moves in {m3.entries[0].unit_id} ")
    assert r.dropped_frames >= 600 and train_unit(out3, "p1", lags).message == ""
    # the rule is for rotations (radians): scaled scores of a channel off on most frames keep their rows
    from dis_core.features.build import FeatureSpec, video_features

    t = np.arange(600) / 15.0
    v = np.column_stack([np.where(np.arange(600) % 3 == 0, 0.5, 0.0), np.linspace(0.1, 0.9, 600)])
    spec = FeatureSpec("b", "blendshapes", transform="logit", scale="session", velocity=False)
    vf = video_features(v, ["a", "b"], t, np.ones(600, bool), np.ones(600, bool), spec)
    assert not vf.still and len(vf.x) == 600



def test_a_head_frozen_through_its_training_session_is_left_out_in_one_line_not_as_a_bug(tmp_path, monkeypatch):
    """head_pose is not gain-normalised: a frozen training session gave rows whose every column is constant, and the
    flow raised a ValueError, which the stage reported as a bug of DIS with a traceback log. A frozen stream now
    gives no rows, and one line says why; rows whose every column is constant all the same (which video can no
    longer give: stood in for here) are one line too."""
    from dis_core.cohort import stage as cohort_stage
    from dis_core.features.build import FEATURE_SETS
    from dis_core.model.config import TrainConfig
    from dis_core.model.stage import train_unit

    out = tmp_path / "out"
    m = make_run(out, n=4, seconds=30, still_of=lambda k, si: 1.0 if k == 0 else 0.0)
    prepare_cohort(m, out)
    spec = FEATURE_SETS["head_pose"]
    cfg = TrainConfig(spec, dataclasses.replace(TrainConfig(spec).flow, max_epochs=2), min_train_frames=20)
    r = train_unit(out, "p0", cfg)
    assert r.status == "failed" and not r.log  # no traceback: not a bug
    assert r.message.startswith("participant p0, head_pose: only 0 usable training frames (need 20")
    assert f"the head hardly moves in {m.entries[0].unit_id} " in r.message
    assert r.message.endswith("; add video") and train_unit(out, "p1", cfg).status == "ok"
    real = cohort_stage.participant_features

    def constant(c, pid, spec, part, *a, **k):
        d = real(c, "p1", spec, part, *a, **k)
        return dataclasses.replace(d, x=np.ones_like(d.x)) if part == "train" else d

    monkeypatch.setattr("dis_core.model.stage.participant_features", constant)
    r = train_unit(out, "p1", cfg, force=True)
    assert r.status == "failed" and not r.log
    assert r.message.startswith("participant p1, head_pose: every feature column is constant in the rows the flow "
                                "fits, its training rows less the last 15% that validate")
    assert r.message.endswith(": add video")
