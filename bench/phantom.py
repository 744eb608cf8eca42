"""Phantom rendering benchmark: frames per second at 640x480 on one core (prints figures; not a test).

Target: >= 100 frames/s, so that a phantom cohort never costs more than extracting it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from dis_core.io.assets import fetch_samples, resolve_model  # noqa: E402
from dis_core.phantom.render import make_rig, portraits, render_video, sample_dynamics, trajectory  # noqa: E402


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    model = resolve_model()
    faces = dict(portraits(fetch_samples(log=lambda *_: None), model.path))
    rng = np.random.default_rng(0)
    n = 300
    print(f"phantom rendering, 640x480, {n} frames per portrait, one core")
    tot_r, tot_v = [], []
    for name in ("single_face", "0-f1-su-ph", "astronaut", "group3"):
        t0 = time.perf_counter()
        rig = make_rig(faces[name], model.path)
        setup = time.perf_counter() - t0
        ypr = trajectory(sample_dynamics(rng), n, 30.0, rng)
        t0 = time.perf_counter()
        for p in ypr:
            rig.render(p)
        r = n / (time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as td:
            t0 = time.perf_counter()
            render_video(rig, ypr, 30.0, Path(td) / "v.mp4")
            v = n / (time.perf_counter() - t0)
        tot_r.append(r)
        tot_v.append(v)
        print(f"  {name:12s}: rig {setup:.2f} s; render {r:.0f} frames/s; render + mp4 encode {v:.0f} frames/s")
    # throughput over the portraits: every frame over every second (the harmonic mean of the rates; their plain mean
    # would let a fast portrait hide a slow one)
    print(f"  all portraits: render {len(tot_r) / np.sum(1 / np.array(tot_r)):.0f} frames/s, with encoding "
          f"{len(tot_v) / np.sum(1 / np.array(tot_v)):.0f} frames/s (total frames / total time; target >= 100)")


if __name__ == "__main__":
    main()
