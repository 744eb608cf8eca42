"""Scale of the report stage's two N^2 parts: the bootstrap statistics (every method's intervals, flow vs
each baseline, every pair of feature sets; 1,000 draws over participants each) and the pair table (N^2
rows per method and feature set), on synthetic score matrices of N participants, each N in its own
process (peak RSS = VmHWM of that process).

The statistics run twice in one run: through the generic bootstraps of dis_core.score.stats (a draw's
N x N copy, each metric alone: the code before this bench) on ``--old-draws`` draws, projected to 1,000
(the cost of a draw does not depend on which draw it is), and through the report's own path
(dis_core.score.scoring.headline_draws) on all 1,000; both on the same draws, and the figures of the
draws they share must be equal. Ratios, not absolute times, are what to read on a shared machine.

    nice -n 10 .venv/bin/python bench/report.py --sizes 100,300,1000 --out /tmp/dis-report
    nice -n 10 .venv/bin/python bench/report.py --whole 300 --code /tmp/old   # the whole stage, old code beside
    nice -n 10 .venv/bin/python bench/report.py --family 300   # 2-4 feature sets: the family's draws and cost

Measured 2026-12-03 after every interval (t-norm, raw and z-norm verification, top-k) came from the same
draws (N = 100 and 300 in one run on 2 cores; N = 1,000 in a second, nice 5, the cores shared with an
Apptainer image build and a phantom render, so its absolute seconds are inflated):

    bootstrap statistics: 2 feature sets x 2 methods: 4 x intervals, 2 x flow vs baseline, 2 x feature set vs feature set; 1,000 draws each
         N   report s  before s (proj.)   ratio  peak RSS MB  same draws
       100        5.4              53.7    10.0           99  True
       300       60.0             479.6     8.0          110  True
      1000     1510.0            7977.2     5.3          220  True

    pair table: 2 feature sets x 2 methods x N^2 rows, a sheet while it fits, else csv.gz
         N        rows               file  write s      MB  peak RSS MB
       100      40,000     pairs_100.xlsx      6.6     2.8          332
       300     360,000     pairs_300.xlsx     64.1    25.1          344
      1000   4,000,000  pairs_1000.csv.gz     97.2   117.3          484

(With t-norm intervals only, the same bench had measured 2.4 / 25.8 / 345.9 s against 34.0 / 361.9 /
4,937.9 s: with the raw and z-norm intervals the report's bootstrap time is 2.3x what it was at N = 300,
i.e. the two new intervals cost about 1.3x the t-norm one.)

``--family N`` (measured 2026-12-04, once bootstrap p became 2 (k + 1) / (B + 1) and a family of paired
comparisons got the draws Holm needs, stats.draws_for_family; synthetic matrices, 2 cores, nothing else
running): with four feature sets the 36 feature-set tests take 2,879 draws of the headline metrics only
(each a third of a full draw, which also holds the raw and z-norm verification), as much time again as
every interval and flow-vs-baseline comparison together:

    report statistics, N = 300, K feature sets x (flow, Gaussian)
      K  tests  draws  intervals + flow vs baseline s  feature-set family s
      2      6   1000                            32.1                   0.1   (the intervals' draws reused)
      3     18   1439                            48.4                  17.1
      4     36   2879                            37.4                  40.4
    (N = 100: 2.9 / 0.0, 4.4 / 2.5, 5.6 / 6.6 s)

``--whole 300 --code /tmp/old`` (the whole report stage of a synthetic run, 300 people x 20 s, head_pose
flow + Gaussian; /tmp/old a worktree of 77a38a3, before this bench):

    code           wall s  peak RSS MB  page MB  workbook MB
    this            436.0        14295     50.9         18.4   (the statistics and the page's 60 signatures done)
    old             528.1        14401    133.4         18.4
    this            285.4          627     26.6         18.4   (the figures bounded too: 4427c77, a second run)

The report of 300 people needed 14.3 GB (its heatmap was 25,700 pixels a side), against the report job's
8 GB; its page was 133 MB.

Before, the statistics of 1,000 people with two feature sets took about 82 minutes (projected from 20
draws; with the four default sets an estimated 4.5 hours: the report job's limit was 1 h), and the pair table was a list of 4 million dicts
for a sheet that holds 1,048,575 rows. The cost per draw grows as N^2 (one sort of the draw's distinct
cells): with the four default sets, about 12 minutes of statistics at N = 1,000 and 45 at N = 2,000 with
t-norm intervals only; with the raw and z-norm intervals too, about 27-50 minutes at N = 1,000 (from the
1,510 s above, uncontended and as measured on shared cores) and 1.8-3.4 h at N = 2,000: the report job's
limit is now 6 h.
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
sys.path.insert(0, str(ROOT / "bench"))

from scale import vm_hwm_kb  # noqa: E402

FEATURE_SETS, METHODS = ("fs_a", "fs_b"), ("flow", "gaussian")  # two feature sets x a flow and its Gaussian


def vm_hwm_mb() -> float:
    return vm_hwm_kb() / 1024


def matrices(n: int, seed: int = 0) -> dict[str, dict[str, "np.ndarray"]]:
    """Scores of a cohort where identity is partly visible: a shared part, a per-person genuine bump
    and method noise (a flow and its Gaussian alike; two feature sets that share half their signal)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    common = rng.normal(size=(n, n))
    out = {}
    for f, fs in enumerate(FEATURE_SETS):
        own = rng.normal(size=(n, n))
        out[fs] = {m: common + own + rng.normal(0, 0.5, (n, n)) + np.diag(rng.normal(2.5 + f, 1.0, n))
                   for m in METHODS}
    return out


