"""The stage graph is the one place that knows the stages: the local runner, SLURM submission, `dis status`
and `dis resubmit` all read it. A stage added to the table shows up in each of them."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dis_core.config import from_doc, to_doc
from dis_core.errors import DISError
from dis_core.io.assets import ModelFile
from dis_core.io.lock import RunLocked
from dis_core.layout import UNFINISHED, RunLayout, UnitResult, read_status, write_status
from dis_core.model.config import default_train_config
from dis_core.features.build import DEFAULT_FEATURE_SETS, FEATURE_SETS
from jobs import graph, local, slurm
from tests.conftest import write_manifest


def _echo(plan, unit: str) -> UnitResult:
    """A toy stage's unit: reads nothing, fails on purpose for unit 'b'."""
    return UnitResult(unit_id=unit, status="failed" if unit == "b" else "ok", message=f"echo {unit}")


ECHO = graph.Stage("echo", "a toy stage", units=lambda p: ["a", "b"], uid=str, run=_echo,
                   folder=lambda lay, u: lay.root / "echo" / u, after=("report",), wait="afterany")


def _add_stage(monkeypatch, st: graph.Stage) -> tuple[graph.Stage, ...]:
    """The table with one toy stage more, for every interpreter."""
    stages = graph.STAGES + (st,)
    for mod in (graph, local, slurm):
        monkeypatch.setattr(mod, "STAGES", stages)
    monkeypatch.setitem(graph.BY_NAME, st.name, st)
    return stages


@pytest.fixture
def with_echo(monkeypatch):
    return _add_stage(monkeypatch, ECHO)


def _raise_on_b(plan, unit: str) -> UnitResult:
    """A toy stage's unit: a bug (an exception) in unit 'b'."""
    if unit == "b":
        raise RuntimeError("a bug in b")
    return UnitResult(unit_id=unit, status="ok", message=f"ran {unit}")


MANY = graph.Stage("many", "a toy stage of five units", units=lambda p: list("abcde"), uid=str, run=_raise_on_b,
                   folder=lambda lay, u: lay.root / "many" / u, after=("report",), wait="afterany")


@pytest.fixture
def with_many(monkeypatch):
    return _add_stage(monkeypatch, MANY)


class FakeExecutor:
    """Stands for submitit's executor: records what would be submitted, names the tasks as SLURM would."""

    def __init__(self):
        self.calls: list[tuple[str, object, list]] = []
        self.params: list[dict] = []  # sbatch's parameters of each call, as the real executor gets them
        self.images: list[str | None] = []  # the image each call's tasks run in

    def __call__(self, folder, cfg, st, dependency=None, binds=()):
        self.stage = st.name
        self.params.append(slurm.slurm_parameters(cfg, st, dependency))
        self.images.append(cfg.container)
        return self

    def map_array(self, fn, items):
        items = list(items)
        self.calls.append((self.stage, fn, items))
        base = 5000 + len(self.calls)
        return [type("Job", (), {"job_id": f"{base}_{i}"})() for i in range(len(items))]


@pytest.fixture
def plan(tmp_path) -> graph.Plan:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    m = write_manifest(tmp_path / "m.csv", [{"participant_id": "p1", "session": "s1", "video": str(video)},
                                            {"participant_id": "p2", "session": "s1", "video": str(video),
                                             "allow_duplicate": "true"}])
    return graph.Plan(out=tmp_path / "run", manifest=m, model=ModelFile(tmp_path / "model.task", "0" * 64),
                      train=(default_train_config(DEFAULT_FEATURE_SETS["head_pose"]),))


def test_a_manifest_edited_after_planning_is_refused_by_the_stages_that_read_it(plan):
    """The plan records the manifest's hash: a later stage (here the cohort step, and `dis cohort --out` from the
    record) refuses an edited file in one line naming it, instead of reading rows the run was not planned from."""
    import dataclasses

    from dis_core.io.provenance import sha256_file

    plan = dataclasses.replace(plan, manifest_sha256=sha256_file(plan.manifest))
    graph.write_record(plan, "local")
    assert [e.participant_id for e in graph.plan_from_record(graph.read_record(plan.out)).manifest_.entries] == ["p1", "p2"]
    plan.manifest.write_text(plan.manifest.read_text().replace("p2", "p3"))
    again = graph.plan_from_record(graph.read_record(plan.out))
    r = graph.run_unit("cohort", again, "cohort")
    assert r.failed and r.message.startswith(f"{plan.manifest}: changed since the run in {plan.out} was planned")
    assert "internal error" not in r.message and read_status(plan.layout.cohort_dir, UnitResult).failed
    cli = subprocess.run([sys.executable, "-m", "jobs.cli", "cohort", "--out", str(plan.out)], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1])
    assert cli.returncode == 2 and "changed since the run" in cli.stderr + cli.stdout, cli.stderr
    assert "restore it, or plan the run again with dis run, dis extract or dis submit --manifest" in cli.stderr + cli.stdout


def test_a_requeued_slurm_task_runs_on_the_rows_it_was_submitted_with(plan):
    """A SLURM task carries the manifest rows read at submission (pickled with its plan); a requeue after
    pre-emption keeps them, so editing the manifest while tasks are queued changes nothing they do."""
    import dataclasses
    import pickle

    from dis_core.io.provenance import sha256_file

    plan = dataclasses.replace(plan, manifest_sha256=sha256_file(plan.manifest), force=True)
    task = slurm.PackTask("cohort", plan)
    rows = [e.participant_id for e in graph.STAGES[0].units(plan)]  # submission reads the manifest
    task = pickle.loads(pickle.dumps(task))
    plan.manifest.write_text(plan.manifest.read_text().replace("p2", "p3"))
    again = task.checkpoint(["cohort"]).function.plan
    assert [e.participant_id for e in again.manifest_.entries] == rows == ["p1", "p2"] and not again.force
    with pytest.raises(DISError, match="changed since the run"):  # a plan rebuilt from the record reads the file
        graph.plan_from_record({"plan": to_doc(again)}).manifest_


def test_the_plan_round_trips_through_the_run_record(plan):
    rec = graph.write_record(plan, "local")
    back = graph.plan_from_record(json.loads(RunLayout(plan.out).run_record.read_text()))
    assert back == plan and rec["plan"]["_type"] == "jobs.graph.Plan"
    doc = to_doc(plan)
    doc["extract"]["chunk_frames"] = 7
    assert from_doc(graph.Plan, doc).extract.chunk_frames == 7
    with pytest.raises(ValueError, match="unknown field"):
        from_doc(graph.Plan, {**doc, "typo": 1})


def test_units_of_every_stage_come_from_the_plan(plan):
    units = {st.name: [st.uid(u) for u in st.units(plan)] for st in graph.STAGES}
    assert units == {"extract": [e.unit_id for e in plan.manifest_.entries], "cohort": ["cohort"], "pooled": [],
                     "train": ["head_pose/p1", "head_pose/p2"], "score": ["head_pose/0-0"], "report": ["report"]}
    assert graph.downstream(["train"]) == ["train", "score", "report"]
    assert graph.downstream(["cohort"]) == ["cohort", "pooled", "train", "score", "report"]


def test_a_pooled_feature_set_adds_its_shape_unit_and_training_waits_for_it(plan):
    import dataclasses

    spec = FEATURE_SETS["head_spectrum"]
    p = dataclasses.replace(plan, train=plan.train + (default_train_config(spec),))
    assert p.train_config("head_spectrum").density == "pooled" and p.train_config("head_pose").density == "own"
    units = {st.name: st.units(p) for st in graph.STAGES}
    assert [graph.stage("pooled").uid(u) for u in units["pooled"]] == ["pooled/head_spectrum"]
    order = [(st.name, after) for st, _, after in slurm.submission_order(units)]
    assert order[1:4] == [("cohort", ["extract"]), ("pooled", ["cohort"]), ("train", ["cohort", "pooled"])]
    assert slurm.SlurmConfig(train_gres="gpu:1").resources(graph.stage("pooled"))["gres"] == "gpu:1"


def test_a_new_stage_runs_locally_and_records_its_units(with_echo, plan):
    out = local.run_stages(plan, ["echo"], executor="debug", log=lambda *_: None)
    assert [r.status for r in out.results["echo"]] == ["ok", "failed"]
    assert read_status(plan.out / "echo" / "a").message == "echo a"
    assert read_status(plan.out / "echo" / "b").failed
    assert out.exit_code == 3, "one of two units failed: partial"


def test_a_stage_waiting_afterok_on_a_failed_stage_does_not_run(with_echo, plan, monkeypatch):
    after_echo = graph.Stage("after", "reads echo", units=lambda p: ["x"], uid=str, run=_echo,
                             folder=lambda lay, u: lay.root / "after", after=("echo",), wait="afterok")
    stages = graph.STAGES + (after_echo,)
    monkeypatch.setattr(local, "STAGES", stages)
    monkeypatch.setitem(graph.BY_NAME, "after", after_echo)
    lines: list[str] = []
    out = local.run_stages(plan, ["echo", "after"], executor="debug", log=lines.append)
    assert out.not_run == {"after": "echo failed"} and "after: not run: echo failed" in lines
    assert out.exit_code == 1


def test_slurm_submission_waits_as_the_graph_says(with_echo, plan):
    units = {st.name: st.units(plan) for st in with_echo}
    order = [(st.name, after) for st, _, after in slurm.submission_order(units)]
    assert order == [("extract", []), ("cohort", ["extract"]), ("train", ["cohort"]), ("score", ["train"]),
                     ("report", ["score"]), ("echo", ["report"])]
    # a resubmission of training only: nothing waits on stages that are not resubmitted
    part = {"train": units["train"][:1], "score": units["score"], "report": units["report"], "echo": units["echo"]}
    assert [(st.name, a) for st, _, a in slurm.submission_order(part)][0] == ("train", [])
    st = graph.stage("echo")
    assert slurm.SlurmConfig(stages={"echo": {"mem_gb": 1.5}}).resources(st)["mem_gb"] == 1.5
    assert slurm.SlurmConfig(train_gres="gpu:1").resources(graph.stage("train"))["gres"] == "gpu:1"


