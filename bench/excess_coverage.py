"""Coverage of the partner and synchrony tests' excess intervals (observed - chance) on simulated cohorts with a
known excess: the interval DIS reports (over couples, of values that carry chance's uncertainty:
dis_core.score.stats.excess_values) beside the observed mean's interval shifted by a fixed chance (before session
52), and for the partner test the observed mean's own interval. Each scenario: ``--cohorts`` cohorts, coverage with
a Wilson 95% interval, in one run.

Partner test: a symmetric similarity of pair-level noise N(0, 1) plus the two people's levels N(0, sd^2), partners
+0.5 (the true excess). Synchrony: 0.3 + pair noise N(0, 0.1^2) + the mean of the two people's levels N(0, sd^2),
couples +0.05. Partners share their levels, or not ("pseudo only": a person's level shows only with strangers);
a couple's own noise may be smaller than a pseudo-couple's. Strata of 2, 3 or all couples (a manifest's grouping).

    .venv/bin/python bench/excess_coverage.py [--cohorts 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from dis_core.score import stats as st  # noqa: E402
from dis_core.score.synchrony import synchrony_test  # noqa: E402

# (test, couples, couples per stratum (0: one stratum), people's level sd, partners share levels, couples' noise sd
# as a share of pseudo-couples')
SCENARIOS = (
    ("partner", 12, 0, 0.0, True, 1.0), ("partner", 12, 0, 1.0, True, 1.0), ("partner", 12, 0, 1.0, False, 1.0),
    ("partner", 12, 2, 0.0, True, 1.0), ("partner", 30, 0, 0.0, True, 1.0),
    ("synchrony", 12, 0, 0.0, True, 1.0), ("synchrony", 12, 0, 0.1, True, 1.0), ("synchrony", 30, 0, 0.1, True, 1.0),
    ("synchrony", 12, 3, 0.0, True, 1.0), ("synchrony", 12, 3, 0.3, False, 1.0), ("synchrony", 24, 3, 0.3, False, 1.0),
    ("synchrony", 12, 2, 0.0, True, 1.0), ("synchrony", 12, 2, 0.0, True, 0.2))


def one(test: str, couples: int, per: int, person_sd: float, shared: bool, own_sd: float,
        rng: np.random.Generator, seed: int) -> tuple[bool, bool, bool]:
    """(covered by the reported interval, by the fixed-chance one, by the partner test's observed interval) for one
    simulated cohort (the last False for synchrony, which has none)."""
    n = 2 * couples
    pairs = np.arange(n).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    groups = np.repeat(np.arange(couples // per), 2 * per) if per else None
    e = rng.standard_normal((n, n))
    e = (e + e.T) / np.sqrt(2)
    u = person_sd * rng.standard_normal(n)
    levels = (u[:, None] + u[None, :]) / (1 if test == "partner" else 2)
    truth, base, sd = (0.5, 0.0, 1.0) if test == "partner" else (0.05, 0.3, 0.1)
    m = base + sd * e + levels
    m[a, b] = m[b, a] = base + truth + own_sd * sd * e[a, b] + (levels[a, b] if shared else 0.0)
    np.fill_diagonal(m, np.nan)
    if test == "partner":
        r = st.dyad_permutation_test(m, pairs, groups, n_perm=200, n_boot=1000, seed=seed)
        obs = r["ci_lo"] <= r["observed"] - r["excess"] + truth <= r["ci_hi"]  # the observed mean's truth
        lo, hi = st.unit_mean_interval(r["per_dyad"], np.random.default_rng(seed), 1000)
    else:
        r = synchrony_test(m, pairs, groups, n_perm=200, n_boot=1000, seed=seed)
        obs, (lo, hi) = False, st.unit_mean_interval(r["per_dyad"], np.random.default_rng(seed), 1000)
    return (r["excess_ci_lo"] <= truth <= r["excess_ci_hi"], lo - r["chance"] <= truth <= hi - r["chance"], obs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohorts", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(f"coverage of the true excess by 95% intervals, {a.cohorts} cohorts per scenario (Wilson 95% interval)")
    print(f"{'test':10s} {'couples':>7s} {'stratum':>7s} {'level sd':>8s} {'levels':>11s} {'own sd':>6s}   "
          f"{'reported':>22s}   {'fixed chance':>22s}   {'observed (partner)':>22s}")
    for k, (test, couples, per, sd, shared, own) in enumerate(SCENARIOS):
        rng = np.random.default_rng([a.seed, k])
        hits = np.array([one(test, couples, per, sd, shared, own, rng, c) for c in range(a.cohorts)])
        cells = []
        for j, h in enumerate(hits.sum(axis=0)):
            lo, hi = st.wilson_interval(h / a.cohorts, a.cohorts)
            cells.append("" if j == 2 and test != "partner" else f"{h / a.cohorts:.3f} [{lo:.3f}, {hi:.3f}]")
        who = "shared" if shared else "pseudo only"
        print(f"{test:10s} {couples:7d} {per or 'all':>7} {sd:8.2f} {who:>11s} {own:6.1f}   {cells[0]:>22s}   "
              f"{cells[1]:>22s}   {cells[2]:>22s}")
    from dis_core.io.provenance import script_provenance, version_text

    print(f"{time.perf_counter() - t0:.0f} s; made by {version_text(script_provenance(vars(a)))}, seed {a.seed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
