"""Extraction benchmark: prints figures (not a test). Run: .venv/bin/python bench/extract.py

1. bare MediaPipe inference vs the whole extraction stage on the same video, both on one core;
2. throughput of the local executor with 1 worker vs 2 workers (one per core);
3. peak RSS of one extraction for a 20 s and a 2 min video (frames are streamed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from dis_core.assets import fetch_samples, resolve_model  # noqa: E402
from dis_core.extract import ExtractConfig, extract_video  # noqa: E402
from dis_core.landmarker import FaceTracker  # noqa: E402
from dis_core.manifest import load_manifest  # noqa: E402
from dis_core.video import iter_frames  # noqa: E402
from jobs.stages import run_extract  # noqa: E402


def manifest(tmp: Path, videos: list[Path], name: str) -> Path:
    p = tmp / f"{name}.csv"
    p.write_text("participant_id,session,video\n" + "".join(f"p{i},s1,{v}\n" for i, v in enumerate(videos)))
    return p


def long_video(src: Path, dst: Path, repeat: int) -> Path:
    """A longer real video: the sample played forwards and backwards ``repeat`` times."""
    frames = [f.rgb for f in iter_frames(src)]
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for k in range(repeat):
        for fr in (frames if k % 2 == 0 else frames[::-1]):
            wr.write(cv2.cvtColor(fr, cv2.COLOR_RGB2BGR))
    wr.release()
    return dst


def one_core_stage_vs_bare(video: Path, tmp: Path, model) -> dict:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import mediapipe as mp

    # bare inference: MediaPipe's detect_for_video alone, on frames decoded beforehand
    frames = [(mp.Image(image_format=mp.ImageFormat.SRGB, data=f.rgb), int(f.time_s * 1000) + f.index)
              for f in iter_frames(video)]
    with FaceTracker(model.path) as t:
        t._lm.detect_for_video(*frames[0])  # warm-up
    with FaceTracker(model.path) as t:
        t0 = time.perf_counter()
        for img, ms in frames:
            t._lm.detect_for_video(img, ms)
        bare = len(frames) / (time.perf_counter() - t0)
    e = load_manifest(manifest(tmp, [video], "one")).entries[0]
    out = {}
    for label, cfg in (("stage", ExtractConfig()), ("stage+landmark_xlsx", ExtractConfig(landmark_workbook=True))):
        t0 = time.perf_counter()
        r = extract_video(e, tmp / "one", model, cfg, force=True, progress=False)
        out[label] = r.frames / (time.perf_counter() - t0)
    return {"frames": len(frames), "bare_fps": bare, **{f"{k}_fps": v for k, v in out.items()}}


def workers_throughput(video: Path, tmp: Path, model, n_videos: int = 8) -> dict:
    rows = [video] * n_videos
    p = tmp / "wk.csv"
    p.write_text("participant_id,session,video\n" + "".join(f"p{i},s1,{v}\n" for i, v in enumerate(rows)))
    m = load_manifest(p)
    res = {}
    for w in (1, 2):
        t0 = time.perf_counter()
        results, _ = run_extract(m, tmp / f"wk{w}", model, ExtractConfig(), executor="local", workers=w,
                                 force=True, progress=False)
        res[w] = sum(r.frames for r in results) / (time.perf_counter() - t0)
    return {"videos": n_videos, "fps_1_worker": res[1], "fps_2_workers": res[2], "speedup": res[2] / res[1]}


def peak_rss_mb(video: Path, tmp: Path, tag: str) -> float:
    # VmHWM of the child itself (ru_maxrss would carry the forking parent's peak across exec)
    code = ("import sys; sys.path.insert(0, %r);"
            "from dis_core.assets import resolve_model; from dis_core.manifest import load_manifest;"
            "from dis_core.extract import extract_video, ExtractConfig;"
            "e = load_manifest(%r).entries[0];"
            "r = extract_video(e, %r, resolve_model(), ExtractConfig(), force=True, progress=False);"
            "hwm = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0];"
            "print(r.frames, hwm)") % (
        str(ROOT), str(manifest(tmp, [video], tag)), str(tmp / tag))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1]) / 1024


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--rss-only", action="store_true", help="only the peak-memory figures")
    a = ap.parse_args()
    model = resolve_model()
    s = fetch_samples(["WolfgangLanger_Pexels.mp4"], log=lambda *_: None)
    video = s["WolfgangLanger_Pexels.mp4"]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        long2 = long_video(video, tmp / "two_minutes.mp4", 6)
        rss = {"20 s": peak_rss_mb(video, tmp, "short"), "2 min": peak_rss_mb(long2, tmp, "long")}
        if a.rss_only:
            for k, (n, mb) in rss.items():
                print(f"  peak RSS, one extraction of a {k} video ({n} frames): {mb:.0f} MB")
            return
        wk = workers_throughput(video, tmp, model)
        one = one_core_stage_vs_bare(video, tmp, model)
        one_long = one_core_stage_vs_bare(long2, tmp, model)
    print(f"extraction benchmark, {video.name} (640x360, {one['frames']} frames), {os.cpu_count()} cores")
    print(f"  one core: bare MediaPipe inference {one['bare_fps']:.1f} frames/s; whole stage "
          f"{one['stage_fps']:.1f} frames/s = {one['stage_fps'] / one['bare_fps']:.2f}x bare (target >= 0.9x)")
    print(f"  one core, 2 min video: bare {one_long['bare_fps']:.1f} frames/s; whole stage "
          f"{one_long['stage_fps']:.1f} frames/s = {one_long['stage_fps'] / one_long['bare_fps']:.2f}x bare")
    print(f"            with the optional landmark workbook: {one['stage+landmark_xlsx_fps']:.1f} frames/s = "
          f"{one['stage+landmark_xlsx_fps'] / one['bare_fps']:.2f}x bare")
    print(f"  local executor, {wk['videos']} videos: 1 worker {wk['fps_1_worker']:.1f} frames/s, 2 workers "
          f"{wk['fps_2_workers']:.1f} frames/s = {wk['speedup']:.2f}x (target >= 1.8x)")
    for k, (n, mb) in rss.items():
        print(f"  peak RSS, one extraction of a {k} video ({n} frames): {mb:.0f} MB")
    print(json.dumps({"one_core": one, "one_core_2min": one_long, "workers": wk, "peak_rss_mb": {k: v[1] for k, v in rss.items()}}))


if __name__ == "__main__":
    main()
