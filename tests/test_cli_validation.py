"""A user's mistake in an option is one message and exit code 2, before any lock or output exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, says", [
    (["--executor", "nope"], "'nope' is not one of local, debug"),
    (["--executor", "slurm"], "'slurm' is not one of local, debug (slurm: dis run --executor slurm, or dis submit)"),
    (["--workers", "-1"], "--workers"),
    (["--workers", "0"], "--workers"),
    (["--smile-min-fraction", "nan"], "nan must be a number from 0 to 1"),
    (["--smile-min-fraction", "1.5"], "1.5 must be a number from 0 to 1"),
    (["--smile-min-fraction", "0"], "0 must be above 0 (at 0 every second with a face smiles"),
])
def test_bad_option_values_are_refused_before_any_output(tmp_path, args, says):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "extract", "-m", str(ROOT / "manifests" / "demo.csv"),
                        "-o", str(out), *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stdout + r.stderr
    assert says in " ".join(r.stderr.split()) and "Traceback" not in r.stderr
    assert not out.exists()


def test_help_texts_keep_their_brackets():
    """Help is rendered as rich markup: '[slurm]' was read as a style tag and vanished from `dis submit --help`
    ('TOML file with a  table'). Every command's help keeps the words its source gives."""
    import os

    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "submit", "--help"], capture_output=True, text=True, cwd=ROOT,
                       env=env)
    assert r.returncode == 0 and "TOML file with a [slurm] table" in r.stdout, r.stdout


def test_a_feature_set_named_twice_is_planned_once():
    """--feature-sets blendshapes,blendshapes trained the set twice and doubled its tests in the Holm families."""
    from dis_core.features.build import parse_feature_sets

    assert [s.name for s in parse_feature_sets("blendshapes, head_pose,blendshapes")] == ["blendshapes", "head_pose"]


@pytest.mark.parametrize("cmd", ["status", "resubmit"])
def test_status_and_resubmit_take_the_run_folder_as_every_command_does(tmp_path, cmd):
    """`dis status --out RUN` failed with 'No such option: --out' while every other command takes --out."""
    def dis(*args):
        return subprocess.run([sys.executable, "-m", "jobs.cli", cmd, *map(str, args)], capture_output=True, text=True,
                              cwd=ROOT)

    for args in ([tmp_path], ["--out", tmp_path], ["-o", tmp_path]):
        r = dis(*args)
        assert r.returncode == 2 and f"{tmp_path} is not a run folder" in " ".join(r.stderr.split()), r.stderr
    r = dis()
    assert r.returncode == 2 and "give the run folder: RUN or --out RUN" in r.stderr


def _in_image(monkeypatch, args) -> list[str]:
    """The apptainer command `dis ARGS` would exec (nothing is run): apptainer on PATH, not inside the image."""
    import os
    import shutil

    import jobs.cli as cli

    seen = {}

    def execvp(prog, cmd):
        seen["cmd"] = cmd
        raise SystemExit(0)

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda n, *a, **k: "/usr/bin/apptainer" if n == "apptainer" else which(n, *a, **k))
    monkeypatch.setattr(os, "execvp", execvp)
    monkeypatch.delenv("APPTAINER_CONTAINER", raising=False)
    with pytest.raises(SystemExit):
        cli.app(list(map(str, args)), standalone_mode=False)
    return seen["cmd"]


@pytest.mark.parametrize("given", ["option", "environment"])
def test_the_model_folder_is_bound_in_the_image(tmp_path, monkeypatch, given, samples, make_manifest):
    """`dis extract --container dis.sif --model /elsewhere/face.task`: the model's folder was not bound, so the
    image said the model (there on the host) was not found; the same for $DIS_FACE_MODEL."""
    task = tmp_path / "models" / "face.task"
    task.parent.mkdir()
    task.write_bytes(b"")
    manifest = make_manifest([{"participant_id": "a", "session": "s1", "video": str(samples["single_face.mp4"])}],
                             name="study/cohort.csv")  # beside the run, not above the model
    args = ["extract", "-m", manifest, "-o", tmp_path / "study" / "out", "--container", "dis.sif"]
    if given == "option":
        args += ["--model", task]
    else:
        monkeypatch.setenv("DIS_FACE_MODEL", str(task))
    cmd = _in_image(monkeypatch, args)
    assert cmd[:3] == ["apptainer", "run", "--bind"] and str(task.parent) in cmd[3].split(","), cmd