def test_pack_size_comes_from_the_stage_the_config_and_a_gpu(tmp_path):
    train = graph.stage("train")
    assert slurm.packs(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert slurm.packs(list("ab"), 1) == [["a"], ["b"]]
    assert slurm.SlurmConfig().resources(train)["pack"] == 1, "one unit per task unless asked"
    gpu = slurm.SlurmConfig(train_gres="gpu:1")
    assert gpu.resources(train)["pack"] == slurm.GPU_PACK > 1, "a GPU task packs small trainings"
    assert slurm.SlurmConfig(stages={"train": {"gres": "gpu:1", "pack": 1}}).resources(train)["pack"] == 1
    assert gpu.resources(graph.stage("score"))["pack"] == 1, "only the stage that asks for a GPU"
    params = slurm.slurm_parameters(gpu, train)
    assert params["timeout_min"] == train.resources.time_min * slurm.GPU_PACK, "the units run one after another"
    assert params["slurm_gres"] == "gpu:1" and params["mem_gb"] == train.resources.mem_gb
    toml = tmp_path / "slurm.toml"
    toml.write_text('[slurm]\n[slurm.stages.score]\npack = 4\n')
    assert slurm.load_slurm_config(toml).resources(graph.stage("score"))["pack"] == 4
    for bad in ("0", "2.5", '"8"'):
        toml.write_text(f"[slurm]\n[slurm.stages.train]\npack = {bad}\n")
        with pytest.raises(DISError, match="pack"):
            slurm.load_slurm_config(toml)


def test_submission_packs_consecutive_units_and_records_each_units_task(with_many, plan, monkeypatch):
    fake = FakeExecutor()
    monkeypatch.setattr(slurm, "_executor", fake)
    cfg = slurm.SlurmConfig(max_array_size=2, stages={"many": {"pack": 2}})
    plan.out.mkdir(parents=True)
    rec = {"out": str(plan.out), "logs": str(plan.out / "slurm"), "units": {}, "jobs": {}}
    slurm._submit(rec, plan, cfg, {"many": MANY.units(plan)})
    assert graph.read_record(plan.out)["units"] == rec["units"], "saved before any stage after it is queued"
    # 5 units in packs of 2: three tasks, over MaxArraySize 2: two arrays
    assert [(st, items) for st, _, items in fake.calls] == [("many", [["a", "b"], ["c", "d"]]), ("many", [["e"]])]
    assert isinstance(fake.calls[0][1], slurm.PackTask) and fake.calls[0][1].stage == "many"
    assert rec["units"]["many"] == {"a": "5001_0", "b": "5001_0", "c": "5001_1", "d": "5001_1", "e": "5002_0"}
    assert rec["jobs"]["many"] == ["5001", "5002"]


def test_a_packed_task_runs_every_unit_and_a_bug_fails_only_its_unit(with_many, plan, monkeypatch, capfd):
    """... and the bug's traceback goes to the unit's log, not the terminal (it broke the live line, once per
    failed unit), named in its one-line message."""
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    (plan.out / "many" / "b").mkdir(parents=True, exist_ok=True)
    (plan.out / "many" / "b" / "traceback.log").write_text("an earlier attempt's\n")
    results = slurm.PackTask("many", plan)(["a", "b", "c"])
    said = capfd.readouterr()
    assert "Traceback" not in said.err
    # one line a unit in the task's log (dis status names it): the reason of a unit that cannot write its record
    assert said.out.splitlines()[:1] == ["a: ok: ran a"] and "\nb: failed: internal error: RuntimeError: a bug in b" in said.out
    log = plan.out / "many" / "b" / "traceback.log"
    assert "RuntimeError: a bug in b" in log.read_text() and "earlier attempt" not in log.read_text()
    assert results[1].log == str(log) and f"(traceback: {log})" in results[1].message
    assert "\n" not in results[1].message and not results[1].message.startswith("b:")
    assert [r.status for r in results] == ["ok", "failed", "ok"], "the unit after the bug still runs"
    recorded = {u: read_status(plan.out / "many" / u) for u in "abc"}
    assert [recorded[u].status for u in "abc"] == ["ok", "failed", "ok"]
    assert "internal error: RuntimeError: a bug in b" in recorded["b"].message
    assert {r.job for r in recorded.values()} == {"4242_3"}, "each unit names the task that ran it"
    assert not (plan.out / "many" / "d").exists(), "a pack runs its own units only"


def test_status_and_resubmit_of_a_packed_stage_are_per_unit(with_many, plan, monkeypatch):
    """A pack cancelled after two of its units: the first is done, the bug and the unit never run are
    failed; the other pack completed. Resubmission takes the two failed units only, packed again."""
    cfg = slurm.SlurmConfig(stages={"many": {"pack": 3}})
    units = {st.name: {st.uid(u): f"{999990 + i}_0" for u in st.units(plan)} for i, st in enumerate(with_many)}
    units["many"] = {"a": "77_0", "b": "77_0", "c": "77_0", "d": "77_1", "e": "77_1"}
    graph.write_record(plan, "slurm", slurm=to_doc(cfg), jobs={}, logs=str(plan.out / "slurm"), units=units)
    for st in with_many[:-1]:
        for u in st.units(plan):
            write_status(st.folder(plan.layout, u), UnitResult(unit_id=st.uid(u), status="ok",
                                                               job=units[st.name][st.uid(u)]))  # each by its own task
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    for task, todo in (("0", ["a", "b"]), ("1", ["d", "e"])):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        slurm.PackTask("many", plan)(todo)
    write_status(plan.out / "many" / "c", UnitResult(unit_id="c", status="ok", job="70_0",
                                                    message="8 usable videos"))  # an earlier run's
    states = {"77_0": "CANCELLED", "77_1": "COMPLETED"}
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: states.get(j, "COMPLETED") for j in ids})
    status = slurm.run_status(plan.out)
    assert [(u["unit"], u["state"]) for u in status["many"]] == [
        ("a", "done"), ("b", "failed"), ("c", "failed"), ("d", "done"), ("e", "done")]
    assert status["many"][2]["message"] == "", "an earlier run's message is not this task's failure"
    fake = FakeExecutor()
    monkeypatch.setattr(slurm, "_executor", fake)
    monkeypatch.setattr(slurm, "max_array_size", lambda: 1001)
    rec = slurm.resubmit(plan.out)
    assert rec["resubmitted"]["many"] == ["b", "c"]
    assert [(st, items) for st, _, items in fake.calls] == [("many", [["b", "c"]])]
    assert rec["units"]["many"] == {"a": "77_0", "b": "5001_0", "c": "5001_0", "d": "77_1", "e": "77_1"}


def _slow(plan, unit: str) -> UnitResult:
    """A toy stage's unit that takes its time (SLURM's time limit lands in it); its own broad except, as the
    real units have, must not take the time-out for its failure."""
    try:
        time.sleep(5)
    except Exception as e:  # noqa: BLE001
        from dis_core.errors import at_time_limit

        if at_time_limit(e):
            raise
        return UnitResult(unit_id=unit, message=f"swallowed {e}")
    return UnitResult(unit_id=unit, status="ok")


SLOW = graph.Stage("slow", "a toy stage whose units take 5 s", units=lambda p: ["a", "b"], uid=str, run=_slow,
                   folder=lambda lay, u: lay.root / "slow" / u, after=("report",), wait="afterany")


def _sees_own_record(plan, unit: str) -> UnitResult:
    """A toy unit that reads its own record while it runs (what a kill at this moment would leave)."""
    r = read_status(plan.layout.root / "peek" / unit)
    return UnitResult(unit_id=unit, status="ok", message=f"{r.status}: {r.message}" if r else "none")


PEEK = graph.Stage("peek", "a toy stage", units=lambda p: ["a"], uid=str, run=_sees_own_record,
                   folder=lambda lay, u: lay.root / "peek" / u, after=("report",), wait="afterany")


def _full(plan, unit: str) -> UnitResult:
    import errno

    raise OSError(errno.ENOSPC, "No space left on device", str(plan.layout.root / "full" / unit / "x.npz"))


FULL = graph.Stage("full", "a toy stage on a full disk", units=lambda p: ["a"], uid=str, run=_full,
                   folder=lambda lay, u: lay.root / "full" / u, after=("report",), wait="afterany")


def test_a_local_stage_running_in_a_slurm_folder_shows_its_units_running(with_echo, plan, monkeypatch):
    """While `dis train` ran locally in a SLURM run's folder, dis status listed its running units FAILED (their
    record says 'did not finish' until they do) and exited 3; while the command holds the run lock they run."""
    from dis_core.io.lock import run_lock

    units = {st.name: {st.uid(u): "" for u in st.units(plan)} for st in with_echo}
    graph.write_record(plan, "slurm", slurm={}, units=units, jobs={})
    for st in with_echo:
        for u in st.units(plan):
            write_status(st.folder(plan.layout, u), UnitResult(unit_id=st.uid(u), status="ok"))
    write_status(plan.out / "echo" / "a", UnitResult(unit_id="a", message=f"started now (locally){UNFINISHED}"))
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {})
    assert slurm.run_status(plan.out)["echo"][0]["state"] == "failed", "killed: nothing holds the folder"
    holder = _lock_holder_process(plan.out, "dis train")  # dis status is another process than the command it reads
    try:
        assert slurm.run_status(plan.out)["echo"][0]["state"] == "running"
    finally:
        holder.kill()
        holder.wait()
    with run_lock(plan.out, "dis resubmit"):  # its own lock (dis resubmit asks run_status) runs no unit
        assert slurm.run_status(plan.out)["echo"][0]["state"] == "failed"


