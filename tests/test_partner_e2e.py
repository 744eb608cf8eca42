"""Partners who share their head dynamics are found end to end, through rendered videos: `dis phantom
--partner-share` renders the cohort, `dis run --feature-sets head_pose` extracts, trains, scores and
reports, and the workbook's dyads sheet is read back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dis(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GLOG_minloglevel": "2"}
    r = subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"dis {' '.join(args)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def partner_run(root: Path, model_path: Path, share: float, dyads: int = 8, seed: int = 5,
                duration: float = 12.0, fps: float = 12.0) -> pd.DataFrame:
    """Render 2 x ``dyads`` phantom participants (2 sessions each) whose partners share ``share`` of their
    dynamics, run DIS on head pose, and return the workbook's dyads sheet."""
    _dis("phantom", "--out", str(root / "videos"), "--participants", str(2 * dyads), "--sessions", "2",
         "--duration", str(duration), "--fps", str(fps), "--seed", str(seed), "--partner-share", str(share),
         "--model", str(model_path))
    _dis("run", "--manifest", str(root / "videos" / "manifest.csv"), "--out", str(root / "run"),
         "--feature-sets", "head_pose", "--model", str(model_path))
    return pd.read_excel(root / "run" / "report" / "dis_report.xlsx", sheet_name="dyads")


@pytest.mark.slow
def test_strongly_sharing_partners_are_detected_through_videos(tmp_path, model, samples):
    dy = partner_run(tmp_path, Path(model.path), share=0.9)
    print(dy.to_string())
    assert set(dy["feature_set"]) == {"head_pose"} and set(dy["method"]) == {"flow", "gaussian"}
    assert (dy["dyads"] == 8).all()
    assert (dy["observed"] > 0).all()
    # both methods (the README reports p 0.0005 and effect sizes 3.9 and 3.7), not the better one alone
    assert (dy["p"] < 0.01).all() and (dy["effect_size"] > 2).all(), dy[["method", "observed", "p", "effect_size"]]
