"""Executors that map a unit function over items: ``debug`` (in-process) and ``local`` (one process per core)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from typing import Any, Callable, Sequence

EXECUTORS = ("local", "debug")


def default_workers() -> int:
    """One worker per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def map_units(fn: Callable[..., Any], items: Sequence[Any], executor: str = "local", workers: int | None = None,
              on_result: Callable[[Any], None] | None = None) -> list[Any]:
    """Apply ``fn`` to every item; results come back in item order.

    ``fn`` must catch its own expected failures (units return a status); an exception that escapes is
    re-raised here, since it means a bug rather than bad input.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    workers = workers or default_workers()
    if executor == "debug" or workers == 1 or len(items) <= 1:
        out = []
        for it in items:
            out.append(fn(it))
            if on_result:
                on_result(out[-1])
        return out
    results: list[Any] = [None] * len(items)
    ctx = mp.get_context("spawn")  # no fork after threads (MediaPipe, torch) were started
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx) as pool:
        futs = {pool.submit(fn, it): i for i, it in enumerate(items)}
        for f in cf.as_completed(futs):
            results[futs[f]] = f.result()
            if on_result:
                on_result(results[futs[f]])
    return results
