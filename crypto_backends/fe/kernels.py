"""The per-coordinate loops of the ``fe`` scheme, as functions of bytes and integers.

They take and return only ``bytes`` and ``int`` so that :mod:`.parallel` can run
them in worker processes without pickling any key object.  Coordinates
``start .. start + count - 1`` use the base points ``H_start ..``.
"""

from __future__ import annotations

import numpy as np

from ..errors import MalformedCiphertextError
from . import group

_P = group.POINT_BYTES


def encrypt(k: int, start: int, values: bytes) -> bytes:
    """``v_j * G + k * H_j`` for the int64 (little-endian) values ``v``, as 33-byte points."""
    v = np.frombuffer(values, dtype="<i8").tolist()
    k_bytes = group.scalar_bytes(k)
    out = bytearray(_P * len(v))
    for j, (h, vj) in enumerate(zip(group.base_points(start, len(v)), v)):
        pad = h.multiply(k_bytes)
        point = group.add([pad, *group.small_mul(vj)]) if vj else pad
        out[_P * j : _P * j + _P] = group.encode(point)
    return bytes(out)


def add_updates(payloads: list[bytes], parties: list[str], start: int) -> bytes:
    """Coordinate-wise sum of several parties' points."""
    count = len(payloads[0]) // _P
    out = bytearray(_P * count)
    for j in range(count):
        lo = _P * j
        points = []
        for payload, party in zip(payloads, parties):
            try:
                points.append(group.decode(payload[lo : lo + _P]))
            except ValueError:
                raise MalformedCiphertextError(
                    f"the update of party {party!r} holds no curve point at position {start + j}: "
                    "the bytes were altered in transit or do not come from the fe scheme"
                ) from None
        out[lo : lo + _P] = group.encode(group.add(points))
    return bytes(out)


def unmask(neg_key: int, start: int, aggregate: bytes) -> bytes:
    """``A_j - dk * H_j`` for aggregate points ``A_j`` (``neg_key = -dk mod ORDER``)."""
    count = len(aggregate) // _P
    out = bytearray(_P * count)
    k_bytes = group.scalar_bytes(neg_key)
    for j, h in enumerate(group.base_points(start, count)):
        lo = _P * j
        try:
            a = group.decode(aggregate[lo : lo + _P])
        except ValueError:
            raise MalformedCiphertextError(
                f"the aggregate holds no curve point at position {start + j}: the bytes were altered"
            ) from None
        out[lo : lo + _P] = group.encode(group.add([a, h.multiply(k_bytes)]))
    return bytes(out)
