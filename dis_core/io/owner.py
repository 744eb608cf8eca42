"""Each unit folder records the input it belongs to (``owner.json``), so that no stage writes one
input's results into another input's folder, whatever the folder is called."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from dis_core.io.atomic import write_text_atomic

OWNER_NAME = "owner.json"
IDENTITY = ("participant_id", "session", "video")  # the manifest row's identity: must be equal
LOCATION = ("video_path", "video_sha256")  # the video itself: one of the two must be equal


def read_owner(d: Path) -> dict[str, Any] | None:
    """The owner a folder records, or None (no record, or a record that cannot be read)."""
    try:
        rec = json.loads((Path(d) / OWNER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def differs(key: str, recorded: Any, row: Any) -> bool:
    """Whether a recorded identity field is another than the row's: the video as written is compared as its unit
    id reads it ('./v/a.mp4', 'v//a.mp4' and 'v/a.mp4' are one video, one unit)."""
    if key == "video" and isinstance(recorded, str) and isinstance(row, str) and recorded and row:
        return posixpath.normpath(recorded) != posixpath.normpath(row)
    return recorded != row


def owner_mismatch(recorded: dict[str, Any] | None, owner: dict[str, Any]) -> str | None:
    """How ``recorded`` differs from ``owner`` so that it is another input, or None when it is the same.

    The same row (participant, session, video as written) whose video moved (other path, same content)
    or was replaced (same path, other content) is the same input; anything else is another."""
    if recorded is None:
        return None
    for k in IDENTITY:
        if k in recorded and differs(k, recorded[k], owner.get(k)):
            return f"{k} '{recorded[k]}' (this row: '{owner.get(k)}')"
    if all(k in recorded and recorded[k] != owner.get(k) for k in LOCATION):
        return f"video {recorded['video_path']} with other content (this row: {owner.get('video_path')})"
    return None


def write_owner(d: Path, owner: dict[str, Any]) -> None:
    """Record ``owner`` as the owner of folder ``d`` (atomically)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    write_text_atomic(d / OWNER_NAME, json.dumps(owner, indent=2, sort_keys=True))