def child_stats(n: int, old_draws: int) -> dict:
    """Every bootstrap of the report on N people: the report's path (all 1,000 draws) and the generic one."""
    import numpy as np

    from dis_core.score import stats as st
    from dis_core.score.scoring import (HEADLINE, SUPPLEMENTARY, compare_methods, feature_set_comparisons,
                                       headline_draws, headline_intervals)

    s = matrices(n)
    t0 = time.perf_counter()
    new = {}
    for fs in FEATURE_SETS:
        for m in METHODS:
            new[fs, m] = headline_intervals(s[fs][m])
        new[fs, "cmp"] = compare_methods(s[fs]["flow"], s[fs]["gaussian"])
    rows = feature_set_comparisons([(fs, [f"p{k}" for k in range(n)], s[fs]) for fs in FEATURE_SETS])
    t_new = time.perf_counter() - t0
    # the generic bootstraps on the first old_draws draws: the same bootstraps, fewer draws, projected
    t0 = time.perf_counter()
    dists = {}
    for fs in FEATURE_SETS:
        for m in METHODS:
            for name, fn in {**HEADLINE, **SUPPLEMENTARY}.items():  # every interval of the metrics sheet
                dists[fs, m, name] = st.bootstrap_participants(s[fs][m], fn, n_boot=old_draws).dist
        for name, fn in HEADLINE.items():
            st.paired_bootstrap(s[fs]["flow"], s[fs]["gaussian"], fn, n_boot=old_draws)
    for m in METHODS:  # one pair of feature sets, every method
        for name, fn in HEADLINE.items():
            st.paired_bootstrap(s[FEATURE_SETS[0]][m], s[FEATURE_SETS[1]][m], fn, n_boot=old_draws)
    t_old = (time.perf_counter() - t0) * 1000 / old_draws
    # top-1 is now each drawn person's credit among all N models (stats.bootstrap_columns), not its value on
    # S[idx][:, idx] (biased upward): it is checked against that, the others against the generic draws
    for fs in FEATURE_SETS:
        for m in METHODS:
            dists[fs, m, "top1"] = st.column_draws(st.topk_fractional(s[fs][m], 1)[0], old_draws, 0)
    same = all(np.allclose(d, headline_draws(s[fs][m], n_boot=old_draws)[name], rtol=0, atol=1e-12, equal_nan=True)
               for (fs, m, name), d in dists.items())
    return {"n": n, "new_s": t_new, "old_s_projected": t_old, "same": same, "rss_mb": vm_hwm_mb(),
            "comparisons": len(rows)}


