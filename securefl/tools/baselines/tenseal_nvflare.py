"""Bare TenSEAL with NVFlare's CKKS setup: the reference the ``ckks`` scheme is measured against.

NVFlare's homomorphic-encryption path (its ``HEBuilder`` provisions a TenSEAL
context; clients call ``ts.ckks_vector`` and ``serialize``; the server multiplies
each encrypted update by its weight and adds) with the parameters our issue
anchors on: N = 8192, coefficient primes [60, 40, 40, 60], scale 2^40, TenSEAL's
default public-key (asymmetric) encryption.  The vector is cut into 4096-value
chunks, one ``CKKSVector`` each, with no framing or checks of our own, so this
is the floor of what that configuration costs in Python.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tenseal as ts

POLY_MODULUS_DEGREE = 8192
COEFF_MOD_BIT_SIZES = [60, 40, 40, 60]
SCALE = 2.0**40
SLOTS = POLY_MODULUS_DEGREE // 2


def _encrypt(ctx: ts.Context, vec: np.ndarray) -> list[bytes]:
    return [ts.ckks_vector(ctx, vec[i : i + SLOTS]).serialize() for i in range(0, vec.size, SLOTS)]


def measure(vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int) -> dict[str, Any]:
    """Time TenSEAL CKKS as NVFlare's HE filter uses it (encrypt, weighted sum on the server, decrypt)."""
    secret = ts.context(ts.SCHEME_TYPE.CKKS, POLY_MODULUS_DEGREE, coeff_mod_bit_sizes=COEFF_MOD_BIT_SIZES)
    secret.global_scale = SCALE
    server = ts.context_from(secret.serialize(save_secret_key=False))
    expected = np.average(np.stack(vectors), axis=0, weights=weights)
    enc, agg, dec, errors, sizes = [], [], [], [], []
    for _ in range(max(1, repeat)):
        uploads = []
        for vec in vectors:
            t0 = time.perf_counter()
            uploads.append(_encrypt(secret, vec))
            enc.append(time.perf_counter() - t0)
            sizes.append(sum(len(b) for b in uploads[-1]))
        t0 = time.perf_counter()
        fused = []
        for i in range(len(uploads[0])):
            acc = ts.ckks_vector_from(server, uploads[0][i]) * weights[0]
            for chunks, w in zip(uploads[1:], weights[1:], strict=True):
                acc = acc + ts.ckks_vector_from(server, chunks[i]) * w
            fused.append(acc.serialize())
        agg.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        total = np.concatenate([ts.ckks_vector_from(secret, b).decrypt() for b in fused])
        mean = total / sum(weights)
        dec.append(time.perf_counter() - t0)
        errors.append(float(np.max(np.abs(mean - expected))))
    return {
        "encrypt_s": statistics.median(enc),
        "aggregate_s": statistics.median(agg),
        "decrypt_s": statistics.median(dec),
        "bytes_per_party": statistics.mean(sizes),
        "max_abs_error": max(errors),
        "security_bits": 128,
        "note": "TenSEAL N=8192 [60,40,40,60] 2^40, public-key encryption, 4096-value chunks; "
        "server multiplies by the weight and adds (NVFlare's path)",
    }
