"""The pipeline on a real single-node SLURM (tests/slurm/start.sh) with real submitit."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dis_core.features.build import DEFAULT_FEATURE_SETS
from dis_core.model.flows import FlowConfig
from dis_core.manifest import load_manifest
from dis_core.phantom.render import PhantomConfig, make_cohort
from dis_core.model.config import TrainConfig, default_train_config
from jobs.graph import Plan
from jobs.local import run_pipeline
from jobs.slurm import SlurmConfig, read_run, resubmit, run_status, sacct_states, submit_run

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[1]
HEAD = [default_train_config(DEFAULT_FEATURE_SETS["head_pose"])]
SLURM = SlurmConfig(cpus_per_task=1, mem_gb=2, time_min=30)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, samples, model):
    d = tmp_path_factory.mktemp("slurm_cohort")
    cfg = PhantomConfig(participants=4, sessions=2, duration_s=8.0, fps=15.0, seed=5)
    return load_manifest(make_cohort(d, cfg, samples, model.path))


def _plan(m, out: Path, model, train=HEAD) -> Plan:
    return Plan(out=out, manifest=m.path, model=model, train=tuple(train))


def wait_for(out: Path, timeout: float = 600) -> dict:
    """The run's status once every unit has an outcome and none of its jobs is left in the queue (a task that
    recorded its unit may still be finishing: `dis resubmit` refuses the folder until it is gone)."""
    from dis_core.io.lock import RunLocked
    from jobs.slurm import refuse_busy

    deadline = time.time() + timeout
    while time.time() < deadline:
        st = run_status(out)
        if not any(u["state"] in ("running", "pending") for s in st.values() for u in s):
            try:
                refuse_busy(out)
                return st
            except RunLocked:
                pass
        time.sleep(2)
    raise AssertionError(f"run {out} did not finish in {timeout} s: {st}")


def test_slurm_run_equals_local_run(slurm, cohort, model, tmp_path):
    local = tmp_path / "local"
    run_pipeline(cohort, local, model, HEAD, workers=2, log=lambda *_: None)
    wb_local = local / "report" / "dis_report.xlsx"
    t0 = time.time()
    rec = submit_run(_plan(cohort, tmp_path / "slurm", model), dataclasses.replace(SLURM, max_array_size=3))
    assert time.time() - t0 < 60, "submission returns in seconds"
    assert len(rec["jobs"]["extract"]) == 3, "8 videos over MaxArraySize 3: three arrays"
    st = wait_for(tmp_path / "slurm")
    assert all(u["state"] == "done" for s in st.values() for u in s), st
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "status", str(tmp_path / "slurm")], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == f"done: report {tmp_path / 'slurm/report/dis_report.html'}"
    # dependencies held: the cohort job started after every extraction task ended, reduce after training
    times = _start_end(rec)
    assert times["cohort"][0] >= max(e for _, e in times["extract"])
    assert times["score"][0] >= max(e for _, e in times["train"])
    assert times["report"][0] >= times["score"][1]
    wb = tmp_path / "slurm" / "report" / "dis_report.xlsx"
    a = pd.read_excel(wb_local, sheet_name="scores_head_pose", index_col=0)
    b = pd.read_excel(wb, sheet_name="scores_head_pose", index_col=0)
    assert list(a.index) == list(b.index)
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-6)
    ma = pd.read_excel(wb_local, sheet_name="metrics").set_index(["feature_set", "method"])
    mb = pd.read_excel(wb, sheet_name="metrics").set_index(["feature_set", "method"])
    pd.testing.assert_frame_equal(ma, mb, rtol=1e-6)
    run = read_run(tmp_path / "slurm")
    assert run["dis_version"] and run["slurm"]["cpus_per_task"] == 1


def _start_end(rec) -> dict:
    """Start and end of every job, once SLURM has closed them all (a unit records its outcome before its
    job's process exits, so `dis status` can say done while the last job is still ending)."""
    ids = ",".join(j for js in rec["jobs"].values() for j in js)
    deadline = time.time() + 60
    while True:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,Start,End", "-j", ids], capture_output=True,
                             text=True).stdout
        if "Unknown" not in out or time.time() > deadline:
            break
        time.sleep(2)
    import datetime as dt

    def ts(s):
        return dt.datetime.fromisoformat(s).timestamp()

    res: dict[str, list] = {}
    stage_of = {j: s for s, js in rec["jobs"].items() for j in js}
    for line in out.splitlines():
        jid, start, end = line.split("|")
        stage = stage_of.get(jid.split("_")[0])
        if stage:
            res.setdefault(stage, []).append((ts(start), ts(end)))
    return {k: (v[0] if k in ("cohort", "score", "report") else v) for k, v in res.items()}


