from __future__ import annotations

import pytest

from crypto_backends import registry
from crypto_backends.errors import InsecureParameterError, UnknownSchemeError
from tests.plugins import plugin_scheme


def test_builtin_plain_is_available():
    assert "plain" in registry.available()
    assert registry.create("plain").name == "plain"


def test_unknown_scheme_lists_the_available_ones():
    with pytest.raises(UnknownSchemeError, match="available: plain"):
        registry.get("rot13")


def test_third_party_scheme_plugs_in_through_the_entry_point_group(tmp_path, monkeypatch):
    source = """
        from dataclasses import dataclass
        from crypto_backends.plaintext import PlainScheme, PlainParams

        @dataclass(frozen=True)
        class WeakParams(PlainParams):
            bits: int = 80
            def security_bits(self) -> int:
                return self.bits

        class Plugin(PlainScheme):
            name = "echo"
            params_type = WeakParams
    """
    with plugin_scheme(tmp_path, monkeypatch, "echo", source):
        assert "echo" in registry.available()
        assert registry.get("echo").__name__ == "Plugin"
        # the base class's security floor applies to plug-ins as well
        with pytest.raises(InsecureParameterError, match="80-bit"):
            registry.create("echo")
