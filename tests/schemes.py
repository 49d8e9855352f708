"""Helpers for tests that run against every registered scheme."""

from __future__ import annotations

import warnings

from crypto_backends import InsecureParametersWarning, registry
from crypto_backends.base import Scheme, SchemeParams


def fast_params(name: str) -> SchemeParams:
    """The scheme's ``test`` preset if it has one (small keys, loudly insecure), else its default."""
    presets = registry.params_type(name).presets()
    return presets.get("test", presets["default"])


def make_scheme(name: str) -> Scheme:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return registry.create(name, fast_params(name))