def _lock_holder_process(out: Path, what: str) -> subprocess.Popen:
    """Another process holding the run lock of ``out`` as ``what`` (killed by the caller)."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; from dis_core.io.lock import run_lock\n"
                               f"with run_lock({str(out)!r}, {what!r}):\n print('held', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_full_disk_in_any_stage_is_one_line_not_a_bug(monkeypatch, plan):
    """Only extraction said a full disk in words; the cohort step, training, scoring and the report said
    'internal error: OSError: [Errno 28] ... (traceback: ...)'."""
    _add_stage(monkeypatch, FULL)
    r = graph.run_unit("full", plan, "a")
    assert r.failed and r.message == (f"disk full while writing {plan.layout.root / 'full' / 'a' / 'x.npz'}: free "
                                      "space, then run again (finished units are kept)") and not r.log


def test_a_unit_killed_while_it_runs_leaves_a_record_that_it_did_not_finish(monkeypatch, plan):
    """A killed or interrupted unit left the last run's "ok": a cohort step killed after removing its provenance
    read as current, and training and scoring ran on it. While a unit runs its record says it did not finish
    (for dis status, a running unit still, as long as its task runs); its outcome replaces that."""
    _add_stage(monkeypatch, PEEK)
    write_status(plan.layout.root / "peek" / "a", UnitResult(unit_id="a", status="ok", message="the last run's"))
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "55")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    r = slurm.PackTask("peek", plan)(["a"])[0]
    assert r.message.startswith("failed: started ") and r.message.endswith(" (job 55_1) and did not finish: run it again")
    after = read_status(plan.layout.root / "peek" / "a")
    assert after.status == "ok" and after.job == "55_1"
    during = UnitResult(unit_id="a", message=r.message.removeprefix("failed: "), job="55_1")
    assert slurm.unit_state("RUNNING", during, ran_here=True) == "running"
    assert slurm.unit_state("COMPLETED", during, ran_here=True) == "failed"
    assert slurm.unit_state("OUT_OF_MEMORY", during, ran_here=True) == "failed"
    real = UnitResult(unit_id="a", message="a real failure", job="55_1")  # recorded, while the pack goes on
    assert slurm.unit_state("RUNNING", real, ran_here=True) == "failed"
    write_status(plan.layout.cohort_dir, during)  # the cohort step killed: what comes after does not run
    assert graph.upstream_failure("train", plan).startswith("not run: cohort failed (cohort: started ")


def test_the_last_time_out_stops_the_task_and_says_so(monkeypatch, plan, capsys):
    """submitit's real signal handler, at a time-out it may not requeue: its UncompletedJobError was caught by
    the unit as a bug ('internal error'), the pack went on and the task ended COMPLETED, so dis status never said
    to give it more time. Now the unit records the time limit and the task stops."""
    import signal
    import threading

    from submitit.core.job_environment import SignalHandler
    from submitit.core.utils import DelayedSubmission, JobPaths, UncompletedJobError

    _add_stage(monkeypatch, SLOW)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "777")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    task = slurm.PackTask("slow", plan)
    delayed = DelayedSubmission(task, ["a", "b"])
    delayed.set_timeout(0.001, 0)  # timed out, no requeue left

    class Env:  # what the handler asks of submitit's JobEnvironment
        global_rank = 0

        def _requeue(self, countdown):
            raise AssertionError("requeued")

    paths = JobPaths(plan.out / "slurm", job_id="777_0")
    paths.folder.mkdir(parents=True, exist_ok=True)
    before = signal.signal(signal.SIGUSR2, SignalHandler(Env(), paths, delayed).checkpoint_and_try_requeue)
    try:
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGUSR2)).start()
        with pytest.raises(UncompletedJobError):
            task(["a", "b"])
    finally:
        signal.signal(signal.SIGUSR2, before)
    a = read_status(plan.out / "slow" / "a")
    assert a.failed and a.job == "777_0" and a.message.startswith("stopped at its task's time limit (")
    assert a.message.endswith("give it more time (dis resubmit --time-min N)")
    assert not (plan.out / "slow" / "b").exists(), "the task stops: the pack's next unit does not start"
    assert capsys.readouterr().out.endswith(f"a: failed: {a.message}\n"), "and says so in the task's log"


def test_only_stages_that_resume_are_requeued_at_a_time_out(plan, request):
    """An extraction requeued at its time limit ran from its first frame again, four times; the fits resume from
    their checkpoints. (submitit's SLURM executor needs srun: the real SLURM; this part ran before it was started
    on a fresh machine.)"""
    request.getfixturevalue("slurm")
    cfg = slurm.SlurmConfig()
    counts = {st.name: slurm._executor(plan.out / "ex", cfg, st)._executor.max_num_timeout for st in graph.STAGES}
    assert counts == {"extract": 0, "cohort": 0, "pooled": 3, "train": 3, "score": 0, "report": 0}


def test_resubmit_after_out_of_memory_takes_more_memory_and_keeps_it(with_many, plan, monkeypatch):
    """A task killed OUT_OF_MEMORY: status says which option it needs; `dis resubmit --mem-gb` replaces the
    recorded memory, also a stage table's, for this submission and the next (the recorded resources alone
    would fail it again), and the record says what changed."""
    from jobs.cli import status_outlook

    cfg = slurm.SlurmConfig(time_min=60, stages={"many": {"pack": 5, "mem_gb": 4.0}})
    units = {st.name: {st.uid(u): f"{999990 + i}_0" for u in st.units(plan)} for i, st in enumerate(with_many)}
    units["many"] = {u: "77_0" for u in "abcde"}
    graph.write_record(plan, "slurm", slurm=to_doc(cfg), jobs={}, logs=str(plan.out / "slurm"), units=units)
    for st in with_many[:-1]:
        for u in st.units(plan):
            write_status(st.folder(plan.layout, u), UnitResult(unit_id=st.uid(u), status="ok",
                                                               job=units[st.name][st.uid(u)]))
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "OUT_OF_MEMORY" if j == "77_0" else "COMPLETED"
                                                            for j in ids})
    status = slurm.run_status(plan.out)
    assert {u["state"] for u in status["many"]} == {"failed"}
    assert status_outlook(status, plan.out).endswith("(OUT_OF_MEMORY units need more: add --mem-gb N, which applies "
                                                     "to every stage resubmitted)")
    stopped = {"train": [{"unit": "x", "state": "failed", "slurm": "FAILED",
                          "message": "stopped at its task's time limit (Job not requeued): give it more time"}]}
    assert "TIMEOUT units need more: add --time-min N" in status_outlook(stopped, plan.out)  # a task so stopped: FAILED
    fake = FakeExecutor()
    monkeypatch.setattr(slurm, "_executor", fake)
    monkeypatch.setattr(slurm, "max_array_size", lambda: 1001)
    rec = slurm.resubmit(plan.out, mem_gb=16.0, time_min=None)
    assert fake.params[-1]["mem_gb"] == 16.0 and fake.params[-1]["timeout_min"] == 60 * 5, "time kept, per unit"
    saved = graph.read_record(plan.out)
    assert saved["slurm"]["mem_gb"] == 16.0 and "mem_gb" not in saved["slurm"]["stages"]["many"]
    assert saved["slurm"]["stages"]["many"]["pack"] == 5 and saved["slurm_changes"] == [{"mem_gb": 16.0}]
    assert rec["units"]["many"] == {u: "5001_0" for u in "abcde"}
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "TIMEOUT" if j == "5001_0" else "COMPLETED"
                                                            for j in ids})
    slurm.resubmit(plan.out)  # a later resubmission without options keeps what the last one asked for
    assert fake.params[-1]["mem_gb"] == 16.0 and fake.images[-1] is None
    monkeypatch.chdir(plan.out.parent)
    with pytest.raises(DISError, match=r"container img/dis.sif: no such image file .*make container"):
        slurm.resubmit(plan.out, container="img/dis.sif")  # refused before anything is submitted
    assert len(fake.params) == 2
    (plan.out.parent / "img").mkdir()
    (plan.out.parent / "img" / "dis.sif").write_bytes(b"sif")
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "TIMEOUT" if j == "5002_0" else "COMPLETED"
                                                            for j in ids})
    slurm.resubmit(plan.out, container="img/dis.sif")  # an image rebuilt elsewhere, named from here
    image = str((plan.out.parent / "img" / "dis.sif").resolve())
    assert fake.images[-1] == image and graph.read_record(plan.out)["slurm"]["container"] == image
    assert graph.read_record(plan.out)["slurm_changes"][-1] == {"container": image}
    with pytest.raises(DISError, match=r"dis resubmit: \[slurm\] time_min = 1: must be a whole number of minutes"):
        slurm.resubmit(plan.out, time_min=1)


@pytest.mark.usefixtures("slurm")  # a real sacct and squeue (the fixture starts SLURM)
def test_status_and_resubmit_read_a_new_stage_from_the_record(with_echo, plan, monkeypatch):
    """`dis status` reports the toy stage's units from their recorded outcome; `dis resubmit` picks
    the failed one (and nothing upstream), reading the same table."""
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={}, logs=str(plan.out / "slurm"),
                             units={st.name: {st.uid(u): f"{999990 + i}_0" for u in st.units(plan)}
                                    for i, st in enumerate(with_echo)})
    for i, st in enumerate(with_echo):  # every unit of the real stages is done, echo/b failed, each by its task
        for u in st.units(plan):
            r = _echo(plan, st.uid(u)) if st.name == "echo" else UnitResult(unit_id=st.uid(u), status="ok")
            r.job = f"{999990 + i}_0"
            write_status(st.folder(plan.layout, u), r)
    status = slurm.run_status(plan.out)
    assert [(u["unit"], u["state"]) for u in status["echo"]] == [("a", "done"), ("b", "failed")]
    assert all(u["state"] == "done" for s in ("extract", "cohort", "train", "score", "report") for u in status[s])
    submitted = {}
    monkeypatch.setattr(slurm, "_submit", lambda rec, plan, cfg, units: submitted.update(units))
    rec2 = slurm.resubmit(plan.out)
    assert rec2["resubmitted"] == {"extract": [], "cohort": [], "pooled": [], "train": [], "score": [], "report": [], "echo": ["b"]}
    assert submitted["echo"] == ["b"]


# `sacct -n -P -X -o JobID,State` and `squeue -h -r -o '%i|%T'` as a real SLURM 22.05 printed them
SACCT = """4711_0|COMPLETED
4711_1|FAILED
4711_[2-4,7%2]|PENDING
4712|CANCELLED by 0
4713_0|OUT_OF_MEMORY
"""


def test_sacct_output_is_parsed_per_task():
    st = slurm.parse_sacct(SACCT)
    assert st == {"4711_0": "COMPLETED", "4711_1": "FAILED", "4711_2": "PENDING", "4711_3": "PENDING",
                  "4711_4": "PENDING", "4711_7": "PENDING", "4712": "CANCELLED", "4713_0": "OUT_OF_MEMORY"}


def _fake_bin(tmp_path: Path, **scripts: str) -> str:
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for name, body in scripts.items():
        (d / name).write_text("#!/bin/sh\n" + body + "\n")
        (d / name).chmod(0o755)
    return str(d)


def test_a_slurm_that_does_not_answer_is_an_error_not_a_run_that_never_ran(tmp_path, monkeypatch, capsys):
    """sacct failing read as empty: every unit "missing", and dis resubmit queued live units a second time.
    squeue's "Invalid job id" (jobs gone from the queue) is an empty answer; a missing sacct is named. Accounting's
    database out of reach leaves squeue (live tasks) and the records: a note, not an error (dis status stopped)."""
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, sacct="echo 'sacct: error: Invalid field requested: \"Stat\"' >&2; exit 1",
                                         squeue="echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"))
    with pytest.raises(DISError, match=r"sacct failed \(sacct: error: Invalid field requested: \"Stat\"\): the SLURM run's state is unknown"):
        slurm.sacct_states(["7_0"])
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, sacct="echo '7_0|COMPLETED'"))
    assert slurm.sacct_states(["7_0"]) == {"7_0": "COMPLETED"}
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, squeue="echo 'Unable to contact slurm controller' >&2; exit 1"))
    with pytest.raises(DISError, match="squeue failed"):
        slurm.sacct_states(["7_0"])
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, squeue="echo '7_1|RUNNING'",
                                         sacct="echo 'sacct: error: Slurm accounting storage is disabled' >&2; exit 1"))
    assert slurm.sacct_states(["7_0", "7_1"]) == {"7_1": "RUNNING"}  # no accounting: the queue and the records
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, squeue="echo '7_1|RUNNING'",
                                         sacct="echo 'sacct: error: Problem talking to the database: Connection refused' >&2; exit 1"))
    capsys.readouterr()
    assert slurm.sacct_states(["7_0", "7_1"]) == {"7_1": "RUNNING"}
    assert capsys.readouterr().err == ("note: SLURM's accounting did not answer (sacct: error: Problem talking to the "
                                       "database: Connection refused): the states of finished tasks are unknown, the "
                                       "units' records and squeue tell the run's state\n")
    (tmp_path / "bin" / "sacct").unlink()
    with pytest.raises(DISError, match="sacct not found"):
        slurm.sacct_states(["7_0"])


def test_a_run_that_queued_nothing_is_never_busy_and_slurm_is_not_asked(plan, tmp_path, monkeypatch):
    """A record whose submission queued no job (refused at its first stage) cannot be in the queue: asking squeue
    anyway made dis resubmit fail whenever the controller was down, for a question with a known answer."""
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={}, logs=str(plan.out / "slurm"), units={})
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, squeue="echo 'Unable to contact slurm controller' >&2; exit 1"))
    slurm.refuse_busy(plan.out)
    rec = json.loads(RunLayout(plan.out).run_record.read_text())
    rec["jobs"] = {"extract": ["12"]}
    RunLayout(plan.out).run_record.write_text(json.dumps(rec))
    with pytest.raises(DISError, match="squeue failed"):  # with jobs to look for, a silent SLURM is still an error
        slurm.refuse_busy(plan.out)
    # and the folder cannot be used now: exit 2 from dis report as from dis submit and dis status (it was 1,
    # 'nothing usable came out', from dis run and dis report)
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "report", "--out", str(plan.out)], capture_output=True,
                       text=True, cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PATH": os.environ["PATH"]})
    assert r.returncode == 2 and "squeue failed" in r.stderr + r.stdout, (r.returncode, r.stderr)


@pytest.mark.parametrize("slurm_state,recorded,state", [
    # records of another task or run than the unit's (a local run's, an earlier submission's): never "done" by
    # themselves (they said done while the next stage's tasks refused them, and resubmission looped)
    ("COMPLETED", "ok", "failed"), ("", "skipped", "missing"), ("RUNNING", "ok", "running"),
    ("PENDING", None, "pending"), ("REQUEUED", "failed", "pending"), ("COMPLETED", "failed", "failed"),
    ("COMPLETED", None, "failed"), ("CANCELLED", None, "failed"), ("TIMEOUT", "ok", "failed"),
    ("", None, "missing"), ("", "failed", "failed"), ("", "left_out", "missing"),
    # every state squeue lists is still in the queue: a suspended job resumes (dis resubmit ran a second copy)
    ("SUSPENDED", None, "running"), ("STOPPED", "ok", "running"), ("REQUEUE_HOLD", None, "pending"),
    ("SPECIAL_EXIT", None, "pending")])
def test_unit_state_combines_slurm_and_the_recorded_outcome(slurm_state, recorded, state):
    r = None if recorded is None else UnitResult(unit_id="u", status=recorded)
    assert slurm.unit_state(slurm_state, r) == state
    if recorded in ("ok", "skipped", "left_out") and slurm_state not in slurm.QUEUED:
        assert slurm.unit_state(slurm_state, r, ran_here=True) == "done"  # the unit's own task (or local run) said


@pytest.mark.parametrize("slurm_state", ["COMPLETED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "RUNNING"])
def test_a_unit_its_own_task_finished_stays_done_whatever_the_task_did_next(slurm_state):
    ok, bad = UnitResult(unit_id="u", status="ok", job="1_0"), UnitResult(unit_id="u", status="failed", job="1_0")
    assert slurm.unit_state(slurm_state, ok, ran_here=True) == "done"
    assert slurm.unit_state(slurm_state, ok) != "done", "an earlier run's record is not this task's outcome"
    assert slurm.unit_state(slurm_state, bad, ran_here=True) == "failed"


def test_a_unit_run_locally_since_is_not_asked_of_slurm_and_has_no_task_log(tmp_path, monkeypatch):
    """A unit rerun locally in a SLURM run's folder records job '': sacct and squeue were asked for '-j ,900,901'
    and dis status pointed at a task log that cannot exist (slurm/report/_0_log.err)."""
    asked = []
    monkeypatch.setattr(slurm, "slurm_query", lambda cmd: asked.append(cmd) or "")
    assert slurm.sacct_states(["", "900_1", "901_0"]) == {}
    assert [c[c.index("-j") + 1] for c in asked] == ["900,901", "900,901"]
    asked.clear()
    assert slurm.sacct_states(["", ""]) == {} and not asked
    rec = {"logs": str(tmp_path / "slurm" / "run1")}
    unit = tmp_path / "report"
    unit.mkdir()
    assert slurm._log(rec, "report", "", unit) == ""
    (unit / "traceback.log").write_text("Traceback ...\n")
    assert slurm._log(rec, "report", "", unit) == str(unit / "traceback.log")
    err = tmp_path / "slurm" / "run1" / "report" / "900_1_0_log.err"
    # a task cancelled before it started wrote no log: said so, not a path that does not exist
    assert slurm._log(rec, "report", "900_1", None) == f"none: the task never started ({err} was not written)"
    err.parent.mkdir(parents=True)
    err.write_text("")  # started, said nothing on stderr yet
    assert slurm._log(rec, "report", "900_1", None) == str(err)


def test_a_stage_rerun_locally_keeps_the_records_its_local_run_did_not_reach(with_echo, plan):
    """A local run of some feature sets in a SLURM folder blanks the job of every unit of its stages: the units of
    the other sets keep their SLURM task's ok, which the tasks trust, and so must status (they read 'missing',
    and dis resubmit queued them and everything after them)."""
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={}, logs=str(plan.out / "slurm"),
                       units={st.name: {st.uid(u): "" if st.name == "echo" else f"{999990 + i}_0"
                                        for u in st.units(plan)} for i, st in enumerate(with_echo)})
    for i, st in enumerate(with_echo):
        for u in st.units(plan):
            r = UnitResult(unit_id=st.uid(u), status="ok", job=f"{999990 + i}_0")  # all by their SLURM tasks
            write_status(st.folder(plan.layout, u), r)
    status = slurm.run_status(plan.out)
    assert {u["state"] for s in status.values() for u in s} == {"done"}


def test_a_bug_in_a_unit_that_claims_its_folder_leaves_that_folder_alone(plan):
    """An extraction's folder may be another video's until the unit claims it: its traceback goes to the run's
    summary folder, and an earlier one there is what it removes."""
    st = graph.stage("extract")

    class Entry:
        unit_id = "p1_s1_v-0123"

    tb = graph.traceback_log(st, plan, Entry())
    assert tb == plan.layout.summary_dir / "tracebacks" / "extract-p1_s1_v-0123.log"
    # and dis status points there: the video's folder has no traceback of its own
    folder = plan.layout.video_dir(Entry.unit_id)
    folder.mkdir(parents=True)
    tb.parent.mkdir(parents=True)
    tb.write_text("Traceback ...\n")
    assert slurm._log({"logs": str(plan.out / "slurm")}, "extract", "", folder, tb) == str(tb)
    assert graph.traceback_log(graph.stage("cohort"), plan, "cohort") == plan.layout.cohort_dir / "traceback.log"


def test_a_task_requeued_after_its_unit_recorded_a_failure_is_pending_not_failed():
    """submitit's time-out handler requeues a task: until it runs again its unit is pending, whatever it recorded."""
    bad = UnitResult(unit_id="u", status="failed")
    assert slurm.unit_state("PENDING", bad, ran_here=True) == slurm.unit_state("REQUEUED", bad, ran_here=True) == "pending"


