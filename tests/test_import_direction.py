"""The layering holds: securefl imports crypto_backends, never the reverse; the core imports no transport, tool or CLI.

Read from the source (every ``import`` and ``from ... import`` statement, including
those inside functions), so a lazy import breaks the rule as much as a top-level one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

#: package prefix -> module prefixes it must never import
RULES: dict[str, tuple[str, ...]] = {
    "crypto_backends": ("securefl",),
    "securefl.core": ("securefl.transport.inproc", "securefl.transport.ray", "securefl.transport.grpc",
                      "securefl.tools", "securefl.cli"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(source: str, module: str) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, relative imports resolved."""
    names: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def violations(source: str, module: str) -> list[str]:
    """The imports of ``module`` that break :data:`RULES`."""
    found = []
    for owner, banned in RULES.items():
        if module == owner or module.startswith(owner + "."):
            for name in sorted(imported(source, module)):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    found.append(f"{module} imports {name}")
    return found


def test_the_rule_catches_a_lazy_import_against_the_direction():
    bad = "def f():\n    from securefl.core import engine\n"
    assert violations(bad, "crypto_backends.fake") == ["crypto_backends.fake imports securefl.core",
                                                        "crypto_backends.fake imports securefl.core.engine"]
    assert violations("from ..tools import bench\n", "securefl.core.fake") == [
        "securefl.core.fake imports securefl.tools", "securefl.core.fake imports securefl.tools.bench"]
    assert violations("from securefl.transport.base import Transport\n", "securefl.core.fake") == []


@pytest.mark.parametrize("package", ["crypto_backends", "securefl"])
def test_no_module_imports_against_the_layering(package):
    found = [v for path in sorted((REPO / package).rglob("*.py"))
             for v in violations(path.read_text(), _module_name(path))]
    assert found == []


def test_importing_securefl_loads_no_optional_heavy_dependency():
    code = ("import sys, securefl, crypto_backends; "
            "print(','.join(m for m in ('torch', 'ray', 'flwr') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
