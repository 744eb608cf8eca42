"""Phantom cohorts: real faces turned with known head pose; extraction must recover the truth."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from dis_core.extract.stage import ExtractConfig, extract_video
from dis_core.extract.h5store import read_extraction
from dis_core.manifest import load_manifest
from dis_core.io.provenance import sha256_file
from dis_core.phantom.render import (PhantomConfig, make_cohort, make_rig, portraits, read_truth, render_video,
                              sample_dynamics, trajectory)
from tests.videos import read_frames


@pytest.fixture(scope="module")
def faces(samples, model):
    return dict(portraits(samples, model.path))


def test_portraits_include_stills_group_and_astronaut(faces):
    assert {"single_face", "0-f1-su-ph", "astronaut"} <= set(faces)
    assert sum(n.startswith("group") for n in faces) == 4  # group1 (sunglasses) is left out


@pytest.mark.parametrize("face", ["0-f1-su-ph", "astronaut", "group2", "single_face"])
def test_extraction_recovers_the_phantom_head_pose(tmp_path, faces, model, make_manifest, face):
    rng = np.random.default_rng(7)
    t = np.arange(180) / 30.0
    sweep = np.column_stack([24 * np.sin(2 * np.pi * t / 3.0), 20 * np.sin(2 * np.pi * t / 2.2 + 1),
                             15 * np.sin(2 * np.pi * t / 1.7 + 2)])  # covers most of +-25 degrees
    ypr = np.clip(trajectory(sample_dynamics(rng), 180, 30.0, rng) * 0.3 + sweep, -25, 25)
    assert np.ptp(ypr[:, 0]) > 40 and np.ptp(ypr[:, 1]) > 35
    video = tmp_path / f"{face}.mp4"
    render_video(make_rig(faces[face], model.path), ypr, 30.0, video)
    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(video)}]))
    r = extract_video(m.entries[0], tmp_path / "out", model, ExtractConfig(), progress=False)
    assert r.status == "ok" and r.detection_rate == 1.0
    got = read_extraction(Path(r.output)).head_pose.astype(float)
    err = got - ypr
    offset = err.mean(axis=0)
    mae = np.abs(err - offset).mean(axis=0)
    corr = [np.corrcoef(got[:, k], ypr[:, k])[0, 1] for k in range(3)]
    gain = [np.polyfit(ypr[:, k], got[:, k], 1)[0] for k in range(3)]  # extracted on true: 1 when nothing is lost
    print(f"{face}: MAE yaw {mae[0]:.2f}, pitch {mae[1]:.2f}, roll {mae[2]:.2f} deg; offsets {np.round(offset, 2)}; "
          f"gains {np.round(gain, 3)}; corr {np.round(corr, 3)}; truth range {np.round(np.ptp(ypr, axis=0), 1)} deg")
    assert mae[2] <= 1.0 and mae[0] <= 3.0 and mae[1] <= 3.0
    # the truth itself, not only its shape: no bias beyond 3 degrees (at most 1.94 on 7 December 2026; an 8-degree
    # pitch bias passed the line above), gains within 15% (yaw and pitch 0.91-1.11, roll 1.01-1.04 with these faces)
    assert np.abs(offset).max() <= 3.0 and np.abs(err).mean(axis=0).max() <= 3.0
    assert all(0.85 <= g <= 1.15 for g in gain[:2]) and 0.95 <= gain[2] <= 1.06
    assert min(corr) > 0.9, "signs follow the documented convention on all three axes"


def test_same_seed_same_frames_and_participants_differ(tmp_path, samples, model):
    cfg = PhantomConfig(participants=4, sessions=2, duration_s=1.0, fps=15.0, seed=3)
    m1 = make_cohort(tmp_path / "a", cfg, samples, model.path)
    make_cohort(tmp_path / "b", cfg, samples, model.path)
    man = load_manifest(m1)  # validates
    assert len(man.entries) == 8 and {e.split for e in man.entries} == {"train", "test"}
    for e in man.entries:
        other = tmp_path / "b" / e.video_rel
        a, b = read_frames(e.video), read_frames(other)
        assert len(a) == 15 and all(np.array_equal(x, y) for x, y in zip(a, b))
        assert Path(str(e.video).replace(".mp4", ".truth.csv")).read_text() == \
            Path(str(other).replace(".mp4", ".truth.csv")).read_text()
    doc = json.loads((tmp_path / "a" / "phantom.json").read_text())
    p = doc["participants"]
    # what rendered it, and each truth file tied to its video by both hashes
    assert doc["made_by"]["face_model_sha256"] == model.sha256 and doc["made_by"]["stills_sha256"]
    for e in man.entries:
        ses = next(x for x in p if x["participant_id"] == e.participant_id)["sessions"][e.session]
        assert ses["video_sha256"] == sha256_file(e.video)
        assert ses["truth_sha256"] == sha256_file(Path(str(e.video).replace(".mp4", ".truth.csv")))
    vecs = [np.array(_flatten(x["dynamics"])) for x in p]
    for i in range(len(vecs)):
        for j in range(i + 1, len(vecs)):
            assert np.abs(vecs[i] - vecs[j]).max() > 0.5, "participants have different dynamics"
    one = load_manifest(make_cohort(tmp_path / "c", dataclasses.replace(cfg, sessions=1), samples, model.path))
    assert {e.split for e in one.entries} == {None}  # single sessions: the within-session split, not all-train
    # partners share the configured parameters, strangers do not
    d = {x["participant_id"]: x for x in p}
    assert d["ph01"]["dyad"] == d["ph02"]["dyad"] != d["ph03"]["dyad"]
    assert d["ph01"]["dynamics"]["nod_rate"] == d["ph02"]["dynamics"]["nod_rate"]
    assert d["ph01"]["dynamics"]["nod_rate"] != d["ph03"]["dynamics"]["nod_rate"]
    other_seed = make_cohort(tmp_path / "c", PhantomConfig(participants=4, sessions=2, duration_s=1.0, fps=15.0, seed=4),
                             samples, model.path)
    t1, y1 = read_truth(tmp_path / "a" / "videos" / "ph01_s1.truth.csv")
    t2, y2 = read_truth(other_seed.parent / "videos" / "ph01_s1.truth.csv")
    assert not np.allclose(y1, y2)


def test_sessions_share_dynamics_measurably(samples):
    """Statistics of a participant's sessions agree more with each other than with other participants'."""
    rng = np.random.default_rng(11)
    dyn = [sample_dynamics(np.random.default_rng(rng.integers(2**63))) for _ in range(6)]
    feats = np.array([[_session_stats(trajectory(d, 1800, 30.0, np.random.default_rng([i, k])))
                       for k in range(2)] for i, d in enumerate(dyn)])
    within = np.linalg.norm(feats[:, 0] - feats[:, 1], axis=1).mean()
    between = np.mean([np.linalg.norm(feats[i, 0] - feats[j, 1]) for i in range(6) for j in range(6) if i != j])
    assert within < 0.5 * between


def _session_stats(ypr: np.ndarray) -> np.ndarray:
    v = np.diff(ypr, axis=0)
    return np.concatenate([ypr.mean(axis=0), ypr.std(axis=0), v.std(axis=0) * 10])


def _flatten(d) -> list[float]:
    out = []
    for v in d.values():
        out += _flatten(v) if isinstance(v, dict) else [float(v)]
    return out


def test_swap_faces_changes_the_face_not_the_person(tmp_path, samples, model):
    cfg = PhantomConfig(participants=4, sessions=2, duration_s=0.5, fps=10.0, seed=1, swap_faces=True)
    m = load_manifest(make_cohort(tmp_path, cfg, samples, model.path))
    face = {(e.participant_id, e.session): dict(e.extra)["face"] for e in m.entries}
    for p in ("ph01", "ph02", "ph03", "ph04"):
        assert face[(p, "s1")] != face[(p, "s2")]
    assert len({face[(p, "s1")] for p in ("ph01", "ph02", "ph03", "ph04")}) == 4  # everyone's own face first


def test_faces_are_shared_by_partners_as_often_as_by_strangers():
    """Faces went by participant number (i mod 9; with swap_faces i + 2k): strangers i and i + 2 or i + 9 shared
    portraits and partners never did, so the partner test's re-pairings held face-sharing pairs its real couples
    never held (a motion-free, face-only score matrix of 100 people: partners at -2 null sd). Faces now follow a
    seeded shuffle drawn without regard to dyads: over seeds, partners share a face as often as strangers do, and
    nobody shows one face twice."""
    from dis_core.phantom.render import face_of, face_problem

    partner, stranger = [], []
    for seed in range(200):
        cfg = PhantomConfig(participants=20, sessions=2, swap_faces=True, seed=seed)
        faces = [{face_of(i, k, 9, cfg) for k in range(2)} for i in range(20)]
        assert all(len(f) == 2 for f in faces)
        for i in range(20):
            for j in range(i + 1, 20):
                (partner if i // 2 == j // 2 else stranger).append(bool(faces[i] & faces[j]))
    assert abs(np.mean(partner) - np.mean(stranger)) < 0.03, (np.mean(partner), np.mean(stranger))
    few = PhantomConfig(participants=9, sessions=1, seed=4)
    assert sorted(face_of(i, 0, 9, few) for i in range(9)) == list(range(9))  # distinct while the portraits last
    assert face_problem(6, PhantomConfig(participants=12, sessions=6, swap_faces=True)) == ""
    assert "at most 6 sessions" in face_problem(6, PhantomConfig(participants=12, sessions=7, swap_faces=True))
    assert face_problem(6, PhantomConfig(participants=12, sessions=9)) == ""  # one's own face every session


def test_a_folder_holding_a_users_files_is_not_rendered_into(tmp_path, samples, model):
    """dis phantom replaced a study's manifest.csv and a video of the same name without a word. A folder with
    anything a phantom did not make is refused before any frame is rendered; an empty folder, or an earlier
    phantom's (with phantom.json and the hidden parts an interrupted render left), is not."""
    from dis_core.phantom.render import foreign_file

    study = tmp_path / "study"
    (study / "videos").mkdir(parents=True)
    (study / "manifest.csv").write_text("participant_id,session,video\n")
    assert foreign_file(study) == study / "manifest.csv"
    with pytest.raises(ValueError, match="holds .*manifest.csv, which dis phantom did not make"):
        make_cohort(study, PhantomConfig(participants=2, sessions=1, duration_s=1, fps=10), samples, model.path)
    assert (study / "manifest.csv").read_text() == "participant_id,session,video\n"
    (study / "phantom.json").write_text('{"study": "mine"}')  # a user's phantom.json makes no phantom folder
    assert foreign_file(study) == study / "phantom.json"
    (study / "phantom.json").write_text('{"config": {}, "made_by": {}, "participants": []}')
    (study / "videos" / "ph01_s1.mp4").write_bytes(b"old")
    (study / "videos" / ".ph01_s1.mp4.part-1-abc.mp4").write_bytes(b"")
    assert foreign_file(study) is None
    (study / "videos" / "interview.mp4").write_bytes(b"mine")
    assert foreign_file(study) == study / "videos" / "interview.mp4"
    assert foreign_file(tmp_path / "new") is None


