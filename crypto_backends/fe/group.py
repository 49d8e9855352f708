"""secp256k1 through ``coincurve``: the few group operations the ``fe`` scheme needs.

Points travel uncompressed, as the 64 bytes ``x || y`` (SEC 1's uncompressed
encoding without its ``04`` prefix, :data:`WIRE_BYTES`), so that the aggregator
checks a point with the curve equation instead of a square root (see
:mod:`.pointsum`).  Inside one process, the discrete-logarithm table keys points by
their 33-byte compressed encoding (:func:`encode`, :data:`POINT_BYTES`).  In both,
the identity, which SEC 1 cannot encode and coincurve cannot hold, is the reserved
all-zero string.  In memory a point is a :class:`coincurve.PublicKey`, or ``None``
for the identity.

:func:`base_block` hashes onto the curve (try-and-increment on SHA-512 with a
domain separator), used as a random oracle: nobody knows the discrete logarithm of
a point ``H_j`` to base ``G`` or to another ``H_j``.  Its running time depends on
``j`` only, which is public.  The points are cached per process in blocks, since
every round and every party uses the same ones.

The hot loops of :mod:`.kernels` call libsecp256k1 through coincurve's own cffi
binding (``coincurve._libsecp256k1``, pinned with coincurve 21) on preallocated
``secp256k1_pubkey`` structs, which saves creating a Python object per point
(about 15% of the cost of an encryption).  The caches below therefore hold raw
struct arrays (:func:`base_point` wraps one as a coincurve point).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from coincurve import PublicKey
from coincurve._libsecp256k1 import ffi as ffi  # re-exported for .kernels
from coincurve._libsecp256k1 import lib as lib
from coincurve.context import GLOBAL_CONTEXT

from ..errors import CryptoError, MalformedCiphertextError

#: Order of secp256k1's group (a 256-bit prime).
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
POINT_BYTES = 33  # compressed, in memory (the discrete-logarithm table)
IDENTITY = bytes(POINT_BYTES)
WIRE_BYTES = 64  # uncompressed x || y, in payloads
WIRE_IDENTITY = bytes(WIRE_BYTES)
_BASE_DST = b"securefl/fe/v1/base-point\x00"
BLOCK = 4096

_DIGIT = 12
CTX = GLOBAL_CONTEXT.ctx
COMPRESSED = lib.SECP256K1_EC_COMPRESSED
UNCOMPRESSED = lib.SECP256K1_EC_UNCOMPRESSED
STRUCT = ffi.sizeof("secp256k1_pubkey")

_blocks: dict[int, Any] = {}  # block number -> secp256k1_pubkey[BLOCK]
_wire_blocks: dict[int, bytes] = {}  # block number -> the same points as 64-byte x || y, concatenated
_small: list[Any] = []  # [lo, hi]: secp256k1_pubkey arrays of d * G and (h << _DIGIT) * G
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
    """``k * point`` for a *public* ``k`` (variable time; see :func:`secret_mul`)."""
    k %= ORDER
    if point is None or not k:
        return None
    return point.multiply(k.to_bytes(32, "big"))


def encode(point: PublicKey | None) -> bytes:
    """The 33-byte compressed encoding of ``point``; the identity (``None``) as :data:`IDENTITY`."""
    return IDENTITY if point is None else point.format(compressed=True)


def decode(data: bytes) -> PublicKey | None:
    """Parse one 33-byte point; :class:`MalformedCiphertextError` if it is not a point of the curve."""
    if len(data) != POINT_BYTES:
        raise MalformedCiphertextError(f"a point is {POINT_BYTES} bytes, got {len(data)}")
    if data == IDENTITY:
        return None
    if data[0] not in (2, 3):
        raise MalformedCiphertextError("not a compressed point (SEC 1 prefix 2 or 3)")
    try:
        return PublicKey(data)  # checks x < p and that x^3 + 7 is a square
    except ValueError:
        raise MalformedCiphertextError("not a point of secp256k1") from None


def to_wire(point: PublicKey | None) -> bytes:
    """The 64-byte payload encoding of ``point`` (``x || y``; zeros for the identity)."""
    return WIRE_IDENTITY if point is None else point.format(compressed=False)[1:]


def from_wire(data: bytes) -> PublicKey | None:
    """Parse one 64-byte payload point; :class:`MalformedCiphertextError` if it is not a point of the curve."""
    if len(data) != WIRE_BYTES:
        raise MalformedCiphertextError(f"a point is {WIRE_BYTES} bytes, got {len(data)}")
    if data == WIRE_IDENTITY:
        return None
    try:
        return PublicKey(b"\x04" + data)  # checks x, y < p and y^2 = x^3 + 7
    except ValueError:
        raise MalformedCiphertextError("not a point of secp256k1") from None


def small_table() -> tuple[Any, Any]:
    """``(lo, hi)``: ``lo[d] = d * G`` for ``0 < d < 2**12`` and ``hi[h + 2**12] = (h * 2**12) * G``
    for ``-2**12 <= h < 2**12, h != 0`` (raw structs; the zero entries are unused).

    Any ``|v| < 2**24`` is ``lo[v mod 2**12] + hi[(v >> 12) + 2**12]``: one more point
    in a combine costs about a microsecond, a fixed-base multiplication 12 us.
    """
    if not _small:
        size = 1 << _DIGIT
        lo, hi = ffi.new("secp256k1_pubkey[]", size), ffi.new("secp256k1_pubkey[]", 2 * size)
        for d in range(1, size):
            ffi.memmove(lo + d, base_mul(d).public_key, STRUCT)  # type: ignore[union-attr]
        for h in range(-size, size):
            if h:
                ffi.memmove(hi + h + size, base_mul(h << _DIGIT).public_key, STRUCT)  # type: ignore[union-attr]
        with _small_lock:
            if not _small:
                _small.extend([lo, hi])
    return _small[0], _small[1]


def _copy_xy(output: Any, x32: Any, y32: Any, data: Any) -> int:
    ffi.memmove(output, x32, 32)
    ffi.memmove(output + 32, y32, 32)
    return 1


# a module-level reference keeps the C callback alive for as long as libsecp256k1 may call it
_export_xy: Any = ffi.callback("int(unsigned char *, const unsigned char *, const unsigned char *, void *)")(_copy_xy)


def secret_mul(dest: Any, base: Any, k_bytes: bytes, scratch: Any) -> None:
    """``dest = k * base`` in constant time, for a secret ``k`` (raw structs).

    coincurve's ``PublicKey.multiply`` (libsecp256k1's ``pubkey_tweak_mul``) runs in
    time that depends on the scalar; ECDH's multiplication does not.  We let ECDH
    "hash" the shared point to its plain coordinates (``_export_xy``) and parse them
    back.  ``scratch`` is a 65-byte buffer whose first byte is 4.
    """
    # Our scalars are reduced mod ORDER and non-zero, and the bases are curve points, so
    # libsecp256k1 refuses only on a bug (or a zero key with probability 2**-256).
    if not lib.secp256k1_ecdh(CTX, scratch + 1, base, k_bytes, _export_xy, ffi.NULL):
        raise CryptoError("libsecp256k1 refused the scalar (zero or not below the group order)")
    if not lib.secp256k1_ec_pubkey_parse(CTX, dest, scratch, 65):
        raise CryptoError("libsecp256k1 returned a point it cannot parse back")


def new_scratch() -> Any:
    """A 65-byte uncompressed-point buffer (prefix 4) for the libsecp256k1 calls that take one."""
    scratch = ffi.new("unsigned char[65]")
    scratch[0] = 4
    return scratch


def _wrap(struct: Any) -> PublicKey:
    copy = ffi.new("secp256k1_pubkey *")
    ffi.memmove(copy, struct, STRUCT)
    return PublicKey(copy)


def _hash_to_curve(index: int) -> PublicKey:
    counter = 0
    while True:
        digest = hashlib.sha512(_BASE_DST + index.to_bytes(8, "big") + counter.to_bytes(4, "big")).digest()
        try:
            # The parity bit comes from the hash too, so H_j is uniform over the whole group.
            return PublicKey(bytes([2 | (digest[32] & 1)]) + digest[:32])
        except ValueError:  # about half of all x are not on the curve: try the next one
            counter += 1


def base_block(block: int) -> Any:
    """``H_j`` for ``j`` in ``block * 4096 .. block * 4096 + 4095`` as a raw struct array (cached)."""
    points = _blocks.get(block)
    if points is None:
        points = ffi.new("secp256k1_pubkey[]", BLOCK)
        for i in range(BLOCK):
            ffi.memmove(points + i, _hash_to_curve(block * BLOCK + i).public_key, STRUCT)
        with _blocks_lock:
            points = _blocks.setdefault(block, points)
    return points


def base_wire(start: int, stop: int) -> bytes:
    """``H_start .. H_{stop-1}`` as 64-byte ``x || y`` points, concatenated (blocks cached, like :func:`base_block`)."""
    parts = []
    for block in range(start // BLOCK, -(-stop // BLOCK)):
        data = _wire_blocks.get(block)
        if data is None:
            points, out, out_len = base_block(block), ffi.new("unsigned char[]", 65 * BLOCK), ffi.new("size_t *")
            for i in range(BLOCK):
                out_len[0] = 65
                lib.secp256k1_ec_pubkey_serialize(CTX, out + 65 * i, out_len, points + i, UNCOMPRESSED)
            raw = ffi.buffer(out)[:]
            data = b"".join(raw[65 * i + 1 : 65 * i + 65] for i in range(BLOCK))  # without each 04 prefix
            with _blocks_lock:
                data = _wire_blocks.setdefault(block, data)
        lo = max(start - block * BLOCK, 0)
        hi = min(stop - block * BLOCK, BLOCK)
        parts.append(data[WIRE_BYTES * lo : WIRE_BYTES * hi])
    return b"".join(parts)


def base_point(index: int) -> PublicKey:
    """``H_index`` as a coincurve point."""
    return _wrap(base_block(index // BLOCK) + index % BLOCK)