def test_run_on_slurm_with_a_container_submits_from_the_host(tmp_path, monkeypatch, model, samples, make_manifest):
    """`dis run --executor slurm --container dis.sif` re-ran itself inside the image, which has no sbatch (refused
    on a SLURM host), and never gave the image to SLURM: it submits from the host, its tasks run in the image."""
    import os

    import jobs.cli as cli
    import jobs.slurm

    submitted = {}

    def submit_run(plan, cfg):
        submitted["cfg"] = cfg
        return {"run_id": "r", "out": str(plan.out), "jobs": {}}

    monkeypatch.setattr(jobs.slurm, "submit_run", submit_run)
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail(f"re-ran itself in the image: {a}"))
    monkeypatch.delenv("APPTAINER_CONTAINER", raising=False)
    manifest = make_manifest([{"participant_id": "a", "session": "s1", "video": str(samples["single_face.mp4"])}])
    (tmp_path / "dis.sif").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    rc = cli.app(["run", "-m", str(manifest), "-o", str(tmp_path / "run"), "--model",
                  str(model.path), "--executor", "slurm", "--container", "dis.sif", "--feature-sets", "head_pose"],
                 standalone_mode=False)
    assert rc == 0 and submitted["cfg"].container == str(tmp_path / "dis.sif")  # absolute: tasks run elsewhere


def test_feature_sets_named_on_a_run_keep_their_recorded_training_config(tmp_path, model):
    """`dis train --out RUN --feature-sets head_pose` on a run planned with --max-epochs 3 rebuilt head_pose's
    training config from defaults (400 epochs): its models counted as stale and were trained again."""
    from dis_core.io.provenance import sha256_file
    from jobs.cli import _plan, _train_cfgs
    from jobs.graph import Plan, write_record

    m = ROOT / "manifests" / "demo.csv"
    planned = Plan(out=tmp_path / "run", manifest=m, model=model, manifest_sha256=sha256_file(m),
                   train=_train_cfgs("head_pose,landmarks", 3))  # as `dis run --max-epochs 3` plans it
    write_record(planned, "local")
    assert _plan(planned.out, feature_sets="head_pose").train == planned.train[:1]
    new = _plan(planned.out, feature_sets="landmarks,blendshapes").train
    assert new == (planned.train[1], *_train_cfgs("blendshapes", None)), "defaults only for a set not planned"
    assert [c.flow.max_epochs for c in _plan(planned.out, feature_sets="head_pose", max_epochs=5).train] == [5]
    # one command's --verbose and --force are its own: dis cohort after dis extract --verbose --force printed every
    # unit twice (and a later report ran forced)
    import dataclasses

    write_record(dataclasses.replace(planned, verbose=True, force=True), "local")
    later = _plan(planned.out)
    assert (later.verbose, later.force) == (False, False) and later.train == planned.train
    assert _plan(planned.out, force=True).force and _plan(planned.out, verbose=True).verbose
    (tmp_path / "a.mp4").write_bytes(b"x")  # a manifest given again (dis run, extract): the same
    m2 = tmp_path / "m.csv"
    m2.write_text(f"participant_id,session,video\na,s1,{tmp_path / 'a.mp4'}\n")
    assert not _plan(planned.out, m2).force and _plan(planned.out, m2, verbose=True).verbose
    # dis run --manifest M --feature-sets head_pose on the run: the recorded cap, not the default 400 (retrained)
    assert _plan(planned.out, m2, feature_sets="head_pose").train == planned.train[:1]


def test_dis_run_and_submit_keep_the_recorded_extraction_options_unless_given(tmp_path, model):
    """`dis extract --landmark-workbook --smile-min-fraction 0.3` then `dis run` on the same folder reset both: every
    video was extracted again and landmarks.xlsx deleted. Now run/submit keep what the folder recorded; an option
    given changes only itself."""
    import dataclasses

    from dis_core.extract.config import ExtractConfig
    from dis_core.extract.smiles import SmileConfig
    from dis_core.io.provenance import sha256_file
    from jobs.cli import _plan
    from jobs.graph import Plan, write_record

    (tmp_path / "a.mp4").write_bytes(b"x")
    m = tmp_path / "m.csv"
    m.write_text(f"participant_id,session,video\na,s1,{tmp_path / 'a.mp4'}\n")
    ext = ExtractConfig(smile=SmileConfig(min_fraction=0.3), landmark_workbook=True)
    write_record(Plan(out=tmp_path / "run", manifest=m, model=model, manifest_sha256=sha256_file(m),
                      extract=ext), "local")
    keep = {"landmark_workbook": None, "smile_min_fraction": None}
    assert _plan(tmp_path / "run", m, None, extract_changes=keep).extract == ext
    got = _plan(tmp_path / "run", m, None, extract_changes={**keep, "landmark_workbook": False}).extract
    assert got == dataclasses.replace(ext, landmark_workbook=False)
    assert _plan(tmp_path / "fresh", m, None, extract_changes=keep).extract == ExtractConfig()
    # the report's options too: a run made with --no-face-images keeps its faces out of a later plain `dis report`
    from dis_core.report.config import ReportConfig

    write_record(Plan(out=tmp_path / "rep", manifest=m, model=model, manifest_sha256=sha256_file(m),
                      report=ReportConfig(face_images=False, norm_workbooks=True)), "local")
    none = {"norm_workbooks": None, "face_images": None}
    assert _plan(tmp_path / "rep", report_changes=none).report == ReportConfig(face_images=False, norm_workbooks=True)
    assert _plan(tmp_path / "rep", report_changes={**none, "face_images": True}).report == ReportConfig(norm_workbooks=True)
    assert _plan(tmp_path / "fresh", m, None, report_changes=none).report == ReportConfig()
    import typer

    from jobs.cli import _above_zero_fraction
    with pytest.raises(typer.BadParameter, match="0 must be above 0"):
        _above_zero_fraction(0.0)
    assert _above_zero_fraction(None) is None


