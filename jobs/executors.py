"""Executors that map a unit function over items: ``debug`` (in-process) and ``local`` (one process per core)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from typing import Any, Callable, Sequence

EXECUTORS = ("local", "debug")


def available_cores() -> list[int]:
    """The cores this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def default_workers() -> int:
    """One worker per available core."""
    return max(1, len(available_cores()))


def _pin_worker(counter, cores: list[int]) -> None:
    """Process-pool initializer: give each worker a core of its own (round robin)."""
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    try:
        os.sched_setaffinity(0, {cores[k % len(cores)]})
    except (AttributeError, OSError):
        pass


def map_units(fn: Callable[..., Any], items: Sequence[Any], executor: str = "local", workers: int | None = None,
              on_result: Callable[[Any], None] | None = None, pin: bool = True) -> list[Any]:
    """Apply ``fn`` to every item; results come back in item order.

    ``local`` runs ``workers`` spawned processes (default: one per core), each pinned to a core of its
    own so that workers do not compete for caches and cores. ``fn`` must catch its own expected
    failures (units return a status); an exception that escapes means a bug and is re-raised.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    workers = workers or default_workers()
    if executor == "debug" or not items:
        out = []
        for it in items:
            out.append(fn(it))
            if on_result:
                on_result(out[-1])
        return out
    results: list[Any] = [None] * len(items)
    ctx = mp.get_context("spawn")  # no fork after threads (MediaPipe, torch) were started
    cores = available_cores()
    init, initargs = (None, ())
    if pin and workers <= len(cores):
        init, initargs = _pin_worker, (ctx.Value("i", 0), cores)
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx,
                                initializer=init, initargs=initargs) as pool:
        futs = {pool.submit(fn, it): i for i, it in enumerate(items)}
        for f in cf.as_completed(futs):
            results[futs[f]] = f.result()
            if on_result:
                on_result(results[futs[f]])
    return results
