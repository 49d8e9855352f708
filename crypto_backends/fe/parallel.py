"""Run a kernel over coordinate chunks, in worker processes when that pays.

coincurve holds the GIL, so threads do not help; processes do.  Jobs carry only
``bytes`` and ``int`` (see :mod:`.kernels`), never key objects.  The calling
process works on the first chunk itself while ``workers - 1`` pool processes take
the others.  The pool is started lazily with ``fork`` (children inherit the warm
caches of base points and tables, and no ``__main__`` is re-imported), kept for
the life of the process, and shut down at exit; the module's locks are renewed in
a forked child so that a lock held by another thread at fork time cannot hang it.
"""

from __future__ import annotations

import atexit
import itertools
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
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def run(kernel: Callable[..., bytes], jobs: Sequence[tuple[Any, ...]], workers: int) -> list[bytes]:
    """``[kernel(*job) for job in jobs]``; all but the first job go to pool processes."""
    if len(jobs) <= 1 or workers <= 1:
        return [kernel(*job) for job in jobs]
    pool = _pool(workers - 1)
    futures = [pool.submit(kernel, *job) for job in jobs[1:]]
    try:
        first = kernel(*jobs[0])
    finally:
        rest = [f.result() for f in futures]
    return [first, *rest]


def _pool(size: int) -> ProcessPoolExecutor:
    with _lock:
        pool = _pools.get(size)
        if pool is None:
            pool = ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("fork"))
            _pools[size] = pool
        return pool


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _pools.clear()  # the parent's pools are not ours to use


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=False, cancel_futures=True)
