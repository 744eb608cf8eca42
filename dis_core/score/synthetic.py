"""Synthetic cohorts for scale tests and bench/scale.py: cheap features (a few Gaussian dimensions per
participant), real model files (a Gaussian baseline fitted on training rows and an nflows MAF of the
production size), saved on disk and read back by :class:`ArraySource` exactly as a block task would.

The flows are not trained (their initialisation depends on the participant's seed): what is measured
with them is the cost and the memory of scoring, not identification accuracy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dis_core.io.atomic import write_text_atomic
from dis_core.score.blocks import METHODS, Participant

COHORT = "cohort.json"
COLUMNS = ["a", "b", "c"]


def make_synthetic(folder: Path, n: int, frames: int, train_frames: int = 200, seed: int = 0,
                   dim: int = 3) -> Path:
    """Write ``n`` participants with ``frames`` held-out rows each into ``folder``; returns it.

    Participant k's rows are N(mu_k, S_k) with mu_k ~ N(0, I) and a random S_k; members of dyad
    ``d{k // 2}`` share half of their mean."""
    import torch

    from dis_core.model.config import FlowConfig
    from dis_core.model.flows import Density, build_flow, fit_gaussian, fit_scaler, save_density

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cols = COLUMNS[:dim] if dim <= len(COLUMNS) else [f"f{i}" for i in range(dim)]
    rng = np.random.default_rng(seed)
    pids = [f"p{k:05d}" for k in range(n)]
    dyads = [f"d{k // 2}" for k in range(n)]
    shared = {d: rng.normal(0, 1, dim) for d in dict.fromkeys(dyads)}
    torch.set_num_threads(1)
    for k, pid in enumerate(pids):
        mu = 0.5 * shared[dyads[k]] + 0.5 * rng.normal(0, 1, dim)
        a = rng.normal(0, 0.4, (dim, dim)) + np.eye(dim) * 0.6
        cov = a @ a.T
        train = rng.multivariate_normal(mu, cov, size=train_frames)
        test = rng.multivariate_normal(mu, cov, size=frames)
        d = folder / pid
        d.mkdir(exist_ok=True)
        save_density(d / "baseline.pt", fit_gaussian(train, cols))
        cfg = FlowConfig(layers=2, hidden=16, seed=seed * 1_000_003 + k, init="random")  # untrained, not trivial
        mean, std, _ = fit_scaler(train, cfg.min_std)
        save_density(d / "model.pt", Density("flow", cols, mean, std, flow=build_flow(dim, cfg), flow_config=cfg))
        np.savez(d / "test.npz", x=test, frame=np.arange(train_frames, train_frames + frames))
    doc = {"participants": pids, "dyads": dict(zip(pids, dyads)), "columns": cols, "seed": seed,
           "frames": frames}
    write_text_atomic(folder / COHORT, json.dumps(doc))
    return folder


class ArraySource:
    """A synthetic cohort on disk as a block's :class:`~dis_core.score.blocks.Source`."""

    def __init__(self, folder: Path, feature_set: str = "synthetic", min_test_frames: int = 1):
        import torch

        torch.set_num_threads(1)  # one core per block task, and the same float operations everywhere
        self.folder = Path(folder)
        raw = (self.folder / COHORT).read_bytes()
        self.doc = json.loads(raw)
        self.feature_set = feature_set
        self.methods = METHODS
        self.cohort_sha256 = hashlib.sha256(raw).hexdigest()
        self.min_test_frames = min_test_frames

    @property
    def participants(self) -> list[str]:
        return list(self.doc["participants"])

    def dyad(self, pid: str) -> str:
        return self.doc["dyads"].get(pid, "")

    def model_files_key(self, pid: str) -> str:
        d = self.folder / pid
        files = [d / "model.pt", d / "baseline.pt"]
        return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16] if all(
            f.is_file() for f in files) else ""

    def participant(self, pid: str) -> Participant | str:
        from dis_core.model.flows import load_density

        d = self.folder / pid
        if not (d / "model.pt").is_file():
            return "no trained model"
        with np.load(d / "test.npz") as z:
            x, frame = z["x"], z["frame"]
        if len(x) < self.min_test_frames:
            return f"only {len(x)} held-out frames (need {self.min_test_frames})"
        cols = self.doc["columns"]
        dens = {"flow": load_density(d / "model.pt")[0], "gaussian": load_density(d / "baseline.pt")[0]}
        key = hashlib.sha256((d / "model.pt").read_bytes() + (d / "baseline.pt").read_bytes()).hexdigest()[:16]
        return Participant({m: (lambda x, m=m: dens[m].log_prob(x, cols)) for m in METHODS}, key, x,
                           {f"{pid}_test": frame}, {"participant_id": pid}, ({"train": [], "val": []}, -1))


def run_block(folder: Path, score_dir: Path, r: int, c: int, cfg=None, force: bool = False):
    """One block task over a synthetic cohort, its outcome recorded in the block's status.json (as
    jobs/graph.py:run_unit does for a run folder)."""
    from dis_core.layout import write_status
    from dis_core.layout import block_dir
    from dis_core.score.blocks import score_block
    from dis_core.score.config import ScoreConfig, block_size

    cfg = cfg or ScoreConfig()
    src = ArraySource(folder)
    pids = src.participants
    res = score_block(src, pids, block_size(len(pids), cfg), r, c, block_dir(score_dir, r, c), cfg, {"synthetic": str(folder)},
                      force)
    write_status(block_dir(score_dir, r, c), res)
    return res
