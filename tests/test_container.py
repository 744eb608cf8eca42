"""The Apptainer image (containers/dis.sif, built by `make container`): a stage and a SLURM array inside it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dis_core.extract.h5store import read_extraction

pytestmark = pytest.mark.apptainer
ROOT = Path(__file__).resolve().parents[1]
SIF = ROOT / "containers" / "dis.sif"


@pytest.fixture(scope="module")
def sif():
    if shutil.which("apptainer") is None:
        pytest.skip("apptainer is not installed")
    if not SIF.is_file():
        pytest.skip("containers/dis.sif is not built (make container)")
    return SIF


def test_image_runs_dis_and_has_the_model(sif):
    r = subprocess.run(["apptainer", "run", str(sif), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "dis 0.1.0", r.stderr
    r = subprocess.run(["apptainer", "inspect", "--labels", str(sif)], capture_output=True, text=True)
    assert "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff" in r.stdout


def test_a_stage_inside_the_image_equals_the_host(sif, samples, model, make_manifest, tmp_path):
    from dis_core.extract.stage import ExtractConfig, extract_video
    from dis_core.manifest import load_manifest

    m = make_manifest([{"participant_id": "p", "session": "s1", "video": str(samples["single_face.mp4"])}])
    r = subprocess.run(["apptainer", "run", "--bind", f"{tmp_path},{samples['single_face.mp4'].parent}", str(sif),
                        "extract", "-m", str(m), "-o", str(tmp_path / "in")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    inside = read_extraction(next((tmp_path / "in" / "videos").glob("p_s1_single_face-*/extraction.h5")))
    assert inside.provenance["model_path"] == "/opt/dis/face_landmarker.task"
    assert inside.provenance["container"] == str(sif)
    host = extract_video(load_manifest(m).entries[0], tmp_path / "host", model, ExtractConfig(), progress=False)
    outside = read_extraction(Path(host.output))
    np.testing.assert_allclose(inside.landmarks, outside.landmarks, atol=1e-5)
    np.testing.assert_array_equal(inside.detected, outside.detected)


@pytest.mark.slurm
def test_a_slurm_array_inside_the_image(sif, samples, model, tmp_path):
    import time

    from dis_core.features.build import DEFAULT_FEATURE_SETS
    from dis_core.manifest import load_manifest
    from dis_core.phantom.render import PhantomConfig, make_cohort
    from dis_core.model.config import default_train_config
    from jobs.graph import Plan
    from jobs.slurm import SlurmConfig, run_status, submit_run

    if shutil.which("sbatch") is None:
        pytest.skip("no SLURM")
    m = load_manifest(make_cohort(tmp_path / "v", PhantomConfig(participants=3, sessions=2, duration_s=6, fps=15),
                                  samples, model.path))
    plan = Plan(out=tmp_path / "run", manifest=m.path, model=model,
                train=(default_train_config(DEFAULT_FEATURE_SETS["head_pose"]),))
    submit_run(plan, SlurmConfig(cpus_per_task=1, mem_gb=2, container=str(sif)))
    deadline = time.time() + 600
    while True:
        st = run_status(tmp_path / "run")
        if not any(u["state"] in ("running", "pending") for s in st.values() for u in s):
            break
        assert time.time() < deadline
        time.sleep(2)
    assert all(u["state"] == "done" for s in st.values() for u in s), st
    x = read_extraction(next((tmp_path / "run" / "videos").glob("ph01_s1_ph01_s1-*/extraction.h5")))
    assert x.provenance["container"] == str(sif), "the array task ran inside the image"
    assert x.provenance["model_sha256"] == "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