def test_a_stage_waits_afterany_on_arrays_of_feature_sets_and_as_the_graph_says_on_the_rest():
    """SLURM's afterok on the pooled array cancelled every feature set's training when one pooled task was killed
    (scancel, out of memory): training waits 'afterany' on it and each task checks its own feature set's records."""
    dep = slurm.slurm_dependency
    assert dep(graph.stage("train"), {"cohort": ["71"], "pooled": ["72", "73"]}) == "afterok:71,afterany:72:73"
    assert dep(graph.stage("pooled"), {"cohort": ["71"]}) == "afterok:71"
    assert dep(graph.stage("score"), {"train": ["74"]}) == "afterany:74"
    assert dep(graph.stage("cohort"), {"extract": ["70"]}) == "afterany:70"
    assert dep(graph.stage("train"), {"cohort": [], "pooled": []}) is None


def test_a_slurm_task_does_not_trust_a_record_its_predecessors_task_did_not_write(plan, monkeypatch):
    """The cohort task of a run was killed: its status.json is the previous run's, which described other inputs.
    Training, scoring and the report record that it did not run (scoring and the report ran on the old
    cohort and models and called them current). Off SLURM, and once the cohort's own task recorded, they run."""
    import json

    units = graph.stage("train").units(plan)
    plan.layout.root.mkdir(parents=True, exist_ok=True)
    plan.layout.run_record.write_text(json.dumps({"units": {"cohort": {"cohort": "90"},
                                                           "train": {graph.stage("train").uid(u): "91_0" for u in units}}}))
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="ok", job="80"))  # the last run's
    assert graph.upstream_failure("train", plan) == ""  # the local runner checks no job
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "92")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    want = ("not run: cohort recorded no outcome in its task (cohort: job 90 was killed or cancelled; dis status "
            "says how); dis resubmit")
    jobs = graph.recorded_jobs(plan)
    assert graph.upstream_failure("train", plan, jobs=jobs) == graph.upstream_failure("score", plan, jobs=jobs) == want
    assert graph.upstream_failure("report", plan, jobs=jobs) == want
    got = slurm.PackTask("score", plan)(graph.stage("score").units(plan))
    assert [(r.message, r.job) for r in got] == [(want, "92_0")]
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="ok", job="90"))
    assert graph.upstream_failure("train", plan, jobs=jobs) == graph.upstream_failure("report", plan, jobs=jobs) == ""
    (plan.layout.cohort_dir / "status.json").unlink()  # killed on its first run: no record at all
    assert graph.upstream_failure("train", plan, jobs=jobs) == want
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="failed", message="no usable video",
                                                    job="80"))  # the last run's failure is not this run's
    assert graph.upstream_failure("train", plan, jobs=jobs) == want


def test_a_unit_redone_locally_in_a_slurm_runs_folder_is_trusted_by_the_tasks_after_it(plan, monkeypatch):
    """The cohort step failed on SLURM and the user ran dis cohort locally: dis resubmit's training then
    recorded 'cohort recorded no outcome in its task' (its record named no job), again at every resubmit."""
    graph.write_record(plan, "slurm", slurm={}, units={"cohort": {"cohort": "90"}}, jobs={"cohort": ["90"]})
    graph.record_local_run(plan, "local", ["cohort"])
    assert graph.recorded_jobs(plan) == {"cohort": {"cohort": ""}}
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "93")  # a local run inside an allocation records no job either
    r = graph.run_unit("cohort", plan, "cohort", blocked="x")
    assert r.job == "" and read_status(plan.layout.cohort_dir).job == ""
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="ok"))
    assert graph.upstream_failure("train", plan, jobs=graph.recorded_jobs(plan)) == ""


def test_every_command_is_a_stage_or_drives_the_graph():
    """Every stage of the table is a `dis` command of its own."""
    from typer.main import get_command

    from jobs.cli import app

    names = set(get_command(app).commands)
    assert {st.name for st in graph.STAGES} <= names
    def heavy(modules: str) -> str:
        code = f"import sys, {modules}; print(sorted(m for m in ('torch', 'cv2', 'mediapipe') if m in sys.modules))"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout.strip()

    assert heavy("jobs.graph, jobs.local, jobs.slurm") == "[]", "the job layer loads no heavy library"
    assert heavy("dis_core.model.stage, dis_core.score.stage") == "['torch']", "training never loads OpenCV/MediaPipe"


def test_the_cli_names_the_feature_sets_the_library_defines():
    """The CLI keeps its own copy of the names (its help loads no feature code): the copy is the library's."""
    from dis_core.features.build import DEFAULT_FEATURE_SETS, FEATURE_SETS
    from jobs import cli

    assert cli.DEFAULT_FEATURE_SETS.split(",") == list(DEFAULT_FEATURE_SETS)
    assert cli.ALL_FEATURE_SETS.split(", ") == list(FEATURE_SETS)


def test_no_tracked_file_holds_a_merge_conflict():
    """A merge left unresolved in README once gave two contradictory stage graphs; no tracked file may hold
    conflict markers."""
    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.split(b"\0")
    bad = [f.decode() for f in files if f and (root / f.decode()).is_file()
           and any(line.startswith((b"<<<<<<< ", b">>>>>>> ")) for line in (root / f.decode()).read_bytes().splitlines())]
    assert not bad, f"merge conflict markers in {bad}"


def test_a_slurm_task_waiting_afterok_on_a_failed_stage_records_why_instead_of_running(plan, monkeypatch):
    """SLURM starts a stage that waits 'afterok' even when the unit before it failed (its task still ends
    COMPLETED): each unit then records 'not run: cohort failed (...)', as the local runner does not run it,
    instead of failing on a missing cohort.json with advice for a local run."""
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "88")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="failed", message="no usable video"))
    units = graph.stage("train").units(plan)
    got = slurm.PackTask("train", plan)(units)
    assert [r.status for r in got] == ["failed"] * len(units) == ["failed", "failed"]
    want = "not run: cohort failed (cohort: no usable video); fix it and run again (a SLURM run: dis resubmit)"
    assert {read_status(graph.stage("train").folder(plan.layout, u)).message for u in units} == {want}
    # a stage not run leaves every stage after it not run, whatever they wait on (as the local runner does)
    assert graph.upstream_failure("score", plan) == graph.upstream_failure("report", plan) == want
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="ok"))
    assert graph.upstream_failure("train", plan) == graph.upstream_failure("report", plan) == ""
    write_status(graph.stage("train").folder(plan.layout, units[0]), UnitResult(unit_id="x", status="failed"))
    assert graph.upstream_failure("score", plan) == ""  # afterany: scoring runs on what training left


def test_a_submission_to_a_folder_whose_run_is_in_progress_is_refused(plan, monkeypatch):
    """A second dis submit (or a dis run) on a folder whose SLURM run is queued ran every unit twice and replaced
    the first run's record. Refused as a folder in use (exit 2), judged from the record's job ids in squeue."""
    units = {st.name: {st.uid(u): f"{700 + i}_0" for u in st.units(plan)} for i, st in enumerate(graph.STAGES)}
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={}, logs=str(plan.out / "slurm"), units=units)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    queue = {"out": "703\n42\n"}  # squeue -o %F: the array ids still queued (suspended, held... alike)
    monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, queue["out"], ""))
    rec = json.loads(RunLayout(plan.out).run_record.read_text())
    rec["jobs"] = {"extract": ["700"], "train": ["703"]}
    RunLayout(plan.out).run_record.write_text(json.dumps(rec))
    before = RunLayout(plan.out).run_record.read_text()
    with pytest.raises(DISError, match=r"still in the queue \(job\(s\) 703\)"):  # RunLocked: exit 2
        slurm.submit_run(plan, slurm.SlurmConfig())
    assert RunLayout(plan.out).run_record.read_text() == before
    with pytest.raises(RunLocked, match="still in the queue"):  # dis run too: its tasks take no lock
        local.run_stages(plan, ["extract"], progress=False)
    plan.manifest.unlink()  # a record whose manifest is gone, its jobs finished: never blocks the folder
    queue["out"] = "42\n"
    slurm.refuse_busy(plan.out)
    # where squeue is missing (a node or image without SLURM's tools) the queue cannot be asked: refused, not run
    # beside the tasks, unless the queue was asked elsewhere (--container asks on the host) or the user says so
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    monkeypatch.delenv(slurm.QUEUE_CHECKED, raising=False)
    with pytest.raises(RunLocked, match=r"SLURM run \(job\(s\) 700, 703\) may still be in the queue, and squeue is not "
                                        r"on PATH to ask: .*, with DIS_QUEUE_CHECKED=1"):
        slurm.refuse_busy(plan.out)
    monkeypatch.setenv(slurm.QUEUE_CHECKED, "0")  # a leftover 'off' is no answer
    with pytest.raises(RunLocked, match="may still be in the queue"):
        slurm.refuse_busy(plan.out)
    monkeypatch.setenv(slurm.QUEUE_CHECKED, "1")
    slurm.refuse_busy(plan.out)


def _failing_submission(monkeypatch, stage: str, error: BaseException) -> list:
    """Submission through :class:`FakeExecutor` until ``stage`` raises ``error`` (sbatch refusing, Ctrl-C);
    the commands run instead of scancel/squeue are returned as they are made."""

    class Failing(FakeExecutor):
        def map_array(self, fn, items):
            if self.stage == stage:
                raise error
            return super().map_array(fn, items)

    ran = []
    monkeypatch.setattr(slurm, "_executor", Failing())
    monkeypatch.setattr(slurm, "max_array_size", lambda: 1001)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    real = subprocess.run  # what the run record asks once (git, uname) may be asked first in this test
    monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: real(cmd, **kw) if cmd[0] in ("git", "uname")
                        else ran.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    return ran


