"""Scale of the scoring stage (issue #15): synthetic cohorts of N participants (cheap 3-D Gaussian
features, real model files: a Gaussian baseline and an untrained nflows MAF of the production size),
scored in blocks by the local executor (one process per core) or, with ``--slurm``, as one SLURM job
array through submitit (the score stage's resources from jobs/slurm.py, ``--pack`` blocks per task),
then assembled.

Prints per N: blocks, time per pair (CPU seconds of the block tasks / N^2, and wall / N^2), total
wall time, peak RSS of a block task and of the final assembly (each measured in its own process),
size on disk; at the smallest N, whether the block matrix equals the single-job path bit for bit;
and the core-hours projected for N = 10,000 from the measured per-pair cost.

    nice -n 10 .venv/bin/python bench/scale.py --sizes 100,300,1000 --frames 300 --out /tmp/dis-scale
    nice -n 10 .venv/bin/python bench/scale.py --slurm --sizes 300 --frames 100 --block-size 50 --pack 1

Measured 2026-12-02, before the worker warm-up (a worker's first block then counted torch's import, which
raised the small N's cost and so flattered the N ratio) and the 3 x 3 block check (2 cores shared with other work, load 2-7; nice 10; single-node SLURM 22.05 of
tests/slurm/start.sh, 2 CPUs):

``--sizes 100,1000 --frames 100`` (local executor, 2 workers; N = 1,000 whole, no sampling):

         N block     tasks cpu ms/pair wall ms/pair   wall s block RSS MB reduce RSS MB reduce s  disk MB
       100   100         1       2.142        2.469     24.7          365           109     0.01     23.2
           N=100: block matrix identical to the single-job path: True (single job 15.4 s)
      1000   547         4       1.921        2.209   2209.3          511           159     0.13   2310.6
    time per pair N=100 -> 1000: x0.90 (goal: within 2x)
    peak RSS of any task: 511 MB (goal: under 2048 MB at N = 1,000)
    projected N = 10,000 (100 frames each): 59 core-hours (1e8 pairs x 2.142 ms, ...)
    projected disk for N = 10,000 (100 frames each): 0.2 TB of per-frame log p and norms (...)

``--sizes 3000 --frames 20 --block-size 250 --sample 3000:2`` (N = 3,000 with few frames: 2 of 144 blocks run):
      3000   250     2/144       1.173        0.616     76.9          425           nan      nan     63.0
    a block task's peak RSS 425 MB; 1.17 ms of CPU per pair at 20 frames (projected N = 10,000: 33 core-hours)
``--slurm --sizes 300 --frames 100 --block-size 50 --pack 1`` (one task per block):

       300    50        36       2.851        3.086    277.7          354           114     0.16    210.6
           N=300 on SLURM: 36 array task(s) for 36 block(s); submitted in 0.0 s, all done 277.3 s after
           submission (3.081 ms per pair)
           N=300: block matrix identical to the single-job path: True (single job 112.4 s)

``--pack 4`` (the same, four blocks per task; each task pays Python's and torch's start once):

       300    50        36       2.196        2.029    182.6          354           114     0.16    210.6
           N=300 on SLURM: 9 array task(s) for 36 block(s); submitted in 0.03 s, all done 181.9 s after
           submission (2.021 ms per pair)
           N=300: block matrix identical to the single-job path: True (single job 89.0 s)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def vm_hwm_kb() -> int:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _task(args) -> tuple[str, float, float, int]:
    """One block in a worker process: status, elapsed, CPU seconds, the worker's peak RSS so far (kB;
    a worker runs several blocks, so this bounds each block's peak from above)."""
    import torch  # noqa: F401 - imported before the clock: a worker's first block paid it (25% more CPU)

    import dis_core.model.flows  # noqa: F401
    from dis_core.score.synthetic import run_block

    cohort, scores, r, c, cfg = args
    c0 = time.process_time()
    res = run_block(cohort, scores, r, c, cfg)
    return res.status, res.elapsed_s, time.process_time() - c0, vm_hwm_kb()


def _pack(items: list) -> list[tuple[str, float, float, int]]:
    """One SLURM array task: its blocks one after another (as jobs/slurm.py:PackTask runs units)."""
    return [_task(a) for a in items]


def run_slurm(items: list, folder: Path, pack: int) -> tuple[list, dict]:
    """The blocks as one SLURM array (tasks of ``pack`` blocks) with the score stage's resources; returns
    every block's (status, elapsed, CPU s, task peak RSS) and the array's figures."""
    import submitit

    from jobs.graph import stage
    from jobs.slurm import SlurmConfig, packs, slurm_parameters

    cfg = SlurmConfig(array_parallelism=len(items), stages={"score": {"pack": pack}})
    tasks = packs(items, cfg.resources(stage("score"))["pack"])
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(**slurm_parameters(cfg, stage("score")))
    t0 = time.monotonic()
    jobs = ex.map_array(_pack, tasks)
    submit = time.monotonic() - t0
    res = [r for j in jobs for r in j.result()]
    return res, {"tasks": len(tasks), "submit_s": submit, "done_s": time.monotonic() - t0}


REDUCE = """
import json, sys, time
sys.path.insert(0, "bench")
from scale import vm_hwm_kb
from dis_core.score.blocks import assemble
t0 = time.monotonic()
a = assemble(sys.argv[1], "synthetic")
print(json.dumps({"s": time.monotonic() - t0, "rss_kb": vm_hwm_kb(), "n": len(a.participants)}))
"""


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench(n: int, frames: int, out: Path, workers: int, block: int, check: bool, sample: int = 0,
          slurm_pack: int = 0) -> dict:
    """One cohort size; ``sample`` > 0 runs only that many blocks (a diagonal one first), for sizes whose
    full run does not fit: per-pair time and block RSS are then measured, the assembly is not.
    ``slurm_pack`` > 0: the blocks run as a SLURM array of tasks of that many blocks each."""
    from jobs.executors import map_units
    from dis_core.score.config import ScoreConfig, block_grid, block_size
    from dis_core.score.synthetic import make_synthetic

    cohort, scores = out / f"cohort-{n}-{frames}", out / f"scores-{n}-{frames}"
    shutil.rmtree(scores, ignore_errors=True)
    t0 = time.monotonic()
    if not (cohort / "cohort.json").is_file():
        make_synthetic(cohort, n, frames, seed=n)
    t_make = time.monotonic() - t0
    cfg = ScoreConfig(block_size=block, expected_frames=frames)
    grid = block_grid(n, cfg)
    k = int(round(len(grid) ** 0.5))
    if sample and sample < len(grid):
        spread = [(0, 0), (k - 1, 0), (k // 2, k // 2), (0, k - 1), (k - 1, k - 1), (k // 3, 2 * k // 3)]
        grid = list(dict.fromkeys(spread))[:sample]
    pairs = sum(len(range(r * block_size(n, cfg), min((r + 1) * block_size(n, cfg), n)))
                * len(range(c * block_size(n, cfg), min((c + 1) * block_size(n, cfg), n))) for r, c in grid)
    items = [(cohort, scores, r, c, cfg) for r, c in grid]
    t0 = time.monotonic()
    array: dict = {}
    if slurm_pack:
        res, array = run_slurm(items, out / f"slurm-{n}-{frames}-{time.strftime('%H%M%S')}", slurm_pack)
    else:
        res = map_units(_task, items, executor="local", workers=workers)
    wall = time.monotonic() - t0
    assert all(r[0] == "ok" for r in res), [r for r in res if r[0] != "ok"][:3]
    red = {"rss_kb": float("nan"), "s": float("nan")}
    if len(grid) == k * k:
        red = json.loads(subprocess.run([sys.executable, "-c", REDUCE, str(scores)], cwd=ROOT, check=True,
                                        capture_output=True, text=True).stdout)
    cpu = sum(r[2] for r in res)
    row = {"n": n, "frames": frames, "block_size": block_size(n, cfg), "blocks": k * k, "blocks_run": len(grid),
           "pairs_run": pairs, "make_s": t_make, "wall_s": wall, "cpu_s": cpu, "cpu_per_pair_ms": 1e3 * cpu / pairs,
           "wall_per_pair_ms": 1e3 * wall / pairs, "block_rss_mb": max(r[3] for r in res) / 1024,
           "reduce_rss_mb": red["rss_kb"] / 1024, "reduce_s": red["s"], "disk_mb": _du(scores) / 2 ** 20, **array}
    if check:
        row.update(block_check(cohort, out / f"scores-check-{n}-{frames}", n, frames, workers))
    return row


def block_check(cohort: Path, scores: Path, n: int, frames: int, workers: int) -> dict:
    """Whether blocks assemble to the single-job matrix bit for bit, on a grid of 3 x 3 blocks whatever the
    bench's own block size (one block compared nothing of the offsets or the assembly)."""
    import numpy as np

    from jobs.executors import map_units
    from dis_core.score.blocks import METHODS, assemble, score_whole
    from dis_core.score.config import ScoreConfig, block_grid
    from dis_core.score.synthetic import ArraySource

    shutil.rmtree(scores, ignore_errors=True)
    cfg = ScoreConfig(block_size=-(-n // 3), expected_frames=frames)
    grid = block_grid(n, cfg)
    res = map_units(_task, [(cohort, scores, r, c, cfg) for r, c in grid], executor="local", workers=workers)
    assert all(r[0] == "ok" for r in res), [r for r in res if r[0] != "ok"][:3]
    a = assemble(scores, "synthetic")
    src = ArraySource(cohort)
    t0 = time.monotonic()
    s, _ = score_whole(src, src.participants, cfg.trim)
    whole = time.monotonic() - t0
    shutil.rmtree(scores, ignore_errors=True)
    return {"check_blocks": len(grid), "whole_s": whole,
            "identical_to_single_job": all(np.array_equal(a.s[m], s[m]) for m in METHODS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,300,1000")
    ap.add_argument("--frames", type=int, default=300, help="held-out frames per participant")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--block-size", type=int, default=0, help="0: chosen from N and --frames (ScoreConfig)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/dis-scale"))
    ap.add_argument("--keep", action="store_true", help="keep the score folders")
    ap.add_argument("--sample", default="", help="N:K,... run only K blocks at size N (e.g. 1000:4)")
    ap.add_argument("--slurm", action="store_true", help="run the blocks as a SLURM job array (a running SLURM: "
                    "tests/slurm/start.sh; the --out folder must be shared with the nodes)")
    ap.add_argument("--pack", type=int, default=1, help="with --slurm: blocks per array task")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    sizes = sorted({int(s) for s in a.sizes.split(",")})  # the check runs at the smallest, ratios go up in N
    where = (f"SLURM job array ({a.pack} block(s) per task, the score stage's resources)" if a.slurm
             else f"local executor, {a.workers} worker(s)")
    print(f"scoring in blocks, {where}, {a.frames} held-out frames per participant, "
          "3 features, flow (MAF 2 x 16) + Gaussian per pair")
    print(f"{'N':>6} {'block':>5} {'tasks':>9} {'cpu ms/pair':>11} {'wall ms/pair':>12} {'wall s':>8} "
          f"{'block RSS MB':>12} {'reduce RSS MB':>13} {'reduce s':>8} {'disk MB':>8}")
    sample = {int(x.split(":")[0]): int(x.split(":")[1]) for x in a.sample.split(",") if x}
    rows = []
    for k, n in enumerate(sizes):
        r = bench(n, a.frames, a.out, a.workers, a.block_size, check=(k == 0), sample=sample.get(n, 0),
                  slurm_pack=a.pack if a.slurm else 0)
        rows.append(r)
        tasks = f"{r['blocks_run']}/{r['blocks']}" if r["blocks_run"] < r["blocks"] else str(r["blocks"])
        print(f"{n:>6} {r['block_size']:>5} {tasks:>9} {r['cpu_per_pair_ms']:>11.3f} {r['wall_per_pair_ms']:>12.3f} "
              f"{r['wall_s']:>8.1f} {r['block_rss_mb']:>12.0f} {r['reduce_rss_mb']:>13.0f} {r['reduce_s']:>8.2f} "
              f"{r['disk_mb']:>8.1f}", flush=True)
        if "tasks" in r:
            print(f"       N={n} on SLURM: {r['tasks']} array task(s) for {r['blocks_run']} block(s); submitted in "
                  f"{r['submit_s']:.2f} s, all done {r['done_s']:.1f} s after submission "
                  f"({1e3 * r['done_s'] / r['pairs_run']:.3f} ms per pair)", flush=True)
        if "identical_to_single_job" in r:
            print(f"       N={n}: {r['check_blocks']} blocks assembled identical to the single-job path: "
                  f"{r['identical_to_single_job']} (single job {r['whole_s']:.1f} s)", flush=True)
        if not a.keep:
            shutil.rmtree(a.out / f"scores-{n}-{a.frames}", ignore_errors=True)
    lo, hi = rows[0], rows[-1]
    ratio = hi["cpu_per_pair_ms"] / lo["cpu_per_pair_ms"]
    print(f"time per pair N={lo['n']} -> {hi['n']}: x{ratio:.2f} (goal: within 2x)")
    worst = max(x for r in rows for x in (r["block_rss_mb"], r["reduce_rss_mb"]) if x == x)
    print(f"peak RSS of any task: {worst:.0f} MB (goal: under 2048 MB at N = 1,000)")
    per_pair = max(r["cpu_per_pair_ms"] for r in rows) / 1e3
    print(f"projected N = 10,000 ({a.frames} frames each): {per_pair * 1e8 / 3600:,.0f} core-hours "
          f"(1e8 pairs x {per_pair * 1e3:.3f} ms, the largest measured per-pair cost); per-pair cost grows with "
          "the frames per participant")
    full = [r for r in rows if r["blocks_run"] == r["blocks"]]
    if full:
        per = max(r["disk_mb"] / (r["n"] ** 2 * r["frames"]) for r in full)
        print(f"projected disk for N = 10,000 ({a.frames} frames each): {per * 1e8 * a.frames / 2 ** 20:,.1f} TB of "
              "per-frame log p and norms (compressed; the summaries alone: 1e8 pairs x 6 x 8 B = 4.5 GB)")
    from dis_core.io.atomic import write_text_atomic
    from dis_core.io.provenance import script_provenance

    write_text_atomic(a.out / "scale.json", json.dumps({"provenance": script_provenance(vars(a)), "rows": rows},
                                                       indent=2, default=str))


if __name__ == "__main__":
    main()
