"""Flow benchmarks (print figures; not tests). Run: .venv/bin/python bench/flows.py [--quick]

1. Training time per participant and held-out identification on one phantom cohort, for DIS's
   head-pose and landmark feature sets against the research configuration (956-D raw landmarks,
   8 MAF layers of 256 hidden units, 800 full-batch epochs). The research run is timed on a number
   of epochs and its full time extrapolated; its identification is measured after those epochs.
2. Scoring time for N = 25, 50, 100 synthetic participants with 2,000 held-out frames each:
   time / N^2 and peak memory, each N in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def phantom_run(root: Path, swap: bool = False) -> Path:
    """A 6 x 2 x 20 s phantom cohort at 15 fps, extracted (cached between benchmark runs: the render resumes and
    the pipeline's extraction and cohort step redo only what is not current; a finished cohort record was reused
    whatever cohort, feature or extraction code, face model or MediaPipe had made it)."""
    from dis_core.io.assets import fetch_samples, resolve_model
    from dis_core.manifest import load_manifest
    from dis_core.phantom.render import PhantomConfig, make_cohort
    from jobs.local import run_pipeline

    out = root / "run"
    model = resolve_model()
    cfg = PhantomConfig(participants=6, sessions=2, duration_s=20.0, fps=15.0, seed=0, swap_faces=swap)
    m = load_manifest(make_cohort(root / "videos", cfg, fetch_samples(log=lambda *_: None), model.path))
    run_pipeline(m, out, model, [], stages=["extract", "cohort"], log=lambda *_: None)
    return out


def raw_landmarks(cohort, pid: str, part: str):
    """The research scripts' input: raw x, y of the 478 landmarks (956 columns), no alignment."""
    from dis_core.extract.h5store import read_extraction

    rows = []
    for e in cohort.videos_of(pid):
        x = read_extraction(cohort.layout.extraction(e.unit_id), skip=("blendshapes", "transform"))
        sp = cohort.splits[e.unit_id]
        sel = (sp.train if part == "train" else sp.test) & x.detected
        if not sel.any():
            continue
        rows.append(x.landmarks[sel][:, :, :2].reshape(int(sel.sum()), -1).astype(np.float64))
    return np.concatenate(rows), [f"{a}_{i}" for i in range(478) for a in "xy"]


def identify(models, data) -> dict:
    """Top-1 of the models on every participant's held-out rows, with its interval over participants (Wilson- and
    jackknife-held, as the report's) and chance 1/N."""
    from dis_core.score.scoring import headline_intervals, identification, score_matrix

    s = score_matrix([[m.log_prob(x, c) for x, c in data] for m in models])
    h = headline_intervals(s)
    return {"top1": identification(s)["top1"], "top1_lo": h["top1_lo"], "top1_hi": h["top1_hi"],
            "chance": h["chance_top1"]}


def top1_text(t: dict) -> str:
    return f"top-1 {t['top1']:.2f} [{t['top1_lo']:.2f}, {t['top1_hi']:.2f}] (chance {t['chance']:.2f})"


def code_key() -> str:
    """The phantom cache's key: the renderer's and the extraction's source (a cohort rendered or extracted by
    other code is made again, not reused)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted([*(ROOT / "dis_core" / "phantom").glob("*.py"), *(ROOT / "dis_core" / "extract").glob("*.py")]):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def training_bench(run: Path, research_epochs: int) -> dict:
    import dataclasses

    from dis_core.cohort.stage import load_cohort, participant_features
    from dis_core.features.build import DEFAULT_FEATURE_SETS
    from dis_core.model.flows import FlowConfig, fit_gaussian, train_flow
    from dis_core.model.config import DEFAULT_FLOWS

    c = load_cohort(run)
    out = {}
    for fs in ("head_pose", "landmarks"):
        spec = DEFAULT_FEATURE_SETS[fs]
        models, gaussians, data, secs = [], [], [], []
        for p in c.participants:
            tr = participant_features(c, p, spec, "train")
            t0 = time.perf_counter()
            models.append(train_flow(tr.x, tr.columns, DEFAULT_FLOWS[fs]).density)
            secs.append(time.perf_counter() - t0)
            gaussians.append(fit_gaussian(tr.x, tr.columns, DEFAULT_FLOWS[fs].min_std))  # the baseline, same rows
            te = participant_features(c, p, spec, "test")
            data.append((te.x, te.columns))
        out[fs] = {"seconds_per_participant": float(np.mean(secs)), **identify(models, data),
                   "gaussian": identify(gaussians, data),
                   "train_frames": int(np.mean([len(participant_features(c, p, spec, "train").x)
                                                for p in c.participants]))}
    research = FlowConfig(layers=8, hidden=256, blocks_per_layer=2, batch_size=10**9, max_epochs=research_epochs,
                          patience=10**9, val_fraction=0.05, threads=2, lr=1e-4, init="random")  # as the scripts had it
    few = max(1, research_epochs // 4)
    models, data, secs = [], [], []
    train_flow(*raw_landmarks(c, c.participants[0], "train"), dataclasses.replace(research, max_epochs=1))  # warm-up
    for p in c.participants:
        x, cols = raw_landmarks(c, p, "train")
        t0 = time.perf_counter()
        train_flow(x, cols, dataclasses.replace(research, max_epochs=few))
        t1 = time.perf_counter()
        models.append(train_flow(x, cols, research).density)
        # the slope between two epoch counts: the set-up (building the flow, the first batch) is paid once
        secs.append(((time.perf_counter() - t1) - (t1 - t0)) / max(research_epochs - few, 1))
        data.append(raw_landmarks(c, p, "test"))
    per_epoch = float(np.median(secs))  # the median participant: one noisy pair of runs moves it least
    out["research"] = {"seconds_per_epoch": per_epoch, "seconds_per_participant_800": per_epoch * 800,
                       **{f"{k}_after_epochs": v for k, v in identify(models, data).items()},
                       "epochs_run": research_epochs, "config": dataclasses.asdict(research)}
    return out


SCORING_CHILD = """
import json, sys, time
import numpy as np, torch
sys.path.insert(0, {root!r})
from dis_core.model.flows import Density, FlowConfig, build_flow
from dis_core.score.scoring import score_all, score_matrix
torch.set_num_threads(1)
n, frames, dim = {n}, 2000, 6
rng = np.random.default_rng(0)
cfg = FlowConfig(layers=2, hidden=16)
cols = [f"c{{i}}" for i in range(dim)]
models = [Density("flow", cols, np.zeros(dim), np.ones(dim), flow=build_flow(dim, cfg).eval(), flow_config=cfg)
          for _ in range(n)]
