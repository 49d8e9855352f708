"""The ``ckks`` payload: explicit framing of TenSEAL ciphertext chunks.

A vector of ``length`` values travels as ``ceil(length / slots)`` ciphertexts
(``slots = N/2``); the last one holds the remainder only.  Byte format::

    chunk count          4 bytes, big-endian unsigned
    then, per chunk:
      length             4 bytes, big-endian unsigned
      crc32              4 bytes, big-endian (zlib.crc32 of the chunk bytes)
      ciphertext         TenSEAL ``CKKSVector.serialize()`` (protobuf around SEAL's format)

The CRC catches accidental corruption that SEAL's own validity checks let
through (a flipped low bit of a coefficient still decodes); it is not a MAC and
is no defence against a malicious sender, who can encrypt anything anyway.

Every TenSEAL exception is turned into a typed error here, so nothing above
this module sees ``ValueError``/``RuntimeError`` from the C++ layer.

Streaming: encryption walks the input in views (only one chunk's weighted copy
exists at a time) and serializes each ciphertext at once; combining walks chunk
by chunk across all uploads, so one accumulator ciphertext is alive at a time.
Parsing returns memoryviews into the payload; TenSEAL only accepts ``bytes``, so
each chunk is copied once, on its own, when it is loaded.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import tenseal as ts

from ..errors import CryptoError, MalformedCiphertextError, MismatchError

_U32 = struct.Struct(">I")
_CHUNK_HEAD = struct.Struct(">II")
TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, IndexError, OverflowError)


def chunk_count(length: int, slots: int) -> int:
    """How many ciphertexts a ``length``-value vector needs at ``slots`` values each (rounded up)."""
    return -(-length // slots)


def chunk_bounds(length: int, slots: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of every chunk of a ``length``-value vector."""
    for start in range(0, length, slots):
        yield start, min(start + slots, length)


def encrypt_chunks(ctx: ts.Context, x: np.ndarray, *, weight: float, clip: float, slots: int) -> tuple[bytes, int]:
    """Clip, weight, encrypt and frame ``x``; returns the payload and how many values were clipped."""
    blobs: list[bytes] = []
    clipped = 0
    buf = np.empty(min(slots, x.size))
    try:
        for start, stop in chunk_bounds(x.size, slots):
            part = buf[: stop - start]
            np.clip(x[start:stop], -clip, clip, out=part)
            clipped += int(np.count_nonzero(part != x[start:stop]))
            part *= weight
            blobs.append(ts.ckks_vector(ctx, part).serialize())
    except TENSEAL_ERRORS as exc:
        raise CryptoError(f"TenSEAL could not encrypt the update: {exc}") from None
    return frame(blobs), clipped


def frame(blobs: Sequence[bytes]) -> bytes:
    """The payload holding already serialized chunks ``blobs``."""
    parts: list[bytes] = [_U32.pack(len(blobs))]
    for blob in blobs:
        parts.append(_CHUNK_HEAD.pack(len(blob), zlib.crc32(blob)))
        parts.append(blob)
    return b"".join(parts)


def split(payload: bytes | bytearray | memoryview, expected_chunks: int) -> list[memoryview]:
    """Check the framing of ``payload`` and return a view of each chunk's bytes."""
    view = memoryview(payload).cast("B")
    if len(view) < _U32.size:
        raise MalformedCiphertextError("ckks payload truncated before its chunk count")
    (count,) = _U32.unpack_from(view, 0)
    if count != expected_chunks:
        raise MismatchError(
            "length", f"ckks payload holds {count} ciphertext chunk(s), expected {expected_chunks} for the "
            "announced vector length: the sender used other parameters (poly_modulus_degree) or a "
            "corrupted message"
        )
    chunks, pos = [], _U32.size
    for i in range(count):
        if pos + _CHUNK_HEAD.size > len(view):
            raise MalformedCiphertextError(f"ckks payload truncated at chunk {i} of {count}")
        size, crc = _CHUNK_HEAD.unpack_from(view, pos)
        pos += _CHUNK_HEAD.size
        if pos + size > len(view):
            raise MalformedCiphertextError(f"ckks payload truncated inside chunk {i} of {count}")
        chunk = view[pos : pos + size]
        if zlib.crc32(chunk) != crc:
            raise MalformedCiphertextError(f"ckks chunk {i} is garbled (checksum mismatch): resend the update")
        chunks.append(chunk)
        pos += size
    if pos != len(view):
        raise MalformedCiphertextError(f"ckks payload has {len(view) - pos} trailing byte(s) after its chunks")
    return chunks


def load(ctx: ts.Context, chunk: memoryview, *, index: int, size: int) -> ts.CKKSVector:
    """Deserialize chunk ``index`` under ``ctx`` and check it holds ``size`` values."""
    try:
        vec = ts.ckks_vector_from(ctx, bytes(chunk))
        got = vec.size()
    except TENSEAL_ERRORS:
        raise MalformedCiphertextError(
            f"ckks chunk {index} is not a valid ciphertext for this key set's CKKS parameters: it was "
            "garbled, or made under another context (another N, primes or key set)"
        ) from None
    if got != size:
        raise MismatchError("length", f"ckks chunk {index} holds {got} values, expected {size}")
    return vec


def add_into(acc: ts.CKKSVector, other: ts.CKKSVector, *, index: int) -> None:
    """``acc += other``, with TenSEAL's refusals (scale or level mismatch) as typed errors."""
    try:
        acc.add_(other)
    except TENSEAL_ERRORS:
        raise MalformedCiphertextError(
            f"ckks chunk {index} cannot be added to the others (another scale or level): it was made "
            "under other CKKS parameters"
        ) from None
