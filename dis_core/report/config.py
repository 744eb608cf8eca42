"""The report stage's configuration (light to import: part of every run plan)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """What to write beyond the workbook and figures."""

    # per-pair per-row norms, as the research workflow had (window rows: the frame is the window's centre)
    norm_workbooks: bool = False
    # frames of the videos with their landmarks in the HTML page's QC table: pictures of faces, so a page to
    # share outside the study is made without them (docs/data-protection.md)
    face_images: bool = True
    # identification from excerpts of these many seconds of each held-out video (dis_core.score.excerpts):
    # how much video recognises a person. Each length's 1,000 draws t-norm N models x (excerpts of N people):
    # 6 s per method for 8 s excerpts of 60 s sessions at N = 150 (2.8 s at 100), growing as N^2 and with the
    # draws the run's Holm family needs (the whole section: 81 s at N = 100 with four feature sets and 1,919
    # draws), so cohorts above
    # excerpt_max_people skip it and say so
    excerpts_s: tuple[float, ...] = (8.0, 16.0, 30.0)
    excerpt_max_people: int = 150
