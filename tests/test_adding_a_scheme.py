"""The README's complete scheme is the example file, passes the contract suite as a plug-in, and trains a federation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from securefl.cli.main import main
from tests.paths import REPO
from tests.plugins import entry_point

EXAMPLE = REPO / "examples" / "adding_a_scheme"


def _plugin_dir(tmp_path: Path) -> Path:
    """A dist-info that makes ``toymask`` a scheme name, as ``pip install`` of a plug-in package would."""
    dist = tmp_path / "toymask_entry-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toymask-entry\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[securefl.backends]\ntoymask = toymask:ToyMask\n")
    return tmp_path


def test_the_readme_shows_the_example_scheme_verbatim():
    readme = (REPO / "README.md").read_text()
    shown = re.search(r"<!-- toymask:begin -->\n```python\n(.*?)```\n<!-- toymask:end -->", readme, re.S)
    assert shown is not None, "README.md lost its toymask block"
    assert shown.group(1) == (EXAMPLE / "toymask.py").read_text()


def test_the_example_scheme_passes_the_contract_suite_as_a_plug_in(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_plugin_dir(tmp_path)), str(EXAMPLE), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly",
         "tests/crypto_backends/test_contract.py", "-k", "toymask"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 50 and "failed" not in summary and "skipped" not in summary, summary


def test_a_federation_trains_with_the_example_scheme(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    out = tmp_path / "run.json"
    with entry_point(tmp_path, monkeypatch, "toymask", "toymask:ToyMask"):
        code = main(["run", str(REPO / "examples" / "configs" / "plain.toml"), "--set", 'crypto.scheme="toymask"',
                     "--set", "federation.rounds=2", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["scheme"] == "toymask" and len(result["rounds"]) == 2
    assert result["final_accuracy"] > 0.8, result["final_accuracy"]


@pytest.mark.parametrize("bits", [7, 41])
def test_the_example_refuses_a_scale_outside_its_range(bits):
    sys.path.insert(0, str(EXAMPLE))
    try:
        from toymask import ToyMaskParams  # type: ignore[import-not-found]  # on sys.path only here

        from crypto_backends.errors import InvalidParameterError
        with pytest.raises(InvalidParameterError, match="scale_bits"):
            ToyMaskParams(scale_bits=bits).validate()
    finally:
        sys.path.remove(str(EXAMPLE))
