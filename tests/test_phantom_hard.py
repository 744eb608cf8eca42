"""Harder phantoms: rich dynamics, cameras that move between sessions, hidden-face bursts, near neighbours."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import signal, stats

from dis_core.extract.h5store import read_extraction
from dis_core.extract.stage import ExtractConfig, extract_video
from dis_core.features.build import DEFAULT_FEATURE_SETS, base_values, video_features
from dis_core.manifest import load_manifest
from dis_core.phantom.hard import camera_rotation, damped_sway, hidden_bursts, near_neighbours, rich_terms
from dis_core.phantom.render import (PhantomConfig, cohort_dynamics, make_cohort, make_rig, portraits, read_hidden,
                                     read_truth, render_video, sample_dynamics, trajectory)


def test_hidden_bursts_have_the_share_and_lengths_asked_for():
    for frac in (0.05, 0.15):
        h = hidden_bursts(6000, frac, np.random.default_rng(1))
        assert h.sum() == pytest.approx(frac * 6000, abs=3)
        edges = np.diff(np.concatenate([[0], h.astype(int), [0]]))
        lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        assert lengths.min() >= 1 and lengths.max() <= 3 and len(set(lengths)) == 3
    assert not hidden_bursts(100, 0.0, np.random.default_rng(0)).any()


def test_camera_rotation_angle_range():
    ang = [np.degrees(np.arccos((np.trace(camera_rotation(np.random.default_rng(i), 10.0)) - 1) / 2)) for i in range(50)]
    assert 5.0 - 1e-6 <= min(ang) and max(ang) <= 10.0 + 1e-6
    assert np.allclose(camera_rotation(np.random.default_rng(0), 0.0), np.eye(3))


def test_damped_sway_resonates_at_its_frequency():
    y = damped_sway(30000, 30.0, 0.8, 0.1, 2.0, np.random.default_rng(3))
    f, p = signal.welch(y, fs=30.0, nperseg=1024)
    assert f[p.argmax()] == pytest.approx(0.8, abs=0.08)


def test_damped_sway_has_its_spread_on_average_not_in_every_session():
    """The AR(2) process is scaled by its stationary standard deviation: 60 s sessions average the asked-for
    variance, and their own spreads vary as a real person's would (each was scaled to exactly ``sd``)."""
    rng = np.random.default_rng(5)
    sds = np.array([damped_sway(1800, 30.0, 0.5, 0.15, 2.0, rng).std() for _ in range(300)])
    assert np.mean(sds ** 2) == pytest.approx(4.0, rel=0.05)
    assert sds.std() / sds.mean() > 0.05


def test_rich_dynamics_keep_the_classic_parameters_and_add_their_own():
    classic = cohort_dynamics(6, np.random.default_rng(5))
    rich = cohort_dynamics(6, np.random.default_rng(5), rich=True)
    for c, r in zip(classic, rich):
        assert c.yaw.a_slow == r.yaw.a_slow and c.nod_rate == r.nod_rate  # same draws first
        assert c.yaw.ar_sd == 0 and r.yaw.ar_sd > 0 and r.couple_yaw_roll != 0
    # coupling: roll follows yaw, yaw follows pitch, with the participant's gains
    quiet = dataclasses.replace(rich[0], couple_yaw_roll=0.3, couple_pitch_yaw=-0.2,
                                **{a: dataclasses.replace(getattr(rich[0], a), ar_sd=0.0) for a in ("yaw", "pitch", "roll")})
    base = np.random.default_rng(0).standard_normal((500, 3))
    out = rich_terms(base, quiet, 30.0, np.random.default_rng(0))
    dev = base - base.mean(axis=0)
    assert np.allclose(out[:, 0], base[:, 0] - 0.2 * dev[:, 1]) and np.allclose(out[:, 2], base[:, 2] + 0.3 * dev[:, 0])
    assert np.allclose(out[:, 1], base[:, 1])


def test_near_neighbours_are_closer_than_strangers():
    dyn = cohort_dynamics(20, np.random.default_rng(2), rich=True)
    near, src = near_neighbours(dyn, 4, np.random.default_rng(3))

    def vec(d):
        return np.log(np.abs(np.array([d.yaw.a_slow, d.pitch.a_slow, d.roll.a_slow, d.yaw.a_fast, d.nod_rate,
                                       d.shake_rate, d.jitter_sd, d.yaw.ar_sd])))
    for i in range(16, 20):
        j = src[i]
        assert j >= 0
        d_near = np.linalg.norm(vec(near[i]) - vec(dyn[j]))
        d_far = np.median([np.linalg.norm(vec(near[i]) - vec(dyn[k])) for k in range(16) if k != j])
        assert d_near < 0.5 * d_far
    assert src[:16] == [-1] * 16 and near[:16] == dyn[:16]


@pytest.fixture(scope="module")
def faces(samples, model):
    return dict(portraits(samples, model.path))


