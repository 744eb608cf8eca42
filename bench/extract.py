"""Extraction benchmark: prints figures (not a test). Run: .venv/bin/python bench/extract.py [--only PART]

1. one-core: bare MediaPipe inference vs the whole extraction stage, on a 20 s and a 2 min video, both on
   one pinned core, alternated five times (this machine is noisy); the median pair is reported;
2. workers: throughput of the local executor with 1 worker vs 2 workers (one per core), alternated;
3. rss: peak RSS of one extraction for a 20 s, a 2 min and a 6 min video (frames are streamed).
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

# Only light imports here: the local executor spawns its workers, which re-import this main module
# (jobs.stages pulls in torch: 1.8 s per worker). The `dis` CLI is just as light at import.
from dis_core.io.assets import fetch_samples, resolve_model  # noqa: E402
from dis_core.manifest import load_manifest  # noqa: E402


def manifest(tmp: Path, videos: list[Path], name: str) -> Path:
    """One participant per video; the same file named again is marked allow_duplicate (the workers part extracts
    one video several times, which the manifest check refuses unless a row says so)."""
    p = tmp / f"{name}.csv"
    p.write_text("participant_id,session,video,allow_duplicate\n"
                 + "".join(f"p{i},s1,{v},{'yes' if v in videos[:i] else ''}\n" for i, v in enumerate(videos)))
    return p


def long_video(src: Path, dst: Path, repeat: int) -> Path:
    """A longer real video: the sample played forwards and backwards ``repeat`` times."""
    import cv2

    from dis_core.extract.video import iter_frames

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


def one_core_stage_vs_bare(video: Path, tmp: Path, model, repeats: int = 5) -> dict:
    """Bare inference and the whole stage, alternated ``repeats`` times on one core; the median pair.

    Bare = MediaPipe's public ``detect_for_video`` on frames decoded and wrapped as mp.Image beforehand
    (nothing of DIS in the timed loop). Stage = ``extract_video`` from the file to the finished outputs.
    """
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        return _one_core(video, tmp, model, repeats)
    finally:
        os.sched_setaffinity(0, cores)  # the parts after this one use every core


def _one_core(video: Path, tmp: Path, model, repeats: int) -> dict:
    import mediapipe as mp

    from dis_core.extract.stage import ExtractConfig, extract_video
    from dis_core.extract.landmarker import FaceTracker, LandmarkerConfig
    from dis_core.extract.video import iter_frames

    frames = [(mp.Image(image_format=mp.ImageFormat.SRGB, data=f.rgb), int(f.time_s * 1000) + f.index)
              for f in iter_frames(video)]
    bare_cfg = LandmarkerConfig(max_faces=1)  # bare MediaPipe: one face, tracked
    with FaceTracker(model.path, bare_cfg) as t:
        t._lm.detect_for_video(*frames[0])  # warm-up
    e = load_manifest(manifest(tmp, [video], "one")).entries[0]
    extract_video(e, tmp / "one", model, ExtractConfig(), force=True, progress=False)  # warm-up (imports)
    pairs = []
    for _ in range(repeats):
        with FaceTracker(model.path, bare_cfg) as t:
            t0 = time.perf_counter()
            for img, ms in frames:
                t._lm.detect_for_video(img, ms)
            bare = len(frames) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = extract_video(e, tmp / "one", model, ExtractConfig(), force=True, progress=False)
        pairs.append((bare, r.frames / (time.perf_counter() - t0)))
    (bare, stage), ratios = _median_pair(pairs)
    t0 = time.perf_counter()
    r = extract_video(e, tmp / "one", model, ExtractConfig(landmark_workbook=True), force=True, progress=False)
    with_xlsx = r.frames / (time.perf_counter() - t0)
    return {"frames": len(frames), "bare_fps": bare, "stage_fps": stage, "ratios": [round(x, 3) for x in ratios],
            "stage+landmark_xlsx_fps": with_xlsx}


def workers_throughput(video: Path, tmp: Path, model, n_videos: int = 8, repeats: int = 3) -> dict:
    """Local executor with 1 and 2 workers on the same videos, alternated ``repeats`` times; the median pair."""
    from dis_core.extract.config import ExtractConfig
    from jobs.local import run_pipeline

    m = load_manifest(manifest(tmp, [video] * n_videos, "wk"))
    pairs = []
    for _ in range(repeats):
        res = {}
        for w in (1, 2):
            t0 = time.perf_counter()
            results = run_pipeline(m, tmp / f"wk{w}", model, [], stages=["extract"], extract=ExtractConfig(),
                                   workers=w, force=True, log=lambda *_: None).results["extract"]
            res[w] = sum(r.frames for r in results) / (time.perf_counter() - t0)
        pairs.append((res[1], res[2]))
    (one, two), ratios = _median_pair(pairs)
    return {"videos": n_videos, "fps_1_worker": one, "fps_2_workers": two, "speedup": two / one,
            "ratios": [round(x, 3) for x in ratios]}


def _median_pair(pairs: list[tuple[float, float]]) -> tuple[tuple[float, float], list[float]]:
    """The (reference, measured) pair whose ratio measured/reference is the median, and all ratios."""
    ratios = [b / a for a, b in pairs]
    return pairs[sorted(range(len(pairs)), key=ratios.__getitem__)[len(pairs) // 2]], ratios


def peak_rss_mb(video: Path, tmp: Path, tag: str) -> tuple[int, float]:
    # VmHWM of the child itself (ru_maxrss would carry the forking parent's peak across exec)
    code = ("import sys; sys.path.insert(0, %r);"
            "from dis_core.io.assets import resolve_model; from dis_core.manifest import load_manifest;"
            "from dis_core.extract.stage import extract_video, ExtractConfig;"
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
    ap.add_argument("--only", choices=["one-core", "workers", "rss"], action="append",
                    help="run only these parts (repeatable); default: all")
    a = ap.parse_args()
    parts = a.only or ["one-core", "workers", "rss"]
    model = resolve_model()
    video = fetch_samples(["WolfgangLanger_Pexels.mp4"], log=lambda *_: None)["WolfgangLanger_Pexels.mp4"]
    figures: dict = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        long2 = long_video(video, tmp / "two_minutes.mp4", 6)
        print(f"extraction benchmark, {video.name} (640x360) and a 2 min video made from it, {os.cpu_count()} cores")
        if "one-core" in parts:
            for label, v in (("20 s", video), ("2 min", long2)):
                one = figures[f"one_core_{label.replace(' ', '')}"] = one_core_stage_vs_bare(v, tmp, model)
                print(f"  one core, {label} video ({one['frames']} frames): bare MediaPipe inference "
                      f"{one['bare_fps']:.1f} frames/s, whole stage {one['stage_fps']:.1f} frames/s = "
                      f"{one['stage_fps'] / one['bare_fps']:.2f}x bare (target >= 0.9x; median of the alternated "
                      f"pairs {one['ratios']}); with the optional landmark workbook "
                      f"{one['stage+landmark_xlsx_fps'] / one['bare_fps']:.2f}x")
        if "workers" in parts:
            wk = figures["workers"] = workers_throughput(video, tmp, model)
            print(f"  local executor, {wk['videos']} videos: 1 worker {wk['fps_1_worker']:.1f} frames/s, 2 workers "
                  f"{wk['fps_2_workers']:.1f} frames/s = {wk['speedup']:.2f}x (target >= 1.8x; median of the "
                  f"alternated pairs {wk['ratios']})")
        if "rss" in parts:
            six = long_video(video, tmp / "six_minutes.mp4", 18)
            for label, v in (("20 s", video), ("2 min", long2), ("6 min", six)):
                n, mb = peak_rss_mb(v, tmp, label.replace(" ", ""))
                figures[f"peak_rss_mb_{label.replace(' ', '')}"] = mb
                print(f"  peak RSS, one extraction of a {label} video ({n} frames): {mb:.0f} MB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
