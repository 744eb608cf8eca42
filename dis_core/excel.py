"""Excel workbooks, written atomically, each with a 'provenance' sheet saying what produced it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from openpyxl import Workbook

from .atomic import atomic_path

PROVENANCE_SHEET = "provenance"


def provenance_rows(prov: dict[str, Any]) -> list[tuple[str, str]]:
    """Flatten a provenance record to (key, value) rows; nested values as JSON."""
    return [(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
            for k, v in sorted(prov.items())]


def write_workbook(path: Path, sheets: dict[str, pd.DataFrame], prov: dict[str, Any]) -> None:
    """Write DataFrames as sheets (index dropped) plus a provenance sheet, atomically."""
    with atomic_path(Path(path)) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for name, df in sheets.items():
                df.to_excel(xw, sheet_name=name[:31], index=False)
            pd.DataFrame(provenance_rows(prov), columns=["key", "value"]).to_excel(
                xw, sheet_name=PROVENANCE_SHEET, index=False)


def write_rows(path: Path, sheet: str, header: list[str], rows: Iterable[Iterable[Any]], prov: dict[str, Any]) -> None:
    """Stream rows into a one-sheet workbook (openpyxl write-only: memory stays flat), atomically."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet[:31])
    ws.append(header)
    for r in rows:
        ws.append(list(r))
    pw = wb.create_sheet(PROVENANCE_SHEET)
    pw.append(["key", "value"])
    for r in provenance_rows(prov):
        pw.append(list(r))
    with atomic_path(Path(path)) as tmp:
        wb.save(tmp)
