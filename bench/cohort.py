"""Scale of the cohort step: wall time and peak memory of ``prepare_cohort`` (usable videos, split, the
landmark basis, the window bases, every named feature set's column statistics) on synthetic run folders
of N one-video participants (tests/synthrun.py: real HDF5 extraction files of ``--seconds`` at 15 fps,
478 landmarks per frame), each N in its own process (peak RSS = VmHWM of that process).

``--code DIR`` runs the same cohorts with another checkout's dis_core as well (e.g. a worktree of an
older commit), side by side in the same run: ratios, not absolute times, are what to read on a shared
machine.

    nice -n 10 .venv/bin/python bench/cohort.py --sizes 100,300,1000 --out /tmp/dis-cohort \
        [--code /tmp/old --code-max 1000]

Measured 2026-12-03 (2 shared cores, other benchmarks running beside it; 20 s videos at 15 fps, a
within-session split, 240 training frames per video; ``--code /tmp/old``, a worktree of e32a737, the last commit
that held every basis frame in memory and fitted the landmark PCA by one SVD of all of them):

         N  code       wall s   s/video   peak RSS MB
       100  this         38.5     0.385           502
       100  old          91.8     0.918          1335
       300  this         74.1     0.247           498
       300  old          65.9     0.220          3632
      1000  this        180.1     0.180           508
      1000  old         247.6     0.248         11680

("this": 8448f76. The final code, 69217f1, which only shares the reference's 10,000 frames out otherwise,
in a second run without ``--code``: 21.4, 47.6 and 171.4 s; 501, 498 and 508 MB.)

Peak memory is flat in N now (the Procrustes reference from at most 10,000 frames, then the PCA from
running moments a video at a time); before, it grew by ~12 MB a video and passed the cohort job's 4 GB
at about 330 videos. On real 60 s videos (the 80-video identification cohort) the step takes ~0.45 s a
video.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from dis_core.cohort.stage import prepare_cohort
from scale import vm_hwm_kb
import pickle
out = Path(sys.argv[3])
m = pickle.loads(Path(sys.argv[4]).read_bytes())
t = time.perf_counter()
c = prepare_cohort(m, out)
print(f"{time.perf_counter() - t:.3f} {vm_hwm_kb() / 1024:.0f} {len(c.entries)} {c.basis is not None}")
"""


def make(n: int, seconds: float, root: Path) -> Path:
    """A run folder of ``n`` synthetic extractions (made once, reused), and its pickled manifest."""
    import pickle

    sys.path.insert(0, str(ROOT / "tests"))
    from synthrun import make_run

    folder = root / f"n{n}-{seconds:g}s"  # a folder of other lengths is not this cohort
    done = folder / "manifest.pkl"
    if not done.is_file():
        m = make_run(folder / "out", n=n, seconds=seconds)
        done.write_bytes(pickle.dumps(m))
    return folder


def measure(code: Path, folder: Path) -> tuple[float, float]:
    """prepare_cohort of ``folder`` with ``code``'s dis_core in a fresh process: (wall s, peak RSS MB)."""
    r = subprocess.run([sys.executable, "-c", CHILD, str(code), str(ROOT / "bench"), str(folder / "out"),
                        str(folder / "manifest.pkl")], capture_output=True, text=True, cwd=code)
    if r.returncode:
        raise SystemExit(f"{code}: prepare_cohort failed on {folder}:\n{r.stderr[-2000:]}")
    wall, rss, _, _ = r.stdout.split()
    return float(wall), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,300,1000")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dis-cohort"))
    ap.add_argument("--code", type=Path, help="another checkout to run side by side (its dis_core)")
    ap.add_argument("--code-max", type=int, default=300, help="largest N to run with --code")
    a = ap.parse_args()
    print(f"{'N':>6}  {'code':<8} {'wall s':>8} {'s/video':>9} {'peak RSS MB':>13}", flush=True)
    for n in (int(s) for s in a.sizes.split(",")):
        t = time.perf_counter()
        folder = make(n, a.seconds, a.out)
        print(f"  (N={n}: synthetic run folder ready in {time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        runs = [("this", ROOT)] + ([(a.code.name, a.code)] if a.code and n <= a.code_max else [])
        for name, code in runs:
            wall, rss = measure(code, folder)
            print(f"{n:>6}  {name:<8} {wall:>8.1f} {wall / n:>9.3f} {rss:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
