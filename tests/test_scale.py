"""Scoring in blocks (issue #15): equal to the whole-matrix path exactly, a killed block redone alone
with an unchanged result, the final assembly's memory independent of the frames per participant,
and training on CUDA where there is one. Synthetic cohorts: cheap Gaussian features, real model
files (dis_core/score/synthetic.py), real HDF5 read back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dis_core.layout import read_status
from dis_core.score.blocks import (METHODS, NORM_BINS, PER_FRAME, RELATIONS, SUMMARY, assemble, score_whole)
from dis_core.layout import block_dir
from dis_core.score.config import ScoreConfig, block_grid, block_size
from dis_core.score.scoring import norms, relation
from dis_core.score.synthetic import ArraySource, make_synthetic, run_block

ROOT = Path(__file__).resolve().parents[1]


def _run_all(cohort: Path, score_dir: Path, cfg: ScoreConfig, skip: tuple = ()) -> dict:
    n = len(ArraySource(cohort).participants)
    return {(r, c): run_block(cohort, score_dir, r, c, cfg).status for r, c in block_grid(n, cfg) if (r, c) not in skip}


def test_block_geometry_follows_n_and_the_frames_per_participant():
    cfg = ScoreConfig()  # 3e7 evaluations per block at 3,000 frames: 100 x 100 pairs
    assert block_size(50, cfg) == 50 and len(block_grid(50, cfg)) == 1, "a small cohort is one block, as before"
    assert block_size(1000, cfg) == 100 and len(block_grid(1000, cfg)) == 100
    assert block_size(300, ScoreConfig(expected_frames=30_000)) == 31  # longer recordings: smaller blocks
    assert block_size(1000, ScoreConfig(expected_frames=30_000)) == 33  # ... but at most 31 blocks a side
    assert len(block_grid(10_000, cfg)) <= 31 * 31, "within SLURM's default MaxArraySize"
    assert block_grid(7, ScoreConfig(block_size=3)) == [(r, c) for r in range(3) for c in range(3)]


def test_block_scoring_equals_whole_scoring_exactly(tmp_path):
    cohort = make_synthetic(tmp_path / "cohort", n=7, frames=80, seed=1)
    cfg = ScoreConfig(block_size=3)  # 3 x 3 blocks, the last row and column ragged
    assert set(_run_all(cohort, tmp_path / "scores", cfg).values()) == {"ok"}
    a = assemble(tmp_path / "scores", "synthetic")
    src = ArraySource(cohort)
    s, pf = score_whole(src, src.participants, cfg.trim)
    assert a.participants == src.participants
    for m in METHODS:
        assert np.array_equal(a.s[m], s[m]), m  # the same float operations: bit for bit
        nv = norms(pf[m])
        assert np.array_equal(a.norm_mean[m], [[np.mean(v) for v in row] for row in nv])
        assert np.array_equal(a.norm_median[m], [[np.median(v) for v in row] for row in nv])
        for k, rel in enumerate(RELATIONS):
            want = sum(np.histogram(nv[i][j], NORM_BINS)[0] for i in range(7) for j in range(7)
                       if relation(a.dyads, i, j) == rel)
            assert np.array_equal(a.norm_hist[m][rel], want), (m, rel)
        got = a.store.pair(m, "p00006", "p00002")  # a ragged block's pair, read back from its logp.h5
        assert np.array_equal(got["log_p"], pf[m][6][2]) and np.array_equal(got["norm"], nv[6][2])
    assert sum(a.norm_hist["flow"][r].sum() for r in RELATIONS) == 7 * 7 * 80
    assert a.dyads[:4] == ["d0", "d0", "d1", "d1"] and a.test_frames["p00003"] == 80
    # the Gaussians identify the synthetic participants (a block mix-up would not)
    assert (np.argmax(a.s["gaussian"], axis=0) == np.arange(7)).mean() >= 5 / 7


def test_a_killed_block_is_rerun_alone_and_the_result_is_unchanged(tmp_path):
    cohort = make_synthetic(tmp_path / "cohort", n=6, frames=30_000, seed=2)
    cfg = ScoreConfig(block_size=3)
    scores = tmp_path / "scores"
    victim = (1, 0)
    assert set(_run_all(cohort, scores, cfg, skip=(victim,)).values()) == {"ok"}
    code = (f"from dis_core.score.synthetic import run_block; from dis_core.score.config import ScoreConfig; "
            f"run_block({str(cohort)!r}, {str(scores)!r}, {victim[0]}, {victim[1]}, ScoreConfig(block_size=3))")
    folder = block_dir(scores, *victim)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    t0 = time.monotonic()
    while not any(p.name.startswith(f".{PER_FRAME}") for p in folder.glob(".*")) and time.monotonic() - t0 < 120:
        assert proc.poll() is None, "the block finished before it could be killed"
        time.sleep(0.005)
    assert any(p.name.startswith(f".{PER_FRAME}") for p in folder.glob(".*")), "the per-frame file never started"
    os.kill(proc.pid, signal.SIGKILL)  # mid-way: its per-frame file is being written
    assert proc.wait() == -signal.SIGKILL
    assert not (folder / SUMMARY).exists() and read_status(folder) is None
    with pytest.raises(Exception, match="1 of 4 score block\\(s\\) missing \\(1-0\\)"):
        assemble(scores, "synthetic")
    mtimes = {rc: (block_dir(scores, *rc) / SUMMARY).stat().st_mtime_ns for rc in block_grid(6, cfg) if rc != victim}
    statuses = _run_all(cohort, scores, cfg)  # the rerun: every unit, as `dis score` or `dis resubmit` would
    assert statuses == {(0, 0): "skipped", (0, 1): "skipped", (1, 0): "ok", (1, 1): "skipped"}
    assert all((block_dir(scores, *rc) / SUMMARY).stat().st_mtime_ns == t for rc, t in mtimes.items())
    assert not [p for p in folder.glob(".*") if ".part-" in p.name], "the killed attempt's temporary file is gone"
    a = assemble(scores, "synthetic")
    src = ArraySource(cohort)
    s, _ = score_whole(src, src.participants, cfg.trim)
    for m in METHODS:
        assert np.array_equal(a.s[m], s[m])


def _assembly_peak(tmp_path: Path, frames: int) -> tuple[int, int]:
    cohort = make_synthetic(tmp_path / f"c{frames}", n=8, frames=frames, seed=3)
    scores = tmp_path / f"s{frames}"
    _run_all(cohort, scores, ScoreConfig(block_size=4))
    on_disk = sum(h5py.File(p, "r")["logp/flow"].size for p in scores.glob(f"blocks/*/{PER_FRAME}"))
    assemble(scores, "synthetic")  # warm: imports, caches
    tracemalloc.start()
    a = assemble(scores, "synthetic")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert a.s["flow"].shape == (8, 8) and np.isfinite(a.s["flow"]).all()
    return peak, on_disk


def test_the_final_assembly_memory_does_not_grow_with_the_frames(tmp_path):
    small, n_small = _assembly_peak(tmp_path, 50)
    large, n_large = _assembly_peak(tmp_path, 5000)
    assert n_large == 100 * n_small == 8 * 8 * 5000  # the per-frame data are there, 100 times more
    # reading them (log p and norms of two methods: 2.6 MB of float64) would show; the assembly reads summaries
    assert large < 1.25 * small + 64_000, (small, large)
    assert large < 8 * 8 * 5000 * 8 / 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_training_and_scoring_on_cuda_match_the_cpu_densities(tmp_path):
    from dis_core.model.config import FlowConfig
    from dis_core.model.flows import load_density, save_density, train_flow

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)) @ np.array([[1, 0.3, 0], [0, 1, 0.2], [0, 0, 0.5]])
    cols = ["a", "b", "c"]
    fit = train_flow(x, cols, FlowConfig(layers=2, hidden=16, max_epochs=30, device="cuda"))
    assert next(fit.density.flow.parameters()).device.type == "cuda"
    lp_gpu = fit.density.log_prob(x[:500], cols)
    save_density(tmp_path / "m.pt", fit.density)
    cpu, _ = load_density(tmp_path / "m.pt")
    np.testing.assert_allclose(cpu.log_prob(x[:500], cols), lp_gpu, atol=1e-4)
    assert fit.best_val <= fit.history["val"][0]  # the epoch kept (or its Gaussian start) is no worse than the first


def test_the_pair_score_is_scipys_trimmed_mean_bit_for_bit():
    from scipy import stats

    from dis_core.score.scoring import pair_score

    rng = np.random.default_rng(5)
    for n in (1, 2, 19, 20, 21, 300, 4321):
        v = rng.standard_t(2, size=n) * 10 - 3
        for trim in (0.05, 0.1, 0.25):
            assert pair_score(v, trim) == float(stats.trim_mean(v, trim)), (n, trim)


@pytest.mark.usefixtures("slurm")  # a real sacct and squeue (the fixture starts SLURM)
def test_resubmit_picks_the_failed_block_alone(tmp_path, monkeypatch):
    """On SLURM, the score stage is one array task per block; `dis resubmit` after one block failed
    resubmits that block (and the report, which reads it), not the other blocks."""
    from dis_core.config import to_doc
    from dis_core.features.build import DEFAULT_FEATURE_SETS
    from dis_core.io.assets import ModelFile
    from dis_core.layout import UnitResult, write_status
    from dis_core.model.config import default_train_config
    from jobs import graph, slurm
    from tests.conftest import write_manifest

    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    m = write_manifest(tmp_path / "m.csv", [{"participant_id": "p1", "session": "s1", "video": str(video)},
                                            {"participant_id": "p2", "session": "s1", "video": str(video),
                                             "allow_duplicate": "true"}])
    plan = graph.Plan(out=tmp_path / "run", manifest=m, model=ModelFile(tmp_path / "model.task", "0" * 64),
                      train=(default_train_config(DEFAULT_FEATURE_SETS["head_pose"]),), score=ScoreConfig(block_size=1))
    st = graph.stage("score")
    units = st.units(plan)
    assert [st.uid(u) for u in units] == ["head_pose/0-0", "head_pose/0-1", "head_pose/1-0", "head_pose/1-1"]
    assert st.folder(plan.layout, units[2]) == plan.out / "scores" / "head_pose" / "blocks" / "1-0"
    graph.write_record(plan, "slurm", slurm=to_doc(slurm.SlurmConfig()), jobs={}, logs=str(plan.out / "slurm"),
                       units={s.name: {s.uid(u): f"{999990 + i}_{k}" for k, u in enumerate(s.units(plan))}
                              for i, s in enumerate(graph.STAGES)})
    for i, s in enumerate(graph.STAGES):  # each unit's record written by its own task, as tasks write them
        for k, u in enumerate(s.units(plan)):
            bad = s.name == "score" and s.uid(u) == "head_pose/1-0"
            write_status(s.folder(plan.layout, u), UnitResult(unit_id=s.uid(u), status="failed" if bad else "ok",
                                                             message="killed" if bad else "", job=f"{999990 + i}_{k}"))
    status = {u["unit"]: u["state"] for u in slurm.run_status(plan.out)["score"]}
    assert status == {"head_pose/0-0": "done", "head_pose/0-1": "done", "head_pose/1-0": "failed",
                      "head_pose/1-1": "done"}
    monkeypatch.setattr(slurm, "_submit", lambda rec, plan, cfg, units: None)
    rec = slurm.resubmit(plan.out)
    assert rec["resubmitted"] == {"extract": [], "cohort": [], "pooled": [], "train": [], "score": ["head_pose/1-0"],
                                  "report": ["report"]}


def test_a_cohort_with_one_scoreable_participant_fails_its_block_with_the_reason(tmp_path):
    cohort = make_synthetic(tmp_path / "cohort", n=3, frames=30, seed=4)
    for p in ("p00001", "p00002"):
        (cohort / p / "model.pt").unlink()
    r = run_block(cohort, tmp_path / "scores", 0, 0, ScoreConfig())
    assert r.failed and "fewer than two participants with both a model and held-out data" in r.message
    assert read_status(block_dir(tmp_path / "scores", 0, 0)).failed
    with pytest.raises(Exception, match="block 0-0 failed: synthetic: fewer than two participants"):
        assemble(tmp_path / "scores", "synthetic")


def test_a_non_finite_log_p_fails_the_block_naming_both_participants(tmp_path):
    """The block path (what production runs) refuses non-finite per-frame log p, as score_matrix does: a
    NaN in one participant's held-out rows fails the block with the model's and the data's owner named."""
    cohort = make_synthetic(tmp_path / "cohort", n=4, frames=30, seed=2)
    d = cohort / "p00002"
    with np.load(d / "test.npz") as z:
        x, frame = z["x"].copy(), z["frame"]
    x[7, 0] = np.nan
    np.savez(d / "test.npz", x=x, frame=frame)
    res = run_block(cohort, tmp_path / "scores", 0, 0, ScoreConfig(block_size=4))
    assert res.status == "failed"
    assert "non-finite log p on 1 held-out frame(s) of p00002" in res.message and "model of p0000" in res.message


