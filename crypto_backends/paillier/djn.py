"""Paillier key material and arithmetic, with Damgård–Jurik–Nielsen randomisation.

References:

* P. Paillier, "Public-key cryptosystems based on composite degree residuosity
  classes", EUROCRYPT 1999 (the scheme, with ``g = n + 1``).
* I. Damgård, M. Jurik, J. B. Nielsen, "A generalization of Paillier's public-key
  system with applications to electronic voting", Int. J. Inf. Security 9(6), 2010,
  the faster variant of the scheme (``h = -x^2 mod n``, ``h_s = h^n mod n^2``, encryption
  ``(1 + n)^m * h_s^r`` with ``r`` of ``ceil(bits(n) / 2)`` bits).
* A. Menezes, P. van Oorschot, S. Vanstone, Handbook of Applied Cryptography,
  section 14.6.3 (exponentiation with a fixed base and precomputed powers).
* D. Demmler, T. Schneider, M. Zohner, "ABY", NDSS 2015: its ``libdjn`` uses the
  same ``ceil(bits(n)/2)``-bit exponent and a fixed-base table for ``h_s``.

What is promised.  ``encrypt`` makes ``c = (1 + m n) * h_s^r mod n^2`` with a fresh
``r`` from ``os.urandom`` for every ciphertext.  ``h_s`` is fixed per key, so
``h_s^r`` is a product of precomputed powers ``h_s^(d * 256^i)`` over the bytes
``d`` of ``r``: ``ceil(bits(n)/16)`` modular multiplications instead of a
full-length exponentiation.  Semantic security rests on the decisional composite
residuosity assumption *and* DJN's assumption that ``h_s^r`` for such a short
``r`` is indistinguishable from a random element of ``<h_s>`` (see SECURITY.md).
``decrypt`` uses the Chinese remainder theorem (as ``phe`` does), batched through
``gmpy2.powmod_base_list``, which releases the GIL, on every core.

What is not: integrity.  A ciphertext is malleable by design (that is what lets
the aggregator add), so a malicious aggregator or party can alter results.

Key generation is ``phe``'s (``generate_paillier_keypair``: primes from
``random.SystemRandom`` through gmpy2); ``phe``'s ``EncodedNumber`` and its
exponent-leaking float encoding are never used.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import gmpy2
from gmpy2 import mpz
from phe import paillier as phe_paillier

from ..errors import MalformedCiphertextError
from . import helpers
from ._helper import fixed_base_table, obfuscators_from_table

_KEY_ID_DOMAIN = b"securefl/paillier/v1"
# Build the fixed-base table only when one call needs this many ciphertexts: the
# table costs 255 multiplications per byte of r, a plain exponentiation about 10.
_TABLE_THRESHOLD = 32
# Helper processes pay off once a call has this many ciphertexts to make.
_HELPER_THRESHOLD = 64


@dataclass(eq=False)
class PublicMaterial:
    """``n``, ``n^2`` and the DJN base ``h_s``; everything the aggregator holds."""

    n: mpz
    hs: mpz
    nsquare: mpz = field(init=False)
    key_bytes: int = field(init=False)
    key_id: bytes = field(init=False)  # fingerprint of the public key, shared by the whole key set
    _table: list[list[mpz]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.nsquare = self.n * self.n
        self.key_bytes = (int(self.n.bit_length()) + 7) // 8
        h = hashlib.sha256(_KEY_ID_DOMAIN)
        h.update(int(self.n).to_bytes(self.key_bytes, "big"))
        h.update(int(self.hs).to_bytes(self.ciphertext_bytes, "big"))
        self.key_id = h.digest()[:16]

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one serialised ciphertext, an element of ``Z_{n^2}``: twice the modulus's bytes."""
        return 2 * self.key_bytes

    @property
    def exponent_bytes(self) -> int:
        """Bytes of the random exponent ``r``: ``ceil(bits(n)/2)`` bits, rounded up to whole bytes."""
        return (int(self.n.bit_length()) + 15) // 16

    def to_bytes(self) -> bytes:
        """The public key's bytes: the modulus's byte length (2 bytes), then ``n`` and ``h_s``, fixed-width big-endian.

        Read back by :func:`material_from_bytes`.
        """
        return (struct.pack(">H", self.key_bytes) + int(self.n).to_bytes(self.key_bytes, "big")
                + int(self.hs).to_bytes(self.ciphertext_bytes, "big"))

    # --- encryption -------------------------------------------------------------
    def _fixed_base_table(self) -> list[list[mpz]]:
        """``table[i][d] = h_s^(d * 256^i) mod n^2``: public, so caching it leaks nothing."""
        if self._table is None:
            self._table = fixed_base_table(self.hs, self.nsquare, self.exponent_bytes)
        return self._table

    def obfuscators(self, count: int, processes: int = 1) -> list[mpz]:
        """``count`` fresh values ``h_s^r mod n^2``, each with its own random ``r``.

        With ``processes > 1`` and enough work, helper processes compute shares of them.
        """
        n2, nbytes = self.nsquare, self.exponent_bytes
        if self._table is None and count < _TABLE_THRESHOLD:
            randomness = os.urandom(count * nbytes)
            exponents = [mpz(int.from_bytes(randomness[i * nbytes:(i + 1) * nbytes], "big")) for i in range(count)]
            values: list[mpz] = gmpy2.powmod_exp_list(self.hs, exponents, n2)
            return values
        pool = []
        if processes > 1 and count >= _HELPER_THRESHOLD:
            pool = helpers.helpers_for(self.key_id, self.key_bytes, int(self.n), int(self.hs), nbytes,
                                       processes - 1)
        pool = [h for h in pool if h.busy.acquire(blocking=False)]  # another thread may be using one
        share = count // (len(pool) + 1)
        asked = []
        try:
            for helper in pool:
                if helper.request(share):
                    asked.append(helper)
            out = obfuscators_from_table(self._fixed_base_table(), n2, count - share * len(asked), nbytes)
            for helper in asked:
                out.extend(self._from_helper(helper, share))
        finally:
            for helper in pool:
                helper.busy.release()
        return out

    def _from_helper(self, helper: helpers._Helper, share: int) -> list[mpz]:
        """The helper's share, or (if it died or sent values outside ``(0, n^2)``) our own."""
        width, n2 = self.ciphertext_bytes, self.nsquare
        try:
            data = helper.receive(share)
            values = [mpz(int.from_bytes(data[i * width:(i + 1) * width], "big")) for i in range(share)]
            if all(0 < v < n2 for v in values):
                return values
        except OSError:
            pass
        helpers.discard(helper)
        return obfuscators_from_table(self._fixed_base_table(), n2, share, self.exponent_bytes)

    def encrypt(self, plaintexts: Sequence[mpz], processes: int = 1) -> list[mpz]:
        """Encrypt integers in ``[0, n)`` (the caller guarantees the range)."""
        n, n2 = self.n, self.nsquare
        obfuscators = self.obfuscators(len(plaintexts), processes)
        return [(1 + m * n) * r % n2 for m, r in zip(plaintexts, obfuscators, strict=True)]

    # --- ciphertext bytes -----------------------------------------------------------
    def parse_ciphertexts(self, data: memoryview, count: int) -> list[mpz]:
        """``count`` fixed-width big-endian ciphertexts; each must lie in ``(0, n^2)``."""
        width, n2 = self.ciphertext_bytes, self.nsquare
        out = []
        for i in range(count):
            c = mpz(int.from_bytes(data[i * width:(i + 1) * width], "big"))
            if not 0 < c < n2:
                raise MalformedCiphertextError(
                    f"ciphertext {i} is not in (0, n^2): the upload is corrupt or was made for another key"
                )
            out.append(c)
        return out

    def ciphertexts_to_bytes(self, cts: Sequence[mpz]) -> bytes:
        """``cts`` concatenated, each :attr:`ciphertext_bytes` wide, big-endian (read by :meth:`parse_ciphertexts`).

        The caller guarantees each lies in ``[0, n^2)``; a value outside it raises ``OverflowError``.
        """
        width = self.ciphertext_bytes
        return b"".join(int(c).to_bytes(width, "big") for c in cts)

    def add(self, columns: Sequence[Sequence[mpz]]) -> list[mpz]:
        """Homomorphic sum: the product, slot-wise, of equally long ciphertext lists."""
        n2 = self.nsquare
        out = list(columns[0])
        for col in columns[1:]:
            out = [a * b % n2 for a, b in zip(out, col, strict=True)]
        return out


