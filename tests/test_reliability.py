"""Bad inputs, faults and resumption: one clear line per problem, the rest processed, nothing half-written."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest

from dis_core.extract.stage import ExtractConfig, extract_video
from dis_core.layout import EXTRACTION_H5 as H5_NAME
from dis_core.layout import RunLayout
from dis_core.manifest import load_manifest
from tests.videos import read_frames, write_video

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, **kw)


def test_bad_videos_each_get_one_clear_line_and_the_rest_is_processed(tmp_path, samples, model, make_manifest):
    d = tmp_path / "vids dir é"  # spaces and non-ASCII in paths
    d.mkdir()
    frames = read_frames(samples["single_face.mp4"])
    write_video(d / "good clip ü.mp4", frames, 30.0)
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("not a video\n")
    whole = samples["WolfgangLanger_Pexels.mp4"].read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    write_video(d / "one_frame.mp4", frames[:1], 30.0)
    write_video(d / "short.mp4", frames[:12], 30.0)  # 0.4 s
    gray = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in frames]
    write_video(d / "gray.mp4", gray, 30.0)
    shutil.copy(samples["no_face.mp4"], d / "no_face.mp4")
    names = ["good clip ü.mp4", "empty.mp4", "notes.mp4", "truncated.mp4", "one_frame.mp4", "short.mp4", "gray.mp4",
             "no_face.mp4"]
    m = make_manifest([{"participant_id": f"p{i}", "session": "s1", "video": str(d / n)} for i, n in enumerate(names)])
    out = tmp_path / "out"
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    r = _cli("extract", "-m", str(m), "-o", str(out), env=env)
    assert r.returncode == 3, r.stdout + r.stderr  # partial failure, distinct from success (0) and total failure (1)
    qc = pd.read_csv(out / "summary" / "extraction_qc.csv").set_index("video")
    status = {Path(v).name: s for v, s in qc["status"].items()}
    assert status == {"good clip ü.mp4": "ok", "empty.mp4": "failed", "notes.mp4": "failed",
                      "truncated.mp4": status["truncated.mp4"], "one_frame.mp4": "ok", "short.mp4": "ok",
                      "gray.mp4": "ok", "no_face.mp4": "no_face"}
    lines = [ln for ln in r.stdout.splitlines() if "FAILED" in ln]
    # a third of the file: the decoder's version decides whether the frames before the cut are read (then
    # fewer frames than the whole video) or the file is refused (then one line naming it)
    if status["truncated.mp4"] == "ok":
        whole_frames = int(cv2.VideoCapture(str(samples["WolfgangLanger_Pexels.mp4"])).get(cv2.CAP_PROP_FRAME_COUNT))
        frames = {Path(v).name: n for v, n in qc["frames"].items()}["truncated.mp4"]
        assert 0 < frames < whole_frames, (frames, whole_frames)
    else:
        assert status["truncated.mp4"] == "failed" and len([ln for ln in lines if "truncated.mp4" in ln]) == 1, lines
    for n in ("empty.mp4", "notes.mp4", "no_face.mp4"):
        hit = [ln for ln in lines if n in ln]
        assert len(hit) == 1, (n, lines)
    assert "empty file (0 bytes)" in " ".join(lines)
    # the cohort step leaves the failed videos out saying why they failed, not only that no extraction exists
    # (exit 0: the cohort step made its cohort; the videos it leaves out failed, and were counted, at extraction)
    assert _cli("cohort", "-o", str(out), env=env).returncode == 0
    left = {x["participant_id"]: x["reason"] for x in json.loads((out / "cohort" / "cohort.json").read_text())["left_out"]}
    assert left["p1"].startswith("extraction missing: the last extraction of this file failed (") and "empty file (0 bytes)" in left["p1"], left
    (d / "empty.mp4").write_text("replaced, not extracted again\n")  # that failure was another file's: not cited
    assert _cli("cohort", "-o", str(out), env=env).returncode == 0
    left = {x["participant_id"]: x["reason"] for x in json.loads((out / "cohort" / "cohort.json").read_text())["left_out"]}
    assert left["p1"] == "extraction missing", left
    # nothing half-written anywhere; every HDF5 file on disk opens and is complete
    assert not [p for p in out.rglob("*") if ".part-" in p.name]
    for h5 in out.rglob(H5_NAME):
        with h5py.File(h5) as f:
            assert f.attrs["status"] == "complete"


def test_corrupt_output_left_by_something_else_is_redone(tmp_path, samples, model, make_manifest):
    m = load_manifest(make_manifest([{"participant_id": "p", "session": "s1", "video": str(samples["single_face.mp4"])}]))
    e = m.entries[0]
    r1 = extract_video(e, tmp_path, model, ExtractConfig(), progress=False)
    h5 = Path(r1.output)
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    r2 = extract_video(e, tmp_path, model, ExtractConfig(), progress=False)
    assert r2.status == "ok", "a truncated output is not taken as done"
    with h5py.File(h5) as f:
        assert f.attrs["status"] == "complete" and f["landmarks"].shape[0] == r1.frames


def test_two_runs_on_one_output_folder_do_not_interleave(tmp_path, samples, model, make_manifest):
    m = make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])}])
    out = tmp_path / "out"
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    first = subprocess.Popen([sys.executable, "-m", "jobs.cli", "extract", "-m", str(m), "-o", str(out),
                              "--executor", "debug"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lock = out / ".dis.lock"
    deadline = time.time() + 60
    while not (lock.is_file() and lock.read_text()):
        assert time.time() < deadline
        time.sleep(0.05)
    second = _cli("extract", "-m", str(m), "-o", str(out), env=env)
    assert second.returncode == 2
    assert "is in use by another DIS run (dis extract, pid" in second.stderr
    assert first.wait(timeout=300) == 0
    third = _cli("extract", "-m", str(m), "-o", str(out), env=env)  # the lock died with its holder
    assert third.returncode == 0 and "1 skipped" in third.stdout


def test_disk_full_fails_cleanly_and_keeps_the_earlier_output(tmp_path, samples, model, make_manifest):
    """Both ways a disk fills: before the work (checked up front) and during it (the workbook no longer
    fits). HDF5 cannot recover from a write error inside a process, so the CLI's worker process takes it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        m_path = make_manifest([{"participant_id": "p", "session": "s1", "video": str(samples["single_face.mp4"])}])
        e = load_manifest(m_path).entries[0]
        r1 = extract_video(e, mnt, model, ExtractConfig(), progress=False)
        assert r1.status == "ok"
        h5 = Path(r1.output)
        before = h5.read_bytes()

        def fill(leave: int) -> None:
            (mnt / "filler").unlink(missing_ok=True)
            st = os.statvfs(mnt)
            (mnt / "filler").write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))

        fill(20_000)  # far too little: refused before any work
        r2 = extract_video(e, mnt, model, ExtractConfig(), force=True, progress=False)
        assert r2.status == "failed" and "disk full" in r2.message and "single_face.mp4" in r2.message
        assert "needed for the 72 frames its header lists" in r2.message  # a wild header is seen for what it is
        assert h5.read_bytes() == before
        fill(72 * 15_000 + 256_000 + 4_096)  # passes the check; the landmark workbook then runs out of space
        env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
        r3 = _cli("extract", "-m", str(m_path), "-o", str(mnt), "--force", "--landmark-workbook", "--workers", "1",
                  env=env)
        assert r3.returncode == 1, r3.stdout + r3.stderr[-2000:]
        failed = [ln for ln in r3.stdout.splitlines() if "FAILED" in ln]
        assert len(failed) == 1 and "disk full" in failed[0], r3.stdout
        assert h5.read_bytes() == before, "the earlier good output is not overwritten"
        assert not [p for p in mnt.rglob("*") if ".part-" in p.name]
    finally:
        subprocess.run(["umount", str(mnt)])


