"""The errors DIS raises on purpose: each names what went wrong and where."""

from __future__ import annotations


class DISError(Exception):
    """Base class for problems DIS can name precisely (bad input, missing model, ...)."""


class ManifestError(DISError):
    """A manifest is invalid; ``problems`` lists every problem found, with row numbers."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"manifest {path}: {len(self.problems)} problem(s):\n{lines}")


class VideoError(DISError):
    """A video cannot be opened or decoded."""


class ModelError(DISError):
    """The Face Landmarker model is missing, unreadable or not the expected file."""


class OutputError(DISError):
    """An output cannot be written or an existing one is unusable."""


def at_time_limit(e: BaseException) -> bool:
    """submitit stopping a SLURM task at its time limit, once it may requeue it no more (its UncompletedJobError,
    raised in the running unit by its signal handler): not a failure of the unit, so no unit's broad except may
    record it as one; the task must stop (its record says it ran out of time)."""
    return type(e).__name__ == "UncompletedJobError"


def disk_full(e: BaseException) -> bool:
    """A write refused for want of space (or quota): no bug of DIS, said in one line. h5py's OSError carries no
    errno, only HDF5's text ("... No space left on device")."""
    import errno

    return isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e))


def bug_line(e: BaseException, limit: int = 300) -> str:
    """An unexpected exception as one line for a unit's message: its type and the first line of its text
    (torch's unpickling errors run over seven lines), cut at ``limit`` characters; the traceback goes to a log."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    line = f"{type(e).__name__}: {first}" if first else type(e).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."


# One table of exit codes for every command (README: "Exit codes").
EXIT_OK = 0  # every unit succeeded or was already done
EXIT_FAILED = 1  # every unit of the stage failed: nothing usable came out
EXIT_USAGE = 2  # invalid invocation or input (bad option, manifest, model, output folder in use): nothing ran
EXIT_PARTIAL = 3  # some units failed (listed in the summary); the rest completed
EXIT_INTERNAL = 70  # an internal error (a bug): the traceback is printed
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished units are kept, a re-run resumes

EXIT_CODES = {
    EXIT_OK: "every unit succeeded (or was already done)",
    EXIT_FAILED: "every unit failed",
    EXIT_USAGE: "invalid invocation or input (bad option, manifest, model, output folder in use): nothing ran",
    EXIT_PARTIAL: "partial failure: some units failed (listed in the summary), the rest completed",
    EXIT_INTERNAL: "internal error (a bug): the traceback is printed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM): finished units are kept, a re-run resumes",
}


def exit_code(results) -> int:
    """0 when no unit failed, 3 when some did or were done in part (incomplete), 1 when all failed (or there
    were none)."""
    results = list(results)
    failed = sum(1 for r in results if r.failed)
    if not results or failed == len(results):
        return EXIT_FAILED
    return EXIT_PARTIAL if failed or any(r.incomplete for r in results) else EXIT_OK
