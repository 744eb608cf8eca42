"""The report stage's configuration (light to import: part of every run plan)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """What to write beyond the workbook and figures."""

    # per-pair per-row norms, as the research workflow had (window rows: the frame is the window's centre)
    norm_workbooks: bool = False