def test_an_interrupted_render_is_visibly_unfinished_and_resumes(tmp_path, samples, model, monkeypatch):
    """Re-rendering a folder with another seed and stopping half-way left seed 1's video beside seed 0's truth under
    seed 0's manifest. Now the manifest goes first and comes last, a session's truth never outlives its video, a re-run
    renders only what is missing, and sessions of an earlier, larger cohort are removed."""
    import dis_core.phantom.render as render

    out = tmp_path / "ph"
    cfg0 = PhantomConfig(participants=3, sessions=2, duration_s=0.5, fps=10.0, seed=0)
    make_cohort(out, cfg0, samples, model.path)
    cfg1 = dataclasses.replace(cfg0, participants=2, seed=1)
    real, calls = render.write_truth, []

    def stop_at_third(path, *a, **k):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(path, *a, **k)

    monkeypatch.setattr(render, "write_truth", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        make_cohort(out, cfg1, samples, model.path)
    assert not (out / "manifest.csv").exists() and not (out / "phantom.json").exists()
    assert not (out / "videos" / "ph02_s1.truth.csv").exists()  # its new video has no old truth beside it
    monkeypatch.setattr(render, "write_truth", real)
    rendered = []
    m = make_cohort(out, cfg1, samples, model.path, progress=rendered.append)
    assert sum("kept" in r for r in rendered) == 2 and len(rendered) == 4  # ph01's two sessions were not rendered again
    doc = json.loads((out / "phantom.json").read_text())
    assert doc["config"]["seed"] == 1 and len(load_manifest(m).entries) == 4
    for p in doc["participants"]:
        for k, s in p["sessions"].items():
            stem = out / "videos" / f"{p['participant_id']}_{k}"
            assert sha256_file(Path(f"{stem}.mp4")) == s["video_sha256"]
            assert sha256_file(Path(f"{stem}.truth.csv")) == s["truth_sha256"]
    assert not list((out / "videos").glob("ph03_*"))
    fresh = tmp_path / "fresh"
    make_cohort(fresh, cfg1, samples, model.path)  # the resumed cohort is the one a single render makes
    assert json.loads((fresh / "phantom.json").read_text())["participants"] == doc["participants"]


def test_phantom_settings_that_cannot_be_rendered_are_refused_in_one_line():
    for bad, word in ((dict(participants=0), "participants"), (dict(duration_s=-1.0), "duration_s"),
                      (dict(fps=0.0), "fps"), (dict(fps=65536.0), "fps"), (dict(duration_s=1e9), "duration_s"),
                      (dict(hidden_fraction=1.5), "hidden_fraction"),
                      (dict(seed=-1), "seed"), (dict(seed=2 ** 32), "seed"), (dict(camera_deg=30.0), "camera_deg"),
                      (dict(participants=4, near_neighbours=3), "near_neighbours")):
        with pytest.raises(ValueError, match=f"^phantom {word} must be "):
            PhantomConfig(**bad)


def test_dis_phantom_into_a_file_or_a_busy_folder_is_one_line(tmp_path):
    """--out naming a file was a NotADirectoryError traceback (exit 70) once the portraits were loaded; a second
    render into the same folder removed the first one's part files (it died on a vanished rename)."""
    from typer.testing import CliRunner

    from dis_core.io.lock import run_lock
    from jobs.cli import app

    a_file = tmp_path / "afile"
    a_file.write_text("x")
    r = CliRunner().invoke(app, ["phantom", "--out", str(a_file), "--duration", "1"])
    assert r.exit_code == 2 and "Traceback" not in r.output and "afile" in r.output
    busy = tmp_path / "busy"
    with run_lock(busy, "dis phantom"):
        (busy / "videos").mkdir()
        (busy / "videos" / ".ph00_s1.mp4.part-1-x").write_text("being written")
        r = CliRunner().invoke(app, ["phantom", "--out", str(busy), "--duration", "1"])
    assert r.exit_code == 2 and "dis phantom" in r.output and "Traceback" not in r.output
    assert (busy / "videos" / ".ph00_s1.mp4.part-1-x").is_file()  # the running render's part file is left alone


def test_what_a_killed_render_leaves_is_still_a_phantom_folder(tmp_path):
    """A writer killed mid-write leaves its hidden part file: the folder must stay one dis phantom resumes in."""
    from dis_core.io.atomic import atomic_path
    from dis_core.phantom.render import SESSIONS_RECORD, foreign_file

    (tmp_path / "videos").mkdir()
    for name in (SESSIONS_RECORD, "phantom.json", "manifest.csv"):
        with pytest.raises(RuntimeError):
            with atomic_path(tmp_path / name) as part:
                raise RuntimeError
        part.write_text("{")  # what a killed writer leaves
    assert len(list(tmp_path.iterdir())) == 4 and foreign_file(tmp_path) is None


def test_a_rendered_near_neighbour_dyad_keeps_what_partners_share(tmp_path, samples, model):
    cfg = PhantomConfig(participants=4, sessions=1, duration_s=0.2, fps=10.0, seed=2, near_neighbours=2,
                        rich_dynamics=True)
    make_cohort(tmp_path / "nn", cfg, samples, model.path)
    doc = json.loads((tmp_path / "nn" / "phantom.json").read_text())
    p3, p4 = doc["participants"][2], doc["participants"][3]
    assert doc["near_neighbours_made"] == 2 and p3["near_neighbour_of"] == "ph01" and p4["near_neighbour_of"] == "ph02"
    assert p3["dyad"] == p4["dyad"] == "d2"
    for key in cfg.dyad_shared:
        head, _, leaf = key.rpartition(".")
        get = (lambda d: d[head][leaf]) if head else (lambda d: d[leaf])
        assert get(p3["dynamics"]) == get(p4["dynamics"])


def test_phantom_people_move_alike_at_every_frame_rate_and_hidden_bursts_stay_bridgeable():
    """The jitter was an AR(1) of 0.9 per frame: its correlation time was 0.95 s at 10 fps and 0.32 s at 30, so a
    cohort filmed at 15 fps held other people than at 30. And a burst of 3 hidden frames lasts 0.3 s at 10 fps,
    past the 0.2 s DIS bridges, splitting the session the hidden-face option meant to trouble only a little."""
    import dataclasses as dc

    from dis_core.phantom.hard import hidden_bursts
    from dis_core.phantom.render import AxisDynamics, Dynamics, trajectory

    still = AxisDynamics(bias=0.0, f_slow=0.1, a_slow=0.0, f_fast=1.0, a_fast=0.0)
    dyn = Dynamics(still, still, still, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, jitter_sd=1.0, jitter_rho=0.9)
    lag_corr = {}
    for fps in (10.0, 30.0):
        x = trajectory(dyn, int(3000 * fps), fps, np.random.default_rng(1), max_angle=90.0)[:, 0]
        lag = int(round(0.3 * fps))
        lag_corr[fps] = np.corrcoef(x[:-lag], x[lag:])[0, 1]
        assert x.std() == pytest.approx(1.0, rel=0.05)
    assert lag_corr[10.0] == pytest.approx(lag_corr[30.0], abs=0.03) and lag_corr[30.0] == pytest.approx(0.9 ** 9, abs=0.03)
    # the renderer's cap: 0.2 s of frames
    from dis_core.phantom.render import BRIDGED_S

    for fps, most in ((10.0, 2), (12.0, 2), (15.0, 3), (30.0, 3)):
        cap = max(1, min(3, int(BRIDGED_S * fps + 1e-9)))
        h = hidden_bursts(2000, 0.05, np.random.default_rng(0), burst=(1, cap))
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, h.astype(int), 0])))[::2]
        assert cap == most and runs.max() <= most and runs.max() / fps <= BRIDGED_S + 1e-9


def test_a_share_sweep_keeps_the_people_and_copied_dyads_keep_what_partners_share():
    """Any share above 0 drew one extra number from the cohort's stream, so share 1e-9 held other people than share
    0; and the members of a near-neighbour dyad were perturbed one by one, so partners who shared everything (share
    1) no longer did."""
    from dis_core.phantom.hard import near_neighbours
    from dis_core.phantom.render import cohort_dynamics

    a = cohort_dynamics(8, np.random.default_rng(5), partner_share=0.0)
    b = cohort_dynamics(8, np.random.default_rng(5), partner_share=1e-9)
    assert a[0].yaw.a_slow == pytest.approx(b[0].yaw.a_slow, rel=1e-6)
    same = cohort_dynamics(8, np.random.default_rng(5), partner_share=1.0)
    copied, src = near_neighbours(same, 2, np.random.default_rng(9), dyad_size=2)
    assert src[6:] == [src[6], src[6] + 1] and src[6] % 2 == 0
    assert copied[6] == copied[7]  # identical partners stay identical after the copy's perturbation
