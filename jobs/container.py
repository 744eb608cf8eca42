"""The host folders a command or a SLURM task running inside the Apptainer image must see (--bind).

Apptainer binds only $HOME, /tmp and the current folder by default: a run folder, manifest, video or model
elsewhere (a cluster's /scratch, say) would be invisible in the image. `dis run --container` and SLURM tasks
with a container bind the same list, from here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def container_binds(out: Path, manifest=None, model: Path | None = None, extra: Iterable[Path] = ()) -> list[str]:
    """The run folder, the manifest's folder (as given and resolved), each video's folder and the model's
    folder (``manifest``: a loaded :class:`~dis_core.manifest.Manifest`). Only folders that exist: apptainer
    refuses a missing one, which would kill the command (or task) instead of the unit saying what is missing.
    A folder inside another of them is left out (the outer bind shows it)."""
    folders = [Path(out), *extra]
    if manifest is not None:
        folders += [manifest.path.parent, manifest.path.resolve().parent]
        folders += [f for e in manifest.entries for f in (e.video.parent, e.video.resolve().parent)]
    if model is not None:
        model = Path(model).expanduser()
        folders += [model.parent, model.resolve().parent]
    folders = [f for f in folders if f.is_dir()]
    paths = {bindable(os.path.abspath(f)) for f in folders} | {bindable(str(f.resolve())) for f in folders}
    # a folder inside another one bound is seen through it: one bind for a cohort's thousands of video folders
    return sorted(p for p in paths if not any(str(a) in paths for a in Path(p).parents))


def bindable(path: str) -> str:
    """``path``, or for one holding ',' or ':' (apptainer's --bind separators: 'a,b' bound two folders, 'a:b' bound
    a onto b) the deepest folder above it without them, which shows it; a path left with only '/' is refused."""
    p = Path(path)
    while any(c in str(p) for c in ",:") and p != p.parent:
        p = p.parent
    if p == p.parent and any(c in path for c in ",:"):
        from dis_core.errors import DISError

        raise DISError(f"{path}: a folder whose name holds ',' or ':' cannot be bound into the image (apptainer's "
                       "--bind separators): rename it or move it into another folder")
    return str(p)
