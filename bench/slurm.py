"""SLURM benchmarks (print figures; not tests). Needs a running SLURM (tests/slurm/start.sh).

1. Scheduler overhead per unit: submit-to-done of a no-op array of 100 tasks (submitit, 1 CPU each).
2. The demo pipeline (phantom cohort 6 x 2 x 20 s at 15 fps, head pose) end to end on SLURM against
   the local executor, on the same machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def noop(i: int) -> int:
    return i


def overhead(folder: Path, n: int = 100) -> dict:
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(timeout_min=10, cpus_per_task=1, mem_gb=0.5, slurm_array_parallelism=n)
    t0 = time.perf_counter()
    jobs = ex.map_array(noop, range(n))
    t_submit = time.perf_counter() - t0
    assert [j.result() for j in jobs] == list(range(n))
    total = time.perf_counter() - t0
    return {"tasks": n, "submit_s": t_submit, "total_s": total, "per_task_s": total / n}


def demo(root: Path) -> dict:
    from dis_core.io.assets import fetch_samples, resolve_model
    from dis_core.features.build import DEFAULT_FEATURE_SETS
    from dis_core.manifest import load_manifest
    from dis_core.phantom.render import PhantomConfig, make_cohort
    from dis_core.model.config import default_train_config
    from jobs.graph import Plan
    from jobs.local import run_pipeline
    from jobs.slurm import SlurmConfig, run_status, submit_run

    model = resolve_model()
    cfg = PhantomConfig(participants=6, sessions=2, duration_s=20.0, fps=15.0, seed=0)
    m = load_manifest(make_cohort(root / "videos", cfg, fetch_samples(log=lambda *_: None), model.path))
    head = [default_train_config(DEFAULT_FEATURE_SETS["head_pose"])]
    t0 = time.perf_counter()
    run_pipeline(m, root / "local", model, head, workers=2, log=lambda *_: None)
    local = time.perf_counter() - t0
    t0 = time.perf_counter()
    submit_run(Plan(out=root / "slurm", manifest=m.path, model=model, train=tuple(head)),
               SlurmConfig(cpus_per_task=1, mem_gb=2))
    submitted = time.perf_counter() - t0
    while True:
        st = run_status(root / "slurm")
        if not any(u["state"] in ("running", "pending") for s in st.values() for u in s):
            break
        time.sleep(1)
    return {"local_s": local, "slurm_s": time.perf_counter() - t0, "submit_s": submitted,
            "all_done": all(u["state"] == "done" for s in st.values() for u in s)}


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    import shutil

    if shutil.which("sbatch") is None:  # a 40-line FailedJobError before
        sys.exit("bench/slurm.py needs a running SLURM (sbatch on PATH; tests/slurm/start.sh starts one here)")
    with tempfile.TemporaryDirectory() as td:
        o = overhead(Path(td) / "noop")
        print(f"no-op array of {o['tasks']} tasks: submitted in {o['submit_s']:.2f} s, all done after "
              f"{o['total_s']:.1f} s = {o['per_task_s']:.2f} s per task (2 cores, 1 CPU per task)")
        d = demo(Path(td))
        print(f"demo pipeline (6 x 2 x 20 s phantom, head pose): local executor {d['local_s']:.0f} s; SLURM "
              f"{d['slurm_s']:.0f} s from submission (returned in {d['submit_s']:.1f} s) to report; "
              f"ratio {d['slurm_s'] / d['local_s']:.2f}; all units done: {d['all_done']}")


if __name__ == "__main__":
    main()