def test_a_submission_slurm_refuses_half_way_cancels_what_it_queued_and_says_what_never_ran(plan, monkeypatch):
    """sbatch refusing the third stage left the first two queued and a record without them (dis status: 'no
    units', exit 0; dis resubmit: KeyError). Now what was queued is cancelled and recorded, status lists the
    units never submitted as missing, and resubmit submits everything again."""
    ran = _failing_submission(monkeypatch, "train",
                              RuntimeError("sbatch: error: Batch job submission failed: Invalid partition name specified"))
    with pytest.raises(DISError, match=r"the submission failed \(stage train: sbatch: error: Batch job submission failed: Invalid "
                                       r"partition name specified\); the job\(s\) it had queued \(5001, 5002\) were cancelled"):
        slurm.submit_run(plan, slurm.SlurmConfig())
    assert ran == [["scancel", "5001", "5002"]]
    rec = json.loads(RunLayout(plan.out).run_record.read_text())
    assert rec["submission_failed"]["cancelled"] == ["5001", "5002"] and "logs" in rec
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "CANCELLED" for j in ids})
    st = slurm.run_status(plan.out)
    assert {u["state"] for s in ("extract", "cohort") for u in st[s]} == {"failed"}
    assert [(u["state"], u["message"]) for u in st["report"]] == [("missing", "never submitted (dis resubmit submits it)")]
    from typer.testing import CliRunner

    from jobs.cli import app

    said = CliRunner().invoke(app, ["status", str(plan.out)]).output
    assert said.startswith("note: the last submission failed (stage train: sbatch: error: Batch job submission failed: "
                           "Invalid partition name specified); the job(s) it had queued (5001, 5002) were cancelled\n")
    submitted = {}
    monkeypatch.setattr(slurm, "_submit", lambda rec, plan, cfg, units: submitted.update(units))
    again = slurm.resubmit(plan.out)
    assert all(again["resubmitted"][s.name] == [s.uid(u) for u in s.units(plan)] for s in graph.STAGES)
    assert "submission_failed" not in graph.read_record(plan.out), "this submission went through: no note"


@pytest.mark.parametrize("scancel", ["refuses", "absent"])
def test_a_queued_job_scancel_could_not_cancel_is_never_said_cancelled(plan, monkeypatch, scancel):
    """When scancel refused (another user's job, a controller down) or was not on the path, the error, the
    record and dis status said the queued jobs 'were cancelled', so a user resubmitted beside jobs still
    queued. Now they name the jobs still queued and why, and ask for them to be cancelled first."""
    _failing_submission(monkeypatch, "train", RuntimeError("sbatch: error: Invalid partition name specified"))
    if scancel == "absent":
        monkeypatch.setattr(slurm.shutil, "which", lambda name: None if name == "scancel" else f"/usr/bin/{name}")
        why = "no scancel on the path"
    else:
        monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
            cmd, 1, "", "scancel: error: Kill job error on job id 5001: Access/permission denied\n"))
        why = "scancel exit 1: scancel: error: Kill job error on job id 5001: Access/permission denied"
    said = (f"the job(s) it had queued (5001, 5002) could not be cancelled ({why}): cancel them with scancel "
            "before dis resubmit")
    with pytest.raises(DISError) as e:
        slurm.submit_run(plan, slurm.SlurmConfig())
    assert str(e.value).endswith(said) and "were cancelled" not in str(e.value), e.value
    failed = graph.read_record(plan.out)["submission_failed"]
    assert (failed["cancelled"], failed["not_cancelled"], failed["scancel_error"]) == ([], ["5001", "5002"], why)
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "PENDING" for j in ids})
    from typer.testing import CliRunner

    from jobs.cli import app

    out = CliRunner().invoke(app, ["status", str(plan.out)]).output
    assert out.startswith(f"note: the last submission failed (stage train: sbatch: error: Invalid partition name "
                          f"specified); {said}\n"), out


def test_ctrl_c_half_way_through_a_submission_cancels_what_it_queued(plan, monkeypatch):
    ran = _failing_submission(monkeypatch, "cohort", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        slurm.submit_run(plan, slurm.SlurmConfig())
    assert ran == [["scancel", "5001"]]
    assert json.loads(RunLayout(plan.out).run_record.read_text())["submission_failed"]["cancelled"] == ["5001"]


def test_partitions_are_checked_as_sbatch_reads_them(monkeypatch):
    """sbatch -p takes a list; sinfo -a lists hidden partitions too."""
    calls = []
    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(slurm.subprocess, "run",
                        lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0, "debug\ngpu\n", ""))
    slurm._check_partitions(slurm.SlurmConfig(partition="debug,gpu", stages={"train": {"partition": "gpu"}}))
    assert calls == [["sinfo", "-a", "-h", "-o", "%R"]]
    with pytest.raises(DISError, match=r"partition\(s\) nosuch not on this cluster \(sinfo lists debug, gpu\)"):
        slurm._check_partitions(slurm.SlurmConfig(stages={"score": {"partition": "debug,nosuch"}}))


def test_resubmit_with_nothing_failed_submits_nothing_and_status_exit_codes(plan, monkeypatch):
    from jobs.cli import status_exit_code

    units = {st.name: {st.uid(u): f"{900 + i}_0" for u in st.units(plan)} for i, st in enumerate(graph.STAGES)}
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={"extract": ["900"]},
                       logs=str(plan.out / "slurm"), units=units)
    for st in graph.STAGES:
        for u in st.units(plan):
            write_status(st.folder(plan.layout, u), UnitResult(unit_id=st.uid(u), status="ok", job=units[st.name][st.uid(u)]))
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "COMPLETED" for j in ids})
    monkeypatch.setattr(slurm, "_submit", lambda *a: pytest.fail("nothing to submit"))
    before = RunLayout(plan.out).run_record.read_text()
    rec = slurm.resubmit(plan.out)
    assert not any(rec["resubmitted"].values()) and RunLayout(plan.out).run_record.read_text() == before
    u = lambda state: {"state": state}  # noqa: E731
    assert status_exit_code({"extract": [u("done")], "report": [u("done")]}) == 0
    assert status_exit_code({"extract": [u("done"), u("pending")], "report": [u("pending")]}) == 0
    assert status_exit_code({"extract": [u("done"), u("failed")], "report": [u("done")]}) == 3
    assert status_exit_code({"extract": [u("failed")], "report": [u("failed")], "echo": []}) == 1


def test_status_ends_with_what_to_do_next(tmp_path):
    """The last line of dis status: the failures and the command that redoes them, else what is still queued,
    else where the report is."""
    from jobs.cli import status_outlook

    u = lambda state: {"state": state}  # noqa: E731
    st = {"extract": [u("done"), u("failed"), u("running")], "train": [u("missing"), u("pending")], "report": []}
    assert status_outlook(st, tmp_path) == (  # resubmit refuses while the run has units queued: say when it will not
        f"2 unit(s) failed or never ran, 1 running, 1 pending: when those have ended (or are cancelled with scancel), "
        f"`dis resubmit {tmp_path}` submits the failed ones again with what depends on them")
    st["extract"][2], st["train"][1] = u("done"), u("done")
    assert status_outlook(st, tmp_path) == (f"2 unit(s) failed or never ran: `dis resubmit {tmp_path}` submits the "
                                            "failed ones again with what depends on them")
    m = tmp_path / "m.csv"
    assert status_outlook(st, tmp_path, edited=m) == (  # resubmit refuses an edited manifest: say what will do
        f"2 unit(s) failed or never ran: restore {m} and run `dis resubmit {tmp_path}`, or plan the run again with "
        f"`dis submit --manifest {m} --out {tmp_path}` and the run's options (extractions of unchanged rows are kept)")
    st = {"extract": [u("done"), u("running")], "train": [u("pending"), u("pending")], "report": [u("pending")]}
    assert status_outlook(st, tmp_path) == ("in progress: 1 running, 3 pending; nothing failed so far "
                                            "(`dis status` again later)")
    st = {"extract": [u("done")], "report": [u("done")]}
    assert status_outlook(st, tmp_path) == "done"
    page = RunLayout(tmp_path).report_page
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    assert status_outlook(st, tmp_path) == f"done: report {page}"


def test_a_unit_done_in_part_is_partial_exits_3_and_says_how_to_complete_it(plan, monkeypatch):
    """A unit its task recorded as done but incomplete (an extraction whose smiles could not be recomputed, a report
    missing a failed set's scores) exits 3 locally: dis status said "done", exit 0. Resubmit leaves it: what it
    lacks may need more than the unit (a report's refused score blocks that recorded ok) or outlive any retry (a
    smile rule naming no blendshape), and resubmitting it with every later stage looped; status names the command."""
    from jobs.cli import status_exit_code, status_outlook

    part = UnitResult(unit_id="u", status="skipped", job="1_0", incomplete=True, message="smiles not recomputed")
    assert slurm.unit_state("COMPLETED", part, ran_here=True) == "partial"
    assert slurm.unit_state("COMPLETED", part) == "failed", "an earlier run's record is still not this task's"
    u = lambda state: {"state": state}  # noqa: E731
    assert status_exit_code({"extract": [u("done"), u("partial")], "report": [u("done")]}) == 3
    assert status_exit_code({"extract": [u("failed"), u("partial")], "report": [u("failed")]}) == 1
    m = plan.out / "m.csv"
    assert status_outlook({"extract": [u("partial")], "report": [u("partial")]}, plan.out, manifest=m) == (
        "2 unit(s) done in part (each line says what it lacks; dis resubmit does not redo them): once the cause is "
        f"fixed, `dis extract --manifest {m} --out {plan.out}`, `dis report --out {plan.out}` redoes what is not "
        "current (current units skip themselves)")
    both = status_outlook({"extract": [u("partial"), u("failed")], "report": [u("pending")]}, plan.out, manifest=m)
    assert both.startswith("1 unit(s) failed or never ran, 0 running, 1 pending: when those have ended")
    assert both.endswith("; 1 unit(s) done in part (each line says what it lacks; dis resubmit does not redo them): "
                         f"once the cause is fixed, `dis extract --manifest {m} --out {plan.out}` redoes what is not "
                         "current (current units skip themselves)")
    # resubmit: a partial extraction beside units all done submits nothing (no loop over every later stage)
    units = {st.name: {st.uid(x): f"{900 + i}_0" for x in st.units(plan)} for i, st in enumerate(graph.STAGES)}
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={"extract": ["900"]},
                       logs=str(plan.out / "slurm"), units=units)
    ext = graph.stage("extract")
    first = ext.uid(ext.units(plan)[0])
    for st in graph.STAGES:
        for x in st.units(plan):
            write_status(st.folder(plan.layout, x), UnitResult(
                unit_id=st.uid(x), status="ok", job=units[st.name][st.uid(x)], incomplete=st.uid(x) == first))
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "COMPLETED" for j in ids})
    monkeypatch.setattr(slurm, "_submit", lambda *a: pytest.fail("nothing to submit"))
    assert [x["unit"] for x in slurm.run_status(plan.out)["extract"] if x["state"] == "partial"] == [first]
    assert not any(slurm.resubmit(plan.out)["resubmitted"].values())
    from typer.testing import CliRunner

    from jobs.cli import app
    said = CliRunner().invoke(app, ["resubmit", str(plan.out)])
    assert said.exit_code == 3 and f"every unit of {plan.out} is done, 1 of them in part" in said.output, said.output


def test_a_failed_units_log_is_the_first_that_says_something(tmp_path):
    """A unit that failed inside a task that completed leaves the task's stderr empty: status points to the
    extraction's own log, else the task's stderr, else its stdout."""
    logs = tmp_path / "slurm" / "1"
    (logs / "extract").mkdir(parents=True)
    rec = {"logs": str(logs)}
    err, out = logs / "extract" / "5_2_0_log.err", logs / "extract" / "5_2_0_log.out"
    err.write_text("")
    out.write_text("Traceback ...\n")
    assert slurm._log(rec, "extract", "5_2") == str(out)
    unit = tmp_path / "videos" / "u"
    unit.mkdir(parents=True)
    (unit / "extraction.log").write_text("moov atom not found\n")
    assert slurm._log(rec, "extract", "5_2", unit) == str(unit / "extraction.log")
    never = f"none: the task never started ({logs / 'train' / '5_2_0_log.err'} was not written)"
    assert slurm._log(rec, "train", "5_2", unit) == never  # no task log at all


def test_a_configuration_without_its_slurm_table_is_refused(tmp_path):
    path = tmp_path / "slurm.toml"
    path.write_text('partition = "gpu"\n')
    with pytest.raises(DISError, match=r"no \[slurm\] table \(found partition at the top level\)"):
        slurm.load_slurm_config(path)


REQUEUE = " (submitit stops a task 90 s before its limit, to requeue it)"