FFMPEG = shutil.which("ffmpeg")


def _ff(*args):
    r = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return Path(args[-1])


def test_a_damaged_frame_time_does_not_shift_the_frames_after_it():
    """frame_time's known answers at 30 fps: one stamp 1000 s ahead that the next falls back from goes between
    them; one the decoder repeats for every frame after it (OpenCV does) puts each a period on; a paused camera's
    gap that the next frames continue from is kept, as is a pause under 10 s the next frame repeats or that ends
    the video; a repeated stamp is the last plus a period; a first frame stamped far past the second is one
    period before it."""
    from dis_core.extract.video import WILD_AHEAD, frame_time

    p = 1 / 30

    def times(raw):
        out, prev = [], -np.inf
        for k, r in enumerate(raw):
            t, wild = frame_time(prev, r, raw[k + 1:k + 1 + WILD_AHEAD], p)
            out.append((round(t, 6), wild))
            prev = t
        return out
    assert times([0, p, 2 * p, 1000, 4 * p, 5 * p]) == [
        (0, False), (round(p, 6), False), (round(2 * p, 6), False), (round(3 * p, 6), True), (round(4 * p, 6), False),
        (round(5 * p, 6), False)]
    assert times([0, p, 1000, 1000, 1000]) == [(0, False), (round(p, 6), False), (round(2 * p, 6), True),
                                               (round(3 * p, 6), True), (round(4 * p, 6), True)]
    assert times([0, p, 5.0, 5.0 + p]) == [(0, False), (round(p, 6), False), (5.0, False), (round(5 + p, 6), False)]
    # a variable frame rate's pause, then a repeated stamp, and a last frame after a pause: kept (under 10 s)
    assert times([0, p, 2.0, 2.0, 2.1, 4.0]) == [(0, False), (round(p, 6), False), (2.0, False),
                                                 (round(2 + p, 6), False), (2.1, False), (4.0, False)]
    assert times([0, p, p, 3 * p]) == [(0, False), (round(p, 6), False), (round(2 * p, 6), False), (round(3 * p, 6), False)]
    assert times([1000, p, 2 * p]) == [(0.0, True), (round(p, 6), False), (round(2 * p, 6), False)]
    # damaged stamps in a row, each passing the one before: the second passed the first, which was then kept, and
    # every later frame went a period after it (a 2.4 s video lasted 1002 s, nothing said); up to WILD_AHEAD of them
    assert times([0, p, 2 * p, 1000, 1000 + p, 5 * p, 6 * p]) == [
        (0, False), (round(p, 6), False), (round(2 * p, 6), False), (round(3 * p, 6), True), (round(4 * p, 6), True),
        (round(5 * p, 6), False), (round(6 * p, 6), False)]
    bad = [1000 + k * p for k in range(WILD_AHEAD)]
    assert times([0, p, *bad, (2 + WILD_AHEAD) * p]) == [(round(k * p, 6), 2 <= k < 2 + WILD_AHEAD)
                                                           for k in range(3 + WILD_AHEAD)]
    assert times([1000, 1000 + p, 2 * p, 3 * p]) == [(0.0, True), (round(p, 6), True), (round(2 * p, 6), False),
                                                      (round(3 * p, 6), False)]
    # as OpenCV reads them: the last damaged stamp repeated for every frame after it
    assert [w for _, w in times([0, p, 2 * p, 1000, 1000 + p, 1000 + p, 1000 + p, 1000 + p])] == [False] * 3 + [True] * 5
    # a real pause kept whatever one repeated or one damaged low stamp among the frames after it does; a video that
    # starts late keeps its first frames beside one damaged low stamp
    assert [w for _, w in times([0, p, 2.4, 20.0, 20 + p, 20 + p, 20.1, 20.2, 20.3])] == [False] * 9
    assert times([0, 2.4, 20.0, 20 + p, 0.5, 20.1, 20.2])[2:4] == [(20.0, False), (round(20 + p, 6), False)]
    assert times([12.0, 12 + p, 0.5, 12.1, 12.2, 12.3])[:2] == [(12.0, False), (round(12 + p, 6), False)]
    # a paused camera whose frames go on from the pause is kept, however many follow
    assert [t for t, _ in times([0, p, 20.0, 20 + p, 20 + 2 * p, 20 + 3 * p, 20 + 4 * p, 20 + 5 * p])][2] == 20.0


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (.ci/run installs it)")
def test_a_video_with_one_damaged_stamp_keeps_its_length_and_says_so(tmp_path, samples, model, make_manifest):
    """Frame 20 of 72 stamped at 1000 s: OpenCV repeats that stamp for every later frame, and each was put a
    period after it: a 2.4 s video lasted 1002 s (smile seconds, synchrony with a partner off by as much)."""
    from dis_core.extract.h5store import read_extraction

    wild = _ff("-i", samples["single_face.mp4"], "-vf", "setpts=if(eq(N\\,20)\\,1000/TB\\,PTS)", "-fps_mode",
               "passthrough", "-c:v", "libx264", "-preset", "ultrafast", tmp_path / "wild.mkv")
    m = load_manifest(make_manifest([{"participant_id": "a", "session": "s1", "video": str(wild)}]))
    r = extract_video(m.entries[0], tmp_path / "out", model, ExtractConfig(), progress=False)
    x = read_extraction(Path(r.output))
    assert len(x.time_s) == 72 and x.time_s[-1] < 2.5 and np.all(np.diff(x.time_s) > 0)
    assert r.status == "ok" and "frame time(s) lay far past the frame before" in r.message
    assert int(x.attrs["n_wild_times"]) >= 1
    # frames 20 and 21 at 1000 s and 1000 s + a period: the second passed the first, and the video lasted 1002 s
    # with nothing said
    two = _ff("-i", samples["single_face.mp4"], "-vf", "setpts=if(between(N\\,20\\,21)\\,(1000+(N-20)/30)/TB\\,PTS)",
              "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "ultrafast", tmp_path / "wild2.mkv")
    m = load_manifest(make_manifest([{"participant_id": "b", "session": "s1", "video": str(two)}]))
    r = extract_video(m.entries[0], tmp_path / "out", model, ExtractConfig(), progress=False)
    x = read_extraction(Path(r.output))
    assert len(x.time_s) == 72 and x.time_s[-1] < 2.5 and np.all(np.diff(x.time_s) > 0), x.time_s[-1]
    assert r.status == "ok" and "frame time(s) lay far past the frame before" in r.message
    assert int(x.attrs["n_wild_times"]) >= 2


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (.ci/run installs it)")
def test_non_square_pixels_are_read_as_the_picture_they_show(tmp_path, samples, model, make_manifest):
    """A camcorder's 4:3 pixels (480 x 360 stored, 640 x 360 shown) went to MediaPipe as square: faces 25%
    narrower and head poses off by up to 2 degrees against the same picture in square pixels. Stretched to what
    it shows, it agrees with that picture; a rotated one is stretched along its stored width."""
    from dis_core.extract.h5store import read_extraction
    from dis_core.extract.video import iter_frames, probe

    src = samples["single_face.mp4"]
    ana = _ff("-i", src, "-vf", "scale=480:360,setsar=4/3", "-c:v", "libx264", "-preset", "ultrafast", tmp_path / "ana.mp4")
    same = _ff("-i", src, "-vf", "scale=480:360,scale=640:360,setsar=1", "-c:v", "libx264", "-preset", "ultrafast",
               tmp_path / "square.mp4")  # the same loss of detail, in square pixels
    assert probe(ana).pixel_aspect == pytest.approx(4 / 3) and probe(same).pixel_aspect == 1.0
    m = load_manifest(make_manifest([{"participant_id": "a", "session": "s1", "video": str(ana)},
                                     {"participant_id": "b", "session": "s1", "video": str(same)}]))
    xa, xs = (read_extraction(Path(extract_video(e, tmp_path / "out", model, ExtractConfig(), progress=False).output))
              for e in m.entries)
    assert (xa.video["width"], xa.video["width_header"], xa.video["pixel_aspect"]) == (640, 480, pytest.approx(4 / 3))
    both = xa.detected & xs.detected
    assert both.sum() > 60
    assert np.nanmean(np.abs(xa.head_pose[both] - xs.head_pose[both]), axis=0).max() < 0.5
    width = [np.ptp(x.landmarks[both, :, 0], axis=1).mean() * x.video["width"] for x in (xa, xs)]  # pixels
    assert width[0] == pytest.approx(width[1], rel=0.05)  # 25% narrower read as square
    side = _ff("-i", src, "-vf", "transpose=1,scale=360:480,setsar=4/3", "-c:v", "libx264", "-preset", "ultrafast",
               tmp_path / "side.mp4")
    turned = _ff("-i", side, "-c", "copy", "-metadata:s:v:0", "rotate=90", tmp_path / "turned.mp4")
    assert next(iter_frames(turned)).rgb.shape[:2] == (480, 480)  # 360 x 480 stored, 4:3 pixels, turned
    # the report's QC thumbnails, which seek, show the same picture as extraction's frames
    from dis_core.report.html import _seek_frames

    for video, shape in ((ana, (360, 640)), (turned, (480, 480))):
        k = 10
        seen = next(fr.rgb for fr in iter_frames(video) if fr.index == k)
        assert seen.shape[:2] == shape and np.array_equal(_seek_frames(Path(video), [k], None)[k], seen)


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (.ci/run installs it)")
def test_a_raw_h264_stream_needs_the_manifests_fps(tmp_path, samples, model, make_manifest):
    """A raw .h264 stream (a Raspberry Pi camera's) holds no frame times: FFmpeg stamped a 30 fps stream at 25 fps
    and the extraction said ok (speeds 17% too slow). Refused without the manifest's fps, naming the column;
    with it, the frame times are index / fps. The manifest's fps over a container's other rate is said."""
    raw = _ff("-i", samples["single_face.mp4"], "-c:v", "libx264", "-preset", "ultrafast", "-f", "h264",
              tmp_path / "cam.h264")
    muxed = _ff("-framerate", "25", "-i", raw, "-c", "copy", tmp_path / "cam25.mp4")  # muxed at the wrong rate
    m = load_manifest(make_manifest([{"participant_id": "a", "session": "s1", "video": str(raw), "fps": ""},
                                     {"participant_id": "b", "session": "s1", "video": str(raw), "fps": "30",
                                      "allow_duplicate": "true"},
                                     {"participant_id": "c", "session": "s1", "video": str(muxed), "fps": "30"},
                                     {"participant_id": "d", "session": "s1", "video": str(muxed), "fps": "60",
                                      "allow_duplicate": "true"}]))
    no_fps, with_fps, remuxed, doubled = (extract_video(e, tmp_path / "out", model, ExtractConfig(), progress=False)
                                          for e in m.entries)
    # said, not silent (fps 1000 on a 30 fps file passed unremarked): a raw stream's 25 is no rate of its own
    assert doubled.status == "ok" and doubled.message == (
        f"{muxed}: the manifest's fps 60 overrides the container's 30 (times and durations are 0.5 times the "
        "container's)"), doubled
    # every frame decoded: the header's 25 fps span is not what the manifest's 30 fps frames should fill (it
    # said "decoded N frames over 2.4 s of the 2.9 s its header lists (truncated or damaged?)")
    assert remuxed.status == "ok" and remuxed.message == "", remuxed  # the stream's own timing says 30 too
    assert no_fps.status == "failed" and no_fps.message == (
        f"{raw}: a raw H.264/H.265 stream holds no frame times (the decoder would assume 25 fps): give its frame rate "
        "in the manifest's fps column, or put it in a container (ffmpeg -framerate <fps> -i in.h264 -c copy out.mp4)")
    from dis_core.extract.h5store import read_extraction

    assert with_fps.status == "ok" and with_fps.message == "", with_fps
    assert read_extraction(Path(with_fps.output)).video["frame_count_header"] == 0  # OpenCV reads -1.9e14 frames
    t = read_extraction(Path(with_fps.output)).time_s
    np.testing.assert_allclose(np.diff(t), 1 / 30)


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (.ci/run installs it)")
def test_unusual_but_valid_videos_and_audio_only(tmp_path, samples, model, make_manifest):
    src = samples["single_face.mp4"]
    d = tmp_path
    vids = {
        # variable frame rate: the first 36 frames at 30 fps, the rest at 15 fps
        "vfr.mp4": _ff("-i", src, "-vf", "setpts='if(lt(N,36),N/30,36/30+(N-36)/15)/TB'", "-fps_mode", "passthrough",
                       "-c:v", "libx264", "-preset", "ultrafast", d / "vfr.mp4"),
        # a phone video: pixels stored sideways, a rotation in the metadata that turns them upright for display
        "rotated.mp4": _ff("-i", _ff("-i", src, "-vf", "transpose=1", "-c:v", "libx264", "-preset", "ultrafast",
                                     d / "sideways.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                           d / "rotated.mp4"),
        "uhd.mp4": _ff("-i", src, "-vf", "scale=3840:2160", "-frames:v", "20", "-c:v", "libx264", "-preset",
                       "ultrafast", d / "uhd.mp4"),
        "vfr.mkv": _ff("-i", d / "vfr.mp4", "-c", "copy", d / "vfr.mkv"),  # Matroska: its count is duration x rate
        "tenbit.mp4": _ff("-i", src, "-pix_fmt", "yuv420p10le", "-c:v", "libx264", "-preset", "ultrafast",
                          d / "tenbit.mp4"),
        "audio.mp4": _ff("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", d / "audio.mp4"),
        # the index first, then half the frames' bytes: it opens and decodes up to the cut without an error
        "half.mp4": _ff("-i", src, "-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart", d / "whole.mp4"),
    }
    whole = vids["half.mp4"].read_bytes()
    vids["half.mp4"] = d / "half.mp4"
    vids["half.mp4"].write_bytes(whole[:len(whole) // 2])
    m = load_manifest(make_manifest([{"participant_id": n.split(".")[0], "session": "s1", "video": str(p)}
                                     for n, p in vids.items()]))
    res = {Path(e.video_rel).name: extract_video(e, tmp_path / "out", model, ExtractConfig(), progress=False)
           for e in m.entries}
    assert res["audio.mp4"].status == "failed" and "no decodable video stream" in res["audio.mp4"].message
    for n in ("vfr.mp4", "vfr.mkv", "rotated.mp4", "uhd.mp4", "tenbit.mp4"):
        assert res[n].status == "ok" and res[n].detection_rate >= 0.9 and not res[n].message, (n, res[n])
    half = res["half.mp4"]  # kept (what decoded is real video), and said: the summary lists it as a warning
    listed = len(read_frames(src))
    assert half.status == "ok" and 0 < half.frames < 0.9 * listed, half
    from dis_core.extract.h5store import read_extraction

    v = read_extraction(Path(half.output)).video
    assert v["frame_count_header"] == listed and v["duration_s"] < 0.6 * listed / v["fps_header"]
    assert half.message == (f"{vids['half.mp4']}: decoded {half.frames} frames over {v['duration_s']:.1f} s of the "
                            f"{listed / v['fps_header']:.1f} s its header lists (truncated or damaged? a copy trimmed "
                            "without re-encoding lists the frames before its cut too)")
    again = extract_video(m.entries[list(vids).index("half.mp4")], tmp_path / "out", model, ExtractConfig(), progress=False)
    assert again.status == "skipped" and again.message == half.message  # a re-run says the same
    from dis_core.extract.h5store import read_extraction

    vfr = read_extraction(Path(res["vfr.mp4"].output))
    periods = np.round(np.diff(vfr.time_s), 3)
    assert {0.033, 0.067} <= set(periods.tolist()), "frame times follow the variable frame rate"
    rot = read_extraction(Path(res["rotated.mp4"].output))
    assert (rot.video["width"], rot.video["height"]) == (640, 360), "the container's rotation is applied"
    assert abs(np.nanmedian(rot.head_pose[:, 2])) < 20, "the face is upright after the rotation"


@pytest.mark.parametrize("umask", [0o077, 0o022])
def test_outputs_respect_the_umask(tmp_path, samples, model, make_manifest, umask):
    """Files and folders get exactly what the umask leaves (docs/data-protection.md): private under 077, readable
    by the group under 022 (forcing 0600 everywhere passed the 077 case alone)."""
    m = make_manifest([{"participant_id": "p", "session": "s1", "video": str(samples["single_face.mp4"])}])
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "extract", "-m", str(m), "-o", str(tmp_path / "o"),
                        "--executor", "debug"], cwd=ROOT, env=env, capture_output=True, text=True,
                       preexec_fn=lambda: os.umask(umask))
    assert r.returncode == 0, r.stderr
    made = list((tmp_path / "o").rglob("*"))
    files = [p for p in made if p.is_file()]
    assert len(files) >= 6
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in made}
    want = {str(p.relative_to(tmp_path)): oct((0o666 if p.is_file() else 0o777) & ~umask) for p in made}
    assert modes == want


def test_unreadable_video_is_named_in_the_manifest_check(tmp_path, samples):
    """Checked as an unprivileged user (root reads everything): a forked child drops to 'nobody'."""
    from dis_core.errors import ManifestError

    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    d = Path(tempfile_dir())
    try:
        shutil.copy(samples["single_face.mp4"], d / "ok.mp4")
        shutil.copy(samples["single_face.mp4"], d / "locked.mp4")
        os.chmod(d / "ok.mp4", 0o644)
        os.chmod(d / "locked.mp4", 0)
        (d / "m.csv").write_text("participant_id,session,video\na,s1,ok.mp4\nb,s1,locked.mp4\n")
        os.chmod(d / "m.csv", 0o644)
        import codecs

        codecs.lookup("utf-8-sig")  # load lazily imported codecs before dropping privileges (they live under /root)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: become nobody, validate, report the message through the pipe
            os.close(r)
            msg = "valid"
            try:
                os.setgid(65534)
                os.setuid(65534)
                load_manifest(d / "m.csv")
            except ManifestError as e:
                msg = str(e)
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                msg = f"unexpected {e!r}"
            os.write(w, msg.encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            msg = f.read()
        os.waitpid(pid, 0)
        assert "row 3: video file is not readable (permissions)" in msg and "locked.mp4" in msg, msg
        assert "row 2" not in msg
    finally:
        shutil.rmtree(d)


def tempfile_dir() -> str:
    import tempfile

    d = tempfile.mkdtemp(prefix="dis-perm-")
    os.chmod(d, 0o755)
    return d


def _kill_after(cmd, seconds, env):
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    if p.poll() is None:
        p.kill()
    p.wait()


def test_repeated_kill_9_during_extraction_then_equal_outputs(tmp_path, samples, model, make_manifest):
    from dis_core.extract.h5store import DATASETS, read_extraction

    m_path = make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])}])
    e = load_manifest(m_path).entries[0]
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    cmd = [sys.executable, "-m", "jobs.cli", "extract", "-m", str(m_path), "-o", str(tmp_path / "b"),
           "--executor", "debug"]
    h5 = RunLayout(tmp_path / "b").extraction(e.unit_id)
    # this attempt's own temporary file (named by its pid): a killed attempt's file stays until the next one
    # clears it at start-up, so any '.part-' file would let a kill land before the video is opened
    writing = lambda pid: h5.parent.is_dir() and any(f".part-{pid}-" in f.name for f in h5.parent.iterdir())  # noqa: E731
    rng = np.random.default_rng(1)
    for _ in range(3):  # each kill lands while the video is being written (about 8 s of work)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while proc.poll() is None and not writing(proc.pid) and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.0, 1.0)))
        assert proc.poll() is None and writing(proc.pid), "the extraction was to be killed mid-video"
        proc.kill()
        proc.wait()
        assert not h5.exists(), "a killed extraction leaves no HDF5"
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not any(".part-" in f.name for f in h5.parent.iterdir()), "the killed attempts' temporary files are gone"
    with h5py.File(h5) as f:
        assert f.attrs["status"] == "complete"
    ref = extract_video(e, tmp_path / "a", model, ExtractConfig(), progress=False)
    a, b = read_extraction(Path(ref.output)), read_extraction(h5)
    for name in DATASETS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))  # bitwise, NaN where no face


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory, samples, model):
    from dis_core.phantom.render import PhantomConfig, make_cohort
    from jobs.local import run_pipeline

    d = tmp_path_factory.mktemp("kill_train")
    m = load_manifest(make_cohort(d / "v", PhantomConfig(participants=3, sessions=2, duration_s=8, fps=15), samples,
                                  model.path))
    run_pipeline(m, d / "run", model, [], stages=["extract", "cohort"], workers=2, log=lambda *_: None)
    return d / "run", m


