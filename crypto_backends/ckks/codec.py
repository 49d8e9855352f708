"""The ``ckks`` payload: explicit framing of SEAL ciphertext chunks, seeded on the way up.

A vector of ``length`` values travels as ``ceil(length / slots)`` ciphertexts
(``slots = N/2``); the last one holds the remainder, zero-padded.  Byte format::

    chunk count          4 bytes, big-endian unsigned
    then, per chunk:
      length             4 bytes, big-endian unsigned
      crc32              4 bytes, big-endian (zlib.crc32 of the chunk bytes)
      ciphertext         SEAL ``Ciphertext::save`` format (zstd-compressed by SEAL)

Why SEAL's own API (``tenseal.sealapi``) and not TenSEAL's ``CKKSVector``: a
party's fresh *symmetric* ciphertext ``(c0, c1)`` has a uniformly random ``c1``,
which SEAL serializes as the 64-byte seed it was expanded from.  An upload then
costs one polynomial instead of two: about 16 bytes per value per data prime
(see :mod:`.params`), which is what lets the default carry two data primes (the
headroom for the weights) at the bytes per value of one.  TenSEAL's
``serialize()`` always writes both polynomials.  The aggregate is a sum, no
longer seed-derived, so it travels in full (two polynomials).

The CRC catches accidental corruption that SEAL's own validity checks let
through (a flipped low bit of a coefficient still decodes); it is not a MAC and
is no defence against a malicious sender, who can encrypt anything anyway.

Every SEAL exception is turned into a typed error here, so nothing above this
module sees ``ValueError``/``RuntimeError`` from the C++ layer.

SEAL's Python bindings save and load through a file path only: each
(process, thread) uses one scratch file in a private directory (in ``/dev/shm``
when it exists, so in memory), removed at exit.  It holds ciphertexts only,
never key material.

Streaming: encryption walks the input in views (only one chunk's weighted copy
exists at a time) and serializes each ciphertext at once; combining walks chunk
by chunk across all uploads, so one accumulator ciphertext is alive at a time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import tenseal as ts
import tenseal.sealapi as seal

from ..errors import CryptoError, MalformedCiphertextError, MismatchError

_U32 = struct.Struct(">I")
_CHUNK_HEAD = struct.Struct(">II")
TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, IndexError, OverflowError)


class SealTools:
    """SEAL's encoder, evaluator and (with the secret key) encryptor and decryptor for one TenSEAL context."""

    def __init__(self, ctx: ts.Context, scale: float) -> None:
        self.context = ctx.seal_context().data
        self.scale = scale
        self.encoder = seal.CKKSEncoder(self.context)
        self.evaluator = seal.Evaluator(self.context)
        self.data_parms = self.context.first_parms_id()
        self.encryptor: seal.Encryptor | None = None
        self.decryptor: seal.Decryptor | None = None
        if ctx.is_private():
            secret = ctx.secret_key().data
            self.encryptor = seal.Encryptor(self.context, secret)
            self.decryptor = seal.Decryptor(self.context, secret)


