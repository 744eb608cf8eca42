"""Flow training: resumable after a hard kill, reproducible with fixed seeds."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dis_core.model.config import HEAD_FLOW
from dis_core.model.flows import FlowConfig, fit_gaussian, train_flow

ROOT = Path(__file__).resolve().parents[1]
CFG = dict(layers=2, hidden=32, max_epochs=150, patience=1000, checkpoint_every_s=0.0, batch_size=64)
# The head-motion flow itself (config.HEAD_FLOW: a spline on each whitened axis behind an initialised ActNorm, no
# MAF layer, full batches); its resume must restore the ActNorm's state, not re-initialise it from a batch.
SPLINE_CFG = {**dataclasses.asdict(HEAD_FLOW), "max_epochs": 150, "patience": 1000, "checkpoint_every_s": 0.0}


def _data():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(1500, 4))
    return np.column_stack([z[:, 0], z[:, 0] ** 2 + 0.3 * z[:, 1], np.sin(z[:, 2]), z[:, 3] * 2])


@pytest.mark.parametrize("cfg", [CFG, SPLINE_CFG], ids=["maf", "spline"])
def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path, cfg):
    x = _data()
    np.save(tmp_path / "x.npy", x)
    ck = tmp_path / "ckpt.pt"
    code = textwrap.dedent(f"""
        import numpy as np, sys
        sys.path.insert(0, {str(ROOT)!r})
        from dis_core.model.flows import FlowConfig, train_flow
        train_flow(np.load({str(tmp_path / 'x.npy')!r}), list("abcd"), FlowConfig(**{cfg!r}), checkpoint={str(ck)!r})
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
    assert 20 <= killed_at < cfg["max_epochs"]
    resumed = train_flow(x, list("abcd"), FlowConfig(**cfg), checkpoint=ck)
    fresh = train_flow(x, list("abcd"), FlowConfig(**cfg))
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
    assert train_flow(x[:1000], list("abcd"), cfg, checkpoint=ck).resumed_from == 5  # its own data's is resumed


def test_early_stopping_and_gradient_clipping_keep_the_best_epoch():
    x = _data()
    r = train_flow(x, list("abcd"), FlowConfig(layers=2, hidden=16, max_epochs=300, patience=10))
    assert r.epochs < 300  # stopped early
    assert r.best_epoch == int(np.argmin(r.history["start"][1:] + r.history["val"])) - 1  # -1: the start
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


@pytest.mark.parametrize("fps", [30.0, 29.97, 25.0])
def test_row_overlap_counts_every_neighbour_whose_window_reads_a_frame_of_this_one(fps):
    """From the windows' own frame lists: the farthest neighbour sharing a frame is row_overlap rows away (a
    2 s trajectory every 0.25 s reads the frames around its end, which the window 8 rows on reads too)."""
    from dis_core.features.build import EXTRA_FEATURE_SETS, row_overlap
    from dis_core.features.temporal import frame_windows

    spec = EXTRA_FEATURE_SETS["head_windows"]
    t = np.arange(int(30 * fps)) / fps
    r = frame_windows(np.zeros((len(t), 1)), t, np.zeros(len(t), int), np.ones(len(t), bool), ["a"],
                      spec.window_s, spec.hop_s, spec.grid_hz)
    far = max(k for i in range(len(r.covered)) for k in range(1, 20)
              if i + k < len(r.covered) and np.intersect1d(r.covered[i], r.covered[i + k]).size)
    assert far == row_overlap(spec) == 8


@pytest.mark.parametrize("fps", [30.0, 29.97, 25.0, 24.0, 15.0])
def test_no_spectral_row_beyond_the_purge_shares_a_frame(fps):
    """8 s windows every 0.5 s at 29.97 fps: starts snapped to frames put some windows 16 rows apart on a shared
    frame, one past the purge of 15 (a validation row then shared frames with a fitting row)."""
    from dis_core.features.build import DEFAULT_FEATURE_SETS, row_overlap
    from dis_core.features.temporal import spectral_rows

    spec = DEFAULT_FEATURE_SETS["head_spectrum"]
    t = np.arange(int(60 * fps)) / fps
    r = spectral_rows(np.random.default_rng(0).normal(size=(len(t), 3)), t, np.zeros(len(t), int),
                      np.ones(len(t), bool), ["a", "b", "c"])
    far = max(k for i in range(len(r.covered)) for k in range(1, 20)
              if i + k < len(r.covered) and np.intersect1d(r.covered[i], r.covered[i + k]).size)
    assert far <= row_overlap(spec) == 16


