"""Fusion as pure functions: what the fused model is, given what the scheme revealed.

Schemes reveal a weighted *sum* and the aggregate names its contributors and
their weights; turning that into a model is arithmetic that belongs here, not in
the round engine or the schemes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from securefl.errors import FusionError

Fuse = Callable[[np.ndarray, float], np.ndarray]
"""A fusion rule: the revealed weighted sum and the contributors' total weight -> the next global vector."""


def sum_of(weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
    """Sufficient statistics: the plain sum itself (every party's weight is 1)."""
    return np.asarray(weighted_sum, dtype=np.float64)


def mean_from_sum(weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
    """FedAvg: the weighted sum divided by the contributors' total weight."""
    if not total_weight > 0:
        raise FusionError(f"total weight must be positive, got {total_weight!r}: fuse an aggregate that has at "
                          "least one contributor with a positive weight")
    return np.asarray(weighted_sum, dtype=np.float64) / float(total_weight)


def weighted_mean(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Plain FedAvg of explicit vectors (the reference the secure path must match)."""
    return np.average(np.stack([np.asarray(v, dtype=np.float64) for v in vectors]), axis=0, weights=weights)