def chunk_count(length: int, slots: int) -> int:
    """How many ciphertexts a ``length``-value vector needs at ``slots`` values each (rounded up)."""
    return -(-length // slots)


def chunk_bounds(length: int, slots: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of every chunk of a ``length``-value vector."""
    for start in range(0, length, slots):
        yield start, min(start + slots, length)


def encrypt_chunks(tools: SealTools, x: np.ndarray, *, weight: float, clip: float, slots: int) -> tuple[bytes, int]:
    """Clip, weight, encrypt (symmetric, seeded) and frame ``x``; returns the payload and how many were clipped."""
    assert tools.encryptor is not None  # only party keys (which hold the secret) protect
    blobs: list[bytes] = []
    clipped = 0
    buf = np.empty(min(slots, x.size))
    try:
        for start, stop in chunk_bounds(x.size, slots):
            part = buf[: stop - start]
            np.clip(x[start:stop], -clip, clip, out=part)
            clipped += int(np.count_nonzero(part != x[start:stop]))
            part *= weight
            plain = seal.Plaintext()
            tools.encoder.encode(part.tolist(), tools.scale, plain)
            blobs.append(_save(tools.encryptor.encrypt_symmetric(plain)))
    except TENSEAL_ERRORS as exc:
        raise CryptoError(f"SEAL could not encrypt the update: {exc}") from None
    return frame(blobs), clipped


def decrypt_chunk(tools: SealTools, ct: seal.Ciphertext, size: int) -> np.ndarray:
    """The first ``size`` slots (real parts) of the decryption of ``ct``."""
    assert tools.decryptor is not None  # only secret holders reveal
    plain = seal.Plaintext()
    tools.decryptor.decrypt(ct, plain)
    return np.asarray(tools.encoder.decode_double(plain), dtype=np.float64)[:size]


def frame(blobs: Sequence[bytes]) -> bytes:
    """The payload holding already serialized chunks ``blobs``."""
    parts: list[bytes] = [_U32.pack(len(blobs))]
    for blob in blobs:
        parts.append(_CHUNK_HEAD.pack(len(blob), zlib.crc32(blob)))
        parts.append(blob)
    return b"".join(parts)


def serialize(ct: seal.Ciphertext) -> bytes:
    """``ct`` in SEAL's format, in full (a sum of ciphertexts has no seed)."""
    return _save(ct)


def frame_ciphertexts(cts: Sequence[seal.Ciphertext]) -> bytes:
    """The payload holding ciphertexts ``cts``."""
    return frame([_save(ct) for ct in cts])


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


def load(tools: SealTools, chunk: memoryview, *, index: int) -> seal.Ciphertext:
    """Deserialize chunk ``index``: a valid two-polynomial ciphertext at the data level and the configured scale."""
    try:
        ct = _load(tools.context, bytes(chunk))
        fits = ct.size() == 2 and ct.parms_id() == tools.data_parms and ct.scale == tools.scale
    except TENSEAL_ERRORS:
        fits = False
    if not fits:
        raise MalformedCiphertextError(
            f"ckks chunk {index} is not a valid ciphertext for this key set's CKKS parameters: it was "
            "garbled, or made under another context (another N, primes, scale or key set)"
        )
    return ct


def add_into(tools: SealTools, acc: seal.Ciphertext, other: seal.Ciphertext, *, index: int) -> None:
    """``acc += other``, with SEAL's refusals as typed errors."""
    try:
        tools.evaluator.add_inplace(acc, other)
    except TENSEAL_ERRORS:
        raise MalformedCiphertextError(
            f"ckks chunk {index} cannot be added to the others (another scale or level): it was made "
            "under other CKKS parameters"
        ) from None


def sub_from(tools: SealTools, acc: seal.Ciphertext, other: seal.Ciphertext) -> None:
    """``acc -= other`` (exact: coefficients are residues), to undo an addition."""
    tools.evaluator.sub_inplace(acc, other)


# --- SEAL's file-only serialization ------------------------------------------------------
_SCRATCH: dict[int, str] = {}
_SCRATCH_LOCK = threading.Lock()


def _scratch_file() -> str:
    """This thread's scratch file, in this process's private directory (made on first use)."""
    pid = os.getpid()  # a forked child makes its own directory
    with _SCRATCH_LOCK:
        folder = _SCRATCH.get(pid)
        if folder is None:
            shm = "/dev/shm"
            base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
            folder = _SCRATCH[pid] = tempfile.mkdtemp(prefix="securefl-ckks-", dir=base)
            atexit.register(shutil.rmtree, folder, True)
    return os.path.join(folder, f"ct-{threading.get_ident()}")


def _save(obj: seal.Ciphertext | seal.SerializableCiphertext) -> bytes:
    path = _scratch_file()
    obj.save(path)
    with open(path, "rb") as f:
        return f.read()


def _load(context: seal.SEALContext, data: bytes) -> seal.Ciphertext:
    path = _scratch_file()
    with open(path, "wb") as f:
        f.write(data)
    ct = seal.Ciphertext()
    ct.load(context, path)
    return ct
