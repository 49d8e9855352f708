"""numpy's own weighted mean of the stacked update vectors: the floor any scheme is compared to."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np


def measure(vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int) -> dict[str, Any]:
    """Time ``np.average`` over the pre-stacked vectors (the floor every scheme is compared with)."""
    stacked = np.stack(vectors)
    times = []
    for _ in range(max(repeat, 3)):
        t0 = time.perf_counter()
        np.average(stacked, axis=0, weights=weights)
        times.append(time.perf_counter() - t0)
    return {
        "encrypt_s": 0.0,
        "aggregate_s": statistics.median(times),
        "decrypt_s": 0.0,
        "bytes_per_party": stacked.shape[1] * 8,
        "max_abs_error": 0.0,
        "hides_updates": False,
        "note": "np.average over the pre-stacked (parties x params) array",
    }