@dataclass(eq=False)
class PrivateMaterial:
    """The key pair: the public part plus the primes ``p``, ``q`` (parties and dealer only)."""

    public: PublicMaterial
    p: mpz
    q: mpz

    def __post_init__(self) -> None:
        p, q, n = self.p, self.q, self.public.n
        if p * q != n or p == q:
            raise MalformedCiphertextError("private key material does not match its public modulus")
        self._psquare, self._qsquare = p * p, q * q
        # h_p = L_p(g^(p-1) mod p^2)^-1 mod p with g = n + 1 (Paillier 1999, CRT decryption)
        self._hp = gmpy2.invert(_l(gmpy2.powmod(n + 1, p - 1, self._psquare), p), p)
        self._hq = gmpy2.invert(_l(gmpy2.powmod(n + 1, q - 1, self._qsquare), q), q)
        self._q_inv_p = gmpy2.invert(q, p)

    def to_bytes(self) -> bytes:
        """The key pair's bytes: the public key's (:meth:`PublicMaterial.to_bytes`), then ``p`` and ``q`` (secret).

        Fixed-width big-endian; read back by :func:`material_from_bytes` with ``private=True``.
        """
        kb = self.public.key_bytes
        return self.public.to_bytes() + int(self.p).to_bytes(kb, "big") + int(self.q).to_bytes(kb, "big")

    def decrypt(self, cts: Sequence[mpz]) -> list[mpz]:
        """CRT decryption of many ciphertexts; both halves and chunks run on separate cores."""
        p, q = self.p, self.q
        workers = max(2, os.cpu_count() or 2)
        chunk = max(1, -(-len(cts) // max(1, workers // 2)))
        pieces = [list(cts[i:i + chunk]) for i in range(0, len(cts), chunk)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # powmod_base_list releases the GIL, so these run in parallel
            parts_p = pool.map(lambda part: gmpy2.powmod_base_list(part, p - 1, self._psquare), pieces)
            parts_q = pool.map(lambda part: gmpy2.powmod_base_list(part, q - 1, self._qsquare), pieces)
            xp, xq = [x for part in parts_p for x in part], [x for part in parts_q for x in part]
        out = []
        for a, b in zip(xp, xq, strict=True):
            mp = _l(a, p) * self._hp % p
            mq = _l(b, q) * self._hq % q
            out.append(mq + q * ((mp - mq) * self._q_inv_p % p))
        return out


def _l(x: mpz, d: mpz) -> mpz:
    return (x - 1) // d


def generate(key_bits: int) -> PrivateMaterial:
    """A fresh key pair (phe's prime generation) and a DJN base ``h_s = (-x^2)^n mod n^2``."""
    while True:
        pk, sk = phe_paillier.generate_paillier_keypair(n_length=key_bits)
        n = mpz(pk.n)
        if n.bit_length() == key_bits:
            break
    return PrivateMaterial(generate_public(n), mpz(sk.p), mpz(sk.q))


def generate_public(n: mpz) -> PublicMaterial:
    """The public key of modulus ``n`` with a fresh DJN base ``h_s = (-x^2)^n mod n^2`` (no factor needed)."""
    while True:
        x = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    return PublicMaterial(n, gmpy2.powmod(h, n, n * n))


def material_from_bytes(data: bytes, *, private: bool) -> PublicMaterial | PrivateMaterial:
    """Inverse of ``to_bytes``; strict about length and ranges."""
    if len(data) < 2:
        raise MalformedCiphertextError("paillier key material is truncated")
    (kb,) = struct.unpack(">H", data[:2])
    expected = 2 + 3 * kb + (2 * kb if private else 0)
    if kb < 8 or len(data) != expected:
        kind = "key pair" if private else "public key"
        raise MalformedCiphertextError(
            f"paillier {kind} material is {len(data)} bytes, expected {expected}: truncated, extended, "
            "or of another role"
        )
    n = mpz(int.from_bytes(data[2:2 + kb], "big"))
    hs = mpz(int.from_bytes(data[2 + kb:2 + 3 * kb], "big"))
    if n < 3 or not n % 2 or (n.bit_length() + 7) // 8 != kb or not 0 < hs < n * n or gmpy2.gcd(hs, n) != 1:
        raise MalformedCiphertextError("paillier public key material is out of range")
    public = PublicMaterial(n, hs)
    if not private:
        return public
    p = mpz(int.from_bytes(data[2 + 3 * kb:2 + 4 * kb], "big"))
    q = mpz(int.from_bytes(data[2 + 4 * kb:], "big"))
    return PrivateMaterial(public, p, q)
