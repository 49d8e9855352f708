"""Shared fixtures: every registered scheme with its fast test parameters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crypto_backends import registry
from crypto_backends.base import Scheme
from tests.schemes import make_scheme


@pytest.fixture(params=registry.available())
def scheme(request) -> Scheme:
    return make_scheme(request.param)


@pytest.fixture
def sealed_scheme(monkeypatch) -> Iterator[str]:
    """Registers :class:`tests.schemes.SealedPlain` for one test; returns its name."""
    monkeypatch.setitem(registry._BUILTIN, "sealed-test", "tests.schemes:SealedPlain")
    registry.get.cache_clear()
    yield "sealed-test"
    registry.get.cache_clear()
