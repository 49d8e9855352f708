"""pymife's multi-input Damgard MIFE on curve25519 (ACFGU 2018 with its IPFE layer), per value.

The research library this project's ``fe`` scheme is compared with.  A block of
``BLOCK`` coordinates per party is encrypted under one MIFE instance
(``FeDamgardMulti``, n parties x BLOCK inputs); the aggregator's per-coordinate
weighted sum needs one function key ``y = w (x) e_j`` per coordinate, of which
``DECRYPT`` are derived and decrypted (Pollard kangaroo over the sum's range).
Times are extrapolated linearly to the vector length (said in ``note``).  A block
of 16 is the cheaper way to use pymife (the ciphertext's ``r * a`` part is shared
by the block); one instance per coordinate (dimension 1), the literal reading of
"per coordinate", costs about twice as much per value and is reported in ``note``.
pymife has no wire format: ``bytes_per_party`` counts 32 bytes per compressed
point (BLOCK + 2 points per block).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from mife.data.curve25519 import Curve25519
from mife.multi.damgard import FeDamgardMulti

BLOCK = 16
DECRYPT = 2
MAX_INT = 32767
SCALE = MAX_INT / 8.0


def measure(vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int) -> dict[str, Any]:
    """Time pymife's multi-client Damgard inner-product FE on one block of the vectors, extrapolated."""
    dim, n = int(vectors[0].size), len(vectors)
    block = min(BLOCK, dim)
    ints = [[round(float(np.clip(v, -8, 8)) * SCALE) for v in vec[:block]] for vec in vectors]
    y_int = [round(w) for w in weights]  # MIFE needs integer weights
    master = FeDamgardMulti.generate(n, block, F=Curve25519())
    enc, cts = [], []
    for i in range(n):
        enc_key = master.get_enc_key(i)
        t0 = time.perf_counter()
        cts.append(FeDamgardMulti.encrypt(ints[i], enc_key))
        enc.append((time.perf_counter() - t0) / block)
    single = FeDamgardMulti.generate(1, 1, F=Curve25519()).get_enc_key(0)
    t0 = time.perf_counter()
    for x in ints[0][:4]:
        FeDamgardMulti.encrypt([x], single)
    per_coordinate = (time.perf_counter() - t0) / min(4, block)
    public = master.get_public_key()
    bound = sum(y_int) * MAX_INT
    dec, errors = [], []
    expected = np.average(np.stack([v[:block] for v in vectors]), axis=0, weights=weights)
    for j in range(min(DECRYPT, block)):
        y = [[yi if k == j else 0 for k in range(block)] for yi in y_int]
        t0 = time.perf_counter()
        sk = FeDamgardMulti.keygen(y, master)
        total = FeDamgardMulti.decrypt(cts, public, sk, (-bound, bound))
        dec.append(time.perf_counter() - t0)
        errors.append(abs(total / SCALE / sum(y_int) - expected[j]))
    return {
        "encrypt_s": statistics.median(enc) * dim,
        "aggregate_s": 0.0,
        "decrypt_s": statistics.median(dec) * dim,
        "bytes_per_party": 32 * (block + 2) / block * dim,
        "max_abs_error": float(max(errors)),
        "security_bits": 126,
        "note": (
            f"pymife FeDamgardMulti on curve25519; {block} values per party and {len(dec)} coordinate "
            f"decryptions timed, extrapolated to {dim}; no wire format (32 B per point assumed); one "
            f"instance per coordinate instead: {per_coordinate * 1e3:.2f} ms per value"
        ),
    }