def test_failed_unit_is_reported_and_the_rest_completes(slurm, cohort, model, tmp_path, samples):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))  # an mp4 header, then garbage
    rows = [{"participant_id": e.participant_id, "session": e.session, "video": str(e.video), "dyad": e.dyad or "",
             "split": e.split or ""} for e in cohort.entries]
    rows.append({"participant_id": "ph99", "session": "s1", "video": str(bad), "dyad": "", "split": "train"})
    from tests.conftest import write_manifest

    m = load_manifest(write_manifest(tmp_path / "m.csv", rows))
    out = tmp_path / "run"
    submit_run(_plan(m, out, model), SLURM)
    st = wait_for(out)
    failed = [u for u in st["extract"] if u["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["unit"].startswith("ph99_s1_broken-")
    broken = failed[0]["unit"]
    assert "broken.mp4" in failed[0]["message"] and Path(failed[0]["log"]).is_file()
    assert all(u["state"] == "done" for u in st["report"])
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "status", str(out)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 3 and f"FAILED {broken}" in r.stdout and "log:" in r.stdout
    assert r.stdout.splitlines()[-1].startswith(f"1 unit(s) failed or never ran: `dis resubmit {out}`"), r.stdout
    left = pd.read_excel(out / "report" / "dis_report.xlsx", sheet_name="left_out")
    assert broken in set(left.get("unit_id", pd.Series(dtype=str)).dropna())
    scores = pd.read_excel(out / "report" / "dis_report.xlsx", sheet_name="scores_head_pose", index_col=0)
    assert len(scores) == 4


def test_a_failed_cohort_step_leaves_the_stages_after_it_not_run(slurm, tmp_path, model):
    """Every video undecodable: the cohort step fails and its task still ends COMPLETED, so SLURM starts the
    stages after it. Their units record that they did not run and why, instead of failing on a missing
    cohort.json; dis status says so and exits 1 (nothing usable came out)."""
    from tests.conftest import write_manifest

    rows = []
    for k in range(2):
        bad = tmp_path / f"broken{k}.mp4"
        bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000 + k))
        rows.append({"participant_id": f"p{k}", "session": "s1", "video": str(bad), "dyad": "", "split": ""})
    m = load_manifest(write_manifest(tmp_path / "m.csv", rows))
    out = tmp_path / "run"
    submit_run(_plan(m, out, model), SLURM)
    st = wait_for(out)
    assert [u["state"] for u in st["extract"] + st["cohort"]] == ["failed"] * 3
    later = [u for s in ("train", "score", "report") for u in st[s]]
    assert later and all(u["state"] == "failed" and u["message"].startswith("not run: cohort failed (cohort: ")
                         for u in later), later
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "status", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "cohort.json not found" not in r.stdout, r.stdout