def test_a_block_left_from_an_earlier_run_is_never_assembled_with_the_new_ones(tmp_path):
    """A re-run block that failed kept the earlier run's summary, and assembly took it: a retrained model's row
    mixed its new scores with its old model's. A failed attempt now leaves the block missing (with its reason),
    and a block never redone is refused as made from other models."""
    import torch

    from dis_core.model.config import FlowConfig
    from dis_core.model.flows import Density, build_flow, fit_scaler, load_density, save_density

    cohort = make_synthetic(tmp_path / "cohort", n=4, frames=40, seed=5)
    cfg = ScoreConfig(block_size=2)
    scores = tmp_path / "scores"
    assert set(_run_all(cohort, scores, cfg).values()) == {"ok"}
    old = load_density(cohort / "p00000" / "model.pt")[0]  # "retrained": the same scaler, other weights
    torch.manual_seed(99)
    save_density(cohort / "p00000" / "model.pt", Density("flow", old.columns, old.mean, old.std,
                                                          flow=build_flow(3, FlowConfig(layers=2, hidden=16, init="random")),
                                                          flow_config=FlowConfig(layers=2, hidden=16, init="random")))
    assert _run_all(cohort, scores, cfg, skip=((0, 1),)) == {(0, 0): "ok", (1, 0): "ok", (1, 1): "skipped"}
    with pytest.raises(Exception, match=r"score block\(s\) 0-1 were made from other models or participants than the "
                                        r"rest"):
        assemble(scores, "synthetic")
    with np.load(cohort / "p00003" / "test.npz") as z:  # block 0-1's re-run fails (a NaN in p00003's rows)
        x, frame = z["x"].copy(), z["frame"]
    x[3, 1] = np.nan
    np.savez(cohort / "p00003" / "test.npz", x=x, frame=frame)
    assert run_block(cohort, scores, 0, 1, cfg).failed
    assert not (block_dir(scores, 0, 1) / SUMMARY).exists() and not (block_dir(scores, 0, 1) / PER_FRAME).exists()
    with pytest.raises(Exception, match=r"1 of 4 score block\(s\) missing \(0-1\): block 0-1 failed: .*non-finite"):
        assemble(scores, "synthetic")