def family_cost(n: int, k: int) -> dict:
    """The report's statistics on N people with K feature sets x (flow, Gaussian): every interval, each flow
    vs its Gaussian and every pair of feature sets, the last with the draws its family needs
    (stats.draws_for_family); seconds of each part."""
    import numpy as np

    from dis_core.score.scoring import compare_methods, feature_set_comparisons, headline_intervals

    rng = np.random.default_rng(k)
    common = rng.normal(size=(n, n))
    s = {f"fs{f}": {m: common + rng.normal(size=(n, n)) + np.diag(rng.normal(2.5 + f, 1.0, n)) for m in METHODS}
         for f in range(k)}
    t0 = time.perf_counter()
    for fs in s:
        for m in METHODS:
            headline_intervals(s[fs][m])
        compare_methods(s[fs]["flow"], s[fs]["gaussian"])
    t1 = time.perf_counter()
    rows = feature_set_comparisons([(fs, [f"p{j}" for j in range(n)], s[fs]) for fs in s])
    t2 = time.perf_counter()
    return {"n": n, "k": k, "tests": 3 * len(rows), "draws": rows[0]["draws"], "intervals_s": t1 - t0,
            "family_s": t2 - t1}


def child_pairs(n: int, folder: Path) -> dict:
    """The pair table of N people, 2 feature sets x 2 methods, written as the report writes it."""
    import types

    import numpy as np

    from dis_core.io.excel import SHEET_MAX_ROWS, write_rows_csv, write_workbook
    from dis_core.report.stage import pair_table
    from dis_core.score.scoring import ranks, znorm

    s = matrices(n)
    pids = [f"p{k:05d}" for k in range(n)]
    results = []
    for fs in FEATURE_SETS:
        ms = {m: types.SimpleNamespace(s=a, z=znorm(a), ranks=ranks(a), norm_mean=np.abs(a), norm_median=np.abs(a))
              for m, a in s[fs].items()}
        results.append(types.SimpleNamespace(feature_set=fs, participants=pids, dyads=[f"d{k // 2}" for k in range(n)],
                                             test_frames={p: 300 for p in pids}, methods=ms))
    rows = len(FEATURE_SETS) * len(METHODS) * n * n
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if rows <= SHEET_MAX_ROWS:
        path = folder / f"pairs_{n}.xlsx"
        write_workbook(path, {"pairs": pair_table(results, {})}, {"bench": "report"})
    else:
        path = folder / f"pairs_{n}.csv.gz"
        write_rows_csv(path, pair_table(results, {}))
    return {"n": n, "rows": rows, "file": path.name, "write_s": time.perf_counter() - t0,
            "mb": path.stat().st_size / 1e6, "rss_mb": vm_hwm_mb()}


WHOLE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from dis_core.report.stage import report_unit
from scale import vm_hwm_kb
out = Path(sys.argv[2])
t = time.perf_counter()
r = report_unit(out, ["head_pose"])
wall = time.perf_counter() - t
hwm = vm_hwm_kb()
rep = out / "report"
print(json.dumps({"status": r.status, "message": r.message, "wall_s": wall, "rss_mb": hwm / 1024,
                  "html_mb": (rep / "dis_report.html").stat().st_size / 1e6,
                  "xlsx_mb": (rep / "dis_report.xlsx").stat().st_size / 1e6}))
