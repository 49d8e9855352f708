"""Reference implementations measured beside securefl's schemes in ``securefl bench``.

A baseline is a module with ``measure(vectors, weights, repeat) -> dict`` (or the
function named after a colon, ``"module:function"``) returning
the bench columns (``encrypt_s``, ``aggregate_s``, ``decrypt_s``,
``bytes_per_party``, ``max_abs_error``) and optionally ``note``, ``security_bits`` and
``hides_updates`` (``False`` for a baseline that protects nothing: its row then says "none").  They exist so
that every "N times faster than X" claim is a ratio measured in the same run.
Their libraries (flwr, pymife) are the optional extra ``bench``
(``pip install -e ".[bench]"``); a baseline whose library is missing is a
:class:`~securefl.errors.ConfigError` naming that extra, before any work starts.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

BASELINES: dict[str, str] = {
    "numpy": "securefl.tools.baselines.numpy_mean",
    "tenseal_nvflare": "securefl.tools.baselines.tenseal_nvflare",
    "phe": "securefl.tools.baselines.phe_per_value",
    "phe3072": "securefl.tools.baselines.phe_per_value:measure_3072",
    "pymife_damgard": "securefl.tools.baselines.pymife_damgard",
    "flower_secaggplus": "securefl.tools.baselines.flower_secaggplus",
    "flower_secaggplus_drop10": "securefl.tools.baselines.flower_secaggplus:measure_dropout",
}


def available() -> list[str]:
    """The names of every reference implementation ``securefl bench --baselines`` accepts."""
    return list(BASELINES)


def measure(name: str, vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int,
            options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run baseline ``name`` on the bench's vectors; ``options`` (e.g. ``{"neighbours": 14}``) go to the
    baselines whose function takes them as keyword arguments, and are ignored by the others."""
    baseline = load(name)
    accepted = inspect.signature(baseline).parameters
    given = {k: v for k, v in (options or {}).items() if k in accepted and v is not None}
    return baseline(vectors, weights, repeat, **given)


def takes(name: str, option: str) -> bool:
    """Whether baseline ``name`` takes keyword option ``option``."""
    return option in inspect.signature(load(name)).parameters


def load(name: str) -> Callable[..., dict[str, Any]]:
    """The measuring function of baseline ``name``; a missing library is a ConfigError naming the extra."""
    from securefl.errors import ConfigError

    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    module, _, attr = BASELINES[name].partition(":")
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"baseline {name!r} needs {exc.name or 'a package'} that is not installed: "
                          'pip install -e ".[bench]"') from exc
    baseline: Callable[..., dict[str, Any]] = getattr(found, attr or "measure")
    return baseline