def test_repeated_kill_9_during_training_then_equal_metrics(tmp_path, small_cohort):
    import json

    from dis_core.features.build import DEFAULT_FEATURE_SETS
    from dis_core.model.stage import model_dir, train_unit
    from dis_core.model.config import default_train_config

    run, m = small_cohort
    a, b = tmp_path / "a", tmp_path / "b"
    for dst in (a, b):
        shutil.copytree(run, dst)
    cfg = default_train_config(DEFAULT_FEATURE_SETS["head_pose"])
    ref = {p: train_unit(a, p, cfg) for p in m.participants}
    cmd = [sys.executable, "-m", "jobs.cli", "train", "-o", str(b), "--feature-sets", "head_pose",
           "--executor", "debug"]
    done = lambda: sum((model_dir(b, "head_pose", p) / "train.json").is_file() for p in m.participants)  # noqa: E731
    _kill_after(cmd, 1.0, dict(os.environ))  # while it starts up
    for k in (1, 2):  # then mid-stage: k participants trained, the others not yet
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while proc.poll() is None and done() < k and time.time() < deadline:
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        assert done() == k, f"the kill was to land with {k} of {len(m.participants)} trained, not {done()}"
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for p in m.participants:
        got = json.loads((model_dir(b, "head_pose", p) / "train.json").read_text())
        assert ref[p].status == "ok" and got["status"] == "ok"
        assert (got["epochs"], got["chosen_epoch"]) == (ref[p].epochs, ref[p].chosen_epoch)
        assert got["best_val_loss"] == ref[p].best_val_loss


