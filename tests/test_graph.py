"""The stage graph is the one place that knows the stages: the local runner, SLURM submission, `dis status`
and `dis resubmit` all read it. A stage added to the table shows up in each of them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dis_core.config import from_doc, to_doc
from dis_core.io.assets import ModelFile
from dis_core.layout import RunLayout, UnitResult, read_status, write_status
from dis_core.model.config import default_train_config
from dis_core.features.build import DEFAULT_FEATURE_SETS, EXTRA_FEATURE_SETS
from jobs import graph, local, slurm
from tests.conftest import write_manifest


def _echo(plan, unit: str) -> UnitResult:
    """A toy stage's unit: reads nothing, fails on purpose for unit 'b'."""
    return UnitResult(unit_id=unit, status="failed" if unit == "b" else "ok", message=f"echo {unit}")


ECHO = graph.Stage("echo", "a toy stage", units=lambda p: ["a", "b"], uid=str, run=_echo,
                   folder=lambda lay, u: lay.root / "echo" / u, after=("report",), wait="afterany")


@pytest.fixture
def with_echo(monkeypatch):
    stages = graph.STAGES + (ECHO,)
    for mod in (graph, local, slurm):
        monkeypatch.setattr(mod, "STAGES", stages)
    monkeypatch.setitem(graph.BY_NAME, "echo", ECHO)
    return stages


@pytest.fixture
def plan(tmp_path) -> graph.Plan:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    m = write_manifest(tmp_path / "m.csv", [{"participant_id": "p1", "session": "s1", "video": str(video)},
                                            {"participant_id": "p2", "session": "s1", "video": str(video),
                                             "allow_duplicate": "true"}])
    return graph.Plan(out=tmp_path / "run", manifest=m, model=ModelFile(tmp_path / "model.task", "0" * 64),
                      train=(default_train_config(DEFAULT_FEATURE_SETS["head_pose"]),))


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

    spec = EXTRA_FEATURE_SETS["head_spectrum"]
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


@pytest.mark.skipif(shutil.which("sacct") is None, reason="no sacct here (SLURM tests start one)")
def test_status_and_resubmit_read_a_new_stage_from_the_record(with_echo, plan, monkeypatch):
    """`dis status` reports the toy stage's units from their recorded outcome; `dis resubmit` picks
    the failed one (and nothing upstream), reading the same table."""
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={}, logs=str(plan.out / "slurm"),
                             units={st.name: {st.uid(u): f"{999990 + i}_0" for u in st.units(plan)}
                                    for i, st in enumerate(with_echo)})
    for st in with_echo:  # every unit of the real stages is done, echo/b failed
        for u in st.units(plan):
            r = _echo(plan, st.uid(u)) if st.name == "echo" else UnitResult(unit_id=st.uid(u), status="ok")
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


@pytest.mark.parametrize("slurm_state,recorded,state", [
    ("COMPLETED", "ok", "done"), ("", "skipped", "done"), ("RUNNING", "ok", "running"),
    ("PENDING", None, "pending"), ("REQUEUED", "failed", "pending"), ("COMPLETED", "failed", "failed"),
    ("COMPLETED", None, "failed"), ("CANCELLED", None, "failed"), ("TIMEOUT", "ok", "failed"),
    ("", None, "missing"), ("", "failed", "failed"), ("", "left_out", "done")])
def test_unit_state_combines_slurm_and_the_recorded_outcome(slurm_state, recorded, state):
    r = None if recorded is None else UnitResult(unit_id="u", status=recorded)
    assert slurm.unit_state(slurm_state, r) == state


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
