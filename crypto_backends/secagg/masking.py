"""The cryptographic pieces of ``secagg``: key agreement, key derivation, mask expansion, the graph.

* Keys agree by X25519; every derived key is HKDF-SHA256 over the agreed secret
  with ``info`` naming its use, the key set, the round and both parties (sorted), so
  no key serves twice.
* A mask is the ChaCha20 keystream under a 32-byte seed (a fixed all-zero nonce is
  safe: every seed is used for one mask only), read as little-endian words of
  the ring's storage type, one keystream call per mask.
* The neighbour graph (SecAgg+, Bell et al. CCS 2020, section 3.1): the parties
  are ordered by ``SHA-256(seed || party id)`` with the aggregator's public
  per-round ``seed``; the party at position ``p`` neighbours those at
  ``p +- 1 .. p +- k/2 (mod n)`` (the Harary graph H(k, n) under a pseudo-random
  permutation); ``k >= n - 1`` is the complete graph (classic SecAgg).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE = bytes(16)


def derive(secret: bytes, purpose: bytes, key_id: bytes, round: int, a: str, b: str, context: bytes = b"") -> bytes:
    """A 32-byte key for ``purpose`` between parties ``a`` and ``b`` (order-free) of ``round``.

    ``context`` (the round's bound context, e.g. the global model's digest) goes into
    ``info`` too: two parties bound to different contexts derive unrelated keys.
    """
    lo, hi = sorted((a, b))
    info = b"|".join((b"securefl-secagg", purpose, key_id, struct.pack(">Q", round), lo.encode(), hi.encode(),
                      struct.pack(">H", len(context)) + context))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def agree(private: X25519PrivateKey, public: bytes) -> bytes:
    """The X25519 shared secret of ``private`` and the peer's raw 32-byte ``public``."""
    return private.exchange(X25519PublicKey.from_public_bytes(public))


class Expander:
    """Masks of one length from 32-byte seeds, each written into one reused buffer.

    ``expander(seed)`` is the ChaCha20 keystream under ``seed`` as ``length`` words of
    ``dtype``, one keystream call per mask and no allocation: the returned array is a
    view that the next call overwrites, so add it to the total before the next mask.
    """

    def __init__(self, length: int, dtype: np.dtype) -> None:
        self.length, self.dtype = length, dtype
        self._zeros = memoryview(bytes(length * dtype.itemsize))
        self._buf = bytearray(length * dtype.itemsize + 64)  # update_into wants a block (64 bytes) of slack

    def __call__(self, seed: bytes) -> np.ndarray:
        """The mask of ``seed``: ``length`` values of ``dtype`` from a ChaCha20 key stream."""
        stream = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
        written = stream.update_into(self._zeros, self._buf)
        assert written == len(self._zeros)
        return np.frombuffer(self._buf, dtype=self.dtype, count=self.length)


def graph(roster: Sequence[str], seed: bytes, degree: int) -> dict[str, tuple[str, ...]]:
    """Every party's neighbours in the round's graph (see the module docstring), sorted by id."""
    n = len(roster)
    if degree >= n - 1:
        return {p: tuple(sorted(q for q in roster if q != p)) for p in roster}
    order = sorted(roster, key=lambda p: hashlib.sha256(seed + p.encode()).digest())
    half = degree // 2
    return {p: tuple(sorted({order[(pos + d) % n] for d in range(-half, half + 1) if d}))
            for pos, p in enumerate(order)}


def neighbours(roster: Sequence[str], seed: bytes, party: str, degree: int) -> tuple[str, ...]:
    """``party``'s neighbours in the round's graph (see :func:`graph`)."""
    return graph(roster, seed, degree)[party]
