"""Coordinate-wise sums of payload points: what the ``fe`` aggregator spends its time on.

Combining ``m`` parties' updates of length ``L`` is ``m * L`` point additions.  The
C kernel ``_pointsum`` (built with the package when a C compiler is present; see
``crypto_backends/fe/_pointsum.c``) checks each 64-byte point against the curve
equation and adds it in affine coordinates, sharing one field inversion among a
block of coordinates (Montgomery's simultaneous inversion): about 0.25-0.35 us per
point here; through libsecp256k1's public API a 64-byte point costs about 6x that,
and a 33-byte compressed one (a square root to decompress) about 24x.  It releases
the GIL, so coordinate ranges run on threads: no payload is copied to another process.

Without the C kernel (an install without a compiler), :func:`add` falls back to
:func:`.kernels.add_updates` (libsecp256k1's ``pubkey_combine`` through coincurve,
in worker processes), which gives the same bytes; :func:`native` says which one runs.

Promised either way: every point is checked before it is used, and a bad one is
a :class:`MalformedCiphertextError` naming its sender and position, with nothing
returned; every size is checked before it is used (here and again in the C entry,
which compares sizes by quotient and never multiplies one it was not given bounded),
so a length beyond :data:`MAX_POINTS` or a short payload is a typed error, not a
crash.  The kernel's working set (about 106 KB per call) is on the heap, so any
thread stack will do.  Not promised: constant time (inputs are public ciphertexts).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import numbers
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import TypeVar

from ..errors import InvalidInputError, MalformedCiphertextError
from . import kernels, parallel
from .group import POINT_BYTES, WIRE_BYTES


def _load() -> ModuleType | None:
    try:
        return importlib.import_module("._pointsum", __package__)
    except ImportError:  # built without a C compiler: the coincurve path below
        return None


T = TypeVar("T")
_native = _load()
log = logging.getLogger(__name__)
_warned = False

#: Below this many coordinates a second thread costs more than it saves.
MIN_THREADED = 4096
#: The most points a payload may hold: ``length * WIRE_BYTES`` must fit a ``Py_ssize_t`` (the C kernel's limit too).
MAX_POINTS = sys.maxsize // WIRE_BYTES


def native() -> bool:
    """Whether the C kernel is built (otherwise sums go through coincurve, about 6x slower)."""
    return _native is not None


def kernel() -> ModuleType | None:
    """The C kernel module, or None when it is not built."""
    return _native


def threaded(run: Callable[[tuple[int, int]], T], length: int, workers: int) -> list[T]:
    """``[run(span) for span in spans]`` over ``workers`` threads (0: one per CPU), the spans covering
    ``range(length)`` in order; one span below :data:`MIN_THREADED` coordinates.  For kernels that release the GIL."""
    threads = parallel.worker_count(workers) if length >= MIN_THREADED else 1
    bounds = [length * i // threads for i in range(threads + 1)]
    spans = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    if len(spans) <= 1:
        return [run(span) for span in spans]
    with ThreadPoolExecutor(max_workers=len(spans)) as pool:
        return list(pool.map(run, spans))


def add(payloads: Sequence[bytes | memoryview], labels: Sequence[str], length: int, workers: int,
        *, compressed: bool = False) -> bytes:
    """The coordinate-wise sum of ``payloads`` (``length`` points each), as one payload.

    ``labels`` name the payloads' senders in errors; ``workers`` threads (0: one per CPU).
    ``compressed``: 33-byte points, summed through coincurve (the C kernel reads 64-byte ones).
    Every size is checked before it is used: ``0 <= length <= MAX_POINTS``, one label per payload, at least one
    payload, and each holding ``length`` points (:class:`InvalidInputError`, or :class:`MalformedCiphertextError`
    naming the short payload's sender).
    """
    size = POINT_BYTES if compressed else WIRE_BYTES
    _check_sizes(payloads, labels, length, workers, size)
    if not length:
        return b""
    if compressed or _native is None:
        if not compressed:
            _warn_once()
        jobs = [
            ([bytes(p[size * a : size * b]) for p in payloads], list(labels), a, compressed)  # picklable
            for a, b in parallel.spans(length, workers)
        ]
        return b"".join(parallel.run(kernels.add_updates, jobs, workers))
    module = _native
    inputs = list(payloads)

    def run(span: tuple[int, int]) -> tuple[bytes, int, int]:
        out: tuple[bytes, int, int] = module.add(inputs, span[0], span[1])
        return out

    results = threaded(run, length, workers)
    bad = [(sender, where) for _, sender, where in results if sender >= 0]
    if bad:
        sender, where = min(bad, key=lambda b: b[1])
        raise MalformedCiphertextError(
            f"the update of party {labels[sender]!r} holds no curve point at position {where}: the bytes were "
            "altered in transit or do not come from the fe scheme"
        )
    return b"".join(out for out, _, _ in results)


def _check_sizes(payloads: Sequence[bytes | memoryview], labels: Sequence[str], length: object, workers: object,
                 size: int) -> None:
    for name, value, top in (("length", length, MAX_POINTS), ("workers", workers, 1 << 16)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) <= top:
            raise InvalidInputError(f"point sums need an integer {name} in [0, {top}], got {value!r}")
    if not payloads:
        raise InvalidInputError("a point sum needs at least one payload")
    if len(labels) != len(payloads):
        raise InvalidInputError(f"{len(payloads)} payloads but {len(labels)} labels: one label names each sender")
    points = int(length)  # type: ignore[call-overload]
    for label, payload in zip(labels, payloads, strict=True):
        held = memoryview(payload).nbytes
        if held // size < points:  # divided, never multiplied: no product of the caller's sizes
            raise MalformedCiphertextError(
                f"the update of party {label!r} holds {held} bytes, fewer than {points} points of {size} bytes"
            )


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "fe's point-sum kernel (crypto_backends/fe/_pointsum.c) is not built, so the aggregator sums points "
            "through coincurve, about 6x slower: reinstall securefl where a C compiler (gcc or clang) is present"
        )


__all__ = ["MAX_POINTS", "MIN_THREADED", "add", "kernel", "native", "threaded"]
