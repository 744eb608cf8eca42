"""One DIS command per output folder at a time: an advisory lock on OUT/.dis.lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from dis_core.errors import DISError

LOCK_NAME = ".dis.lock"


class RunLocked(DISError):
    """Another DIS command holds this output folder."""


@contextlib.contextmanager
def run_lock(out_root: Path, what: str = "dis") -> Iterator[None]:
    """Hold the folder's lock for the block; refuse at once, with a clear message, if another run holds it.

    The lock is released by the kernel when the holder exits, even after ``kill -9``.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    path = out_root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunLocked(f"{out_root} is in use by another DIS run ({holder}); wait for it to finish or use "
                           "another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)