def test_nan_inf_and_constant_features():
    from dis_core.features.build import FeatureSpec, video_features
    from dis_core.model.flows import FlowConfig, train_flow

    t = np.arange(300) / 30.0
    v = np.column_stack([np.sin(t), np.cos(2 * t), np.full_like(t, 4.0)])  # the third feature is constant
    v[50] = [np.inf, 0, 4.0]
    v[80] = [np.nan, 0, 4.0]
    sel = np.ones(len(t), bool)
    f = video_features(v, ["a", "b", "c"], t, sel, sel, FeatureSpec("x", "head_pose", velocity=False))
    assert np.isfinite(f.x).all() and 50 not in f.frames and 80 not in f.frames
    r = train_flow(f.x, f.columns, FlowConfig(layers=2, hidden=16, max_epochs=30))
    assert np.isfinite(r.density.log_prob(f.x, f.columns)).all(), "a constant feature does not blow up"
    bad = f.x.copy()
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        train_flow(bad, f.columns, FlowConfig(max_epochs=2))


def test_export_options_add_or_remove_exports_without_extracting_again(tmp_path, samples, model, make_manifest):
    """The landmark workbook asked for once, then not: the HDF5 file is current (the same content key, not
    rewritten), the workbook is removed, and asked for again it is written beside the same file. It re-ran
    MediaPipe on every video and gave every unit a new key, so every later stage ran again."""
    from dis_core.extract.stage import LANDMARKS_XLSX

    m = load_manifest(make_manifest([{"participant_id": "a", "session": "s1", "video": str(samples["single_face.mp4"])}]))
    e = m.entries[0]
    first = extract_video(e, tmp_path, model, ExtractConfig(landmark_workbook=True), progress=False)
    h5 = Path(first.output)
    book = h5.parent / LANDMARKS_XLSX
    assert first.status == "ok" and book.is_file()
    stamp = h5.stat().st_mtime_ns
    plain = extract_video(e, tmp_path, model, ExtractConfig(), progress=False)
    assert plain.key == first.key and h5.stat().st_mtime_ns == stamp, plain
    assert plain.message == f"redone: removed {LANDMARKS_XLSX} (not made under these options)" and not book.exists()
    again = extract_video(e, tmp_path, model, ExtractConfig(landmark_workbook=True, compression_level=9), progress=False)
    assert again.key == first.key and h5.stat().st_mtime_ns == stamp and book.is_file(), again
    stricter = dataclasses.replace(ExtractConfig().landmarker, min_face_detection_confidence=0.7)
    other = extract_video(e, tmp_path, model, ExtractConfig(landmarker=stricter), progress=False)
    assert other.key != first.key and other.message.startswith("re-extracted: another extraction configuration")


