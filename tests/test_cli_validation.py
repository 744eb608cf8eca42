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
