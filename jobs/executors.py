"""Executors that map a unit function over items: ``debug`` (in-process) and ``local`` (one process per core).

Ctrl-C and SIGTERM stop a map promptly: queued units are cancelled, running units are told to stop
(their atomic writes clean up as the stop unwinds them) and :class:`Interrupted` says what finished."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, Sequence

EXECUTORS = ("local", "debug")
STOP_GRACE_S = 10.0  # a running unit gets this long to unwind after SIGTERM before it is killed


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a map. ``done``: results of the units that finished; ``pending``:
    labels of the units that did not (cancelled or stopped). A re-run resumes them."""

    def __init__(self, signame: str = "SIGINT", done: Sequence[Any] = (), pending: Sequence[str] = ()):
        super().__init__(signame)
        self.signame, self.done, self.pending = signame, list(done), list(pending)


def interrupt_report(e: KeyboardInterrupt) -> str:
    """What the terminal says after an interrupt: the signal, what finished, what did not, how to resume."""
    sig = getattr(e, "signame", "SIGINT")
    done, pending = getattr(e, "done", []), getattr(e, "pending", [])
    lines = [f"interrupted by {sig}: {len(done)} unit(s) of the current stage finished, {len(pending)} not "
             "finished; finished units are kept, run the same command again to resume"]
    lines += [f"  finished     {getattr(r, 'unit_id', r)}: {getattr(r, 'status', '')}" for r in done]
    lines += [f"  not finished {u}" for u in pending]
    return "\n".join(lines)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While inside: SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (SIGTERM would
    otherwise kill the process without unwinding, leaving temporary files and no summary)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread while inside (processes started inside inherit the mask); one that came
    meanwhile is delivered on leaving."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def available_cores() -> list[int]:
    """The cores this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def default_workers() -> int:
    """One worker per available core."""
    return max(1, len(available_cores()))


_STOPPING = False  # set in a worker by SIGTERM: units queued to it afterwards do not start
_IN_UNIT = False  # a worker is running a unit (else SIGTERM simply ends it: nothing to unwind)
_STARTED = None  # the map's flags of units started (a RawArray shared with the parent)


def _worker_sigterm(signum, frame) -> None:
    global _STOPPING
    _STOPPING = True
    if not _IN_UNIT:
        _exit_worker()
    raise Interrupted("SIGTERM")


def _exit_worker() -> None:
    """End a worker now, after multiprocessing's own finalizers (which unregister semaphores a unit made,
    e.g. tqdm's lock; skipping them makes the resource tracker warn about leaks)."""
    from multiprocessing import util

    with contextlib.suppress(Exception):
        util._run_finalizers(0)  # noqa: SLF001
        util._run_finalizers()  # noqa: SLF001
    os._exit(130)


def _watch_parent(parent: int, every_s: float = 1.0) -> None:
    """A worker's thread: once its parent is gone (killed with SIGKILL, it could not stop its pool; the
    workers' queue stays open between siblings, so nothing else ends them), stop as on SIGTERM: the running
    unit unwinds, an idle worker exits."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os.kill(os.getpid(), signal.SIGTERM)


def _init_worker(counter, cores: list[int] | None, started=None) -> None:
    """Process-pool initializer: Ctrl-C is the parent's to handle (a terminal sends it to the whole
    process group); SIGTERM from the parent unwinds the running unit, as does the parent's death;
    optionally one core per worker. ``started``: a flag per unit, set as the worker starts it."""
    global _STARTED
    _STARTED = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError):  # spawned with Ctrl-C blocked (_pool_pass): ignored from here on
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGTERM, _worker_sigterm)
    with contextlib.suppress(ImportError):  # tqdm's default lock is a semaphore that a killed worker leaks
        import tqdm

        tqdm.tqdm.set_lock(threading.RLock())
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="dis-parent-watch").start()
    if cores:
        with counter.get_lock():
            k = counter.value
            counter.value += 1
        try:
            os.sched_setaffinity(0, {cores[k % len(cores)]})
        except (AttributeError, OSError):
            pass


def _run_unit(fn: Callable[..., Any], item: Any, index: int = -1) -> Any:
    """A unit in a worker. Once told to stop, the worker exits as soon as the unit has unwound (its
    ``finally`` blocks removed temporary files), without taking another unit."""
    global _IN_UNIT
    if _STOPPING:
        _exit_worker()
    if _STARTED is not None and index >= 0:
        _STARTED[index] = 1
    _IN_UNIT = True
    try:
        return fn(item)
    except Interrupted:
        _exit_worker()
    finally:
        _IN_UNIT = False


def unit_label(item: Any) -> str:
    """A readable name of a unit when the caller gives none (the graph's runner passes each stage's uid)."""
    return str(getattr(item, "unit_id", None) or item)


def map_units(fn: Callable[..., Any], items: Sequence[Any], executor: str = "local", workers: int | None = None,
              on_result: Callable[[Any], None] | None = None,
              label: Callable[[Any], str] = unit_label,
              on_crash: Callable[[Any, str], Any] | None = None) -> list[Any]:
    """Apply ``fn`` to every item; results come back in item order.

    ``local`` runs ``workers`` spawned processes (default: one per core), each pinned to a core of its
    own when they fill every core, so that workers do not compete for caches and cores. ``fn`` must catch its own expected
    failures (units return a status); an exception that escapes means a bug and is re-raised.
    Ctrl-C / SIGTERM raise :class:`Interrupted` within seconds, with what finished and what did not.
    A worker killed from outside (out of memory) costs only its unit: the units running then are run again
    alone, and ``on_crash(item, how it died)`` gives the result of one whose worker dies again; without
    ``on_crash`` the map raises at the first death.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    workers = workers or default_workers()
    results: list[Any] = [None] * len(items)
    finished = [False] * len(items)

    def interrupted(e: Interrupted) -> Interrupted:
        return Interrupted(e.signame, [r for r, f in zip(results, finished) if f],
                           [label(it) for it, f in zip(items, finished) if not f])

    if executor == "debug" or not items:
        with interruptible():
            try:
                for i, it in enumerate(items):
                    results[i] = fn(it)
                    finished[i] = True
                    if on_result:
                        on_result(results[i])
            except Interrupted as e:
                raise interrupted(e) from None
            except KeyboardInterrupt:
                raise interrupted(Interrupted("SIGINT")) from None
        return results
    ctx = mp.get_context("spawn")  # no fork after threads (MediaPipe, torch) were started
    cores = available_cores()
    # one worker a core when the pool fills them all (no migration); a smaller pool is left to the scheduler, or
    # two commands side by side would share the first cores and single-unit stages would all sit on core 0
    pinned = cores if 1 < workers == len(cores) else None
    started = ctx.RawArray("b", len(items))  # set by a worker as it starts a unit: who ran when a worker died
    todo = list(range(len(items)))
    # a worker killed from outside (the out-of-memory killer, kill -9) breaks the whole pool: the units that had
    # started and not finished (one of them was the dead worker's) run again one at a time, so that a unit that
    # kills its worker every time fails alone; the others go on in a new pool
    stalls = 0
    while todo:
        done_before = sum(map(bool, finished))
        died = _pool_pass(fn, items, todo, min(workers, len(todo)), ctx, pinned, started, results, finished,
                          on_result, interrupted)
        if not died:
            break
        suspects = [i for i in todo if started[i] and not finished[i]]
        stalls = stalls + 1 if not suspects and sum(map(bool, finished)) == done_before else 0
        if stalls >= 2:  # workers die before they start any unit (one that cannot load the work): again is the same
            why = f"worker processes die before starting a unit ({died}); run again, and see the log"
            if on_crash is None:
                raise cf.process.BrokenProcessPool(why)
            for i in todo:
                results[i], finished[i] = on_crash(items[i], why), True
                if on_result:
                    on_result(results[i])
            break
        if on_crash is None:  # the map cannot say what a lost unit did
            raise cf.process.BrokenProcessPool(f"a worker process died ({died}) running one of "
                                               f"{', '.join(label(items[i]) for i in suspects)}")
        for i in suspects:
            alone = _pool_pass(fn, items, [i], 1, ctx, pinned, started, results, finished, on_result, interrupted)
            if alone:
                results[i], finished[i] = on_crash(items[i], alone), True
                if on_result:
                    on_result(results[i])
        todo = [i for i in todo if not finished[i]]
    return results


