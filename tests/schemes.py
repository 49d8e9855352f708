"""Helpers for tests that run against every registered scheme."""

from __future__ import annotations

import warnings

from crypto_backends import InsecureParametersWarning, registry
from crypto_backends.base import Scheme, SchemeParams
from crypto_backends.plaintext import PlainScheme


def fast_params(name: str) -> SchemeParams:
    """The scheme's ``test`` preset if it has one (small keys, loudly insecure), else its default."""
    presets = registry.params_type(name).presets()
    return presets.get("test", presets["default"])


def make_scheme(name: str) -> Scheme:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return registry.create(name, fast_params(name))


class SealedPlain(PlainScheme):
    """A test double of an encrypting scheme: plain arithmetic that *declares* it hides updates.

    It lets the distributed-DP paths run before (and independently of) any real
    encrypting scheme; it is registered only inside the ``sealed_scheme`` fixture.
    """

    name = "sealed-test"
    hides_updates = True
