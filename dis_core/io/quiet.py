"""Silence C libraries at the file-descriptor level: MediaPipe's glog, TFLite and absl write straight
to descriptors 1 and 2, past Python's sys.stdout/sys.stderr, so only dup2 can move them into a log."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import traceback
from pathlib import Path

LOG_NAME = "extraction.log"  # per video, under OUT/videos/<unit>/


def _flush_all() -> None:
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)  # C stdio buffers too, before a descriptor changes hands


class FdRedirect:
    """While active, whatever this process writes to descriptors 1 and 2 is appended to ``log`` (or
    discarded when the log cannot be opened, e.g. disk full). Restores the descriptors on stop."""

    def __init__(self, log: Path | None, fds: tuple[int, ...] = (1, 2)):
        self.log, self.fds = (Path(log) if log is not None else None), fds
        self._saved: list[int] = []

    def start(self) -> "FdRedirect":
        _flush_all()
        target = -1
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.parent.mkdir(parents=True, exist_ok=True)
                target = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if target < 0:
            target = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in self.fds:
                self._saved.append(os.dup(fd))
                os.dup2(target, fd)
        finally:
            os.close(target)
        return self

    def stop(self) -> None:
        if not self._saved:
            return
        _flush_all()
        for fd, saved in zip(self.fds, self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        self._saved = []

    def __enter__(self) -> "FdRedirect":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def log_traceback(log: Path) -> None:
    """Append the current exception's traceback to ``log`` (the terminal gets the one-line message)."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            traceback.print_exc(file=f)
    except OSError:
        traceback.print_exc()
