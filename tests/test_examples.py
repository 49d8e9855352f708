from __future__ import annotations

import subprocess
import sys

import pytest

from tests.paths import CONFIGS as CONFIG_DIR
from tests.paths import EXAMPLES, REPO

CONFIGS = sorted(CONFIG_DIR.glob("*.toml"))


def test_example_script_runs_the_plain_config():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "train.py"), str(CONFIG_DIR / "plain.toml")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "final accuracy" in proc.stdout


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_scheme_configs_differ_from_plain_only_in_crypto(path):
    import tomllib

    plain = tomllib.loads((CONFIG_DIR / "plain.toml").read_text())
    other = tomllib.loads(path.read_text())
    if "crypto" not in other or path.stem not in other["crypto"].get("scheme", ""):
        pytest.skip(f"{path.name} is not a per-scheme variant of plain.toml")
    plain.pop("crypto"), other.pop("crypto")
    assert other == plain


@pytest.mark.slow
def test_deploy_local_runs_every_role_as_a_process_and_prints_the_run_json():
    import json

    proc = subprocess.run(["bash", str(EXAMPLES / "deploy_local.sh"), str(CONFIG_DIR / "plain.toml"),
                           "--set", "federation.rounds=2", "--set", "federation.parties=3"],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["scheme"] == "plain" and result["parties"] == 3 and len(result["rounds"]) == 2
    assert result["rounds"][-1]["parties"] == ["party-1", "party-2", "party-3"]
    assert result["final_accuracy"] > 0.9
    assert "round 1 fused from 3 updates" in proc.stderr
