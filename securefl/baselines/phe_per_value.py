"""python-paillier (``phe``) encrypting one value per ciphertext at 2048 bits: the per-value baseline.

Too slow for whole vectors, so a sample of values is timed and the cost is
extrapolated linearly to the vector length (said in ``note``).  Values are
fixed-point integers (16 bits over [-8, 8]) pre-multiplied by the party's weight,
never phe's float encoding (which leaks each value's exponent).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
from phe import paillier

SAMPLE = 8
SCALE = 32767 / 8.0


def measure(vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int) -> dict:
    dim = int(vectors[0].size)
    sample = min(SAMPLE, dim)
    public, private = paillier.generate_paillier_keypair(n_length=2048)
    enc, cts = [], []
    for vec, w in zip(vectors, weights):
        ints = [round(float(np.clip(v, -8, 8)) * w * SCALE) for v in vec[:sample]]
        t0 = time.perf_counter()
        row = [public.encrypt(i) for i in ints]
        enc.append((time.perf_counter() - t0) / sample)
        cts.append(row)
    t0 = time.perf_counter()
    total = [sum(col[1:], col[0]) for col in zip(*cts)]
    agg = (time.perf_counter() - t0) / sample
    t0 = time.perf_counter()
    sums = np.array([private.decrypt(c) for c in total], dtype=np.float64)
    dec = (time.perf_counter() - t0) / sample
    fused = sums / SCALE / float(sum(weights))
    expected = np.average(np.stack([v[:sample] for v in vectors]), axis=0, weights=weights)
    return {
        "encrypt_s": statistics.median(enc) * dim,
        "aggregate_s": agg * dim,
        "decrypt_s": dec * dim,
        "bytes_per_party": 512 * dim,
        "max_abs_error": float(np.max(np.abs(fused - expected))),
        "security_bits": 112,
        "note": f"phe 2048-bit, one value per ciphertext; {sample} values per party timed, extrapolated to {dim}",
    }
