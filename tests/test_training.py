"""Flow training: resumable after a hard kill, reproducible with fixed seeds."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dis_core.model.flows import FlowConfig, train_flow

ROOT = Path(__file__).resolve().parents[1]
CFG = dict(layers=2, hidden=32, max_epochs=150, patience=1000, checkpoint_every_s=0.0, batch_size=64)


def _data():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(1500, 4))
    return np.column_stack([z[:, 0], z[:, 0] ** 2 + 0.3 * z[:, 1], np.sin(z[:, 2]), z[:, 3] * 2])


def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path):
    x = _data()
    np.save(tmp_path / "x.npy", x)
    ck = tmp_path / "ckpt.pt"
    code = textwrap.dedent(f"""
        import numpy as np, sys
        sys.path.insert(0, {str(ROOT)!r})
        from dis_core.model.flows import FlowConfig, train_flow
        train_flow(np.load({str(tmp_path / 'x.npy')!r}), list("abcd"), FlowConfig(**{CFG!r}), checkpoint={str(ck)!r})
    """)
    p = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120
    while time.time() < deadline:
        if ck.is_file() and torch.load(ck, weights_only=True)["epoch"] >= 20:
            break
        time.sleep(0.05)
    assert p.poll() is None, "training finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = torch.load(ck, weights_only=True)["epoch"]
    assert 20 <= killed_at < CFG["max_epochs"]
    resumed = train_flow(x, list("abcd"), FlowConfig(**CFG), checkpoint=ck)
    fresh = train_flow(x, list("abcd"), FlowConfig(**CFG))
    assert resumed.resumed_from >= killed_at
    assert resumed.history == fresh.history
    np.testing.assert_array_equal(resumed.density.log_prob(x, list("abcd")), fresh.density.log_prob(x, list("abcd")))


def test_checkpoint_of_other_data_is_not_resumed(tmp_path):
    x = _data()
    ck = tmp_path / "ckpt.pt"
    cfg = FlowConfig(**{**CFG, "max_epochs": 5})
    train_flow(x, list("abcd"), cfg, checkpoint=ck)
    r = train_flow(x[:1000], list("abcd"), cfg, checkpoint=ck)
    assert r.resumed_from == 0


def test_early_stopping_and_gradient_clipping_keep_the_best_epoch():
    x = _data()
    r = train_flow(x, list("abcd"), FlowConfig(layers=2, hidden=16, max_epochs=300, patience=10))
    assert r.epochs < 300  # stopped early
    assert r.best_epoch == int(np.argmin(r.history["val"]))
    assert r.epochs - 1 - r.best_epoch <= 10 + 1


def test_a_column_constant_in_training_is_fixed_at_the_cohort_spread_not_floored(tmp_path):
    """fit_scaler: a constant column takes the cohort's spread and is fixed (kept out of the joint
    model); a moving one keeps its own std; without the cohort's spread the old floor applies. The
    Gaussian baseline then scores the fixed column as N(constant, spread^2), also after a round trip."""
    from dis_core.model.flows import (
        fit_gaussian,
        fit_scaler,
        load_density,
        save_density,
    )

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, 2, 500), np.full(500, 3.0), rng.normal(1, 0.5, 500)])
    _, std, fixed = fit_scaler(x, 1e-3, np.array([2.0, 4.0, 0.5]))
    assert fixed.tolist() == [False, True, False] and std[1] == 4.0 and std[0] == pytest.approx(2.0, rel=0.1)
    assert fit_scaler(x, 1e-3)[1][1] == 1e-3 and not fit_scaler(x, 1e-3)[2].any()
    g = fit_gaussian(x, list("abc"), 1e-3, np.array([2.0, 4.0, 0.5]))
    save_density(tmp_path / "g.pt", g)
    g2, _ = load_density(tmp_path / "g.pt")
    y = x[:5].copy()
    y[:, 1] = [3.0, 7.0, -1.0, 3.0, 11.0]
    expect = -0.5 * ((y[:, 1] - 3.0) / 4.0) ** 2  # the fixed column's term, relative to y at the constant
    for d in (g, g2):
        np.testing.assert_allclose(d.log_prob(y, list("abc")) - d.log_prob(x[:5], list("abc")), expect, atol=1e-9)


def test_validation_rows_are_kept_clear_of_the_training_rows_whose_frames_they_share():
    """Window rows (8 s every 0.5 s) share frames with 15 neighbours on each side: those before each run of
    validation rows are used for neither, so the flow is fitted (its scaler too) on the rest."""
    from dis_core.features.build import DEFAULT_FEATURE_SETS, EXTRA_FEATURE_SETS, row_overlap
    from dis_core.model.flows import purge_rows

    assert row_overlap(DEFAULT_FEATURE_SETS["head_spectrum"]) == 15
    assert row_overlap(EXTRA_FEATURE_SETS["head_windows"]) == 7 and row_overlap(DEFAULT_FEATURE_SETS["head_pose"]) == 0
    val = np.zeros(12, bool)
    val[[4, 5, 10, 11]] = True  # two people's validation tails
    assert np.flatnonzero(purge_rows(val, 2)).tolist() == [2, 3, 8, 9]
    assert not purge_rows(val, 0).any() and np.flatnonzero(purge_rows(val, 9)).tolist() == [0, 1, 2, 3, 6, 7, 8, 9]
    x = np.random.default_rng(0).normal(size=(100, 4)) + np.linspace(0, 3, 100)[:, None]  # a drift: means differ
    cfg = FlowConfig(layers=1, hidden=8, max_epochs=2)
    r = train_flow(x, list("abcd"), cfg, purge=10)  # validation: the last 15 rows; rows 75-84 purged
    np.testing.assert_allclose(r.density.mean, x[:75].mean(axis=0))
    np.testing.assert_allclose(train_flow(x, list("abcd"), cfg).density.mean, x[:85].mean(axis=0))
