"""python-paillier (``phe``) as most FL frameworks use it: one ciphertext per value.

Each party calls ``public_key.encrypt(float)`` per value (phe's ``EncodedNumber``
float encoding and its full-length ``r^n mod n^2`` obfuscation), the aggregator
multiplies each ``EncryptedNumber`` by the party's weight and adds, a party
decrypts.  This is the anchor of the ``paillier`` scheme's speed claim, measured
in the same run as the scheme (``securefl bench --baselines phe``, or ``phe3072``).

phe takes 10-50 ms per value, so the full vectors would take hours: a sample of
``SAMPLE`` values per party is timed, and every column is extrapolated linearly
to the full length (phe's cost is exactly linear in the number of values).
Uploads count each value's ciphertext at its fixed width ``2 * key_bytes`` and
ignore phe's per-value exponent (which phe ships in the clear).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from phe import paillier

SAMPLE = 8


def measure(
    vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int, key_bits: int = 2048
) -> dict[str, Any]:
    """Time python-paillier encrypting one value per ciphertext on a sample of the vector; extrapolated per value."""
    dim = int(vectors[0].size)
    take = min(SAMPLE, dim)
    pk, sk = paillier.generate_paillier_keypair(n_length=key_bits)
    enc, agg, dec, errors = [], [], [], []
    for _ in range(max(1, repeat)):
        encrypted = []
        for vec in vectors:
            t0 = time.perf_counter()
            encrypted.append([pk.encrypt(float(x)) for x in vec[:take]])
            enc.append((time.perf_counter() - t0) / take * dim)
        t0 = time.perf_counter()
        total = [sum(party[i] * float(w) for party, w in zip(encrypted, weights, strict=True)) for i in range(take)]
        agg.append((time.perf_counter() - t0) / take * dim)
        t0 = time.perf_counter()
        fused = np.array([sk.decrypt(c) for c in total]) / float(sum(weights))
        dec.append((time.perf_counter() - t0) / take * dim)
        expected = np.average(np.stack([v[:take] for v in vectors]), axis=0, weights=weights)
        errors.append(float(np.max(np.abs(fused - expected))))
    return {
        "encrypt_s": statistics.median(enc),
        "aggregate_s": statistics.median(agg),
        "decrypt_s": statistics.median(dec),
        "bytes_per_party": dim * 2 * ((key_bits + 7) // 8),
        "max_abs_error": max(errors),
        "security_bits": 112 if key_bits < 3072 else 128,
        "note": (
            f"phe {key_bits}-bit, public_key.encrypt(float) per value; {take} values per party timed and "
            f"extrapolated linearly to {dim}; bytes = one {2 * ((key_bits + 7) // 8)}-byte ciphertext per value"
        ),
    }


def measure_3072(vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int) -> dict[str, Any]:
    """The same at 3072 bits, to sit beside ``paillier`` at its default key size."""
    return measure(vectors, weights, repeat, key_bits=3072)
