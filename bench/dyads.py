"""Power curve of the dyad permutation test (dis_core.stats.dyad_permutation_test) on simulated cohorts.

Simulation (dis_core.stats.simulate_dyad_scores): person vector x = sqrt(1-a) own + sqrt(a) shared with
partner (standard normal, dim 8); held-out data y_j = x_j + 0.7 N(0, I); S[i, j] = -||x_i - y_j||^2 +
N(0, 1). For each sharing strength a: n cohorts of 16 couples, rejection rate at alpha with a Wilson 95%
interval; prints a table and saves a figure.

    .venv/bin/python bench/dyads.py --out runs/bench/dyads_power.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from dis_core.score import stats as st


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n."""
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, c - h), min(1.0, c + h)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/dyads_power.png", help="figure path")
    ap.add_argument("--strengths", default="0,0.1,0.2,0.3,0.5,0.7", help="comma-separated sharing a")
    ap.add_argument("--couples", type=int, default=16)
    ap.add_argument("--cohorts", type=int, default=200)
    ap.add_argument("--n-perm", type=int, default=500)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    strengths = [float(x) for x in a.strengths.split(",")]
    rows = []
    t0 = time.perf_counter()
    print(f"{a.couples} couples, {a.cohorts} cohorts per strength, {a.n_perm} re-pairings, alpha {a.alpha}")
    print(f"{'sharing':>8} {'power':>7} {'wilson95_lo':>12} {'wilson95_hi':>12}")
    for sh in strengths:
        k = 0
        for c in range(a.cohorts):
            rng = np.random.default_rng([a.seed, c])  # same draws at every strength (common random numbers)
            s, pairs = st.simulate_dyad_scores(a.couples, sh, rng)
            r = st.dyad_permutation_test(st.pair_similarity(s), pairs, n_perm=a.n_perm, seed=c, n_boot=200)
            k += r["p"] <= a.alpha
        lo, hi = wilson(k, a.cohorts)
        rows.append((sh, k / a.cohorts, lo, hi))
        print(f"{sh:8.3g} {k / a.cohorts:7.3f} {lo:12.3f} {hi:12.3f}")
    reach = [sh for sh, pw, _, _ in rows if pw >= 0.8]
    print(f"power >= 0.8 first at sharing {reach[0] if reach else 'none tested'}; {time.perf_counter() - t0:.1f} s")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([r[0] for r in rows])
    pw = np.array([r[1] for r in rows])
    lo = np.array([r[2] for r in rows])
    hi = np.array([r[3] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, pw, "o-", label="rejection rate")
    ax.fill_between(x, lo, hi, alpha=0.25, label="Wilson 95% interval")
    ax.axhline(a.alpha, color="grey", ls="--", label=f"alpha = {a.alpha}")
    ax.axhline(0.8, color="grey", ls=":", label="power 0.8")
    ax.set_xlabel("sharing strength a (partner-shared share of variance)")
    ax.set_ylabel("rejection rate")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Dyad permutation test power: {a.couples} couples, {a.cohorts} cohorts / point")
    ax.legend(loc="lower right")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"figure: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