data = [rng.normal(size=(frames, dim)) for _ in range(n)]
t0 = time.perf_counter()
s = score_matrix(score_all([lambda x, m=m: m.log_prob(x, cols) for m in models], data))
dt = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forking parent
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({{"n": n, "seconds": dt, "per_pair_ms": 1000 * dt / n ** 2, "peak_rss_mb": hwm / 1024}}))
"""


def scoring_bench(ns) -> list[dict]:
    out = []
    for n in ns:
        r = subprocess.run([sys.executable, "-c", SCORING_CHILD.format(root=str(ROOT), n=n)], capture_output=True,
                           text=True, check=True)
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer research epochs and N up to 50")
    ap.add_argument("--research-epochs", type=int, default=None,
                    help="epochs of the research configuration to run (default 20; 800 is the full run, ~15 min)")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "dis" / "bench-phantom"))
    ap.add_argument("--scoring-only", action="store_true", help="only the scoring benchmark")
    ap.add_argument("--swap-faces", action="store_true",
                    help="a cohort whose second sessions show another participant's face")
    a = ap.parse_args()
    if a.scoring_only:
        for s in scoring_bench((25, 50, 100)):
            print(f"  N={s['n']:4d}: {s['seconds']:.1f} s, {s['per_pair_ms']:.2f} ms per (model, data) pair; "
                  f"peak RSS {s['peak_rss_mb']:.0f} MB")
        return
    run = phantom_run(Path(a.cache) / f"{'swapped' if a.swap_faces else 'same'}-{code_key()}", a.swap_faces)
    tb = training_bench(run, research_epochs=a.research_epochs or (5 if a.quick else 20))
    print("training per participant, phantom cohort 6 x 2 sessions x 20 s at 15 fps (held-out = second session"
          f"{', which shows another face' if a.swap_faces else ''}):")
    for fs in ("head_pose", "landmarks"):
        t = tb[fs]
        print(f"  DIS {fs:10s}: {t['seconds_per_participant']:.2f} s per participant ({t['train_frames']} training "
              f"frames), {top1_text(t)}; its Gaussian on the same rows {top1_text(t['gaussian'])}")
    r = tb["research"]
    print(f"  research config (956-D raw landmarks, 8x256 MAF, full batch): {r['seconds_per_epoch']:.2f} s per epoch "
          f"(the slope between {max(1, r['epochs_run'] // 4)} and {r['epochs_run']} epochs) -> "
          f"{r['seconds_per_participant_800']:.0f} s per participant for 800 epochs; after {r['epochs_run']} epochs "
          + top1_text({k.removesuffix('_after_epochs'): v for k, v in r.items() if k.endswith('_after_epochs')}))
    for fs in ("head_pose", "landmarks"):
        print(f"  speed-up of DIS {fs} over the research configuration: "
              f"{r['seconds_per_participant_800'] / tb[fs]['seconds_per_participant']:.0f}x (target >= 30x)")
    sb = scoring_bench((25, 50) if a.quick else (25, 50, 100))
    print("scoring, synthetic participants x 2,000 held-out frames, 6-D head-pose flows, one thread:")
    for s in sb:
        print(f"  N={s['n']:4d}: {s['seconds']:.1f} s, {s['per_pair_ms']:.2f} ms per (model, data) pair = time/N^2; "
              f"peak RSS {s['peak_rss_mb']:.0f} MB")
    print(json.dumps({"training": tb, "scoring": sb}, default=str))


if __name__ == "__main__":
    main()
