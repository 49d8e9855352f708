"""Shamir t-of-n secret sharing over the prime field GF(2**521 - 1) (Shamir, CACM 1979).

A secret is a 32-byte string (a mask seed or an X25519 private key), read as an
integer below ``2**256`` and so below the prime.  :func:`split` draws the ``t - 1``
random coefficients of a polynomial ``f`` with ``f(0) = secret`` from
:mod:`secrets` and hands holder ``x`` the value ``f(x)``; :func:`combine`
interpolates ``f(0)`` from any ``t`` shares (Lagrange).

What is promised: any ``t - 1`` shares are independent of the secret (information-
theoretically); ``t`` correct shares give it back.  What is not: detecting a wrong
share (the caller commits to shares, see :mod:`.scheme`); a wrong share makes
:func:`combine` return garbage, which :func:`combine` turns into
:class:`~crypto_backends.errors.ShareError` when the result is not a 32-byte value.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from ..errors import ShareError

PRIME = (1 << 521) - 1
"""The Mersenne prime 2**521 - 1: every 32-byte secret is a field element."""
SHARE_BYTES = 66
SECRET_BYTES = 32


def split(secret: bytes, xs: Sequence[int], threshold: int) -> dict[int, int]:
    """Shares ``f(x)`` of ``secret`` for every (distinct, non-zero) ``x`` in ``xs``; any ``threshold`` rebuild it."""
    if len(secret) != SECRET_BYTES:
        raise ShareError(f"a shared secret is {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise ShareError(f"threshold {threshold} must be between 1 and the {len(xs)} holders")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ShareError("share points must be distinct and non-zero")
    coeffs = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    out: dict[int, int] = {}
    for x in xs:
        acc = 0
        for c in reversed(coeffs):  # Horner
            acc = (acc * x + c) % PRIME
        out[x] = acc
    return out


def combine(shares: Mapping[int, int], threshold: int) -> bytes:
    """The secret from at least ``threshold`` shares ``{x: f(x)}`` (the first ``threshold`` by ``x`` are used)."""
    if len(shares) < threshold:
        raise ShareError(f"{len(shares)} share(s) cannot rebuild a secret shared {threshold}-of-n; "
                         f"{threshold} are needed")
    points = sorted(shares.items())[:threshold]
    secret = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (-xj) % PRIME
                den = den * (xi - xj) % PRIME
        secret = (secret + yi * num * pow(den, -1, PRIME)) % PRIME
    if secret >> (8 * SECRET_BYTES):
        raise ShareError("the shares do not rebuild a 32-byte secret: at least one of them is wrong")
    return secret.to_bytes(SECRET_BYTES, "big")


def share_to_bytes(value: int) -> bytes:
    """A share value as its fixed-width (SHARE_BYTES) big-endian encoding."""
    return value.to_bytes(SHARE_BYTES, "big")


def share_from_bytes(data: bytes) -> int:
    """The share value of ``data``; ``ShareError`` unless it is SHARE_BYTES long and below the field prime."""
    if len(data) != SHARE_BYTES:
        raise ShareError(f"a share is {SHARE_BYTES} bytes, got {len(data)}")
    value = int.from_bytes(data, "big")
    if value >= PRIME:
        raise ShareError("a share is not a field element")
    return value
