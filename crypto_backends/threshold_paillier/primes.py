"""Safe primes ``p = 2p' + 1`` (``p'`` prime) for the threshold Paillier modulus.

Shoup's and Damgård–Jurik's threshold decryption needs ``n = pq`` with ``p``, ``q``
safe primes: the squares of ``Z*_{n^2}`` then form a cyclic group of order
``n p' q'`` whose prime factors are all large, which the proofs of correct
decryption rely on.

Candidates come from ``secrets`` (the operating system's CSPRNG).  A window of
candidates ``p' = start + 2k`` is sieved with numpy at once, for ``p'`` and for
``2p' + 1`` by every odd prime below :data:`_SIEVE_LIMIT`; survivors get a
base-2 Fermat test on ``p`` (cheap, rejects almost every composite) and then
gmpy2's Miller–Rabin (``is_prime`` with 40 rounds) on both ``p'`` and ``p``.
"""

from __future__ import annotations

import secrets
from functools import cache

import gmpy2
import numpy as np
from gmpy2 import mpz

_SIEVE_LIMIT = 1 << 16
_WINDOW = 1 << 14
_MR_ROUNDS = 40


@cache
def _small_primes() -> np.ndarray:
    flags = np.ones(_SIEVE_LIMIT, dtype=bool)
    flags[:2] = False
    for i in range(2, int(_SIEVE_LIMIT**0.5) + 1):
        if flags[i]:
            flags[i * i::i] = False
    return np.flatnonzero(flags)[1:].astype(np.int64)  # odd primes only


def safe_prime(bits: int) -> mpz:
    """A uniformly drawn ``bits``-bit safe prime ``p = 2p' + 1`` (top two bits set, so ``pq`` has ``2 * bits`` bits)."""
    if bits < 16:
        raise ValueError(f"a safe prime of {bits} bits is too small; use at least 16")
    primes = _small_primes()
    while True:
        # p' has bits - 1 bits with its top two bits set (so p = 2p' + 1 has its top two set), and is odd
        start = secrets.randbits(bits - 3) | (3 << (bits - 3)) | 1
        k = np.arange(_WINDOW, dtype=np.int64)
        alive = np.ones(_WINDOW, dtype=bool)
        residues = np.array([start % int(r) for r in primes], dtype=np.int64)
        for r, res in zip(primes.tolist(), residues.tolist(), strict=True):
            if r >= start:
                break
            # p' = start + 2k is divisible by r when 2k = -res (mod r); p = 2p' + 1 when 4k = -(2 res + 1) (mod r)
            inv2 = (r + 1) // 2
            k1 = (-res * inv2) % r
            k2 = (-(2 * res + 1) * inv2 * inv2) % r
            alive[k1::r] = False
            alive[k2::r] = False
        for offset in k[alive].tolist():
            pp = mpz(start + 2 * offset)
            if pp.bit_length() != bits - 1:
                break
            p = 2 * pp + 1
            if gmpy2.powmod(2, p - 1, p) != 1:
                continue
            if gmpy2.is_prime(pp, _MR_ROUNDS) and gmpy2.is_prime(p, _MR_ROUNDS):
                return p
