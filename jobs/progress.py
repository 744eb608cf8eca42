"""The cohort-level terminal display: one live line per stage (done/total, failures, elapsed, ETA).

On a terminal it is a rich Live display redrawn in place; otherwise (SLURM logs, CI, pipes) it
prints plain lines: the stage's start, a line per quarter of the units, and its end, so the output does not
grow with the number of units (and a line when a unit ends HEARTBEAT_S after the last line: it grows with the
run's hours, never with its units). Per-unit lines only with ``verbose``; failures
are listed by the stage summary that follows (one line each), not twice.

    with progress("extract", len(videos)) as p:
        map_units(fn, videos, on_result=p.unit_done)
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from typing import Any, Iterator, TextIO

NOT_RUN = "not run: "  # the message of a unit stopped by a failure upstream (jobs.graph.NOT_RUN): it took no time
PLAIN_STEPS = 4  # plain mode: a line at 25, 50, 75 and 100%
HEARTBEAT_S = 300.0  # plain mode: and a line when a unit finishes this long after the last (a resumed stage's
# skipped units pass the quarters at once, then its real units ran in silence)
NARROW = 72  # a live line narrower than this drops the bar and the words, so that the counts stay whole


class PipeSafe(io.TextIOBase):
    """Standard output that a reader may close (``dis status | head -1``): once the pipe is gone, output is
    dropped and the command goes on to its own exit code. Before, the broken pipe stopped a stage's remaining
    units and was reported as a problem of the run folder (exit 1)."""

    def __init__(self, inner: TextIO):
        self._inner, self.gone = inner, False

    def write(self, s: str) -> int:
        if not self.gone:
            try:
                return self._inner.write(s)
            except BrokenPipeError:
                self._drop()
        return len(s)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._inner.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError, ValueError):  # what is still buffered must not fail at exit either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._inner.fileno())
            os.close(devnull)

    def isatty(self) -> bool:
        return not self.gone and self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._inner.errors


def use_live(stream: TextIO) -> bool:
    """A live display only on an interactive terminal (not under CI, not with TERM=dumb, not when asked
    for plain output with DIS_PROGRESS=plain)."""
    if os.environ.get("DIS_PROGRESS", "").lower() == "plain" or os.environ.get("CI"):
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def fmt_duration(s: float) -> str:
    """1h02m, 3m05s, 42s."""
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


def unit_line(result: Any) -> str:
    """One line for one finished unit (verbose mode): id, status, and what it produced."""
    uid = getattr(result, "unit_id", str(result))
    status = getattr(result, "status", "done")
    bits = []
    if getattr(result, "frames", 0):
        bits.append(f"{result.frames} frames, face in {100 * result.detection_rate:.0f}%")
    if getattr(result, "train_frames", 0):
        bits.append(f"{result.train_frames} training frames, {getattr(result, 'epochs', 0)} epochs")
    if getattr(result, "elapsed_s", 0):
        bits.append(f"{result.elapsed_s:.1f} s")
    msg = getattr(result, "message", "")
    return f"  {status:8s} {uid}" + (f": {', '.join(bits)}" if bits else "") + (f" ({msg})" if msg else "")


class StageProgress:
    """Counts finished units of one stage and shows them; ``unit_done`` is the executor's on_result."""

    def __init__(self, stage: str, total: int, stream: TextIO | None = None, verbose: bool = False,
                 live: bool | None = None):
        self.stage, self.total, self.verbose = stage, int(total), verbose
        self.stream = stream if stream is not None else sys.stdout
        self.live = use_live(self.stream) if live is None else live
        self.done = self.failed = self.skipped = self.blocked = 0
        self._t0 = self._last = time.monotonic()
        self._next_step = 1
        self._rich = None
        self._task = None
        self._own_file: TextIO | None = None
        self._shown = -1  # plain mode: the count of the last status line printed (not printed twice)

    # ---- plain and shared
    def eta_s(self) -> float | None:
        """Remaining time from the mean time per unit that ran (None before the first one): units skipped as
        current take no time, nor do units stopped by a failure upstream (100 of those made an ETA of 50 minutes
        from 100 minutes of work left), and counting them would promise the rest at their speed."""
        ran = self.done - self.skipped - self.blocked
        if ran <= 0:
            return None
        return (time.monotonic() - self._t0) / ran * (self.total - self.done)

    def status_line(self) -> str:
        el = time.monotonic() - self._t0
        eta = self.eta_s()
        tail = f", ETA {fmt_duration(eta)}" if eta is not None and self.done < self.total else ""
        return (f"{self.stage}: {self.done}/{self.total} done{self._skipped_text()}, {self.failed} failed, "
                f"elapsed {fmt_duration(el)}{tail}")

    def _print(self, line: str) -> None:
        self._last = time.monotonic()
        if self._rich is not None:
            self._rich.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def unit_done(self, result: Any) -> None:
        self.done += 1
        self.skipped += getattr(result, "status", "") == "skipped"
        if getattr(result, "failed", False):
            self.failed += 1
            self.blocked += str(getattr(result, "message", "")).startswith(NOT_RUN)
        if self.verbose:
            self._print(unit_line(result))
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, failed=self.failed, **self._live_fields())
        elif self.total and self.done < self.total and (self.done * PLAIN_STEPS >= self._next_step * self.total
                                                        or time.monotonic() - self._last >= HEARTBEAT_S):
            self._print(self.status_line())
            self._shown = self.done
            while self._next_step * self.total <= self.done * PLAIN_STEPS:
                self._next_step += 1

    def _skipped_text(self) -> str:
        return f" ({self.skipped} skipped as current)" if self.skipped else ""

    def _live_fields(self) -> dict[str, Any]:
        """The live line's skipped count and when the rest is due (``eta_at``, monotonic; from the units that ran:
        rich's own ETA counts skipped ones), which the line counts down to between units (:class:`_EtaColumn`:
        recomputed only when a unit finished, it stood still for as long as an hour-long unit ran)."""
        eta = self.eta_s() if self.done < self.total else None
        return {"skipped": self._skipped_text(), "eta_at": None if eta is None else time.monotonic() + eta}

    # ---- lifecycle
    def __enter__(self) -> "StageProgress":
        self._t0 = time.monotonic()
        if self.live and self.total:
            self._start_rich()
        else:
            self._print(f"{self.stage}: {self.total} unit(s)")
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
            if self._own_file is not None:
                self._own_file.close()
        elif self.done != self._shown:  # an interrupt right after a quarter's line: that line stands
            self._print(self.status_line())

    def _start_rich(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # Draw through a duplicate of the terminal's descriptor: a unit that silences fd 1/2 in this
        # process (the debug executor) cannot swallow the display, nor the display leak into its log.
        file = self.stream
        with contextlib.suppress(AttributeError, ValueError, OSError, io.UnsupportedOperation):
            self._own_file = os.fdopen(os.dup(self.stream.fileno()), "w", buffering=1)
            file = self._own_file
        console = Console(file=file, force_terminal=True)
        wide = console.width >= NARROW
        columns = ([TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[skipped]}"), TextColumn("{task.fields[failed]} failed"),
                    TextColumn("elapsed"), TimeElapsedColumn(), _EtaColumn()] if wide else
                   [TextColumn("[bold]{task.description}"), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), _EtaColumn()])
        self._rich = Progress(*columns, console=console, transient=False, refresh_per_second=2)
        self._rich.start()
        self._task = self._rich.add_task(self.stage, total=self.total, failed=0, **self._live_fields())


