"""Output paths checked before the work, plain's banner, round numbering, dp-curve's built-in config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import resources

import pytest

from securefl.cli.main import EXIT_ERROR, main
from tests.paths import CONFIGS, REPO

PLAIN = str(CONFIGS / "plain.toml")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts its work (the checks must come first)."""
    from securefl import simulation
    from securefl.tools import bench, compare, dpcurve

    def boom(*args, **kwargs):
        raise AssertionError("the work started before the output paths were checked")

    for module, name in ((bench, "run"), (compare, "run"), (dpcurve, "run_curve"), (simulation, "Simulation")):
        monkeypatch.setattr(module, name, boom)


@pytest.mark.parametrize("argv, needle", [
    (["bench", "--schemes", "plain", "--params", "10", "--json", "{tmp}/missing/b.json"], "does not exist"),
    (["bench", "--schemes", "plain", "--params", "10", "--json", "{tmp}"], "is a directory"),
    (["run", PLAIN, "--json", "{tmp}/missing/r.json"], "does not exist"),
    (["run", PLAIN, "--plot", "{tmp}/r.jpg"], "PNG"),
    (["run", PLAIN, "--plot", "{tmp}/missing/r.png"], "does not exist"),
    (["compare", "--schemes", "plain", "--out", "{tmp}/afile"], "existing file"),
    (["compare", "--schemes", "plain", "--out", "{tmp}/missing/deeper"], "does not exist"),
    (["dp-curve", "--out", "{tmp}/afile"], "existing file"),
    (["aggregator", PLAIN, "--json", "{tmp}/missing/a.json"], "does not exist"),
])
def test_bad_output_paths_are_refused_before_the_work(tmp_path, capsys, no_work, argv, needle):
    (tmp_path / "afile").write_text("keep me")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and needle in err and "Traceback" not in err
    assert (tmp_path / "afile").read_text() == "keep me"


def test_an_unwritable_directory_is_refused(tmp_path, capsys, no_work, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    real_access = os.access
    # root may write anywhere: make the permission answer what it is for everyone else
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    assert main(["bench", "--schemes", "plain", "--json", str(locked / "b.json")]) == EXIT_ERROR
    assert "not writable" in capsys.readouterr().err
    assert main(["compare", "--schemes", "plain", "--out", str(locked)]) == EXIT_ERROR
    assert "not writable" in capsys.readouterr().err


def test_plain_runs_under_a_no_security_banner_and_rounds_count_as_in_json(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["run", PLAIN, "--set", "federation.rounds=2", "--json", str(path)]) == 0
    err = capsys.readouterr().err
    banner = " ".join(err.split())  # the console wraps long lines
    assert "no security" in banner and "128-bit" not in banner
    console_rounds = [int(m) for m in re.findall(r"^round\s+(\d+)\s", err, flags=re.M)]
    assert console_rounds == [r["round"] for r in json.loads(path.read_text())["rounds"]] == [0, 1]


def test_an_encrypting_scheme_states_its_security_level(capsys):
    assert main(["run", str(CONFIGS / "ckks.toml"), "--set", "federation.rounds=1"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "(128-bit security)" in err and "no security" not in err


def test_dp_curve_default_config_is_package_data_identical_to_the_example():
    from securefl.cli.main import DP_CURVE_CONFIG

    shipped = resources.files("securefl").joinpath(DP_CURVE_CONFIG).read_text(encoding="utf-8")
    assert shipped == (CONFIGS / "naive_bayes_dp.toml").read_text(encoding="utf-8")


def test_dp_curve_default_config_loads_from_any_directory(tmp_path):
    # --seeds 0 is refused after the config is loaded: the error shows which step failed
    proc = subprocess.run([sys.executable, "-m", "securefl", "dp-curve", "--seeds", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert "--seeds must be a positive integer" in proc.stderr and "config file" not in proc.stderr
