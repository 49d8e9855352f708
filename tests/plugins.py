"""Install a scheme as a third-party plug-in (an entry point in ``securefl.backends``) for one test."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto_backends import registry


@contextlib.contextmanager
def entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, target: str) -> Iterator[None]:
    """Register ``target`` (``module:Class``) as scheme ``name`` through a dist-info in ``tmp_path``."""
    dist = tmp_path / f"{name.replace('-', '_')}_entry-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-entry\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[securefl.backends]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._plugins.cache_clear()
    registry.get.cache_clear()
    try:
        yield
    finally:
        registry._plugins.cache_clear()
        registry.get.cache_clear()


@contextlib.contextmanager
def plugin_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Iterator[None]:
    """Make module ``<name>_plugin`` from ``source`` and register its class ``Plugin`` as scheme ``name``."""
    module = f"{name}_plugin"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    try:
        with entry_point(tmp_path, monkeypatch, name, f"{module}:Plugin"):
            yield
    finally:
        sys.modules.pop(module, None)