@pytest.mark.parametrize("toml, says", [
    ('time_min = "two hours"', "[slurm] time_min = 'two hours': must be a whole number of minutes >= 3 (submitit "
     "stops a task 90 s before its limit, to requeue it)"),
    ("time_min = 30.5", "[slurm] time_min = 30.5: must be a whole number of minutes >= 3" + REQUEUE),
    # a task then never finishes: submitit's requeue signal comes at once (seen on a real SLURM)
    ("time_min = 2", "[slurm] time_min = 2: must be a whole number of minutes >= 3" + REQUEUE),
    ('mem_gb = "8G"', "[slurm] mem_gb = '8G': must be a finite number > 0"),
    ("mem_gb = inf", "[slurm] mem_gb = inf: must be a finite number > 0"),
    ("cpus_per_task = -2", "[slurm] cpus_per_task = -2: must be a whole number >= 1"),
    ("partition = 5", "[slurm] partition = 5: must be text"),
    ("stages = 3", "[slurm] stages = 3: per-stage tables, e.g. [slurm.stages.train]"),
    ('[slurm.stages.train]\ntime_min = "5"', "[slurm.stages.train] time_min = '5': must be a whole number of minutes >= 3"
     + REQUEUE),
])
def test_a_configuration_value_of_the_wrong_type_is_one_line_before_anything_is_submitted(tmp_path, toml, says):
    path = tmp_path / "slurm.toml"
    path.write_text("[slurm]\n" + toml + "\n")
    with pytest.raises(DISError) as e:
        slurm.load_slurm_config(path)
    assert str(e.value) == f"{path}: {says}"
    path.write_text("[slurm]\ntime_min = 90.0\nmem_gb = 8\nnv = true\nmax_array_size = 1000\n")  # values that worked
    got = slurm.load_slurm_config(path)
    assert got.time_min == 90 and type(got.time_min) is int and type(got.max_array_size) is int
    # whole numbers written as floats are ints for submitit and sbatch (an assert half-way through a submission,
    # --array=0-99%64.0), in the stage tables too
    path.write_text("[slurm]\narray_parallelism = 64.0\n[slurm.stages.train]\ntime_min = 240.0\npack = 4.0\n")
    got = slurm.load_slurm_config(path)
    assert type(got.array_parallelism) is int and got.stages["train"] == {"time_min": 240, "pack": 4}
    assert all(type(v) is int for v in got.stages["train"].values())


def test_command_line_values_override_the_stage_tables_too(tmp_path):
    """README: command-line options override slurm.toml; --time-min 600 --mem-gb 32 --partition bigmem
    --train-gres gpu:a100:1 lost to a [slurm.stages.train] table."""
    path = tmp_path / "slurm.toml"
    path.write_text('[slurm]\n[slurm.stages.train]\ntime_min = 60\nmem_gb = 8\npartition = "gpu"\ngres = "gpu:1"\n'
                    'pack = 2\n')
    r = slurm.load_slurm_config(path).resources(graph.stage("train"))
    assert (r["time_min"], r["mem_gb"], r["partition"], r["gres"]) == (60, 8, "gpu", "gpu:1")
    cfg = slurm.load_slurm_config(path, time_min=600, mem_gb=32, partition="bigmem", train_gres="gpu:a100:1")
    r = cfg.resources(graph.stage("train"))
    assert (r["time_min"], r["mem_gb"], r["partition"], r["gres"], r["pack"]) == (600, 32, "bigmem", "gpu:a100:1", 2)


def test_a_container_named_in_slurm_toml_is_read_from_the_files_folder(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "dis.sif").write_bytes(b"x")
    (tmp_path / "cfg" / "slurm.toml").write_text('[slurm]\ncontainer = "dis.sif"\n')
    monkeypatch.chdir(tmp_path)
    assert slurm.load_slurm_config(tmp_path / "cfg" / "slurm.toml").container == str(tmp_path / "cfg" / "dis.sif")


def test_the_container_image_is_an_absolute_path_to_a_file(tmp_path, monkeypatch):
    """--container dis.sif was recorded as given: tasks resolve it from wherever sbatch was called (a resubmit from
    another folder killed every task), and a missing image queued the whole graph to fail."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DISError, match=f"container dis.sif: no such image file \\({tmp_path / 'dis.sif'};"):
        slurm.load_slurm_config(container="dis.sif")
    (tmp_path / "dis.sif").write_bytes(b"x")
    assert slurm.load_slurm_config(container="dis.sif").container == str(tmp_path / "dis.sif")


def test_the_run_and_cohort_records_name_what_made_them(tmp_path):
    """run.json names the versions that planned the run. cohort.json holds content only (its sha256 keys every
    later unit, so a new package version alone does not make them stale); provenance.json beside it names the
    versions, the manifest, face model and split rules, and the record's sha256 as it is on disk."""
    import dataclasses

    import scipy

    from dis_core.io.provenance import sha256_file
    from tests.synthrun import make_run

    out = tmp_path / "run"
    m = make_run(out, n=2, seconds=20)
    path = write_manifest(tmp_path / "videos" / "cohort.csv",
                          [{"participant_id": e.participant_id, "session": e.session, "video": e.video.name,
                            "dyad": e.dyad} for e in m.entries])
    plan = graph.Plan(out=out, manifest=path, model=ModelFile(tmp_path / "model.task", "0" * 64),
                      train=(default_train_config(DEFAULT_FEATURE_SETS["head_pose"]),))
    plan = dataclasses.replace(plan, manifest_sha256=sha256_file(path))
    rec = json.loads(json.dumps(graph.write_record(plan, "local")))
    assert rec == json.loads(plan.layout.run_record.read_text())
    assert rec["packages"]["scipy"] == scipy.__version__ and rec["python"] == ".".join(map(str, sys.version_info[:3]))
    r = graph.run_unit("cohort", plan, "cohort")
    assert r.status == "ok", r.message
    prov = json.loads(plan.layout.cohort_provenance.read_text())
    assert prov["cohort_sha256"] == sha256_file(plan.layout.cohort_record) == plan.layout.cohort_sha256()
    assert (prov["manifest_sha256"], prov["model_sha256"], prov["split_rules"]) == (plan.manifest_sha256, "0" * 64,
                                                                                   "temporal")
    assert prov["packages"]["scipy"] == scipy.__version__ and prov["config"] == to_doc(plan.cohort)
    assert not {"packages", "created_utc", "dis_version"} & set(json.loads(plan.layout.cohort_record.read_text()))
    for e in m.entries:  # a cohort step that fails leaves no record naming another cohort.json
        plan.layout.extraction(e.unit_id).unlink()
    r = graph.run_unit("cohort", plan, "cohort")
    assert r.failed and "no usable video" in r.message and not plan.layout.cohort_provenance.exists()


def test_a_scripts_record_names_its_command_line_and_arguments():
    """bench/ outputs (summary.json, scale.json) carry the same environment as the pipeline's outputs, the
    command line that made them and its arguments as JSON-safe values."""
    import shlex

    from dis_core.io.provenance import environment, script_provenance

    prov = script_provenance({"run": Path("/x/run"), "n": 3, "fast": True, "seed": None}, run="/x/run")
    assert prov["arguments"] == {"run": "/x/run", "n": 3, "fast": True, "seed": None}
    assert prov["command"] == shlex.join(sys.argv) and prov["run"] == "/x/run"
    assert {k: prov[k] for k in environment()} == environment() and prov["created_utc"].endswith("+00:00")


def test_status_lists_the_planned_rows_after_the_manifest_is_edited_and_says_so(plan, monkeypatch):
    """`dis status` only reads: after the manifest is edited (or moved) it lists the units of the rows the run was
    planned from (recorded in run.json), says that the file changed and how to redo failures, while `dis
    resubmit`, which would submit units, still refuses the edited file."""
    import dataclasses

    from typer.testing import CliRunner

    from dis_core.io.provenance import sha256_file
    from jobs.cli import app

    rows = [{"participant_id": "p1", "session": "s1", "video": "v.mp4", "dyad": "d1", "split": "train", "fps": "29.97",
             "site": "lab A"},
            {"participant_id": "p2", "session": "s1", "video": "v.mp4", "dyad": "d1", "split": "", "fps": "",
             "site": "", "allow_duplicate": "true"}]
    manifest = write_manifest(plan.manifest.parent / "rich.csv", rows)
    plan = dataclasses.replace(plan, manifest=manifest, manifest_sha256=sha256_file(manifest))
    units = {st.name: {st.uid(u): f"{900 + i}_0" for u in st.units(plan)} for i, st in enumerate(graph.STAGES)}
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={"extract": ["900"]},
                       logs=str(plan.out / "slurm"), units=units)
    planned = sorted(units["extract"])
    assert plan.manifest_.extra_columns and plan.manifest_.entries[0].fps == 29.97  # every kind of field
    for st in graph.STAGES:
        for u in st.units(plan):
            write_status(st.folder(plan.layout, u), UnitResult(unit_id=st.uid(u), status="ok", job=units[st.name][st.uid(u)]))
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="failed", message="a cohort problem"))
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "COMPLETED" for j in ids})
    plan.manifest.write_text(plan.manifest.read_text().replace("p2", "p3"))
    again = graph.plan_from_record(graph.read_record(plan.out), planned_rows=True)
    assert again.manifest_ == plan.manifest_  # the rows as planned, every field
    st = slurm.run_status(plan.out)
    assert sorted(u["unit"] for u in st["extract"]) == planned and all(u["state"] == "done" for u in st["extract"])
    assert [u["state"] for u in st["cohort"]] == ["failed"]
    r = CliRunner().invoke(app, ["status", str(plan.out)])
    assert r.exit_code == 3, r.output
    assert r.output.splitlines()[0] == (f"note: {plan.manifest} was edited since the run was planned from it; listed "
                                        "are the units of the rows it held then (run.json)")
    assert r.output.splitlines()[-1] == (
        f"1 unit(s) failed or never ran: restore {plan.manifest} and run `dis resubmit {plan.out}`, or plan the run "
        f"again with `dis submit --manifest {plan.manifest} --out {plan.out}` and the run's options (extractions of "
        "unchanged rows are kept)")
    with pytest.raises(DISError, match="changed since the run"):
        slurm.resubmit(plan.out)
    plan.manifest.unlink()  # moved away: status still lists the planned rows
    assert sorted(u["unit"] for u in slurm.run_status(plan.out)["extract"]) == planned
    r = CliRunner().invoke(app, ["status", str(plan.out)])
    assert r.output.startswith(f"note: {plan.manifest} was moved or removed since the run was planned from it")
    rec = graph.read_record(plan.out)
    rec["rows"][0]["camera"] = "a field of a newer DIS"
    # named by the file read, not the folder the run was made in (a moved run named another run's record)
    rec["out"] = "/somewhere/else"
    with pytest.raises(DISError, match=f"^{RunLayout(plan.out).run_record}: run record of another DIS version"):
        graph.plan_from_record(rec, planned_rows=True)


def _synthetic_run(tmp_path, *feature_sets: str) -> tuple[graph.Plan, object]:
    """A 4-person, 2-session synthetic run (no MediaPipe) with its manifest and a plan of tiny flows for
    ``feature_sets`` (a spectral set pooled), held-out rows counted from 1 frame: (plan, manifest)."""
    from dis_core.model.config import TrainConfig
    from dis_core.model.flows import FlowConfig
    from tests.synthrun import make_run

    out = tmp_path / "run"
    m = make_run(out, n=4, seconds=40, sessions=2)
    path = write_manifest(tmp_path / "videos" / "cohort.csv",
                          [{"participant_id": e.participant_id, "session": e.session, "video": e.video.name,
                            "dyad": e.dyad} for e in m.entries])
    tiny = FlowConfig(layers=1, hidden=8, max_epochs=2, device="cpu")
    train = tuple(TrainConfig(FEATURE_SETS[fs], tiny, min_train_frames=20,
                              density="pooled" if FEATURE_SETS[fs].window == "spectrum" else "own") for fs in feature_sets)
    plan = graph.Plan(out=out, manifest=path, model=ModelFile(tmp_path / "model.task", "0" * 64), train=train)
    return dataclasses.replace(plan, score=dataclasses.replace(plan.score, min_test_frames=1)), m