# 119 s of the default suite's 991 s (--durations, 2 cores): it trains 4,000 epochs a unit so that one is still
# running when cancelled. It runs with `make test-slurm` and `make test-all`; the default suite keeps real SLURM
# in the local-equals-SLURM run, the failed unit and the packed extraction tasks, and resubmission of a failed
# unit on a real sacct in tests/test_scale.py and tests/test_graph.py.
@pytest.mark.slow
def test_cancelled_training_task_is_resubmitted(slurm, cohort, model, tmp_path):
    slow = [TrainConfig(DEFAULT_FEATURE_SETS["head_pose"],
                        FlowConfig(layers=2, hidden=16, max_epochs=4000, patience=10**6, checkpoint_every_s=2.0))]
    out = tmp_path / "run"
    rec = submit_run(_plan(cohort, out, model, slow), SLURM)
    victim = rec["units"]["train"]["head_pose/ph02"]
    deadline = time.time() + 300
    while sacct_states([victim]).get(victim) != "RUNNING":
        assert time.time() < deadline, "the training task never started"
        time.sleep(1)
    time.sleep(3)
    subprocess.run(["scancel", victim], check=True)
    st = wait_for(out)
    tr = {u["unit"]: u for u in st["train"]}
    assert tr["head_pose/ph02"]["state"] == "failed" and tr["head_pose/ph02"]["slurm"] == "CANCELLED"
    assert sum(u["state"] == "done" for u in st["train"]) == 3
    rec2 = resubmit(out)
    assert rec2["resubmitted"] == {"extract": [], "cohort": [], "pooled": [], "train": ["head_pose/ph02"],
                                   "score": ["head_pose/0-0"], "report": ["report"]}
    st = wait_for(out)
    assert all(u["state"] == "done" for s in st.values() for u in s), st
    scores = pd.read_excel(out / "report" / "dis_report.xlsx", sheet_name="scores_head_pose", index_col=0)
    assert "ph02" in scores.index


def test_accounting_out_of_reach_leaves_the_queue_and_a_note(slurm, capfd):
    """slurmdbd down (stopped here for real) made every `dis status` fail though squeue, which tells the live
    tasks, answered: a queued task is still seen, and one line says finished tasks' states are unknown."""
    from tests.conftest import SLURM_BASE

    pid_file = SLURM_BASE / "state" / "run" / "slurmdbd.pid"
    pid = int(pid_file.read_text()) if pid_file.is_file() else 0
    if not pid or Path(f"/proc/{pid}/comm").read_text().strip() != "slurmdbd":
        pytest.skip("this SLURM's slurmdbd was not started by tests/slurm/start.sh: not ours to stop")
    job = subprocess.run(["sbatch", "--parsable", "--array=0", "-o", "/dev/null", "--wrap", "sleep 60"],
                         capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    try:
        os.kill(pid, 15)
        deadline = time.time() + 30
        while subprocess.run(["sacct", "-n", "-X", "-j", job], capture_output=True).returncode == 0:
            assert time.time() < deadline, "slurmdbd did not stop"
            time.sleep(0.2)
        capfd.readouterr()
        assert sacct_states([f"{job}_0"]).get(f"{job}_0") in ("PENDING", "RUNNING")
        assert "note: SLURM's accounting did not answer (" in capfd.readouterr().err
    finally:
        subprocess.run(["scancel", job])
        restart = subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "start.sh")], capture_output=True, text=True)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert subprocess.run(["sacct", "-n", "-X", "-j", job], capture_output=True).returncode == 0  # back for the rest


