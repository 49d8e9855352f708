"""Cryptographically secure randomness for masks, noise, rounding and keys.

Everything here draws from the operating system's CSPRNG (``os.urandom`` /
``secrets``); numpy's generators are never used for anything secret.  Bulk draws
take one ``os.urandom`` call, so a million uniforms cost a few milliseconds.
"""

from __future__ import annotations

import os
import secrets

import numpy as np

_TWO_POW_MINUS_53 = 2.0**-53


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG."""
    return os.urandom(n)


def random_below(bound: int) -> int:
    """Uniform integer in ``[0, bound)`` from :mod:`secrets`."""
    return secrets.randbelow(bound)


def random_uint64(n: int) -> np.ndarray:
    """``n`` independent uniform 64-bit unsigned integers."""
    return np.frombuffer(os.urandom(8 * n), dtype=np.uint64).copy() if n else np.zeros(0, np.uint64)


def uniform01(n: int) -> np.ndarray:
    """``n`` uniform floats on ``[0, 1)`` with 53 random bits each (every double
    multiple of 2**-53 equally likely)."""
    return (random_uint64(n) >> np.uint64(11)).astype(np.float64) * _TWO_POW_MINUS_53
