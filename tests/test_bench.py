"""The bench scripts' own outputs (bench/identify.py): what they record and how they refuse bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dis_core.io.provenance import sha256_file
from tests.conftest import write_manifest
from tests.synthrun import make_run

ROOT = Path(__file__).resolve().parents[1]


def _identify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/identify.py", *args], capture_output=True, text=True, cwd=ROOT)


def test_identify_records_its_inputs_in_summary_json_and_refuses_a_manifest_without_a_split(tmp_path):
    """summary.json names the command, the manifest's sha256 and the figures it printed; a manifest that names
    no training and test video per participant is one line naming the file, not a traceback."""
    out = tmp_path / "run"
    m = make_run(out, n=3, seconds=20, sessions=2)
    rows = [{"participant_id": e.participant_id, "session": e.session, "video": e.video.name, "dyad": e.dyad}
            for e in m.entries]
    bare = write_manifest(tmp_path / "videos" / "bare.csv", rows)
    r = _identify("--run", str(out), "--manifest", str(bare), "--only", "frame", "--methods", "gaussian")
    assert r.returncode == 1 and r.stderr.strip() == (
        f"{bare}: no participant has both a training and a test video (its split column names them: train, test; "
        "dis phantom writes it)")
    split = write_manifest(tmp_path / "videos" / "cohort.csv",
                           [{**row, "split": "train" if row["session"] == "s1" else "test"} for row in rows])
    r = _identify("--run", str(out), "--manifest", str(split), "--only", "frame", "--methods", "gaussian",
                  "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "cache" / "summary.json").read_text())
    prov, res = doc["provenance"], doc["results"]["frame/gaussian"]
    assert prov["manifest_sha256"] == sha256_file(split) and prov["arguments"]["only"] == "frame"
    assert prov["command"].startswith("bench/identify.py --run ") and prov["packages"]["numpy"]
    assert prov["model_sha256"] == ""  # no run.json here: a synthetic extraction folder
    line = next(x for x in r.stdout.splitlines() if x.startswith("frame/gaussian "))
    assert f"{res['top1']:.3f} [{res['top1_lo']:.3f}, {res['top1_hi']:.3f}]" in line