def test_validation_rows_are_kept_clear_of_the_training_rows_whose_frames_they_share():
    """Window rows (8 s every 0.5 s) share frames with up to 16 neighbours on each side: those before each run of
    validation rows are used for neither, so the flow is fitted (its scaler too) on the rest."""
    from dis_core.features.build import DEFAULT_FEATURE_SETS, EXTRA_FEATURE_SETS, row_overlap
    from dis_core.model.flows import purge_rows

    assert row_overlap(DEFAULT_FEATURE_SETS["head_spectrum"]) == 16
    assert row_overlap(EXTRA_FEATURE_SETS["head_windows"]) == 8 and row_overlap(DEFAULT_FEATURE_SETS["head_pose"]) == 0
    val = np.zeros(12, bool)
    val[[4, 5, 10, 11]] = True  # two people's validation tails
    assert np.flatnonzero(purge_rows(val, 2)).tolist() == [2, 3, 8, 9]
    assert not purge_rows(val, 0).any() and np.flatnonzero(purge_rows(val, 9)).tolist() == [0, 1, 2, 3, 6, 7, 8, 9]
    x = np.random.default_rng(0).normal(size=(100, 4)) + np.linspace(0, 3, 100)[:, None]  # a drift: means differ
    cfg = FlowConfig(layers=1, hidden=8, max_epochs=2, init="random")  # no start to keep: an epoch is kept
    r = train_flow(x, list("abcd"), cfg, purge=10)  # validation: the last 15 rows; rows 75-84 purged
    assert r.rows == {"fit": 75, "validation": 15, "purged": 10, "refit": 0}
    np.testing.assert_allclose(r.density.mean, x[:75].mean(axis=0))
    np.testing.assert_allclose(train_flow(x, list("abcd"), cfg).density.mean, x[:85].mean(axis=0))
    kept = train_flow(x, list("abcd"), dataclasses.replace(cfg, init="gaussian", lr=0.0), purge=10)
    assert kept.best_epoch == -1 and kept.rows["refit"] == 100  # a kept start: refitted on every row
    np.testing.assert_allclose(kept.density.mean, x.mean(axis=0))


