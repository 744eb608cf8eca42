"""Coverage of the partner and synchrony tests' excess intervals (observed - chance) on simulated cohorts with a
known excess: the interval DIS reports (over couples, of values that carry chance's uncertainty:
dis_core.score.stats.excess_values) beside the observed mean's interval shifted by a fixed chance (before session
52). Each scenario: ``--cohorts`` cohorts, coverage with a Wilson 95% interval, in one run.

Partner test: a symmetric similarity of pair-level noise N(0, 1) plus the two people's levels N(0, sd^2), partners
+0.5 (the true excess). Synchrony:
0.3 + pair noise N(0, 0.1^2) + the mean of the two people's levels N(0, sd^2), couples +0.05. Strata of 2, 3 or
all couples (grouping columns of a manifest).

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

SCENARIOS = (  # (test, couples, couples per stratum (0: one stratum), person-level sd)
    ("partner", 12, 0, 0.0), ("partner", 12, 0, 1.0), ("partner", 12, 2, 0.0), ("partner", 30, 0, 0.0),
    ("synchrony", 12, 0, 0.0), ("synchrony", 12, 0, 0.1), ("synchrony", 12, 2, 0.0), ("synchrony", 12, 3, 0.0),
    ("synchrony", 30, 0, 0.1))


def one(test: str, couples: int, per: int, person_sd: float, rng: np.random.Generator, seed: int):
    """(covered by the reported interval, covered by the fixed-chance one) for one simulated cohort."""
    n = 2 * couples
    pairs = np.arange(n).reshape(-1, 2)
    groups = np.repeat(np.arange(couples // per), 2 * per) if per else None
    e = rng.standard_normal((n, n))
    e = (e + e.T) / np.sqrt(2)
    u = person_sd * rng.standard_normal(n)
    if test == "partner":
        truth, m = 0.5, e + u[:, None] + u[None, :]
    else:
        truth, m = 0.05, 0.3 + 0.1 * e + (u[:, None] + u[None, :]) / 2
    m[pairs[:, 0], pairs[:, 1]] += truth
    m[pairs[:, 1], pairs[:, 0]] += truth
    np.fill_diagonal(m, np.nan)
    if test == "partner":
        r = st.dyad_permutation_test(m, pairs, groups, n_perm=200, n_boot=1000, seed=seed)
        lo, hi = r["ci_lo"], r["ci_hi"]
    else:
        r = synchrony_test(m, pairs, groups, n_perm=200, n_boot=1000, seed=seed)
        lo, hi = st.unit_mean_interval(r["per_dyad"], np.random.default_rng(seed), 1000)
    return (r["excess_ci_lo"] <= truth <= r["excess_ci_hi"],
            lo - r["chance"] <= truth <= hi - r["chance"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohorts", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(f"coverage of the true excess by 95% intervals, {a.cohorts} cohorts per scenario (Wilson 95% interval)")
    print(f"{'test':10s} {'couples':>7s} {'stratum':>8s} {'person sd':>9s}   {'reported':>22s}   {'fixed chance':>22s}")
    for test, couples, per, sd in SCENARIOS:
        rng = np.random.default_rng([a.seed, couples, per, int(sd * 100), test == "partner"])
        hits = np.array([one(test, couples, per, sd, rng, c) for c in range(a.cohorts)])
        cells = []
        for k in hits.sum(axis=0):
            lo, hi = st.wilson_interval(k / a.cohorts, a.cohorts)
            cells.append(f"{k / a.cohorts:.3f} [{lo:.3f}, {hi:.3f}]")
        print(f"{test:10s} {couples:7d} {per or 'all':>8} {sd:9.2f}   {cells[0]:>22s}   {cells[1]:>22s}")
    from dis_core.io.provenance import script_provenance, version_text

    print(f"{time.perf_counter() - t0:.0f} s; made by {version_text(script_provenance(vars(a)))}, seed {a.seed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
