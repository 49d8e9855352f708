"""Issue 21 item 3: drive the raw C entry ``_pointsum.add(inputs, start, stop)`` with hostile sizes, in this process.

Run by ``tests/crypto_backends/test_fe_pointsum.py`` in a subprocess (a segfault then fails a test instead of
killing pytest), or by hand::

    PYTHONPATH=. python3 -m tests.audit.pointsum_fuzz --crash          # pointsum.add(32 KiB, ['a'], 2**58 + 1, 1)
    PYTHONPATH=. python3 -m tests.audit.pointsum_fuzz --cases 5000     # random cases; prints one line per case

Cases come from :func:`cases` (a seed picks them, so the parent can compute what each must give); each line
printed is ``index outcome``, flushed before the next case starts, so the last line names a case that crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from crypto_backends.fe import group, pointsum

W = group.WIRE_BYTES
POOL = 600  # points in the shared blob
MAX_POINTS = sys.maxsize // W
#: start / stop values near every limit the kernel computes with
EDGES = (0, 1, 2, 511, 512, 513, POOL - 1, POOL, POOL + 1, 2**57 - 1, 2**57, 2**57 + 1, 2**58 + 1,
         MAX_POINTS - 1, MAX_POINTS, MAX_POINTS + 1, 2**62, 2**63 - 1, -1, -2, -(2**57), -(2**63))


def blob() -> bytes:
    """``POOL`` points: multiples of G, with the identity (zeros) and repeats among them (doublings, P + -P)."""
    points = []
    for j in range(POOL):
        k = 0 if j % 97 == 5 else (j * 7919 + 1) % 1000 - 500
        points.append(group.to_wire(group.base_mul(k)) if k else group.WIRE_IDENTITY)
    return b"".join(points)


@dataclass(frozen=True)
class Case:
    """Inputs as (offset in points, length in bytes) views of one blob (they overlap), and the span."""

    inputs: tuple[tuple[int, int], ...]
    start: int
    stop: int


def cases(count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)  # public test sizes, not secrets
    for i in range(count):
        n = rng.choice([0, 1, 1, 2, 3, 5, 8])
        inputs = []
        for _ in range(n):
            offset = rng.randrange(0, POOL)
            most = (POOL - offset) * W
            length = rng.choice([0, 1, W - 1, W, W + 1, most, most - 1, rng.randrange(0, most + 1)])
            inputs.append((offset, min(length, most)))
        pick = (lambda: rng.choice(EDGES)) if i % 3 == 0 else (lambda: rng.randrange(-3, POOL + 3))
        start, stop = pick(), pick()
        if i % 4 == 1 and start > stop:  # mostly ordered, some reversed
            start, stop = stop, start
        yield Case(tuple(inputs), start, stop)


def run(case: Case, data: bytes) -> str:
    from crypto_backends.fe import _pointsum  # type: ignore[attr-defined]

    view = memoryview(data)
    inputs = [view[W * off : W * off + length] for off, length in case.inputs]
    try:
        out, bad, where = _pointsum.add(inputs, case.start, case.stop)
    except (ValueError, OverflowError) as exc:
        return f"refused {type(exc).__name__}"
    return f"sum {hashlib.sha256(out).hexdigest()[:16]} {bad} {where}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash", action="store_true", help="the issue's call: pointsum.add with stop = 2**58 + 1")
    parser.add_argument("--small-stack", action="store_true", help="sum on a thread with a 64 KiB stack")
    args = parser.parse_args(argv)
    if args.crash:
        try:
            pointsum.add([bytes(32 * 1024)], ["a"], 2**58 + 1, 1)
        except ValueError as exc:
            print(f"refused {type(exc).__name__}: {exc}")
        return 0
    if args.small_stack:
        threading.stack_size(64 * 1024)
        data = blob()
        result: list[bytes] = []
        thread = threading.Thread(target=lambda: result.append(pointsum.add([data, data], ["a", "b"], POOL, 1)))
        thread.start()
        thread.join()
        print("summed", len(result[0]))
        return 0
    data = blob()
    for i, case in enumerate(cases(args.cases, args.seed)):
        print(i, run(case, data), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
