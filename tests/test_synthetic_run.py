"""Cohort, training, scoring and report on synthetic extraction files (no video, no MediaPipe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dis_core.cohort.stage import load_cohort, participant_features, prepare_cohort
from dis_core.features.build import EXTRA_FEATURE_SETS
from dis_core.model.config import FlowConfig, TrainConfig
from dis_core.model.stage import train_unit
from dis_core.report.config import ReportConfig
from dis_core.report.stage import report_unit
from dis_core.score.config import ScoreConfig
from dis_core.score.stage import load_scores, score_block_unit
from tests.synthrun import make_run

TINY = FlowConfig(layers=1, hidden=8, max_epochs=3, device="cpu")


def _train_and_score(out: Path, cfg: TrainConfig) -> None:
    c = load_cohort(out)
    for p in c.participants:
        r = train_unit(out, p, cfg)
        assert r.status == "ok", r.message
    r = score_block_unit(out, cfg, 0, 0, c.participants, ScoreConfig(min_test_frames=1))
    assert r.status == "ok", r.message


@pytest.mark.slow
def test_norm_workbooks_of_window_rows_label_each_window_by_its_own_video_and_centre(tmp_path):
    """Window rows (head_spectrum): each pair's workbook has one row per scored window, labelled with
    the data participant's video and the window's centre frame (once labelled with the covered frames of
    the first participant: another person's video, and frames that were not the rows)."""
    out = tmp_path / "out"
    prepare_cohort(make_run(out, n=3, seconds=60), out)
    spec = EXTRA_FEATURE_SETS["head_spectrum"]
    cfg = TrainConfig(spec, TINY, min_train_frames=20)
    _train_and_score(out, cfg)
    r = report_unit(out, [spec.name], ReportConfig(norm_workbooks=True))
    assert r.status == "ok", r.message
    c = load_cohort(out)
    sc = load_scores(out, spec.name)
    for pj in c.participants:
        td = participant_features(c, pj, spec, "test")
        (uid, centres), = td.rows.items()
        assert uid == c.videos_of(pj)[0].unit_id and len(centres) == len(td.x) > 3
        assert len(td.frames[uid]) > 5 * len(centres)  # the covered frames are many more than the rows
        for pi in c.participants:
            wb = pd.read_excel(out / "report" / "norms" / spec.name / f"{pi}__{pj}.xlsx", sheet_name="norms")
            assert list(wb["unit_id"].unique()) == [uid]
            assert wb["frame"].tolist() == centres.tolist()
            np.testing.assert_allclose(wb["log_p"], sc.store.pair("flow", pi, pj)["log_p"])
        assert sc.test_data_frames[pj][uid].tolist() == centres.tolist()