def _correlated(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.array([[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [0.5, -0.3, 0.7, 0.0], [0.1, 0.4, 0.2, 0.9]])
    return rng.normal(size=(n, 4)) @ a.T * np.array([2.0, 0.5, 1.0, 3.0]) + np.array([1.0, -2.0, 0.0, 5.0])


@pytest.mark.parametrize("layers,spline_bins", [(2, 0), (2, 8), (0, 8)])
@pytest.mark.parametrize("conditional", ["none", "lags"])
def test_an_untrained_flow_is_the_gaussian_of_its_training_rows(tmp_path, conditional, layers, spline_bins):
    """FlowConfig.init = "gaussian": before any step the flow's density is the Ledoit-Wolf Gaussian of its
    standardised rows (joint), or that Gaussian's conditional of the present given the past (a conditional
    flow: the autoregressive baseline), in the original feature space, with or without its elementwise
    spline and MAF layers; it survives its model file."""
    from scipy.stats import multivariate_normal
    from sklearn.covariance import LedoitWolf

    from dis_core.model.flows import Density, build_flow, context_mask, fit_scaler, gaussian_map, load_density, save_density

    cols = ["a", "b", "a@-0.2s", "b@-0.2s"]
    x, new = _correlated(800, 1), _correlated(300, 2)
    cfg = FlowConfig(layers=layers, hidden=8, conditional=conditional, spline_bins=spline_bins)
    mean, std, _ = fit_scaler(x, cfg.min_std)
    z = (x - mean) / std
    c = context_mask(cols, cfg)
    c = np.zeros(4, bool) if c is None else c
    flow = build_flow(int((~c).sum()), cfg, int(c.sum())).eval()
    d = Density("flow", cols, mean, std, flow=flow, flow_config=cfg)
    d.pre_loc, d.pre_coef, d.pre_white = gaussian_map(z, c)
    lw = LedoitWolf().fit(z)
    zn = (new - mean) / std
    want = multivariate_normal(lw.location_, lw.covariance_).logpdf(zn) - np.log(std[~c]).sum()
    if c.any():  # log p(present | past) = log p(row) - log p(past)
        want -= multivariate_normal(lw.location_[c], lw.covariance_[np.ix_(c, c)]).logpdf(zn[:, c])
    np.testing.assert_allclose(d.log_prob(new, cols), want, atol=2e-4)
    save_density(tmp_path / "m.pt", d)
    back, _ = load_density(tmp_path / "m.pt")
    np.testing.assert_allclose(back.log_prob(new, cols), want, atol=2e-4)


def test_where_rows_are_gaussian_the_trained_flow_stays_that_gaussian_whatever_its_seed():
    """A flow started as the Gaussian of its rows learns nothing spurious from Gaussian rows: two seeds
    give held-out log-likelihoods within 0.004 nats a row of each other and of the Gaussian baseline (started
    at random, nflows' MAF ends 0.007 and 0.012 nats below it on these rows)."""
    from dis_core.model.flows import fit_gaussian

    cols = list("abcd")
    x, new = _correlated(2000, 3), _correlated(1000, 4)
    g = fit_gaussian(x, cols).log_prob(new, cols).mean()
    lp = [train_flow(x, cols, FlowConfig(layers=2, hidden=16, seed=s)).density.log_prob(new, cols).mean()
          for s in (0, 1)]
    assert abs(lp[0] - lp[1]) < 0.004 and max(abs(v - g) for v in lp) < 0.004, (lp, g)


def test_a_flow_keeps_its_starting_gaussian_unless_an_epoch_beats_it_on_validation():
    """train_flow with the Gaussian start: with a zero learning rate nothing beats the start, which is kept
    (best_epoch -1) and, refitted on every row (validation rows too, as a model chosen on validation is), is
    the Ledoit-Wolf Gaussian of all the rows, its baseline's, with a column constant in them fixed at the
    cohort's spread; with a large learning rate on 60 rows, the flow kept is never worse on validation than its
    start."""
    from scipy.stats import multivariate_normal
    from sklearn.covariance import LedoitWolf

    cols = list("abcde")
    x = np.column_stack([_correlated(400, 5), np.full(400, 2.0)])
    spread = np.array([1.0, 1.0, 1.0, 1.0, 0.5])
    r = train_flow(x, cols, FlowConfig(layers=2, hidden=8, lr=0.0, max_epochs=3), cohort_spread=spread)
    assert r.best_epoch == -1 and r.best_val == r.history["start"][1]
    d = r.density
    assert list(d.free) == [True, True, True, True, False]
    assert r.rows == {"fit": 340, "validation": 60, "purged": 0, "refit": 400}  # val_fraction 0.15: the last 60
    mean, std = x.mean(axis=0), np.where(d.free, x.std(axis=0), 0.5)
    new = np.column_stack([_correlated(200, 6), np.full(200, 2.3)])
    z = (new - mean) / std
    lw = LedoitWolf().fit(((x - mean) / std)[:, :4])
    want = (multivariate_normal(lw.location_, lw.covariance_).logpdf(z[:, :4]) - np.log(std).sum()
            - 0.5 * z[:, 4] ** 2 - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(d.log_prob(new, cols), want, atol=2e-4)
    np.testing.assert_allclose(d.log_prob(new, cols), fit_gaussian(x, cols, cohort_spread=spread).log_prob(new, cols),
                               atol=2e-4)  # the baseline
    # purged rows (shared frames) and a pooled shape's own rows to refit on
    r = train_flow(x, cols, FlowConfig(layers=2, hidden=8, lr=0.0, max_epochs=3), cohort_spread=spread, purge=16,
                   refit_rows=x[::2])
    assert r.rows == {"fit": 324, "validation": 60, "purged": 16, "refit": 200}
    np.testing.assert_allclose(r.density.log_prob(new, cols),
                               fit_gaussian(x[::2], cols, cohort_spread=spread).log_prob(new, cols), atol=2e-4)
    small = _correlated(60, 7)
    r = train_flow(small, cols[:4], FlowConfig(layers=2, hidden=16, lr=0.05, batch_size=8, max_epochs=40, patience=40))
    assert r.best_val <= r.history["start"][1] and r.best_val == min(r.history["start"][1:] + r.history["val"])


def test_the_head_flow_with_a_zero_learning_rate_keeps_the_gaussian_of_its_rows():
    """HEAD_FLOW through train_flow (training mode, full batches) with a zero learning rate: its per-axis scale
    and shift stay the identity (no data-dependent first batch) and the spline too, so the flow kept is the
    start and its log p is the Ledoit-Wolf Gaussian of its rows (refitted on all of them)."""
    import dataclasses

    from scipy.stats import multivariate_normal
    from sklearn.covariance import LedoitWolf

    from dis_core.model.config import HEAD_FLOW

    cols = list("abcd")
    x, new = _correlated(400, 5), _correlated(200, 6)
    r = train_flow(x, cols, dataclasses.replace(HEAD_FLOW, lr=0.0, max_epochs=3))
    assert r.best_epoch == -1 and len(r.history["val"]) == 3  # trained 3 epochs, none beat the start
    np.testing.assert_allclose(r.history["val"], r.history["start"][1], rtol=1e-6)  # and none moved from it
    mean, std = x.mean(axis=0), x.std(axis=0)
    lw = LedoitWolf().fit((x - mean) / std)
    want = multivariate_normal(lw.location_, lw.covariance_).logpdf((new - mean) / std) - np.log(std).sum()
    np.testing.assert_allclose(r.density.log_prob(new, cols), want, atol=2e-4)


def test_where_rows_are_curved_the_flow_leaves_its_gaussian_start_and_beats_it():
    """The Gaussian start does not pin a flow: on rows along a parabola (b = a^2 + noise) it moves away
    and beats the Gaussian baseline on held-out rows by far (a known gap: the Gaussian cannot bend)."""
    from dis_core.model.flows import fit_gaussian

    def rows(n, seed):
        a, e = np.random.default_rng(seed).normal(size=(2, n))
        return np.column_stack([a, a ** 2 + 0.1 * e])

    x, new = rows(400, 1), rows(1000, 2)
    r = train_flow(x, list("ab"), FlowConfig(layers=2, hidden=16, max_epochs=150, patience=150))
    assert r.best_epoch > 50
    gain = r.density.log_prob(new, list("ab")).mean() - fit_gaussian(x, list("ab")).log_prob(new, list("ab")).mean()
    assert gain > 0.8, gain


def test_an_elementwise_spline_learns_skewed_axes_to_their_known_entropy(tmp_path):
    """FlowConfig.spline_bins: on rows whose axes are independent log-exponential variables (a skewed
    Gumbel: entropy 1 + Euler's gamma, against 0.5 log(2 pi e pi^2/6) for the Gaussian of the same variance,
    0.0906 nats an axis), a spline-only flow (no MAF layer) beats the Gaussian baseline on held-out rows by
    most of the known 3 x 0.0906 nats, never by more than the truth allows, and its model file reads back.
    Trained on full batches (the head-motion default, HEAD_FLOW), the result does not depend on the seed."""
    import dataclasses

    from dis_core.model.config import HEAD_FLOW
    from dis_core.model.flows import fit_gaussian, load_density, save_density

    def rows(n, seed):
        return np.log(np.random.default_rng(seed).exponential(size=(n, 3))) * np.array([1.0, 3.0, 0.2]) + 5.0

    cols = list("abc")
    x, new = rows(4000, 1), rows(4000, 2)
    r = train_flow(x, cols, HEAD_FLOW)
    lp = r.density.log_prob(new, cols)
    g = fit_gaussian(x, cols).log_prob(new, cols).mean()
    y = (new - 5.0) / np.array([1.0, 3.0, 0.2])  # the true density: exp(y - e^y) per axis, over its scale
    truth = (y - np.exp(y)).sum(axis=1).mean() - np.log([1.0, 3.0, 0.2]).sum()
    known = 3 * (0.5 * np.log(2 * np.pi * np.e * np.pi ** 2 / 6) - (1 + np.euler_gamma))
    assert r.best_epoch >= 0
    assert 0.8 * known < lp.mean() - g < known + 0.03 and lp.mean() < truth + 0.02, (lp.mean() - g, truth - g)
    save_density(tmp_path / "s.pt", r.density)
    np.testing.assert_allclose(load_density(tmp_path / "s.pt")[0].log_prob(new, cols), lp, atol=1e-5)
    other = train_flow(x, cols, dataclasses.replace(HEAD_FLOW, seed=7))
    assert other.best_epoch == r.best_epoch and np.array_equal(other.density.log_prob(new, cols), lp)


def test_a_flow_needs_a_transform_and_a_flow_without_maf_layers_the_gaussian_map():
    """A flow without MAF layers needs its spline, and sees correlation (and a conditional flow its past)
    only through the Gaussian map: such misconfigurations are refused when the configuration is made."""
    with pytest.raises(ValueError, match="MAF layers or spline_bins"):
        FlowConfig(layers=0)
    for conditional in ("none", "lags"):
        with pytest.raises(ValueError, match="without MAF layers models axes independently"):
            FlowConfig(layers=0, spline_bins=8, conditional=conditional, init="random")
    with pytest.raises(ValueError, match="batch_size must be >= 0"):
        FlowConfig(batch_size=-1)
    with pytest.raises(ValueError, match="spline_bins 0 or >= 2"):
        FlowConfig(spline_bins=1)


def test_a_flow_saved_before_the_gaussian_start_loads_as_started_at_random(tmp_path):
    """A model file without the Gaussian map (saved before FlowConfig.init) reports init = "random", how it
    was trained, not the new default; one with the map keeps "gaussian"."""
    from dis_core.model.flows import load_density, save_density

    cols = list("abcd")
    fit = train_flow(_correlated(200, 8), cols, FlowConfig(layers=1, hidden=4, max_epochs=2))
    save_density(tmp_path / "new.pt", fit.density)
    old = fit.density
    old.pre_loc = old.pre_coef = old.pre_white = None
    save_density(tmp_path / "old.pt", old)
    assert load_density(tmp_path / "new.pt")[0].flow_config.init == "gaussian"
    assert load_density(tmp_path / "old.pt")[0].flow_config.init == "random"


def test_a_checkpoint_is_resumed_only_by_the_fitting_rule_that_saved_it(tmp_path, monkeypatch):
    """The checkpoint's key held the configuration and the rows but not the stage's fitting rule (FIT_RULE), the
    model format or the libraries: a DIS updated between an interruption and the resume continued the old
    checkpoint into neither version's model (a training review)."""
    x = _correlated(200, 3)
    cfg = FlowConfig(layers=1, hidden=8, max_epochs=4, patience=10, checkpoint_every_s=0.0, init="random")
    ck = tmp_path / "ck.pt"
    train_flow(x, list("abcd"), cfg, checkpoint=ck, rule="old rule")  # a checkpoint after every epoch
    assert train_flow(x, list("abcd"), cfg, checkpoint=ck, rule="old rule").resumed_from == 4  # the same code
    assert train_flow(x, list("abcd"), cfg, checkpoint=ck, rule="new rule").resumed_from == 0
    import importlib.metadata

    real = importlib.metadata.version
    train_flow(x, list("abcd"), cfg, checkpoint=ck, rule="old rule")
    monkeypatch.setattr(importlib.metadata, "version", lambda p: "0.99" if p == "nflows" else real(p))
    assert train_flow(x, list("abcd"), cfg, checkpoint=ck, rule="old rule").resumed_from == 0  # another nflows
