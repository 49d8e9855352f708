"""secp256k1 through ``coincurve``: the few group operations the ``fe`` scheme needs.

Points travel as 33-byte compressed encodings (SEC 1); the identity, which SEC 1
cannot compress and coincurve cannot hold, is the reserved all-zero string
:data:`IDENTITY`.  In memory a point is a :class:`coincurve.PublicKey`, or ``None``
for the identity.

:func:`base_points` hashes onto the curve (try-and-increment on SHA-512 with a
domain separator), used as a random oracle: nobody knows the discrete logarithm of
a point ``H_j`` to base ``G`` or to another ``H_j``.  Its running time depends on
``j`` only, which is public.  The points are cached per process in blocks, since
every round and every party uses the same ones.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence

from coincurve import PublicKey

#: Order of secp256k1's group (a 256-bit prime).
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
POINT_BYTES = 33
IDENTITY = bytes(POINT_BYTES)
_BASE_DST = b"securefl/fe/v1/base-point\x00"
_BLOCK = 4096

_DIGIT = 12

_blocks: dict[int, list[PublicKey]] = {}
_small: list[list[PublicKey | None]] = []
_blocks_lock = threading.Lock()
_small_lock = threading.Lock()


def _renew_locks() -> None:
    # A lock held by another thread at fork time would stay held in the child forever.
    global _blocks_lock, _small_lock
    _blocks_lock, _small_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_renew_locks)


def scalar_bytes(k: int) -> bytes:
    """``k mod ORDER`` as 32 big-endian bytes (the caller makes sure it is not zero)."""
    return (k % ORDER).to_bytes(32, "big")


def base_mul(k: int) -> PublicKey | None:
    """``k * G`` (fixed-base, libsecp256k1's precomputed tables)."""
    k %= ORDER
    return PublicKey.from_secret(k.to_bytes(32, "big")) if k else None


def add(points: Sequence[PublicKey | None]) -> PublicKey | None:
    """Sum of points; ``None`` stands for the identity both ways."""
    present = [p for p in points if p is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    try:
        return PublicKey.combine_keys(present)
    except ValueError:  # libsecp256k1 refuses to return the point at infinity
        return None


def mul(point: PublicKey | None, k: int) -> PublicKey | None:
    """``k * point`` (variable base, constant time in libsecp256k1)."""
    k %= ORDER
    if point is None or not k:
        return None
    return point.multiply(k.to_bytes(32, "big"))


def encode(point: PublicKey | None) -> bytes:
    return IDENTITY if point is None else point.format(compressed=True)


def decode(data: bytes) -> PublicKey | None:
    """Parse one 33-byte point; :class:`ValueError` if it is not a point of the curve."""
    if len(data) != POINT_BYTES:
        raise ValueError("a point is 33 bytes")
    if data == IDENTITY:
        return None
    if data[0] not in (2, 3):
        raise ValueError("not a compressed point")
    return PublicKey(data)  # checks x < p and that x^3 + 7 is a square


def small_mul(v: int) -> list[PublicKey]:
    """Points summing to ``v * G``: two table entries for ``|v| < 2**24``, else one multiplication.

    A table lookup plus one more point in the caller's ``combine_keys`` costs about a
    microsecond, against 14 us for libsecp256k1's fixed-base multiplication.
    """
    if not -(1 << (2 * _DIGIT)) <= v < 1 << (2 * _DIGIT):
        point = base_mul(v)
        return [point] if point is not None else []
    if not _small:
        _build_small()
    lo_table, hi_table = _small
    lo, hi = lo_table[v & ((1 << _DIGIT) - 1)], hi_table[(v >> _DIGIT) + (1 << _DIGIT)]
    return [p for p in (lo, hi) if p is not None]


def _build_small() -> None:
    size = 1 << _DIGIT
    lo = [base_mul(d) for d in range(size)]
    hi = [base_mul(h << _DIGIT) for h in range(-size, size)]
    with _small_lock:
        if not _small:
            _small.extend([lo, hi])


def _hash_to_curve(index: int) -> PublicKey:
    counter = 0
    while True:
        digest = hashlib.sha512(_BASE_DST + index.to_bytes(8, "big") + counter.to_bytes(4, "big")).digest()
        try:
            # The parity bit comes from the hash too, so H_j is uniform over the whole group.
            return PublicKey(bytes([2 | (digest[32] & 1)]) + digest[:32])
        except ValueError:  # about half of all x are not on the curve: try the next one
            counter += 1


def base_points(start: int, count: int) -> list[PublicKey]:
    """``[H_start, ..., H_{start+count-1}]``, computed once per process and cached."""
    out: list[PublicKey] = []
    for block in range(start // _BLOCK, (start + count + _BLOCK - 1) // _BLOCK if count else 0):
        points = _blocks.get(block)
        if points is None:
            points = [_hash_to_curve(block * _BLOCK + i) for i in range(_BLOCK)]
            with _blocks_lock:
                points = _blocks.setdefault(block, points)
        lo = max(start, block * _BLOCK) - block * _BLOCK
        hi = min(start + count, (block + 1) * _BLOCK) - block * _BLOCK
        out.extend(points[lo:hi])
    return out
