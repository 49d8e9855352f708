"""The README's configuration reference cannot drift from the config dataclasses."""

from __future__ import annotations

from pathlib import Path

from securefl import config

README = Path("README.md").read_text(encoding="utf-8")


def test_every_config_key_is_in_the_readme_reference():
    missing = []
    for key, *_ in config.reference_fields():
        parts = key.split(".")
        # scheme tables are documented per scheme, except allow_insecure which all share
        if parts[0] == "crypto" and len(parts) == 3 and parts[2] == "allow_insecure":
            continue
        if f"`{key}`" not in README:
            missing.append(key)
    assert not missing, f"add these keys to the README's configuration reference: {missing}"


def test_readme_opens_with_install_and_test_commands():
    head = README.split("## ")[0]
    assert "pip install" in head and "securefl run examples/configs/plain.toml" in head
    assert "python -m pytest" in head
    ci = Path(".ci/run").read_text()
    assert "python3 -m pytest" in ci and 'pip install' in ci