def test_a_stage_slurm_refuses_cancels_the_stages_already_queued(slurm, cohort, model, tmp_path):
    """SLURM itself refusing the training array (more memory than any node has): the extraction and cohort
    arrays already queued are cancelled for real, the error names the stage and SLURM's words, and dis status
    lists the stages never submitted."""
    from dis_core.errors import DISError

    out = tmp_path / "run"
    cfg = dataclasses.replace(SLURM, stages={"train": {"mem_gb": 100_000}})
    with pytest.raises(DISError, match=r"the submission failed \(stage train: .*\); the job\(s\) it had queued "
                                       r"\(\d+, \d+\) were cancelled"):
        submit_run(_plan(cohort, out, model), cfg)
    rec = read_run(out)
    queued = rec["submission_failed"]["cancelled"]
    assert len(queued) == 2 and queued == sorted(rec["jobs"]["extract"] + rec["jobs"]["cohort"])
    deadline = time.time() + 60
    while subprocess.run(["squeue", "-h", "-j", ",".join(queued)], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline, "the queued arrays were not cancelled"
        time.sleep(1)
    st = run_status(out)
    never = [(u["state"], u["message"]) for s in ("train", "score", "report") for u in st[s]]
    assert never and set(never) == {("missing", "never submitted (dis resubmit submits it)")}


def test_packed_extraction_tasks_report_and_record_each_unit(slurm, cohort, model, tmp_path):
    """Nine videos in packs of four: three array tasks; the broken video fails alone, the rest of its
    pack is done, and every unit's status names the task the run record maps it to."""
    from dis_core.config import to_doc
    from dis_core.layout import read_status
    from jobs.graph import stage, write_record
    from jobs.slurm import _save, _submit
    from tests.conftest import write_manifest

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    rows = [{"participant_id": e.participant_id, "session": e.session, "video": str(e.video)} for e in cohort.entries]
    rows.insert(1, {"participant_id": "ph99", "session": "s1", "video": str(bad)})  # in the first pack
    m = load_manifest(write_manifest(tmp_path / "m.csv", rows))
    plan = _plan(m, tmp_path / "run", model)
    cfg = dataclasses.replace(SLURM, stages={"extract": {"pack": 4}})
    rec = write_record(plan, "slurm", slurm=to_doc(cfg), units={}, jobs={})
    rec["logs"] = str(plan.layout.slurm_dir(rec["run_id"]))
    _submit(rec, plan, cfg, {"extract": stage("extract").units(plan)})
    _save(rec)
    tasks = sorted(set(rec["units"]["extract"].values()))
    assert len(rec["units"]["extract"]) == 9 and len(tasks) == 3 and len(rec["jobs"]["extract"]) == 1
    st = wait_for(plan.out)["extract"]
    assert [u["state"] for u in st] == ["done", "failed"] + ["done"] * 7, st
    assert st[1]["unit"].startswith("ph99_s1_broken-") and st[1]["job"] == st[0]["job"]
    ext = stage("extract")
    for e in plan.manifest_.entries:
        assert read_status(ext.folder(plan.layout, e)).job == rec["units"]["extract"][e.unit_id]


def test_tasks_in_the_image_see_the_run_folder_manifest_videos_and_model(tmp_path, samples, model):
    """The tasks ran `apptainer exec dis.sif python3` without --bind: a run folder outside $HOME, /tmp and the
    submitting folder (a cluster's /scratch) was invisible in the image and every task died looking for its
    pickled call; so were a manifest, videos and model elsewhere."""
    import shlex

    from jobs.graph import stage
    from jobs.slurm import _executor, plan_binds
    from tests.conftest import write_manifest

    video = samples["single_face.mp4"]
    m = load_manifest(write_manifest(tmp_path / "manifests" / "m.csv",
                                     [{"participant_id": "p", "session": "s1", "video": str(video)}]))
    plan = _plan(m, tmp_path / "scratch" / "run", model)
    plan.out.mkdir(parents=True)
    ex = _executor(tmp_path / "logs" / "extract", SlurmConfig(container="/img/dis.sif"), stage("extract"),
                   binds=plan_binds(plan))  # as _submit builds it: the python command of submitit's sbatch script
    cmd = shlex.split(ex._executor.python)
    assert cmd[:2] == ["apptainer", "exec"] and cmd[-2:] == ["/img/dis.sif", "python3"], cmd
    binds = set(cmd[cmd.index("--bind") + 1].split(","))
    need = [plan.out, tmp_path / "manifests", video.resolve().parent, model.path.parent, tmp_path / "logs" / "extract"]
    seen = [f for f in need if any(str(a) in binds for a in (f, *f.parents))]  # bound, or inside a bound folder
    assert seen == need, binds


def test_videos_inside_the_manifests_folder_need_no_bind_of_their_own(tmp_path, samples):
    """A cohort's videos in one folder each under the manifest's: one bind (the manifest's folder) shows them
    all; it was one per video, thousands on a cluster's sbatch line. A folder elsewhere keeps its own."""
    import shutil

    from jobs.container import container_binds
    from tests.conftest import write_manifest

    rows = []
    for p in ("p1", "p2", "p3"):
        (tmp_path / "study" / "videos" / p).mkdir(parents=True)
        v = shutil.copy(samples["single_face.mp4"], tmp_path / "study" / "videos" / p / f"{p}.mp4")
        rows.append({"participant_id": p, "session": "s1", "video": str(v), "allow_duplicate": "true"})
    rows.append({"participant_id": "p4", "session": "s1", "video": str(samples["single_face.mp4"]),
                 "allow_duplicate": "true"})
    m = load_manifest(write_manifest(tmp_path / "study" / "m.csv", rows))
    assert container_binds(tmp_path / "study" / "run", m) == sorted(
        {str(tmp_path / "study"), str(samples["single_face.mp4"].parent), str(samples["single_face.mp4"].resolve().parent)})


def test_folders_named_with_binds_separators_are_bound_through_a_folder_above_them(tmp_path):
    """apptainer --bind splits at ',' and reads 'a:b' as a onto b: a run folder 'runs/a,b' bound two folders that do
    not exist and the task died. The folder above it, without those characters, is bound instead; a folder at the
    root is refused in one line."""
    from dis_core.errors import DISError
    from jobs.container import bindable, container_binds

    (tmp_path / "runs" / "a,b").mkdir(parents=True)
    (tmp_path / "runs" / "t:1" / "x").mkdir(parents=True)
    got = container_binds(tmp_path / "runs" / "a,b", extra=[tmp_path / "runs" / "t:1" / "x"])
    assert got == [str(tmp_path / "runs")] and not any("," in b or ":" in b for b in got)
    with pytest.raises(DISError, match=r"^/a,b: a folder whose name holds ',' or ':' cannot be bound"):
        bindable("/a,b")


@pytest.mark.parametrize("cfg, stage_name, nv", [
    (SlurmConfig(container="dis.sif", train_gres="gpu:1"), "train", True),
    (SlurmConfig(container="dis.sif", train_gres="gpu:1"), "extract", False),
    (SlurmConfig(container="dis.sif", stages={"score": {"gres": "gpu:a100:1"}}), "score", True),
    (SlurmConfig(container="dis.sif", nv=True), "extract", True),
    (SlurmConfig(container="dis.sif"), "train", False)])
def test_a_task_that_asks_for_a_gpu_gets_it_in_the_image(tmp_path, cfg, stage_name, nv):
    """`dis submit --container X --train-gres gpu:1` got training tasks a GPU from SLURM but ran them without
    apptainer --nv (only `nv = true` in slurm.toml gave it): training silently used the CPU."""
    import shlex

    from jobs.graph import stage
    from jobs.slurm import _executor

    cmd = shlex.split(_executor(tmp_path, cfg, stage(stage_name))._executor.python)
    assert ("--nv" in cmd) == nv, cmd


def test_a_completed_task_whose_unit_left_no_record_of_its_own_failed(tmp_path, samples, model):
    """An extraction refusing a folder another input owns writes no status.json; its task still ends COMPLETED
    and `dis status` took the earlier job's 'ok' record for this task's: done, and dis resubmit skipped it."""
    import shutil

    from dis_core.layout import read_status
    from jobs.graph import run_unit, stage
    from jobs.slurm import unit_state
    from tests.conftest import write_manifest

    plans = []
    for name, src in [("A", "single_face.mp4"), ("B", "carphone_pristine.mp4")]:  # the same row, other videos
        (tmp_path / name).mkdir()
        shutil.copy(samples[src], tmp_path / name / "v.mp4")
        m = write_manifest(tmp_path / name / "m.csv", [{"participant_id": "p1", "session": "s1", "video": "v.mp4"}])
        plans.append(_plan(load_manifest(m), tmp_path / "run", model))
    e1, e2 = (p.manifest_.entries[0] for p in plans)
    assert run_unit("extract", plans[0], e1, job="100_0").status == "ok"
    assert run_unit("extract", plans[1], e2, job="200_0").failed
    rec = read_status(stage("extract").folder(plans[1].layout, e2))
    assert rec.done and rec.job == "100_0", "the unit of job 200_0 could not record"
    assert unit_state("COMPLETED", rec, ran_here=rec.job == "200_0") == "failed"
    assert unit_state("CANCELLED", rec, ran_here=rec.job == "100_0") == "done", "a unit its own task finished"
    assert unit_state("", rec, ran_here=False) == "missing", "SLURM forgot the job: another job's record is not its"
    assert unit_state("", rec, ran_here=True) == "done", "run locally since (job ''): its own record is trusted"