def test_a_failed_pooled_shape_stops_only_its_own_feature_set(tmp_path):
    """pooled/head_spectrum fails for real (a folder stands where its model file goes): head_spectrum's training and
    scoring units record that they did not run and why, head_pose is trained and scored all the same (one
    feature set's failure stopped every feature set's training), and the report may run on what came out."""
    plan, _ = _synthetic_run(tmp_path, "head_pose", "head_spectrum")
    out, path = plan.out, plan.manifest
    (out / "pooled" / "head_spectrum" / "model.pt").mkdir(parents=True)  # a folder where the shape's file goes
    (out / "pooled" / "head_spectrum" / "model.pt" / "x").write_text("in the way")
    got = local.run_stages(plan, ["cohort", "pooled", "train", "score"], executor="debug", log=lambda *_: None)
    assert [r.failed for r in got.results["pooled"]] == [True] and not got.not_run
    by_fs = {fs: [r for r in got.results["train"] if r.unit_id.startswith(fs + "/")] for fs in ("head_pose", "head_spectrum")}
    assert len(by_fs["head_pose"]) == 4 and all(r.status == "ok" for r in by_fs["head_pose"]), by_fs
    assert all(r.failed and r.message.startswith("not run: pooled failed (pooled/head_spectrum: ")
               for r in by_fs["head_spectrum"]), by_fs["head_spectrum"]
    score = {r.unit_id: r for r in got.results["score"]}
    assert score["head_pose/0-0"].status == "ok", score
    assert score["head_spectrum/0-0"].message.startswith("not run: pooled failed (pooled/head_spectrum: ")
    assert got.exit_code == 3  # partial: some units failed, the last stage still produced
    assert graph.upstream_failure("report", plan) == ""  # the report runs on head_pose
    assert graph.upstream_failure("score", plan, "head_spectrum").startswith("not run: pooled failed")
    lines = local.summarise("train", plan, got.results["train"]).splitlines()  # the 4 stopped units: one line
    assert len(lines) == 2 and lines[1].startswith("  FAILED 4 unit(s) (head_spectrum/p0, ...): not run: pooled failed")
    # a report needs no manifest: deciding whether it may run reads none (a moved one stopped dis report)
    path.rename(path.with_suffix(".moved"))
    assert graph.upstream_failure("report", dataclasses.replace(plan)) == ""
    path.with_suffix(".moved").rename(path)
    # a record of a unit stopped upstream does not stop what follows once its cause is gone: the cause is
    # found again by going up the graph, not read from the stale record
    write_status(plan.layout.pooled_dir("head_spectrum"),
                 UnitResult(unit_id="pooled/head_spectrum", status="failed", message="not run: cohort failed (cohort: x)"))
    assert graph.upstream_failure("train", plan, "head_spectrum") == ""


def test_a_later_stage_run_locally_in_a_slurm_runs_folder_keeps_its_slurm_record(plan):
    """dis report run locally on a finished SLURM run replaced run.json by a local record, and dis status and
    dis resubmit refused the folder from then on. The SLURM record stays and lists the local run; a local run
    from extraction on is a new run."""
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / ".run.json.part-99-abcd").write_text("{")  # a killed command's: removed by the next record
    graph.write_record(plan, "slurm", slurm={}, units={"report": {"report": "61"}}, jobs={"report": ["61"]})
    assert not list(plan.out.glob(".run.json.part-*"))
    graph.record_local_run(plan, "local", ["report"])
    rec = slurm.read_run(plan.out)
    assert rec["executor"] == "slurm" and rec["units"] == {"report": {"report": ""}}  # ran locally since
    assert [(r["executor"], r["stages"]) for r in rec["local_runs"]] == [("local", ["report"])]
    assert rec["local_runs"][0]["plan"] == rec["plan"]
    # a local `dis train --max-epochs 3` there: its configuration is the run's plan from now on (the next command
    # reverted to the submitted cap and retrained, and scoring read the old one over the new models)
    capped = dataclasses.replace(plan, train=tuple(dataclasses.replace(c, flow=dataclasses.replace(c.flow, max_epochs=3))
                                                   for c in plan.train))
    graph.record_local_run(capped, "local", ["pooled", "train"])
    rec = slurm.read_run(plan.out)
    assert rec["executor"] == "slurm" and len(rec["local_runs"]) == 2
    assert {c.flow.max_epochs for c in graph.plan_from_record(rec).train} == {3}
    graph.record_local_run(plan, "local", ["extract", "cohort"])
    assert graph.read_record(plan.out)["executor"] == "local" and "local_runs" not in graph.read_record(plan.out)


def test_a_local_stage_in_a_slurm_folder_trusts_only_its_own_units_and_puts_what_read_them_out_of_date(
        plan, monkeypatch):
    """`dis train --feature-sets head_pose` locally in a SLURM run's folder cleared the job of every training unit:
    an OOM-killed unit of another feature set then read done from an earlier run's record, and the score blocks
    and report made before the retraining read done too (dis resubmit: nothing to resubmit; the report lacked the
    retrained people). Now only the command's units are trusted, and the units downstream of them, of its feature
    sets, are out of date: missing for dis status, redone by dis resubmit."""
    from dis_core.model.config import default_train_config

    both = dataclasses.replace(plan, train=(*plan.train, default_train_config(DEFAULT_FEATURE_SETS["head_spectrum"])))
    units = {st.name: {st.uid(u): f"{70 + i}_0" for u in st.units(both)} for i, st in enumerate(graph.STAGES)}
    graph.write_record(both, "slurm", slurm={}, units=units, jobs={})
    graph.record_local_run(dataclasses.replace(both, train=plan.train), "local", ["train"])
    got = graph.read_record(plan.out)["units"]
    assert {u: j for u, j in got["train"].items() if u.startswith("head_pose/")} == dict.fromkeys(
        [u for u in units["train"] if u.startswith("head_pose/")], "")
    assert {u: j for u, j in got["train"].items() if u.startswith("head_spectrum/")} == {
        u: j for u, j in units["train"].items() if u.startswith("head_spectrum/")}, "another set's tasks still count"
    stale = {u for name in ("score", "report") for u, j in got[name].items() if j.startswith(graph.STALE)}
    assert stale == {u for u in units["score"] if u.startswith("head_pose/")} | {"report"}
    assert got["pooled"] == units["pooled"] and got["cohort"] == units["cohort"], "upstream is as it was"
    # a real sacct refuses the whole query for one id that is not a job's: the markers are never asked about
    refuse = 'for a in "$@"; do last=$a; done; case "$last" in *[!0-9,]*) echo "fatal: Bad job/step specified" >&2; exit 1;; esac'
    monkeypatch.setenv("PATH", _fake_bin(plan.out.parent, sacct=refuse, squeue=refuse) + os.pathsep + os.environ["PATH"])
    st = slurm.run_status(plan.out)
    report = st["report"][0]
    assert report["state"] == "missing" and report["message"].startswith("out of date: train run locally at ")
    assert report["message"].endswith("(dis resubmit redoes it; a current unit skips itself)")
    # dis pooled runs head_spectrum's shape only: head_pose's training is not out of date
    graph.write_record(both, "slurm", slurm={}, units=units, jobs={})
    graph.record_local_run(both, "local", ["pooled"])
    got = graph.read_record(plan.out)["units"]
    assert {u for u, j in got["train"].items() if j.startswith(graph.STALE)} == {
        u for u in units["train"] if u.startswith("head_spectrum/")}


def test_a_local_stage_command_vouches_only_for_the_records_it_wrote(plan, monkeypatch):
    """A local stage command in a SLURM run's folder names its own job in run.json and in each record it writes.
    Before, it wrote '' for every unit before running any: one interrupted before a unit whose task had been
    cancelled made an earlier run's ok record read done (dis resubmit: nothing to do), and the units of a feature
    set it added were never listed, so dis status called the models it had just trained 'never submitted'."""
    from dis_core.model.config import default_train_config

    both = dataclasses.replace(plan, train=(*plan.train, default_train_config(DEFAULT_FEATURE_SETS["head_spectrum"])))
    units = {st.name: {st.uid(u): f"{70 + i}_0" for u in st.units(plan)} for i, st in enumerate(graph.STAGES)}
    graph.write_record(plan, "slurm", slurm={}, units=units, jobs={})
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {j: "CANCELLED" for j in ids if not graph.is_local(j)})
    pose, spec = ([u for u in graph.stage("train").units(both) if graph.stage("train").scope(u) == fs]
                  for fs in ("head_pose", "head_spectrum"))
    train = graph.stage("train")
    for u in pose:  # an earlier run's ok records; this run's tasks were cancelled before they ran
        write_status(train.folder(plan.layout, u), UnitResult(unit_id=train.uid(u), status="ok", job="5_0"))
    job = graph.local_job()
    assert graph.is_local(job) and not graph.is_local("70_0") and job != graph.local_job()
    graph.record_local_run(both, "local", ["pooled", "train"], job)
    got = graph.read_record(plan.out)["units"]
    assert set(got["train"]) == {train.uid(u) for u in pose + spec} and set(got["train"].values()) == {job}
    # the command is stopped after head_spectrum's shape and models, before head_pose's units
    for st, u in [(graph.stage("pooled"), "head_spectrum"), *[(train, u) for u in spec]]:
        write_status(st.folder(plan.layout, u), UnitResult(unit_id=st.uid(u), status="ok", job=job))
    state = {(name, u["unit"]): (u["state"], u["message"]) for name, us in slurm.run_status(plan.out).items()
             for u in us}
    assert {state[("train", train.uid(u))][0] for u in spec} == {"done"} and state[("pooled", "pooled/head_spectrum")][0] == "done"
    for u in pose:
        assert state[("train", train.uid(u))] == ("missing", f"the {job} recorded no outcome (stopped before it): run "
                                                               "its stage again, or dis resubmit")
    # dis resubmit asks while it holds the run lock itself: those units are not "pending" (it refused for good);
    # under another process's local stage command they are, and its units it has not recorded yet will run
    from dis_core.io.lock import run_lock

    with run_lock(plan.out, "dis resubmit"):
        assert {x["unit"]: x["state"] for x in slurm.run_status(plan.out)["train"]}[train.uid(pose[0])] == "missing"
    holder = _lock_holder_process(plan.out, "dis train")
    try:
        assert {x["unit"]: x["state"] for x in slurm.run_status(plan.out)["train"]}[train.uid(pose[0])] == "pending"
    finally:
        holder.kill()
        holder.wait()
    # what the command reached and recorded is its own, whatever else its folder held
    u = pose[0]
    write_status(train.folder(plan.layout, u), UnitResult(unit_id=train.uid(u), status="failed", message="boom", job=job))
    assert {x["unit"]: x["state"] for x in slurm.run_status(plan.out)["train"]}[train.uid(u)] == "failed"


def test_the_report_refuses_scores_of_models_retrained_since_or_of_blocks_that_did_not_run(tmp_path):
    """After a finished run, `dis train --max-epochs 3` (its pooled shape failing for real) and then `dis report`
    reported the old models' scores as current: head_pose's models were retrained but not scored again, and
    head_spectrum's training and scoring did not run, keeping the earlier plan's models and blocks. The report
    now names both as problems, and reports each set again once it is trained and scored."""
    import shutil

    plan, _ = _synthetic_run(tmp_path, "head_pose", "head_spectrum")
    plan = dataclasses.replace(plan, report=dataclasses.replace(plan.report, excerpts_s=(), face_images=False))
    run = lambda p, stages: local.run_stages(p, stages, executor="debug", log=lambda *_: None, progress=False)  # noqa: E731
    first = run(plan, ["cohort", "pooled", "train", "score", "report"])
    assert first.exit_code == 0 and first.results["report"][0].message == "", first.results["report"]
    shape = plan.layout.pooled_dir("head_spectrum") / "model.pt"
    shape.unlink()
    shape.mkdir()
    (shape / "x").write_text("in the way")  # the shape's next save fails
    capped = dataclasses.replace(plan, train=tuple(dataclasses.replace(c, flow=dataclasses.replace(c.flow, max_epochs=3))
                                                   for c in plan.train))
    run(capped, ["pooled", "train"])
    (rep,) = run(capped, ["report"]).results["report"]
    assert rep.status == "failed" and rep.message.startswith("no feature set could be reported (head_pose: "), rep
    assert ("head_pose: the scores of 4 participant(s) are not of their current models (p0's model was retrained or "
            "removed since it was scored; ...): run dis train and dis score (or dis resubmit)") in rep.message
    assert ("head_spectrum: the scores of 4 participant(s) are not of their current models (p0's last training did "
            "not finish: not run: pooled failed") in rep.message
    run(capped, ["score"])
    (rep,) = run(capped, ["report"]).results["report"]
    assert rep.message.startswith("head_spectrum: 1 score block(s) did not finish their last run, so their scores are "
                                  "an earlier run's (0-0: not run: pooled failed"), rep.message
    shutil.rmtree(shape)
    again = run(capped, ["pooled", "train", "score", "report"])
    assert again.exit_code == 0 and again.results["report"][0].message == "", again.results["report"]


def test_the_cohort_and_score_summaries_name_who_was_left_out_and_why(tmp_path):
    """`dis cohort` said '1 left out' and `dis score` nothing at all (exit 0) when a damaged extraction or model
    cost a participant: the summaries now name them, with the file, one line per reason."""
    plan, m = _synthetic_run(tmp_path, "head_pose")
    (gone,) = [e for e in m.entries if e.participant_id == "p3" and e.session == "s2"]
    h5 = plan.layout.extraction(gone.unit_id)
    h5.write_bytes(b"garbage")
    said: list[str] = []
    local.run_stages(plan, ["cohort", "train"], executor="debug", log=said.append, progress=False)
    assert f"  left out {gone.unit_id}: extraction unreadable (OSError): {h5}" in "\n".join(said).splitlines(), said
    (plan.layout.model_dir("head_pose", "p1") / "model.pt").write_bytes(b"garbage")
    said.clear()
    got = local.run_stages(plan, ["score"], executor="debug", log=said.append, progress=False)
    lines = "\n".join(said).splitlines()
    assert got.exit_code == 0 and lines[0] == "score: 1 unit(s): 1 ok", said
    assert lines[1].startswith("  left out p1: head_pose: model cannot be read ("), lines
    assert lines[2] == (f"  left out p3: head_pose: no held-out data: the split leaves none; 1 video(s) left out at the "
                        f"cohort step ({gone.unit_id}: extraction unreadable (OSError): {h5})"), lines


