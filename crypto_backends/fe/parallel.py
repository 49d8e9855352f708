"""Run a kernel over coordinate chunks, in worker processes when that pays.

coincurve holds the GIL, so threads do not help; processes do.  Jobs carry only
``bytes`` and ``int`` (see :mod:`.kernels`), never key objects.  The pool is
started lazily with the ``forkserver`` method (safe in a process that already runs
threads), kept for the life of the process, and shut down at exit.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: Below this many coordinates a pool costs more than it saves.
MIN_PARALLEL = 8192

_pools: dict[int, ProcessPoolExecutor] = {}
_lock = threading.Lock()


def worker_count(requested: int) -> int:
    """``requested`` workers, or one per CPU when ``requested`` is 0."""
    return requested if requested > 0 else max(1, os.cpu_count() or 1)


def spans(length: int, workers: int) -> list[tuple[int, int]]:
    """``(start, stop)`` chunks covering ``range(length)``; one chunk when not worth splitting."""
    if workers <= 1 or length < MIN_PARALLEL:
        return [(0, length)]
    bounds = [length * i // workers for i in range(workers + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def run(kernel: Callable[..., bytes], jobs: Sequence[tuple[Any, ...]], workers: int) -> list[bytes]:
    """``[kernel(*job) for job in jobs]``, spread over ``workers`` processes if more than one job."""
    if len(jobs) <= 1 or workers <= 1:
        return [kernel(*job) for job in jobs]
    return list(_pool(workers).map(kernel, *zip(*jobs)))


def _pool(workers: int) -> ProcessPoolExecutor:
    with _lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
            _pools[workers] = pool
        return pool


@atexit.register
def _shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=False, cancel_futures=True)