def test_unreadable_records_bad_sample_folders_and_empty_feature_sets_are_one_line_errors(tmp_path, model):
    """A run.json that cannot be read was reported as 'holds no run (no run.json)'; `dis fetch-samples --dest
    FILE` was a traceback (exit 70); `--feature-sets ''` quietly meant the default sets."""
    def dis(*args):
        return subprocess.run([sys.executable, "-m", "jobs.cli", *map(str, args)], capture_output=True, text=True,
                              cwd=ROOT)

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"truncated": ')
    r = dis("cohort", "--out", tmp_path / "run")
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "no run.json" not in said, said
    # a command without --manifest (dis cohort, score, report) was told to give one: it names one that has it
    assert f"plan the run again: dis run --manifest M --out {tmp_path / 'run'} (or dis extract" in said, said
    (tmp_path / "afile").write_text("x")
    r = dis("fetch-samples", "--dest", tmp_path / "afile")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"could not obtain the sample files into {tmp_path / 'afile'}" in " ".join(r.stderr.split())
    from jobs.cli import _plan
    from jobs.graph import Plan, write_record
    from dis_core.io.provenance import sha256_file

    m = ROOT / "manifests" / "demo.csv"
    write_record(Plan(out=tmp_path / "ok", manifest=m, model=model, manifest_sha256=sha256_file(m)),
                 "local")
    import typer

    with pytest.raises(typer.Exit):
        _plan(tmp_path / "ok", feature_sets="")
    assert len(_plan(tmp_path / "ok", feature_sets="head_pose").train) == 1