def test_the_cohort_step_leaves_out_extractions_of_other_inputs_than_the_runs(tmp_path):
    """An extraction whose re-extraction never ran (a SLURM task cancelled while pending, a pack's units after a
    time-out) kept its old 'ok' record: the cohort step, which waits afterany, used it and recorded the run's new
    face model and configuration. It now leaves out an extraction of another model, configuration or library."""
    import h5py

    from dis_core.extract.config import ExtractConfig
    from dis_core.extract.landmarker import LandmarkerConfig
    from dis_core.extract.smiles import SmileConfig

    plan, m = _synthetic_run(tmp_path)
    assert graph.run_unit("cohort", plan, "cohort").status == "ok"
    other_model = dataclasses.replace(plan, model=ModelFile(tmp_path / "new.task", "1" * 64))
    r = graph.run_unit("cohort", other_model, "cohort")
    assert r.failed and "was made with another face model than the run's: run dis extract (it extracts this video " \
                         "again)" in r.message, r.message
    stricter = dataclasses.replace(plan, extract=ExtractConfig(landmarker=LandmarkerConfig(max_faces=3)))
    r = graph.run_unit("cohort", stricter, "cohort")
    assert r.failed and "was made under another extraction configuration than the run's" in r.message, r.message
    # another smile rule is no other input of the cohort step: no model reads smiles (dis extract recomputes them)
    other_smiles = dataclasses.replace(plan, extract=ExtractConfig(smile=SmileConfig(min_fraction=0.9)))
    assert graph.run_unit("cohort", other_smiles, "cohort").status == "ok"
    (first,) = [e for e in m.entries if e.participant_id == "p0" and e.session == "s1"]
    with h5py.File(plan.layout.extraction(first.unit_id), "r+") as f:
        f.attrs["extractor"] = "mediapipe 0.10.9, opencv 4.9.0"
    r = graph.run_unit("cohort", plan, "cohort")
    assert r.status == "ok" and r.message.endswith("1 left out"), r.message
    (why,) = [x["reason"] for x in json.loads(plan.layout.cohort_record.read_text())["left_out"]]
    assert why.startswith("extraction was made by another MediaPipe or OpenCV, or under older extraction rules, than "
                          "this DIS's (mediapipe "), why


def test_smiles_of_another_rule_stay_out_of_the_smile_summary(tmp_path):
    """`dis extract` under a new smile rule stopped after one video (Ctrl-C, a cancelled SLURM task), then the
    cohort step ran under the new rule: it uses every video (no model reads smiles), but the smile summary summed
    the old rule's counts of the others with the new rule's, under the new rule's name. Now it holds the videos of
    the run's rule, and the cohort step and the extraction summary name the others."""
    import pandas as pd

    from dis_core.extract.config import ExtractConfig
    from dis_core.extract.result import ExtractResult
    from dis_core.extract.smiles import SmileConfig
    from dis_core.extract.stage import _recompute_smiles, _result_from_file
    from dis_core.extract.summary import OTHER_SMILES

    plan, m = _synthetic_run(tmp_path, "head_pose")
    lay = plan.layout

    def record(e):  # what a finished extraction records
        base = ExtractResult(unit_id=e.unit_id, participant_id=e.participant_id, session=e.session, video=e.video_rel)
        write_status(lay.video_dir(e.unit_id), dataclasses.replace(_result_from_file(base, lay.extraction(e.unit_id)),
                                                                   status="ok"))

    for e in m.entries:
        record(e)
    first = m.entries[0]
    new = dataclasses.replace(plan, extract=ExtractConfig(smile=SmileConfig(thresholds=(("mouthSmileLeft", 0.05),))))
    assert _recompute_smiles(lay.extraction(first.unit_id), first, new.extract)
    record(first)
    r = graph.run_unit("cohort", new, "cohort")
    assert r.status == "ok" and r.message.startswith(f"{len(m.entries)} usable video(s)"), r.message
    assert r.message.endswith(f"; {len(m.entries) - 1} video(s) with smiles of another smile rule than the run's, "
                              "left out of the smile summary: run dis extract (it recomputes them without MediaPipe)")
    smiles = pd.read_csv(lay.summary_dir / "smile_summary.csv")
    assert smiles["unit_id"].tolist() == [first.unit_id] and smiles["smile_frames"].iloc[0] > 0
    text = (lay.summary_dir / "extract_summary.txt").read_text()  # one line for them all
    assert f"  warning {len(m.entries) - 1} units ({m.entries[1].unit_id}, ...; each in extraction_qc.csv): {OTHER_SMILES}\n" in text
    assert text.count(OTHER_SMILES) == 1 and f"warning {first.unit_id}" not in text
    got = local.run_stages(new, ["train", "score", "report"], executor="debug", log=lambda *_: None)
    assert not got.results["report"][0].failed, got.results["report"]
    page = lay.report_page.read_text()
    def note(n):
        return (f"{n} of the cohort's {len(m.entries)} videos are not in the smile table: their smile counts are not "
                "recorded under the run's smile rule (dis extract recomputes them without MediaPipe and dis cohort "
                "writes the smile summary again; dis run does both)")

    assert note(len(m.entries) - 1).replace("'", "&#x27;") in page
    assert f"  smiles: {note(len(m.entries) - 1)}\n" in lay.report_summary.read_text()
    # under the rule the others follow, the table holds them and not the recomputed one
    assert graph.run_unit("cohort", plan, "cohort").message.endswith("0 left out; 1 video(s) with smiles of another "
                                                                     "smile rule than the run's, left out of the smile "
                                                                     "summary: run dis extract (it recomputes them "
                                                                     "without MediaPipe)")
    assert sorted(pd.read_csv(lay.summary_dir / "smile_summary.csv")["unit_id"]) == sorted(
        e.unit_id for e in m.entries[1:])
    # a report under the new rule over that summary (dis extract under it stopped before the cohort step ran again)
    # shows none of the old rule's counts
    local.run_stages(new, ["report"], executor="debug", log=lambda *_: None)
    assert f"  smiles: {note(len(m.entries))}\n" in lay.report_summary.read_text()
    # a summary from before rows named their rule is no table of the run's rule either, and a report made outside
    # the stage graph holds it to the rule run.json records
    from dis_core.report.stage import report_unit

    graph.run_unit("cohort", new, "cohort")
    table = pd.read_csv(lay.summary_dir / "smile_summary.csv")
    assert table["unit_id"].tolist() == [first.unit_id]
    assert not report_unit(new.out, ["head_pose"]).failed
    assert f"  smiles: {note(len(m.entries) - 1)}\n" in lay.report_summary.read_text()
    table.drop(columns="smile_hash").to_csv(lay.summary_dir / "smile_summary.csv", index=False)
    assert not report_unit(new.out, ["head_pose"]).failed
    assert f"  smiles: {note(len(m.entries))}\n" in lay.report_summary.read_text()
    # records from before the rule was recorded, in a run folder moved since: read from the file where it is now
    for e in m.entries:
        st = read_status(lay.video_dir(e.unit_id), ExtractResult)
        write_status(lay.video_dir(e.unit_id), dataclasses.replace(st, smile_hash="", output="/moved/away.h5"))
    assert graph.run_unit("cohort", plan, "cohort").message.endswith(" 0 left out; 1 video(s) with smiles of another "
                                                                     "smile rule than the run's, left out of the smile "
                                                                     "summary: run dis extract (it recomputes them "
                                                                     "without MediaPipe)")


def test_left_out_lines_stop_growing_with_the_cohort(plan):
    """Reasons naming a file differ per unit: a thousand failed videos gave a thousand lines."""
    plan.layout.cohort_dir.mkdir(parents=True, exist_ok=True)
    plan.layout.cohort_record.write_text(json.dumps({"left_out": [
        {"unit_id": f"u{i}", "reason": f"extraction unreadable (OSError): /v/u{i}/extraction.h5"} for i in range(1000)]
        + [{"unit_id": "w", "reason": "no face detected"}, {"unit_id": "x", "reason": "no face detected"}]}))
    lines = local.summarise("cohort", plan, [UnitResult(unit_id="cohort", status="ok")]).splitlines()
    assert lines[1:6] == [f"  left out u{i}: extraction unreadable (OSError): /v/u{i}/extraction.h5" for i in range(5)]
    assert lines[6:] == ["  left out 997 more (every one with why: the report's left_out sheet)"]


def test_a_local_stage_given_a_relative_folder_keeps_the_slurm_run_found_from_anywhere(plan, monkeypatch, tmp_path):
    """`dis cohort --out run` in a SLURM run's folder wrote 'run' into run.json's plan: dis status and dis resubmit
    from any other folder then refused the run as moved or copied."""
    graph.write_record(plan, "slurm", slurm={}, units={"cohort": {"cohort": "90"}}, jobs={"cohort": ["90"]})
    monkeypatch.chdir(plan.out.parent)
    graph.record_local_run(dataclasses.replace(plan, out=Path(plan.out.name)), "local", ["cohort"])
    monkeypatch.chdir(tmp_path.parent)
    assert slurm.read_run(plan.out)["plan"]["out"] == str(plan.out.resolve())


def test_a_stage_with_nothing_to_do_says_so_once_and_is_not_a_failure(plan):
    """dis pooled where no feature set is pooled printed 'pooled: 0 unit(s)' twice and exited 1."""
    said = []
    got = local.run_stages(plan, ["pooled"], executor="debug", log=said.append, progress=False)
    assert said == ["pooled: nothing to do (no unit of the shape shared by the cohort, for feature sets whose "
                    "density is pooled)"]
    assert got.exit_code == 0 and got.empty == ["pooled"] and not got.results


def test_a_cohort_step_of_another_manifest_stops_the_stages_after_it(plan):
    """`dis extract --manifest NEW` skips every unchanged video; `dis train`, `score` and `report` then ran on the
    cohort step of the old manifest (its split, dyads and rows) while the report named the new one. They record
    why they did not run instead, until the cohort step runs on the run's manifest."""
    import dataclasses

    from dis_core.io.provenance import sha256_file

    plan = dataclasses.replace(plan, manifest_sha256=sha256_file(plan.manifest))
    write_status(plan.layout.cohort_dir, UnitResult(unit_id="cohort", status="ok"))
    plan.layout.cohort_provenance.write_text(json.dumps({"manifest_sha256": "ab" * 32}))
    why = graph.upstream_failure("train", plan, "head_pose")
    assert why.startswith("not run: the cohort step was made from another manifest (sha256 abababababab..., the run's "
                          f"is {plan.manifest_sha256[:12]}...): run dis cohort")
    assert graph.upstream_failure("score", plan, "head_pose") == why and graph.upstream_failure("report", plan) == why
    plan.layout.cohort_provenance.write_text(json.dumps({"manifest_sha256": plan.manifest_sha256}))
    assert graph.upstream_failure("train", plan, "head_pose") == "" and graph.upstream_failure("report", plan) == ""


def test_a_stage_command_naming_feature_sets_keeps_the_runs_other_sets_recorded(plan):
    """`dis train --feature-sets head_pose --max-epochs 5` recorded the narrowed plan: every later `dis score` and
    `dis report` of the run dropped its other feature sets. The run's sets stay, the named one as configured."""
    import dataclasses

    from dis_core.model.config import default_train_config

    both = dataclasses.replace(plan, train=(*plan.train, default_train_config(DEFAULT_FEATURE_SETS["head_spectrum"])))
    graph.write_record(both, "local")
    pose = dataclasses.replace(plan.train[0], flow=dataclasses.replace(plan.train[0].flow, max_epochs=5))
    graph.record_local_run(dataclasses.replace(both, train=(pose,)), "local", ["train"])
    got = graph.plan_from_record(graph.read_record(plan.out)).train
    assert [c.features.name for c in got] == ["head_pose", "head_spectrum"] and got[0].flow.max_epochs == 5
    graph.record_local_run(dataclasses.replace(both, train=(pose,)), "local", ["extract", "cohort"])  # a new run
    assert [c.features.name for c in graph.plan_from_record(graph.read_record(plan.out)).train] == ["head_pose"]