def test_a_record_from_before_face_seconds_gets_them_from_its_file(tmp_path, samples, model, make_manifest):
    """A unit's status.json written before seconds with a face were counted: the cohort's smile table counts
    them from the HDF5 file (it read 0, and smiling seconds out of them NaN), and an old file without the
    attribute gives the same count as a new one."""
    from dis_core.extract.h5store import read_attrs
    from dis_core.extract.stage import face_seconds_of
    from dis_core.extract.summary import collect_extract_results, smile_table
    from dis_core.layout import STATUS, write_status

    m = load_manifest(make_manifest([{"participant_id": "a", "session": "s1", "video": str(samples["face_noface.mov"])}]))
    r = extract_video(m.entries[0], tmp_path, model, ExtractConfig(), progress=False)
    assert r.face_seconds == 3  # the face leaves at 2.4 s
    write_status(RunLayout(tmp_path).video_dir(r.unit_id), r)  # as the runner records it
    status = RunLayout(tmp_path).video_dir(r.unit_id) / STATUS
    doc = json.loads(status.read_text())
    del doc["face_seconds"]
    status.write_text(json.dumps(doc))
    row = smile_table(collect_extract_results(m, tmp_path)).iloc[0]
    assert row["face_seconds"] == 3 and row["smile_second_fraction"] == pytest.approx(r.smile_seconds / 3)
    attrs = {k: v for k, v in read_attrs(Path(r.output)).items() if k != "n_face_seconds"}
    assert face_seconds_of(attrs, Path(r.output)) == 3