"""


def whole_run(n: int, root: Path) -> Path:
    """A run folder of N synthetic participants (tests/synthrun.py: 20 s one-session videos, within-session
    split) trained on head_pose with small flows and scored in blocks; made once and reused."""
    sys.path.insert(0, str(ROOT / "tests"))
    from synthrun import make_run

    from dis_core.cohort.stage import load_cohort, prepare_cohort
    from dis_core.features.build import FEATURE_SETS
    from dis_core.model.config import FlowConfig, TrainConfig
    from dis_core.model.stage import train_unit
    from dis_core.score.config import ScoreConfig, block_grid
    from dis_core.score.stage import score_block_unit

    out = root / f"whole{n}" / "out"
    done = out.parent / "scored"
    if done.is_file():
        return out
    prepare_cohort(make_run(out, n=n, seconds=20), out)
    c = load_cohort(out)
    cfg = TrainConfig(FEATURE_SETS["head_pose"], FlowConfig(layers=1, hidden=8, max_epochs=3, device="cpu"),
                      min_train_frames=20)
    for p in c.participants:
        assert train_unit(out, p, cfg).status == "ok"
    for r, col in block_grid(n, ScoreConfig()):
        res = score_block_unit(out, cfg, r, col, c.participants, ScoreConfig(min_test_frames=1))
        assert res.status == "ok", res.message
    done.write_text("ok\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,300,1000")
    ap.add_argument("--old-draws", type=int, default=20, help="draws of the generic bootstraps (projected to 1,000)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/dis-report"))
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--whole", type=int, default=0, help="also the whole report stage of a synthetic run of N people")
    ap.add_argument("--code", type=Path, help="with --whole: another checkout's report stage on the same run too")
    ap.add_argument("--family", type=int, default=0, help="only the statistics of 2-4 feature sets on N people")
    a = ap.parse_args()
    if a.family:
        print(f"report statistics, N = {a.family}, K feature sets x (flow, Gaussian)")
        print(f"{'K':>3} {'tests':>6} {'draws':>6} {'intervals + flow vs baseline s':>31} {'feature-set family s':>21}")
        for k in (2, 3, 4):
            x = family_cost(a.family, k)
            print(f"{k:>3} {x['tests']:>6} {x['draws']:>6} {x['intervals_s']:>31.1f} {x['family_s']:>21.1f}", flush=True)
        return
    if a.whole:
        t = time.perf_counter()
        out = whole_run(a.whole, a.out)
        print(f"(N={a.whole}: synthetic run scored in {time.perf_counter() - t:.0f} s)", flush=True)
        print(f"whole report stage, head_pose (flow + Gaussian), N = {a.whole}")
        print(f"{'code':<12} {'wall s':>8} {'peak RSS MB':>12} {'page MB':>8} {'workbook MB':>12}")
        for name, code in [("this", ROOT)] + ([(a.code.name, a.code)] if a.code else []):
            r = subprocess.run([sys.executable, "-c", WHOLE, str(code), str(out), str(ROOT / "bench")], capture_output=True, text=True,
                               cwd=code)
            if r.returncode:
                raise SystemExit(f"{code}: the report failed:\n{r.stderr[-2000:]}")
            x = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{name:<12} {x['wall_s']:>8.1f} {x['rss_mb']:>12.0f} {x['html_mb']:>8.1f} {x['xlsx_mb']:>12.1f}"
                  f"  {x['status']} {x['message']}", flush=True)
        return
    if a.child:
        kind, n = a.child.split(":")
        print(json.dumps(child_stats(int(n), a.old_draws) if kind == "stats" else child_pairs(int(n), a.out)))
        return

    def run(kind: str, n: int) -> dict:
        r = subprocess.run([sys.executable, __file__, "--child", f"{kind}:{n}", "--old-draws", str(a.old_draws),
                            "--out", str(a.out)], capture_output=True, text=True, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])

    print("bootstrap statistics: 2 feature sets x 2 methods: 4 x intervals, 2 x flow vs baseline, "
          "2 x feature set vs feature set; 1,000 draws each")
    print(f"{'N':>6} {'report s':>10} {'before s (proj.)':>17} {'ratio':>7} {'peak RSS MB':>12}  same draws")
    for n in [int(x) for x in a.sizes.split(",")]:
        r = run("stats", n)
        print(f"{n:>6} {r['new_s']:>10.1f} {r['old_s_projected']:>17.1f} {r['old_s_projected'] / r['new_s']:>7.1f} "
              f"{r['rss_mb']:>12.0f}  {r['same']}", flush=True)
        if not r["same"]:
            raise SystemExit(f"N={n}: the report's bootstrap draws differ from the generic bootstraps'")
    print("\npair table: 2 feature sets x 2 methods x N^2 rows, a sheet while it fits, else csv.gz")
    print(f"{'N':>6} {'rows':>11} {'file':>18} {'write s':>8} {'MB':>7} {'peak RSS MB':>12}")
    for n in [int(x) for x in a.sizes.split(",")]:
        r = run("pairs", n)
        print(f"{n:>6} {r['rows']:>11,} {r['file']:>18} {r['write_s']:>8.1f} {r['mb']:>7.1f} {r['rss_mb']:>12.0f}",
              flush=True)


if __name__ == "__main__":
    main()