def test_hidden_frames_are_detector_gaps_and_the_truth_says_which(tmp_path, samples, model):
    cfg = PhantomConfig(participants=2, sessions=1, duration_s=3.0, fps=10.0, width=400, height=300, seed=4,
                        hidden_fraction=0.2, camera_deg=8.0, rich_dynamics=True)
    man = load_manifest(make_cohort(tmp_path, cfg, samples, model.path))
    doc = json.loads((tmp_path / "phantom.json").read_text())
    assert doc["config"]["hidden_fraction"] == 0.2
    for e in man.entries:
        truth = Path(str(e.video).replace(".mp4", ".truth.csv"))
        hidden = read_hidden(truth)
        assert 6 <= hidden.sum() <= 8 and len(read_truth(truth)[0]) == 30  # 20%, the last burst may overshoot
        r = extract_video(e, tmp_path / "out", model, ExtractConfig(), progress=False)
        det = read_extraction(Path(r.output), skip=("landmarks", "blendshapes")).detected
        assert not det[hidden].any(), "a hidden face is never detected"
        assert det[~hidden].mean() >= 0.95
        sess = doc["participants"][int(e.participant_id[2:]) - 1]["sessions"]["s1"]
        assert 4.0 - 1e-3 <= np.linalg.norm(sess["camera_rotvec_deg"]) <= 8.0 + 1e-3
        assert sess["hidden_frames"] == hidden.sum()


def test_a_moved_camera_leaves_the_relative_rotation_features_unchanged(tmp_path, faces, model, make_manifest):
    """The same head motion filmed by a camera rotated by ~10 degrees (real rendering, real MediaPipe):
    relative-rotation features agree frame by frame and a two-sample test does not tell them apart."""
    fps, n = 15.0, 240
    rng = np.random.default_rng(8)
    ypr = trajectory(sample_dynamics(rng, rich=True), n, fps, rng)
    cam = camera_rotation(np.random.default_rng(1), 10.0)
    rig = make_rig(faces["0-f1-su-ph"], model.path, (400, 300))
    feats = []
    for k, c in enumerate((None, cam)):
        video = tmp_path / f"cam{k}.mp4"
        render_video(rig, ypr, fps, video, camera=c)
        m = load_manifest(make_manifest([{"participant_id": "p", "session": f"s{k}", "video": str(video)}]))
        r = extract_video(m.entries[0], tmp_path / f"out{k}", model, ExtractConfig(), progress=False)
        x = read_extraction(Path(r.output), skip=("landmarks", "blendshapes"))
        spec = DEFAULT_FEATURE_SETS["head_pose"]
        sel = np.ones(len(x.time_s), bool)
        vals, cols = base_values(spec.source, transform=x.transform, fit=sel)
        feats.append(video_features(vals, cols, x.time_s, sel, sel, spec))
    a, b = feats
    common = np.intersect1d(a.frames, b.frames)
    assert len(common) >= 0.9 * n
    xa = a.x[np.searchsorted(a.frames, common), :3]
    xb = b.x[np.searchsorted(b.frames, common), :3]
    err = np.degrees(np.abs(xa - xb))
    spread = np.degrees(xa.std(axis=0))
    print(f"median |diff| {np.median(err, axis=0).round(2)} deg; spread {spread.round(2)} deg")
    assert (np.median(err, axis=0) < 0.25 * spread + 0.5).all()
    for k in range(3):
        assert stats.ks_2samp(xa[:, k], xb[:, k]).pvalue > 0.05
    # and the Euler angles do change: what the camera move does without relative rotations
    raw_a = read_extraction(Path(tmp_path / "out0").rglob("extraction.h5").__next__()).head_pose
    raw_b = read_extraction(Path(tmp_path / "out1").rglob("extraction.h5").__next__()).head_pose
    assert np.abs(np.nanmedian(raw_a - raw_b, axis=0)).max() > 2.0


def test_near_neighbours_copy_whole_dyads_and_partners_keep_what_they_share():
    """Copies replaced single participants after the dyads were drawn: a copied person no longer shared their
    listed partner's parameters, and could copy their own partner. Whole dyads now copy whole earlier dyads, their
    members perturbed by the same factors."""
    from dis_core.phantom.render import PhantomConfig, _get, share_within_dyads

    shared = ("yaw.f_slow", "pitch.f_slow", "nod_rate", "nod_freq")
    dyn = cohort_dynamics(12, np.random.default_rng(4), 2, shared, rich=True)
    near, src = near_neighbours(dyn, 3, np.random.default_rng(1), dyad_size=2)
    assert src[:8] == [-1] * 8 and all(s >= 0 for s in src[8:])  # ceil(3 / 2) = 2 whole dyads: ph09-ph12
    for i in (8, 10):
        assert src[i] % 2 == 0 and src[i + 1] == src[i] + 1 and src[i] < 8  # member m copies member m of one dyad
    # perturbed alike (member by member before, so partners sharing every parameter no longer did)
    assert all(_get(near[9], k) == pytest.approx(_get(near[8], k)) for k in shared)
    assert near[9] != dyn[src[9]] and near[8] != dyn[src[8]]
    kept = share_within_dyads(near, 2, shared)  # what make_cohort applies next
    for i in range(1, 12, 2):
        assert all(_get(kept[i], k) == _get(kept[i - 1], k) for k in shared)
        assert kept[i - 1] == near[i - 1] and (src[i] >= 0 or kept[i] == near[i])  # drawn partners unchanged
    assert near_neighbours(dyn, 50, np.random.default_rng(1), dyad_size=2)[1][:6] == [-1] * 6  # at most half
    for n, size, most in ((2, 2, 0), (6, 2, 2), (5, 2, 2), (12, 2, 6), (9, 3, 3), (7, 1, 3)):
        assert PhantomConfig(participants=n, dyad_size=size).most_near_neighbours == most
        with pytest.raises(ValueError, match="phantom near_neighbours must be from 0 to"):
            PhantomConfig(participants=n, dyad_size=size, near_neighbours=most + 1)
