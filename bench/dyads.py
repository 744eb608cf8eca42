"""Power curve of the dyad permutation test (dis_core.score.stats.dyad_permutation_test) on simulated cohorts.

Simulation (dis_core.score.stats.simulate_dyad_scores): person vector x = sqrt(1-a) own + sqrt(a) shared with
partner (standard normal, dim 8); held-out data y_j = x_j + 0.7 N(0, I); S[i, j] = -||x_i - y_j||^2 +
N(0, 1). For each sharing strength a: n cohorts of 16 couples, rejection rate at alpha with a Wilson 95%
interval; prints a table and saves a figure.

    .venv/bin/python bench/dyads.py --out runs/bench/dyads_power.png
"""

from __future__ import annotations

import argparse
import dataclasses
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


@dataclasses.dataclass(frozen=True)
class PowerConfig:
    """What the power curve was computed with (stamped into the figure's provenance)."""

    couples: int
    cohorts: int
    n_perm: int
    alpha: float
    seed: int
    strengths: tuple[float, ...]


def crossing(x: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """First x where the piecewise-linear curve y(x) reaches ``level`` (None if it never does)."""
    k = np.flatnonzero(y >= level)
    if not len(k):
        return None
    i = int(k[0])
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (level - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/dyads_power.png", help="figure path")
    ap.add_argument("--strengths", default="0,0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.7", help="comma-separated sharing a")
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
    c = crossing(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), 0.8)
    print(f"power >= 0.8 first at sharing {reach[0] if reach else 'none tested'} (linear interpolation: "
          f"{'n/a' if c is None else f'{c:.3f}'}); {time.perf_counter() - t0:.1f} s")

    from dis_core.io.provenance import provenance
    from dis_core.report.figures import plt, save_png

    x = np.array([r[0] for r in rows])
    pw = np.array([r[1] for r in rows])
    lo = np.array([r[2] for r in rows])
    hi = np.array([r[3] for r in rows])
    cross = crossing(x, pw, 0.8)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.errorbar(x, pw, yerr=np.clip([pw - lo, hi - pw], 0, None), fmt="o-", capsize=4, color="C0",
                label=f"rejection rate at alpha {a.alpha} (Wilson 95% interval, {a.cohorts} cohorts)")
    ax.axhline(0.8, color="C3", ls=":", lw=1.5, label="power 0.8")
    ax.axhline(a.alpha, color="grey", ls="--", lw=1, label=f"alpha = {a.alpha} (the rate expected at sharing 0)")
    if cross is not None:
        ax.axvline(cross, color="C3", ls=":", lw=1)
        ax.annotate(f"power 0.8 at sharing ~{cross:.2f}", (cross, 0.8), xytext=(8, -28), textcoords="offset points",
                    color="C3")
    ax.set_xlabel("sharing strength a (fraction of each partner's person vector shared with the partner, 0-1)")
    ax.set_ylabel("power: fraction of cohorts with p <= alpha")
    ax.set_xlim(min(x) - 0.02, max(x) + 0.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"Partner-vs-stranger permutation test: power at {a.couples} couples\n"
                 f"(score-level simulation, {a.n_perm} re-pairings per test)")
    ax.legend(loc="center right", fontsize=9)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, out, provenance(PowerConfig(a.couples, a.cohorts, a.n_perm, a.alpha, a.seed, tuple(strengths)),
                                  bench="bench/dyads.py"))
    print(f"figure: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
