"""Cheap read-back of derived outputs (workbooks, PNG figures): can they be opened, and were they made
from the input a stage expects? A re-run redoes only what fails this check (README: outputs heal)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from dis_core.io.excel import PROVENANCE_SHEET

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# provenance keys that tie a derived output to the very extraction it was made from
LINK_KEYS = ("video_sha256", "model_sha256", "config_hash", "created_utc", "unit_id")


class Unreadable(Exception):
    """A derived output cannot be read back; the message says why."""


def png_text(path: Path) -> dict[str, str]:
    """A PNG's tEXt chunks, after checking the whole chunk structure: the signature, every chunk's
    length and CRC, and an IEND chunk at the very end (a truncated or damaged PNG raises
    :class:`Unreadable`)."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise Unreadable("not a PNG (no PNG signature)")
    pos, text = len(PNG_SIGNATURE), {}
    while True:
        if pos + 8 > len(data):
            raise Unreadable("truncated (no IEND chunk)")
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc = data[pos + 8 + n:pos + 12 + n]
        if len(body) != n or len(crc) != 4:
            raise Unreadable(f"truncated in a {kind!r} chunk")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise Unreadable(f"damaged {kind.decode('latin-1')} chunk (CRC mismatch)")
        if kind == b"tEXt" and b"\0" in body:
            k, v = body.split(b"\0", 1)
            text[k.decode("latin-1")] = v.decode("latin-1")
        pos += 12 + n
        if kind == b"IEND":
            if pos != len(data):
                raise Unreadable("data after the IEND chunk")
            return text


def workbook_provenance(path: Path) -> dict[str, str]:
    """The key/value rows of a workbook's provenance sheet; opening reads the zip directory and the
    workbook part (a truncated or damaged workbook raises :class:`Unreadable`), not the data sheets."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # zipfile.BadZipFile, KeyError, XML errors: all mean "cannot be read back"
        raise Unreadable(f"cannot be opened as a workbook ({e.__class__.__name__})") from None
    try:
        if PROVENANCE_SHEET not in wb.sheetnames:
            raise Unreadable("no provenance sheet")
        try:
            rows = list(wb[PROVENANCE_SHEET].iter_rows(min_row=2, values_only=True))
        except Exception as e:
            raise Unreadable(f"provenance sheet unreadable ({e.__class__.__name__})") from None
        return {str(r[0]): r[1] for r in rows if r and r[0] is not None}
    finally:
        wb.close()


def output_provenance(path: Path) -> dict[str, Any]:
    """The provenance recorded in a derived output (.xlsx sheet, .png text chunk)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        desc = png_text(path).get("Description")
        if desc is None:
            raise Unreadable("no provenance text chunk")
        try:
            return json.loads(desc)
        except ValueError:
            raise Unreadable("provenance text chunk is not JSON") from None
    if path.suffix.lower() == ".xlsx":
        return workbook_provenance(path)
    raise ValueError(f"{path}: no read-back check for {path.suffix} files")


def readback_problem(path: Path, expect: dict[str, Any], keys: tuple[str, ...] = LINK_KEYS) -> str | None:
    """Why ``path`` is not a good copy of the output ``expect`` (a provenance record) describes:
    'missing', 'unreadable: ...', or 'made from another extraction (<key> differs)'; None when it is."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        got = output_provenance(path)
    except Unreadable as e:
        return f"unreadable: {e}"
    except OSError as e:
        return f"unreadable: {e.strerror}"
    for k in keys:
        if k in expect and str(got.get(k)) != str(expect[k]):
            return f"made from another extraction ({k} differs)"
    return None
