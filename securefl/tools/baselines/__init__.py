"""Reference implementations measured beside securefl's schemes in ``securefl bench``.

A baseline is a module with ``measure(vectors, weights, repeat) -> dict`` (or the
function named after a colon, ``"module:function"``) returning
the bench columns (``encrypt_s``, ``aggregate_s``, ``decrypt_s``,
``bytes_per_party``, ``max_abs_error``) and optionally ``note``.  They exist so
that every "N times faster than X" claim is a ratio measured in the same run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BASELINES: dict[str, str] = {
    "numpy": "securefl.tools.baselines.numpy_mean",
    "tenseal_nvflare": "securefl.tools.baselines.tenseal_nvflare",
    "phe": "securefl.tools.baselines.phe_per_value",
    "phe3072": "securefl.tools.baselines.phe_per_value:measure_3072",
    "pymife_damgard": "securefl.tools.baselines.pymife_damgard",
}


def available() -> list[str]:
    return list(BASELINES)


def measure(name: str, vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int) -> dict[str, Any]:
    """Run baseline ``name`` on the bench's vectors."""
    if name not in BASELINES:
        from securefl.errors import ConfigError

        raise ConfigError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    module, _, attr = BASELINES[name].partition(":")
    baseline: Callable[[Sequence[np.ndarray], Sequence[float], int], dict[str, Any]]
    baseline = getattr(importlib.import_module(module), attr or "measure")
    return baseline(vectors, weights, repeat)
