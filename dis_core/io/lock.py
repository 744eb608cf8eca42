"""One DIS command per output folder at a time: an advisory lock on OUT/.dis.lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from dis_core.errors import DISError, OutputError

LOCK_NAME = ".dis.lock"


class RunLocked(DISError):
    """Another DIS command holds this output folder."""


@contextlib.contextmanager
def run_lock(out_root: Path, what: str = "dis") -> Iterator[None]:
    """Hold the folder's lock for the block; refuse at once, with a clear message, if another run holds it.

    The lock is released by the kernel when the holder exits, even after ``kill -9``.
    """
    out_root = Path(out_root)
    why = output_folder_problem(out_root)
    if why:
        raise OutputError(why)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        path = out_root / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"{out_root}: cannot be used as the output folder: {e.strerror}") from None
    try:
        try:
            _lock_now(fd)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunLocked(f"{out_root} is in use by another DIS run ({holder}); wait for it to finish or use "
                           "another --out") from None
        except OSError as e:  # a file system without flock (Lustre mounted without it, some NFS)
            raise OutputError(f"{out_root}: cannot lock {path.name} ({e.strerror}): use an output folder on a file "
                              "system with file locks (mount option flock), e.g. a local disk") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)


def _lock_now(fd: int, tries: int = 10, wait_s: float = 0.02) -> None:
    """The folder's lock, taken at once, or BlockingIOError while another holds it. A command that only asks who
    holds it (dis status, :func:`lock_holder`) holds it shared for microseconds: a run started then was refused,
    naming the last holder, long gone; so a refusal is final only after ``tries`` attempts 20 ms apart."""
    for k in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if k == tries - 1:
                raise
            time.sleep(wait_s)


def lock_holder(out_root: Path) -> str | None:
    """Who holds the folder's lock now (what run_lock wrote: command, pid, since), None when no one does."""
    try:
        fd = os.open(Path(out_root) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    except OSError:
        return None
    finally:
        os.close(fd)


def output_folder_problem(out_root: Path) -> str | None:
    """Why ``out_root`` cannot be a run's output folder (a file, a symbolic-link loop, a dangling link,
    not writable, read-only file system), as one line; None when it can. Checked before any lock or
    output is made, so a mistake costs nothing."""
    import stat

    p = Path(out_root)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:  # a file where a parent folder should be
        a = p.absolute().parent
        while a != a.parent and (a.is_dir() or not a.exists()):
            a = a.parent
        return f"{p}: {a} is a file, not a folder"
    except OSError as e:  # ELOOP (a symbolic-link loop), EACCES on a parent, ...
        return f"{p}: cannot be used as the output folder: {e.strerror}"
    except ValueError as e:  # an embedded NUL byte
        return f"{p!r}: cannot be used as the output folder: {e}"
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            return f"{p} is a file, not a folder: give --out a folder (new or existing)"
        target = p
    else:
        if os.path.islink(p):
            return f"{p} is a symbolic link to nothing ({os.readlink(p)}): remove it or give another --out"
        target = p.absolute().parent
        while True:
            try:
                st = os.stat(target)
                break
            except FileNotFoundError:
                target = target.parent
            except OSError as e:
                return f"{p}: cannot be used as the output folder: {target}: {e.strerror}"
        if not stat.S_ISDIR(st.st_mode):
            return f"{p}: {target} is a file, not a folder"
    if not os.access(target, os.W_OK | os.X_OK):
        ro = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
        return f"{p}: cannot write in {target} ({'read-only file system' if ro else 'permission denied'})"
    return None


def private_folder(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it and its parent readable, writable and
    searchable by its owner only (0700), whatever the umask: for job files that hold pickled calls."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for p in (path.parent, path):
        os.chmod(p, 0o700)
    return path