def test_an_extraction_killed_mid_way_leaves_no_record_of_the_run_before(tmp_path, samples, model, make_manifest):
    """A task killed while extracting again (SLURM's OOM kill, no requeue) left the last run's "ok" record, and
    the cohort step's summary reported the old extraction's numbers as this run's. When an attempt starts, its
    record says it did not finish: a real SIGKILL mid-video (no handler or finally runs) leaves that."""
    from dis_core.extract.summary import collect_extract_results
    from dis_core.layout import STATUS

    m_path = make_manifest([{"participant_id": "w", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])}])
    m = load_manifest(m_path)
    env = dict(os.environ, DIS_FACE_MODEL=str(model.path))
    cmd = [sys.executable, "-m", "jobs.cli", "extract", "-m", str(m_path), "-o", str(tmp_path), "--executor", "debug"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    unit = RunLayout(tmp_path).video_dir(m.entries[0].unit_id)
    assert (unit / STATUS).exists() and collect_extract_results(m, tmp_path)[0].status == "ok"
    proc = subprocess.Popen(cmd + ["--force"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and not any(f".part-{proc.pid}-" in f.name for f in unit.iterdir()) \
            and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    assert proc.poll() is None, "the extraction was to be killed mid-video"
    proc.kill()
    proc.wait()
    got = collect_extract_results(m, tmp_path)[0]
    assert got.status == "failed" and got.message.startswith("started ") and got.message.endswith(
        " and did not finish: run it again"), got


def test_an_extraction_of_a_newer_dis_is_neither_overwritten_nor_written_beside(tmp_path, samples, model,
                                                                               make_manifest):
    """Even with --force: an older DIS leaves a newer one's folder as it found it, and says why."""
    import dis_core.extract.h5store as h5store

    m = load_manifest(make_manifest([{"participant_id": "a", "session": "s1", "video": str(samples["face_noface.mov"])}]))
    d = RunLayout(tmp_path).video_dir(m.entries[0].unit_id)
    d.mkdir(parents=True)
    with h5py.File(d / H5_NAME, "w") as f:
        f.attrs.update(schema=h5store.SCHEMA, status="complete", schema_version=h5store.SCHEMA_VERSION + 1)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    for force in (False, True):
        r = extract_video(m.entries[0], tmp_path, model, ExtractConfig(), force=force, progress=False)
        assert r.failed and not r.record and "was written by a newer DIS" in r.message
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    from dis_core.extract.result import ExtractResult
    from dis_core.extract.summary import collect_extract_results
    from dis_core.layout import write_status

    write_status(d, ExtractResult(unit_id=r.unit_id, status="ok"))  # the newer DIS's own record: not this run's
    got = collect_extract_results(m, tmp_path)[0]
    assert got.status == "failed" and "was written by a newer DIS" in got.message


def test_the_summary_reads_a_folders_record_only_for_its_own_video(tmp_path, samples, make_manifest):
    """A folder whose owner has this row's identity but another video (other path, other content) is refused by
    extraction; the cohort's summary reported that video's "ok". A moved video (same content) is the same input."""
    from dis_core.extract.result import ExtractResult
    from dis_core.extract.summary import collect_extract_results
    from dis_core.io.owner import write_owner
    from dis_core.io.provenance import sha256_file
    from dis_core.layout import write_status

    m = load_manifest(make_manifest([{"participant_id": "a", "session": "s1", "video": str(samples["face_noface.mov"])}]))
    e = m.entries[0]
    d = RunLayout(tmp_path).video_dir(e.unit_id)
    write_status(d, ExtractResult(unit_id=e.unit_id, participant_id="a", session="s1", video=e.video_rel, status="ok"))
    owner = {"participant_id": "a", "session": "s1", "video": e.video_rel, "video_path": "/elsewhere/v.mov"}
    write_owner(d, {**owner, "video_sha256": "0" * 64})
    got = collect_extract_results(m, tmp_path)[0]
    assert got.status == "failed" and "belongs to another input (video /elsewhere/v.mov with other content" in got.message
    write_owner(d, {**owner, "video_sha256": sha256_file(e.video)})  # the same file, moved since
    assert collect_extract_results(m, tmp_path)[0].status == "ok"