def test_a_block_whose_held_out_rows_changed_is_scored_again(tmp_path):
    """Held-out rows rebuilt by other feature code (the models, the extractions and the cohort record unchanged):
    the block skipped as current and the report read scores of rows that no longer exist."""
    cohort = make_synthetic(tmp_path / "cohort", n=3, frames=30, seed=7)
    scores = tmp_path / "scores"
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "ok"
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "skipped"
    before = assemble(scores, "synthetic").s["gaussian"].copy()
    with np.load(cohort / "p00001" / "test.npz") as z:
        x, frame = z["x"] + 0.5, z["frame"]
    np.savez(cohort / "p00001" / "test.npz", x=x, frame=frame)
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "ok"
    after = assemble(scores, "synthetic").s["gaussian"]
    assert not np.array_equal(after[:, 1], before[:, 1]) and np.array_equal(after[:, [0, 2]], before[:, [0, 2]])
    np.savez(cohort / "p00001" / "test.npz", x=x, frame=frame + 1)  # the same rows of other frames
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "ok"


def test_a_block_whose_per_frame_file_is_damaged_is_not_assembled_and_is_scored_again(tmp_path):
    """A garbage logp.h5 beside a good summary was assembled: the report then dropped its excerpts section in
    silence (the sheet said OSError, naming no file), and --norm-workbooks failed as an internal error."""
    cohort = make_synthetic(tmp_path / "cohort", n=3, frames=30, seed=6)
    scores = tmp_path / "scores"
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "ok"
    good = assemble(scores, "synthetic").s["flow"].copy()
    (block_dir(scores, 0, 0) / PER_FRAME).write_bytes(b"garbage")
    with pytest.raises(Exception, match=r"synthetic: 1 score block\(s\)' per-frame file is missing, unreadable or of "
                                        r"another scoring than its summary \(.*0-0/logp.h5\): run dis score"):
        assemble(scores, "synthetic")
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "ok"  # not skipped as current
    np.testing.assert_array_equal(assemble(scores, "synthetic").s["flow"], good)


