"""Excel workbooks, written atomically, each with a 'provenance' sheet saying what produced it."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from dis_core.io.atomic import atomic_path

PROVENANCE_SHEET = "provenance"
_BOLD = Font(bold=True)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A cell value that a spreadsheet shows as text, never runs as a formula (OWASP CSV injection):
    a string starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading ``'``.
    Anything that is not a ``str`` (numbers, dates, None) is returned unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


# What one worksheet holds (Excel's limits): a header row plus this many rows, and this many columns.
SHEET_MAX_ROWS = 1_048_576 - 1
SHEET_MAX_COLUMNS = 16_384


def plain_cell(value: Any) -> Any:
    """A value for a streamed :class:`Rows` table: NaN becomes None (an empty cell); the writers do the
    rest (infinities as the text 'inf' / '-inf', strings through :func:`safe_cell`)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _streamed_cell(value: Any) -> Any:
    """A :class:`Rows` value as the workbook writes DataFrame cells (:func:`_cells`)."""
    if isinstance(value, float) and math.isinf(value):
        return _inf_text(value)
    return safe_cell(value)


def unsafe_cell(value: Any) -> Any:
    """The value :func:`safe_cell` was given back from the text it wrote (``'=x`` is ``=x``), for reading a CSV this
    project wrote. A value that began with ``'`` and then a formula character before writing reads without its ``'``."""
    if isinstance(value, str) and value[:1] == "'" and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


def read_safe_csv(path: Path, text_columns: Iterable[str]) -> pd.DataFrame:
    """A CSV written from :func:`safe_frame`, read back as written: ``text_columns`` stay the strings they were
    (participant ``007`` is not 7, ``NA`` is not missing, ``'-take1.mp4`` is ``-take1.mp4``); the other columns are
    numbers where they parse as numbers (an empty cell is NaN) and booleans where they read True/False."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    text = set(text_columns)
    for c in df.columns:
        if c in text:
            df[c] = df[c].map(unsafe_cell)
        elif df[c].isin(["True", "False"]).all() and len(df):
            df[c] = df[c].eq("True")
        else:
            num = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
            if num.notna().sum() == (df[c] != "").sum():  # every filled cell is a number
                df[c] = num
    return df


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with :func:`safe_cell` applied to every string cell (and column name), for CSV."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = out[c].map(safe_cell)
    out.columns = [safe_cell(c) for c in out.columns]
    return out


def provenance_rows(prov: dict[str, Any]) -> list[tuple[str, str]]:
    """Flatten a provenance record to (key, value) rows; nested values as JSON."""
    return [(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
            for k, v in sorted(prov.items())]


@dataclasses.dataclass
class Rows:
    """A sheet streamed row by row, for tables as long as a video (memory stays flat).

    The producer writes missing values as None (Excel has no NaN)."""

    header: Sequence[str]
    rows: Iterable[Sequence[Any]]


def write_rows_csv(path: Path, table: Rows) -> None:
    """Write a streamed table as gzip-compressed CSV, atomically: the form of a table longer than a
    sheet. Empty cells stay empty; strings pass through :func:`safe_cell` as in the workbook."""
    with atomic_path(Path(path)) as tmp, gzip.open(tmp, "wt", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([safe_cell(str(h)) for h in table.header])
        out.writerows(["" if v is None else safe_cell(v) for v in row] for row in table.rows)


def write_workbook(path: Path, sheets: dict[str, pd.DataFrame | Rows], prov: dict[str, Any]) -> None:
    """Write sheets (DataFrames: index dropped, NaN as empty cells; or streamed :class:`Rows`) plus a
    provenance sheet, atomically.

    Streams through openpyxl's write-only mode: several times faster than ``DataFrame.to_excel``. A table
    longer than a sheet (SHEET_MAX_ROWS: 9.7 h of frames at 30 fps) goes on in sheets ``<name> (2)``, ...,
    each with the header: openpyxl would write the rows past Excel's limit, and Excel would drop them.
    """
    wb = Workbook(write_only=True)
    for name, data in sheets.items():
        if isinstance(data, Rows):
            header = [safe_cell(str(h)) for h in data.header]
            rows = ([_streamed_cell(v) for v in row] for row in data.rows)
        else:
            header = [safe_cell(str(c)) for c in data.columns]
            rows = zip(*[_cells(data.iloc[:, k]) for k in range(data.shape[1])])
        ws, part, n = wb.create_sheet(name[:31]), 1, 0
        ws.append(_header(ws, header))
        for row in rows:
            if n == SHEET_MAX_ROWS:
                part, n = part + 1, 0
                suffix = f" ({part})"
                ws = wb.create_sheet(name[:31 - len(suffix)] + suffix)
                ws.append(_header(ws, header))
            ws.append(list(row))
            n += 1
    _provenance_sheet(wb, prov)
    with atomic_path(Path(path)) as tmp:
        wb.save(tmp)


def _header(ws, names: list[str]) -> list:
    out = []
    for n in names:
        c = WriteOnlyCell(ws, value=n)
        c.font = _BOLD
        out.append(c)
    return out


def _cells(col: pd.Series) -> list:
    """A column as plain Python values for openpyxl, as ``to_excel`` writes them: missing values (NaN,
    None, NaT) become empty cells, infinities the text 'inf' / '-inf' (Excel has no infinite number),
    strings pass through :func:`safe_cell`."""
    vals = col.tolist()
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "biu":
        return vals  # plain numpy bool/int: nothing can be missing
    miss = col.isna().to_numpy()
    return [None if m else (_inf_text(v) if isinstance(v, float) and math.isinf(v) else safe_cell(v))
            for v, m in zip(vals, miss)]


def _inf_text(v: float) -> str:
    return "inf" if v > 0 else "-inf"


def _provenance_sheet(wb: Workbook, prov: dict[str, Any]) -> None:
    pw = wb.create_sheet(PROVENANCE_SHEET)
    pw.append(_header(pw, ["key", "value"]))
    for r in provenance_rows(prov):
        pw.append([safe_cell(v) for v in r])
