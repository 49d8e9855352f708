"""Secure, vectorised noise for differential privacy, and the snapping that makes it floating-point safe.

diffprivlib's mechanisms sample one scalar at a time from ``secrets``; that is
right for a handful of statistics and far too slow for a million-parameter
update.  This module samples whole vectors with the same two properties the
per-scalar samplers have (the argument is spelled out in SECURITY.md,
*Differential privacy*):

* **A cryptographically secure source.**  Every draw is a ChaCha20 keystream
  (``cryptography``) under a fresh 256-bit key and nonce from ``os.urandom``;
  numpy's generators are never used.  A 1M-value keystream costs a few ms.
* **Resistance to the floating-point attack (Mironov, CCS 2012).**  A noisy
  double ``x + Y`` leaks ``x`` through the set of doubles it can land on.  Two
  measures close that channel:

  1. uniforms carry the full 64 random bits (``u = (k + 1/2) * 2**-64``, so the
     relative error of every ``u``, down to the smallest, is at most 2**-53): the
     float sample ``Y~`` is within a relative ``2**-50`` of an ideal sample ``Y``
     except with probability below ``2**-40`` per value; the tails stop at
     9.5 sigma (Gaussian) / 45 b (Laplace), whose mass beyond is below ``1e-19``;
  2. every released value is **snapped** to a power-of-two grid ``Lambda`` (at most
     a sixteenth of the noise's standard deviation, so rounding adds well under 1 %
     of the noise's variance): :func:`snap` rounds ``x + Y~`` to the nearest
     multiple of ``Lambda``, which is exact in IEEE arithmetic.  The output then
     depends only on which ``Lambda``-cell ``x + Y~`` falls in; its low-order bits
     are zero whatever ``x`` is, and each cell's probability is within a factor
     ``1 + 2**-40`` of the ideal mechanism's cell probability, which is a
     post-processing of the ideal mechanism.

Infinitely divisible noise for distributed DP: a sum of ``m`` independent
Gaussian shares of standard deviation ``sigma / sqrt(m)`` is N(0, sigma^2); a sum of
``m`` differences of Gamma(1/m, b) shares is Laplace(b).
"""

from __future__ import annotations

import math
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from .errors import InvalidParameterError

_TWO_POW_64 = 2.0**-64
_TWO_POW_53 = 2.0**-53
_SNAP_MAGIC = 1.5 * 2.0**52
SNAP_FRACTION = 16
"""The snapping grid is the largest power of two at most ``std / SNAP_FRACTION``."""


def secure_uint64(n: int) -> np.ndarray:
    """``n`` uniform 64-bit integers: a ChaCha20 keystream under a fresh key and nonce from ``os.urandom``."""
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    encryptor = Cipher(algorithms.ChaCha20(os.urandom(32), os.urandom(16)), mode=None).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * n)), dtype=np.uint64)


def open_uniform(n: int) -> np.ndarray:
    """``n`` uniforms on (0, 1] from 64 random bits each: ``(k + 1/2) * 2**-64``, relative error <= 2**-53."""
    u = secure_uint64(n).astype(np.float64)
    u *= _TWO_POW_64
    u += _TWO_POW_64 / 2
    return u


def _unit_uniform(n: int) -> np.ndarray:
    """``n`` uniforms on [0, 1) with 53 random bits each (angles, acceptance tests)."""
    u = (secure_uint64(n) >> np.uint64(11)).astype(np.float64)
    u *= _TWO_POW_53
    return u


def gaussian(n: int, sigma: float) -> np.ndarray:
    """``n`` independent N(0, sigma^2) values (Box-Muller, both outputs used)."""
    half = (n + 1) // 2
    radius = open_uniform(half)
    np.log(radius, out=radius)
    radius *= -2.0 * sigma * sigma
    np.sqrt(radius, out=radius)
    angle = _unit_uniform(half)
    angle *= 2.0 * math.pi
    out = np.empty(2 * half)
    np.multiply(radius, np.cos(angle), out=out[:half])
    np.multiply(radius, np.sin(angle), out=out[half:])
    return out[:n]


def laplace(n: int, b: float) -> np.ndarray:
    """``n`` independent Laplace(0, b) values: ``b * (E1 - E2)`` with ``E = -ln U``."""
    u = open_uniform(2 * n)
    ratio: np.ndarray = u[:n] / u[n:]
    np.log(ratio, out=ratio)
    ratio *= b
    return ratio


def gamma(n: int, shape: float, scale: float = 1.0) -> np.ndarray:
    """``n`` independent Gamma(shape, scale) values (Marsaglia-Tsang; shape < 1 boosted by ``U**(1/shape)``)."""
    if shape <= 0:
        raise InvalidParameterError(f"gamma shape must be positive, got {shape!r}")
    a = shape + 1.0 if shape < 1 else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        m = todo.size
        z = gaussian(m, 1.0)
        v = (1.0 + c * z) ** 3
        u = open_uniform(m)
        ok = v > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            ok &= np.log(u) < 0.5 * z * z + d - d * v + d * np.log(np.where(ok, v, 1.0))
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    if shape < 1:
        out *= open_uniform(n) ** (1.0 / shape)
    out *= scale
    return out


def gaussian_share(n: int, sigma: float, shares: int) -> np.ndarray:
    """One of ``shares`` Gaussian shares whose sum is N(0, sigma^2)."""
    return gaussian(n, sigma / math.sqrt(shares))


def laplace_share(n: int, b: float, shares: int) -> np.ndarray:
    """One of ``shares`` shares whose sum is Laplace(0, b): ``Gamma(1/shares, b) - Gamma(1/shares, b)``."""
    if shares == 1:
        return laplace(n, b)
    g = gamma(2 * n, 1.0 / shares, b)
    share: np.ndarray = g[:n] - g[n:]
    return share


def share_std(mechanism: str, scale: float, shares: int) -> float:
    """Standard deviation of one share (``shares == 1``: of the whole noise)."""
    if mechanism == "gaussian":
        return scale / math.sqrt(shares)
    return scale * math.sqrt(2.0 / shares)


def grid_for(std: float) -> float:
    """The snapping grid for noise of standard deviation ``std``: a power of two <= ``std / 16``."""
    if not std > 0 or not math.isfinite(std):
        raise InvalidParameterError(
            f"noise standard deviation must be positive and finite, got {std!r}: check the noise plan's scales"
        )
    return 2.0 ** math.floor(math.log2(std / SNAP_FRACTION))


def snap(values: np.ndarray, grid: float) -> np.ndarray:
    """Round ``values`` in place to the nearest multiple of the power of two ``grid``; returns ``values``.

    Adding and subtracting ``1.5 * 2**52 * grid`` rounds to the grid in one correctly
    rounded IEEE addition (round-to-nearest-even) and one exact subtraction.  A value
    so large that it exceeds ``2**51 * grid`` lands on a coarser power-of-two grid:
    still free of data-dependent low-order bits.
    """
    magic = _SNAP_MAGIC * grid
    values += magic
    values -= magic
    return values