def test_fetch_model_takes_a_verified_local_copy_before_the_network(model, tmp_path, monkeypatch):
    """`make setup` runs `dis fetch-model`, which ignored $DIS_FACE_MODEL: an offline machine holding a copy
    failed (and the container build downloaded again what the cache held). A copy that fails its hash is not taken."""
    from dis_core.io import assets

    monkeypatch.setattr(assets, "MODEL_WHEELS", [])  # no PyPI: the local copy is the only way
    monkeypatch.setenv("DIS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(assets.MODEL_ENV, str(model.path))
    got = assets.fetch_model(tmp_path / "build" / "face_landmarker.task", url="http://127.0.0.1:9/none", log=lambda s: None)
    assert got.sha256 == assets.MODEL_SHA256 and got.path == (tmp_path / "build" / "face_landmarker.task").resolve()
    bad = tmp_path / "bad.task"
    bad.write_bytes(b"not the model")
    monkeypatch.setenv(assets.MODEL_ENV, str(bad))
    with pytest.raises(assets.ModelError, match="could not obtain"):
        assets.fetch_model(tmp_path / "other.task", url="http://127.0.0.1:9/none", log=lambda s: None)


def test_a_full_disk_after_the_units_and_an_unlockable_folder_are_one_line_each(tmp_path, monkeypatch, model):
    """The stage summary's ENOSPC was an internal error (exit 70, a traceback) after every unit had finished; a
    folder that cannot be locked exited 1 where the README's table says 2 (nothing ran). (Neither fault can be
    made here: each is raised where it would land.)"""
    import errno as _errno
    import os

    from typer.testing import CliRunner

    import jobs.local as local
    from dis_core.io import lock
    from jobs.cli import app

    (tmp_path / "run").mkdir()
    (tmp_path / "a.mp4").write_bytes(b"x")  # the manifest is only planned from here, never decoded
    m = tmp_path / "m.csv"
    m.write_text(f"participant_id,session,video\na,s1,{tmp_path / 'a.mp4'}\n")
    from dis_core.io.provenance import sha256_file
    from jobs.graph import Plan, write_record

    write_record(Plan(out=tmp_path / "run", manifest=m, model=model, manifest_sha256=sha256_file(m)), "local")

    def full(*a, **k):
        raise OSError(_errno.ENOSPC, os.strerror(_errno.ENOSPC), str(tmp_path / "run" / "summary" / "x.json"))

    monkeypatch.setattr(local, "run_stages", full)
    r = CliRunner().invoke(app, ["cohort", "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "summary/x.json: No space left on device (free space, then run again" in " ".join(r.output.split())

    def no_locks(fd, op):
        raise OSError(_errno.ENOLCK, os.strerror(_errno.ENOLCK))

    monkeypatch.setattr(lock.fcntl, "flock", no_locks)
    r = CliRunner().invoke(app, ["cohort", "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "cannot lock .dis.lock" in r.output, r.output


def test_a_reader_that_closes_the_pipe_does_not_change_the_outcome(tmp_path):
    """`dis status RUN | head -1` exited 1 with nothing said, and `dis score ... | head -1` reported the broken pipe
    as a problem of the run folder (exit 1) and cancelled the stage's queued units: a closed pipe now only drops
    the output, and the command ends with its own exit code."""
    import os
    import signal

    cmd = [sys.executable, "-m", "jobs.cli", "run", "--help"]
    whole = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert whole.stdout.count("\n") > 3, whole.stdout + whole.stderr
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))  # as Python runs it
    p.stdout.close()  # the reader is gone before the first line
    err = p.stderr.read()
    assert p.wait(timeout=120) == whole.returncode, err
    assert "Broken pipe" not in err and "Traceback" not in err and "error" not in err, err
    closed = subprocess.run(cmd[:3] + ["--version"], stdout=subprocess.DEVNULL, capture_output=False, cwd=ROOT,
                            timeout=120, preexec_fn=lambda: os.close(1))  # no standard output at all
    assert closed.returncode == 0


def test_a_damaged_or_moved_run_record_is_one_line(tmp_path, model):
    """run.json holding [] or null made status, cohort, resubmit and extract crash (AttributeError, exit 70); a
    SLURM run copied elsewhere showed every unit failed, and resubmitting the copy wrote into the original."""
    import shutil

    from dis_core.errors import DISError
    from dis_core.io.provenance import sha256_file
    from jobs import slurm
    from jobs.graph import Plan, write_record

    def dis(*args):
        return subprocess.run([sys.executable, "-m", "jobs.cli", *map(str, args)], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)

    run = tmp_path / "run"
    run.mkdir()
    for bad in ("[]", "null", '{"plan": []}'):
        (run / "run.json").write_text(bad)
        for args in (["status", run], ["cohort", "--out", run], ["resubmit", run]):
            r = dis(*args)
            assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, args, r.stderr)
            assert f"{run / 'run.json'}: unreadable run record" in " ".join(r.stderr.split())
    m = ROOT / "manifests" / "demo.csv"
    plan = Plan(out=tmp_path / "a", manifest=m, model=model, manifest_sha256=sha256_file(m))
    write_record(plan, "slurm", slurm={}, jobs={}, logs=str(tmp_path / "a" / "slurm"), units={})
    assert slurm.read_run(tmp_path / "a")["executor"] == "slurm"
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with pytest.raises(DISError, match=f"{tmp_path / 'b'} was submitted as {tmp_path / 'a'} \\(moved or copied"):
        slurm.read_run(tmp_path / "b")


def test_a_local_run_in_the_image_is_refused_beside_queued_slurm_tasks(tmp_path, monkeypatch, samples, make_manifest, model):
    """`dis run --container` re-ran itself in the image before any check, and the image has no squeue: the local
    run went ahead beside the run's queued SLURM tasks (every unit twice) and replaced their record."""
    import os

    from dis_core.io.provenance import sha256_file
    from jobs.graph import Plan, write_record

    manifest = make_manifest([{"participant_id": "a", "session": "s1", "video": str(samples["single_face.mp4"])}])
    out = tmp_path / "run"
    write_record(Plan(out=out, manifest=manifest, model=model, manifest_sha256=sha256_file(manifest)),
                 "slurm", slurm={}, jobs={"extract": ["12"]}, logs=str(out / "slurm"), units={})
    queue = tmp_path / "bin"
    queue.mkdir()
    (queue / "squeue").write_text("#!/bin/sh\necho 12\n")
    (queue / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{queue}{os.pathsep}{os.environ['PATH']}")
    import shutil

    import jobs.cli as cli

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda n, *a, **k: "/usr/bin/apptainer" if n == "apptainer" else which(n, *a, **k))
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail(f"ran in the image beside the queued tasks: {a}"))
    monkeypatch.delenv("APPTAINER_CONTAINER", raising=False)
    for cmd in ("run", "extract"):
        assert cli.app([cmd, "-m", str(manifest), "-o", str(out), "--container", "dis.sif"], standalone_mode=False) == 2
    # on SLURM, a missing image is one line too (it was an internal error, exit 70)
    rc = cli.app(["run", "-m", str(manifest), "-o", str(tmp_path / "other"), "--executor", "slurm",
                  "--container", str(tmp_path / "nope.sif")], standalone_mode=False)
    assert rc == 2
