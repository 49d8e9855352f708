from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pytest

from crypto_backends import registry
from crypto_backends.errors import InsecureParameterError, UnknownSchemeError


def test_builtin_plain_is_available():
    assert "plain" in registry.available()
    assert registry.create("plain").name == "plain"


def test_unknown_scheme_lists_the_available_ones():
    with pytest.raises(UnknownSchemeError, match="available: plain"):
        registry.get("rot13")


def test_third_party_scheme_plugs_in_through_the_entry_point_group(tmp_path, monkeypatch):
    pkg = tmp_path / "thirdparty_scheme.py"
    pkg.write_text(textwrap.dedent("""
        from dataclasses import dataclass
        from crypto_backends.plaintext import PlainScheme, PlainParams

        @dataclass(frozen=True)
        class WeakParams(PlainParams):
            bits: int = 80
            def security_bits(self) -> int:
                return self.bits

        class Echo(PlainScheme):
            name = "echo"
            params_type = WeakParams
    """))
    dist = tmp_path / "thirdparty_scheme-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-scheme\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[securefl.backends]\necho = thirdparty_scheme:Echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._plugins.cache_clear()
    registry.get.cache_clear()
    try:
        assert "echo" in registry.available()
        assert registry.get("echo").__name__ == "Echo"
        # the base class's security floor applies to plug-ins as well
        with pytest.raises(InsecureParameterError, match="80-bit"):
            registry.create("echo")
    finally:
        registry._plugins.cache_clear()
        registry.get.cache_clear()
        sys.modules.pop("thirdparty_scheme", None)
    assert importlib.metadata  # the plug-in path uses the standard library's metadata API
