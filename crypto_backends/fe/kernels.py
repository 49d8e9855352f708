"""The per-coordinate loops of the ``fe`` scheme, as functions of bytes and integers.

They take and return only ``bytes`` and ``int`` so that :mod:`.parallel` can run
them in worker processes without pickling any key object.  Coordinates
``start .. start + count - 1`` use the base points ``H_start ..``.  They call
libsecp256k1 directly on preallocated structs (see :mod:`.group`): a point is
parsed, multiplied, summed and serialised without a Python object of its own.
Payload points are 64-byte ``x || y`` (:data:`.group.WIRE_BYTES`), or 33-byte
compressed ones when ``compressed`` is true (``[crypto.fe] points = "compressed"``);
:func:`unmask` hands out compressed ones either way, or 64-byte ones when asked.
:func:`add_updates` sums compressed payloads, and 64-byte ones when the C kernel of
:mod:`.pointsum` is not built (it is that kernel's reference in the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MalformedCiphertextError
from . import group
from .group import BLOCK, COMPRESSED, CTX, IDENTITY, STRUCT, UNCOMPRESSED, WIRE_IDENTITY, ffi, lib

_P = group.POINT_BYTES  # compressed (what unmask emits)
_W = group.WIRE_BYTES  # uncompressed x || y (payloads)
_SMALL = 1 << 24  # |v| below this: v * G from two table entries
_DIGIT_MASK = (1 << 12) - 1


class _Scratch:
    """Preallocated structs and output buffer for one kernel call."""

    def __init__(self, slots: int, count: int, *, wire: bool) -> None:
        self.points = ffi.new("secp256k1_pubkey[]", slots)
        self.ptrs = ffi.new("secp256k1_pubkey *[]", [self.points + i for i in range(slots)])
        self.sum = ffi.new("secp256k1_pubkey *")
        self.wire = wire
        self.out = ffi.new("unsigned char[]", (_W if wire else _P) * count)
        self.out_len = ffi.new("size_t *")
        self.coords = group.new_scratch()
        self.serialised = ffi.new("unsigned char[65]")

    def emit(self, j: int, used: int) -> None:
        """Write the sum of the first ``used`` slots as point number ``j`` (zeros for the identity)."""
        if not (used and lib.secp256k1_ec_pubkey_combine(CTX, self.sum, self.ptrs, used)):
            return  # the out buffer already holds zeros, the identity's encoding
        if self.wire:  # SEC 1 uncompressed, then drop its 04 prefix
            self.out_len[0] = 65
            lib.secp256k1_ec_pubkey_serialize(CTX, self.serialised, self.out_len, self.sum, UNCOMPRESSED)
            ffi.memmove(self.out + _W * j, self.serialised + 1, _W)
        else:
            self.out_len[0] = _P
            lib.secp256k1_ec_pubkey_serialize(CTX, self.out + _P * j, self.out_len, self.sum, COMPRESSED)

    def result(self) -> bytes:
        data: bytes = ffi.buffer(self.out)[:]
        return data


def _base(j: int) -> Any:
    return group.base_block(j // BLOCK) + j % BLOCK


def encrypt(k: int, start: int, values: bytes, compressed: bool = False) -> bytes:
    """``v_j * G + k * H_j`` for the int64 (little-endian) values ``v``, as payload points."""
    v = np.frombuffer(values, dtype="<i8").tolist()
    k_bytes = group.scalar_bytes(k)
    lo, hi = group.small_table()
    s = _Scratch(3, len(v), wire=not compressed)
    points, memmove, secret_mul, coords = s.points, ffi.memmove, group.secret_mul, s.coords
    for j, vj in enumerate(v):
        secret_mul(points, _base(start + j), k_bytes, coords)
        used = 1
        if -_SMALL <= vj < _SMALL:
            if vj & _DIGIT_MASK:
                memmove(points + used, lo + (vj & _DIGIT_MASK), STRUCT)
                used += 1
            if vj >> 12:
                memmove(points + used, hi + ((vj >> 12) + 4096), STRUCT)
                used += 1
        else:
            lib.secp256k1_ec_pubkey_create(CTX, points + used, group.scalar_bytes(vj))
            used += 1
        s.emit(j, used)
    return s.result()


def _parse(data: Any, offset: int, raw: bytes, into: Any, scratch: Any, compressed: bool) -> bool:
    """Parse the point at ``offset`` (64 bytes, or 33 if ``compressed``) into ``into``; False for the identity.

    ``scratch`` is a 65-byte buffer whose first byte is 4 (SEC 1's uncompressed prefix).
    Raises a bare :class:`MalformedCiphertextError`: the callers know which party and
    position it is, and raise the one the user sees.
    """
    if compressed:
        if raw[offset] == 0:
            if raw[offset : offset + _P] != IDENTITY:
                raise MalformedCiphertextError("not a point")
            return False
        # checks the prefix, x < p and that x^3 + 7 is a square (a square root: the slow part)
        if raw[offset] not in (2, 3) or not lib.secp256k1_ec_pubkey_parse(CTX, into, data + offset, _P):
            raise MalformedCiphertextError("not a point")
        return True
    if raw[offset : offset + _W] == WIRE_IDENTITY:
        return False
    ffi.memmove(scratch + 1, data + offset, _W)
    if not lib.secp256k1_ec_pubkey_parse(CTX, into, scratch, 65):  # checks x, y < p and the curve equation
        raise MalformedCiphertextError("not a point")
    return True


def add_updates(payloads: list[bytes], parties: list[str], start: int, compressed: bool = False) -> bytes:
    """Coordinate-wise sum of several parties' points (libsecp256k1's combine, per coordinate), same encoding."""
    size = _P if compressed else _W
    count = len(payloads[0]) // size
    views = [ffi.from_buffer("unsigned char[]", p) for p in payloads]
    s = _Scratch(len(payloads), count, wire=not compressed)
    for j in range(count):
        used = 0
        for view, raw, party in zip(views, payloads, parties, strict=True):
            try:
                used += _parse(view, size * j, raw, s.points + used, s.coords, compressed)
            except MalformedCiphertextError:
                raise MalformedCiphertextError(
                    f"the update of party {party!r} holds no curve point at position {start + j}: "
                    "the bytes were altered in transit or do not come from the fe scheme"
                ) from None
        s.emit(j, used)
    return s.result()


def unmask(neg_key: int, start: int, aggregate: bytes, compressed: bool = False, wire: bool = False) -> bytes:
    """``A_j - dk * H_j`` for aggregate points ``A_j`` (``neg_key = -dk mod ORDER``), as compressed points
    (64-byte payload points if ``wire``).  Constant time in ``neg_key`` (:func:`.group.secret_mul`): the
    reference of :func:`.vartime.unmask`, and its fallback without the C kernel."""
    size = _P if compressed else _W
    count = len(aggregate) // size
    view = ffi.from_buffer("unsigned char[]", aggregate)
    k_bytes = group.scalar_bytes(neg_key)
    s = _Scratch(2, count, wire=wire)
    parse_scratch = group.new_scratch()
    for j in range(count):
        group.secret_mul(s.points, _base(start + j), k_bytes, s.coords)
        try:
            used = 1 + _parse(view, size * j, aggregate, s.points + 1, parse_scratch, compressed)
        except MalformedCiphertextError:
            raise MalformedCiphertextError(
                f"the aggregate holds no curve point at position {start + j}: the bytes were altered"
            ) from None
        s.emit(j, used)
    return s.result()