def eta_text(fields: dict[str, Any]) -> str:
    """'ETA 2m10s' counted down to the due time a unit's end set, never below 0s; 'ETA -' before one ran."""
    at = fields.get("eta_at")
    return f"ETA {fmt_duration(max(0.0, at - time.monotonic()))}" if at is not None else "ETA -"


def _EtaColumn():
    """The live line's ETA column (:func:`eta_text` at every refresh)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(eta_text(task.fields))
    return EtaColumn()


@contextlib.contextmanager
def progress(stage: str, total: int, stream: TextIO | None = None, verbose: bool = False,
             live: bool | None = None) -> Iterator[StageProgress]:
    """The display for one stage: ``with progress("extract", n) as p: ... p.unit_done(result)``."""
    p = StageProgress(stage, total, stream, verbose, live)
    with p:
        yield p


@contextlib.contextmanager
def stage_progress(stage: str, total: int, verbose: bool = False, enabled: bool = True
                   ) -> Iterator[StageProgress | "_Silent"]:
    """What the local runner wraps a stage's map in: the display, or a silent counter when disabled."""
    if not enabled:
        yield _Silent()
        return
    with progress(stage, total, verbose=verbose) as p:
        yield p


class _Silent:
    def unit_done(self, result: Any) -> None:
        pass
