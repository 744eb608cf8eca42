"""The report stage's configuration (light to import: part of every run plan)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """What to write beyond the workbook and figures."""

    norm_workbooks: bool = False  # per-pair per-frame norms, as the research workflow had
