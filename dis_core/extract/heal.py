"""Unit folders that know their owner and outputs that heal (issue #11).

Each extraction unit folder records the manifest row and video it belongs to (``owner.json``); no
stage writes into a folder of another input. Next to a current HDF5 file, derived outputs that are
missing, damaged or made from another extraction are redone from it, outputs of other options are
removed, and outputs left without their HDF5 file (an interrupted or full-disk run) are dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

from dis_core.extract.h5store import read_attrs
from dis_core.extract.stage import DERIVED, SMILE_OUTPUTS, ExtractConfig, _outputs, _write_exports
from dis_core.layout import EXTRACTION_H5 as H5_NAME
from dis_core.manifest import VideoEntry


def owner_record(entry: VideoEntry, video_sha: str) -> dict:
    """What a unit folder belongs to: the manifest row (participant, session, video as written) and
    the video (real path, content hash)."""
    return {"participant_id": entry.participant_id, "session": entry.session, "video": entry.video_rel,
            "video_path": str(entry.video), "video_sha256": video_sha, "unit_id": entry.unit_id}


def folder_owner(d: Path) -> dict | None:
    """The owner a unit folder records (``owner.json``; for folders of older versions, the provenance of
    their HDF5 file), or None."""
    from dis_core.io.owner import read_owner

    rec = read_owner(d)
    if rec is None and (d / H5_NAME).is_file():
        try:
            p = json.loads(read_attrs(d / H5_NAME).get("provenance", "{}"))
            rec = {"participant_id": p["participant_id"], "session": p["session"], "video_path": p["video"],
                   "video_sha256": p["video_sha256"]}
        except (OSError, KeyError, ValueError):
            rec = None
    return rec


def unit_dir_problem(d: Path, entry: VideoEntry, video_sha: str) -> str | None:
    """Why unit folder ``d`` belongs to another input than ``entry`` (one line), or None."""
    from dis_core.io.owner import owner_mismatch

    why = owner_mismatch(folder_owner(d), owner_record(entry, video_sha))
    return f"{d} belongs to another input ({why})" if why else None


def claim_unit_dir(d: Path, entry: VideoEntry, video_sha: str) -> str | None:
    """Record ``entry`` as the owner of ``d``, unless another input owns it (then: why, one line)."""
    from dis_core.io.owner import write_owner

    why = unit_dir_problem(d, entry, video_sha)
    if why is None:
        write_owner(d, owner_record(entry, video_sha))
        return None
    return f"{why}; refusing to write into it: use another --out or remove that folder"


def _h5_provenance(h5: Path) -> dict | None:
    try:
        a = read_attrs(h5)
        return json.loads(a["provenance"]) if a.get("status") == "complete" else None
    except (OSError, KeyError, ValueError):
        return None


def heal_exports(d: Path, entry: VideoEntry, cfg: ExtractConfig) -> list[str]:
    """Next to a current, complete HDF5 file: redo each output of ``cfg`` that is missing, cannot be
    read back or was made from another extraction; remove outputs ``cfg`` does not make (made under
    other flags). Returns what was redone or removed, with why."""
    from dis_core.io.readback import LINK_KEYS, readback_problem

    h5 = d / H5_NAME
    prov = _h5_provenance(h5)
    done = []
    for n in DERIVED:
        if n not in _outputs(cfg) and (d / n).exists():
            (d / n).unlink()
            done.append(f"removed {n} (not made under these options)")
    bad = {n: readback_problem(d / n, prov, LINK_KEYS + (("smile_hash",) if n in SMILE_OUTPUTS else ()))
           for n in _outputs(cfg)}  # smile workbooks follow the file's smile rule, recomputed without MediaPipe
    bad = {n: why for n, why in bad.items() if why}
    if bad:
        _write_exports(h5, d, entry, cfg, prov, only=set(bad))
        done += [f"{n} ({why})" for n, why in bad.items()]
    return done


def drop_orphans(d: Path) -> list[Path]:
    """Remove derived outputs that no longer belong to the HDF5 file beside them (none there, or made by
    another extraction attempt: an interrupted or full-disk run writes them before the HDF5 file)."""
    from dis_core.io.readback import readback_problem

    prov = _h5_provenance(d / H5_NAME)
    gone = []
    for n in DERIVED:
        p = d / n
        if p.is_file() and (prov is None or readback_problem(p, prov)):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone
