from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = sorted(Path("examples/configs").glob("*.toml"))


def test_example_script_runs_the_plain_config():
    proc = subprocess.run([sys.executable, "examples/train.py", "examples/configs/plain.toml"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "final accuracy" in proc.stdout


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_scheme_configs_differ_from_plain_only_in_crypto(path):
    import tomllib

    plain = tomllib.loads(Path("examples/configs/plain.toml").read_text())
    other = tomllib.loads(path.read_text())
    if "crypto" not in other or path.stem not in other["crypto"].get("scheme", ""):
        pytest.skip(f"{path.name} is not a per-scheme variant of plain.toml")
    plain.pop("crypto"), other.pop("crypto")
    assert other == plain
