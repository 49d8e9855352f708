"""Noise flooding for CKKS decryptions that leave the key holders.

The attack (Li and Micciancio, "On the Security of Homomorphic Encryption on
Approximate Numbers", EUROCRYPT 2021): a CKKS decryption is ``m + e``, where the
error ``e`` depends linearly on the secret key.  Whoever holds a ciphertext
*and* its decryption (the aggregator holds every aggregate ciphertext) can
subtract and solve for the key.  SEAL, so TenSEAL, has no defence.

The defence (Li, Micciancio, Schultz and Sorrell, "Securing Approximate
Homomorphic Encryption Using Differential Privacy", CRYPTO 2022; implemented in
OpenFHE as ``NOISE_FLOODING_DECRYPT``): add Gaussian noise much wider than ``e``
before releasing.  We use OpenFHE's rule for the width,

    sigma = 2**(s/2) * sqrt(12 * t) * B

with ``s`` the statistical security (``flooding_bits``, OpenFHE's default 30),
``t`` the number of decryptions an adversary sees (``flooding_queries`` published
aggregates times the ciphertext chunks of each), and ``B`` a bound on the error.
Conservatively, ``B`` bounds the *Euclidean norm* of the released error over a
whole ciphertext (all N/2 slots), not one slot: that is the sensitivity of the
Gaussian mechanism whose output the adversary sees.

``B`` is derived from the aggregate the parties actually decrypt, not from the
parameters' worst case: its ``k`` contributors (the encryption error is the sum
of ``k`` fresh errors; weights multiply values *before* encryption, so they do
not scale it) and its total weight ``W`` (float64 rounding of the ``k``
encodings and the decoding is relative to the magnitudes, at most ``clip * W``);
per slot the RMS is :meth:`CKKSParams.slot_error_sd`, and over a chunk

    B = NORM_MARGIN * sqrt(N/2) * (sqrt(N/2 * k * ERROR_VARIANCE) / scale
                                   + FLOAT_ROUNDING * clip * W)

with ``NORM_MARGIN = 1.25``: the norm of N/2 Gaussians exceeds its mean by 25%
with probability below 2**-100 for N >= 2048, and the float term already holds
about 2x (:mod:`.params`).  The tests measure chunk norms over many aggregates
(small and large weights) and check that they stay below ``B / NORM_MARGIN``
times 1.1, so the stated margin is really there.  The flooding width therefore
shrinks with the scale (2^52 by default), which is what makes the released
vector precise: about 1e-5 (max abs) on a 10-party mean of 100k values.

The noise is drawn from the OS CSPRNG (Box-Muller on 53-bit uniforms), and the
result is then rounded to a grid of about sigma/16, so that the low-order bits of
floating-point Gaussian samples (Mironov 2012) are not released either.
Rounding is post-processing: it cannot weaken the flooding.
"""

from __future__ import annotations

import math

import numpy as np

from ..randomness import uniform01
from .params import CKKSParams

# Relative margin on the error norm (see the module docstring).
NORM_MARGIN = 1.25
# The released grid is 2**-GRID_BITS of sigma (rounded down to a power of two).
GRID_BITS = 4


def error_norm_bound(params: CKKSParams, contributors: int, total_weight: float) -> float:
    """Bound on the Euclidean norm of one chunk's decryption error (all N/2 slots) in an aggregate of
    ``contributors`` ciphertexts of total weight ``total_weight``."""
    return NORM_MARGIN * math.sqrt(params.slots) * params.slot_error_sd(contributors, total_weight)


def flooding_sigma(params: CKKSParams, contributors: int, chunks: int, total_weight: float) -> float:
    """Standard deviation of the flooding noise added to each published value of a weighted sum."""
    queries = params.flooding_queries * max(1, chunks)
    margin = math.pow(2.0, params.flooding_bits / 2)
    return margin * math.sqrt(12.0 * queries) * error_norm_bound(params, contributors, total_weight)


def secure_gaussian(n: int) -> np.ndarray:
    """``n`` standard normal samples from the OS CSPRNG (Box-Muller; never numpy's RNG)."""
    pairs = (n + 1) // 2
    u = uniform01(2 * pairs)
    radius = np.sqrt(-2.0 * np.log1p(-u[:pairs]))  # 1 - u is in (0, 1]: log is finite
    angle = (2.0 * math.pi) * u[pairs:]
    out = np.empty(2 * pairs)
    np.multiply(radius, np.cos(angle), out=out[:pairs])
    np.multiply(radius, np.sin(angle), out=out[pairs:])
    return out[:n]


def flood(values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` plus N(0, sigma^2) noise per entry, rounded to a power-of-two grid near sigma/16."""
    noisy = values + sigma * secure_gaussian(values.size).reshape(values.shape)
    step = 2.0 ** (math.floor(math.log2(sigma)) - GRID_BITS)
    return np.round(noisy / step) * step
