"""examples/multisite.py: each party on its own CSV, and no process opens another party's file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import EXAMPLES, REPO

pytestmark = pytest.mark.slow


def test_each_site_trains_on_its_own_file_alone(tmp_path):
    data = tmp_path / "breast_cancer.csv"
    subprocess.run([sys.executable, str(EXAMPLES / "multisite.py"), "--demo-csv", str(data)], check=True, cwd=REPO)
    opens = tmp_path / "opens"
    opens.mkdir()
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "audit"), str(REPO)]),
           "SECUREFL_OPEN_LOG": str(opens), "SECUREFL_OPEN_WATCH": str(work)}
    proc = subprocess.run([sys.executable, str(EXAMPLES / "multisite.py"), str(data), "--sites", "3", "--rounds", "3",
                           "--work", str(work)], capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    result = json.loads(proc.stdout)
    assert result["dataset"] == "own" and len(result["rounds"]) == 3
    assert result["rounds"][-1]["parties"] == ["party-1", "party-2", "party-3"]
    assert result["final_accuracy"] > 0.9  # the sites' own held-out rows, averaged
    # who opened which site file: each party its own, the aggregator and the authority none
    seen: dict[str, set[str]] = {}
    for log in opens.glob("*.log"):
        argv, *paths = log.read_text().splitlines()
        seen.setdefault(argv, set()).update(n for n in (Path(p).name for p in paths) if n.startswith("site-"))
    parties = {argv: files for argv, files in seen.items() if argv.startswith("-m party ")}
    servers = {argv: files for argv, files in seen.items() if argv.startswith(("-m aggregator ", "-m authority "))}
    assert len(parties) == 3 and len(servers) == 2, sorted(seen)
    for argv, files in parties.items():
        own = f"site-{argv.split('--id party-')[1].split()[0]}.csv"
        assert files == {own}, (argv, files)
    for argv, files in servers.items():
        assert not files, (argv, files)