def test_a_block_that_fails_before_scoring_or_was_scored_by_an_older_dis_is_not_assembled(tmp_path):
    """A re-run failing before it scored ("fewer than two participants": two models gone) kept the earlier run's
    summary, which assembly took; blocks from before models were named in them are refused with that reason."""
    cohort = make_synthetic(tmp_path / "cohort", n=3, frames=30, seed=6)
    scores = tmp_path / "scores"
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "ok"
    with h5py.File(block_dir(scores, 0, 0) / SUMMARY, "r+") as f:  # as an older DIS wrote it
        f.attrs["schema_version"] = 1
        del f.attrs["models"]
    with pytest.raises(Exception, match=r"score block\(s\) 0-0 were scored by an older DIS: run dis score"):
        assemble(scores, "synthetic")
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).status == "ok"  # as the message says: scored again
    assert assemble(scores, "synthetic").participants == ["p00000", "p00001", "p00002"]
    for p in ("p00001", "p00002"):
        (cohort / p / "model.pt").unlink()
    assert run_block(cohort, scores, 0, 0, ScoreConfig()).failed
    assert not (block_dir(scores, 0, 0) / SUMMARY).exists()
    with pytest.raises(Exception, match="block 0-0 failed: synthetic: fewer than two participants"):
        assemble(scores, "synthetic")