def _pool_pass(fn, items, idx: list[int], workers: int, ctx, pinned, started, results, finished, on_result,
               interrupted) -> str:
    """Run the units ``idx`` in one process pool; '' when every one returned, else how a worker died."""
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                  initializer=_init_worker, initargs=(ctx.Value("i", 0), pinned, started))
    futs: dict = {}
    procs: list = []
    try:
        with interruptible():
            with _sigint_held():  # workers start with Ctrl-C blocked until their initializer ignores it: one that
                # came while they were still importing DIS printed a KeyboardInterrupt traceback per worker
                futs = {pool.submit(_run_unit, fn, items[i], i): i for i in idx}
                procs = list((pool._processes or {}).values())  # noqa: SLF001 - to say how a worker died
            for f in cf.as_completed(futs):
                i = futs[f]
                results[i] = f.result()
                finished[i] = True
                if on_result:
                    on_result(results[i])
    except Interrupted as e:
        _stop(pool)
        del pool, futs  # release the pool's semaphores now, not at exit (else a "leaked semaphore" warning)
        gc.collect()
        raise interrupted(e) from None
    except cf.process.BrokenProcessPool:
        pool.shutdown(wait=True, cancel_futures=True)
        del pool, futs  # its semaphores now (else a "leaked semaphore" warning at exit)
        gc.collect()
        # the dead worker's signal first: the pool ends the others itself (they exit 130 as they unwind)
        codes = sorted((p.exitcode for p in procs if p.exitcode not in (None, 0)), key=lambda c: c > 0)
        sig = -codes[0] if codes and codes[0] < 0 else None
        return (f"killed by signal {sig}" + (" (SIGKILL: out of memory?)" if sig == signal.SIGKILL else "")
                if sig else f"exit code {codes[0]}" if codes else "it ended abruptly")
    except BaseException:  # a bug in a unit: queued units are not started, running ones finish
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    try:
        with interruptible():  # an interrupt while the idle workers exit still reports the stage's units
            pool.shutdown(wait=True)
    except Interrupted as e:
        _stop(pool)
        raise interrupted(e) from None
    return ""


def _stop(pool: cf.ProcessPoolExecutor, grace_s: float = STOP_GRACE_S) -> None:
    """Cancel queued units, ask running workers to stop (SIGTERM), kill what has not stopped in time."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}  # let the stop finish
    try:
        procs = list((pool._processes or {}).values())  # noqa: SLF001 - the pool offers no public handle
        manager = pool._executor_manager_thread  # noqa: SLF001
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            with contextlib.suppress(Exception):
                if p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(2.0)
        if manager is not None:
            manager.join(max(2.0, deadline - time.monotonic()))  # it closes the pool's queues
    finally:
        for s, h in old.items():
            signal.signal(s, h)
