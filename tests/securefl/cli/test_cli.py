from __future__ import annotations

import json
import subprocess
import sys

import pytest

from securefl.cli.main import main
from tests.paths import CONFIGS

PLAIN = str(CONFIGS / "plain.toml")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "securefl", *args], capture_output=True, text=True, timeout=300)


def test_run_writes_the_json_contract_and_plot(tmp_path):
    path, png = tmp_path / "run.json", tmp_path / "run.png"
    assert main(["run", PLAIN, "--set", "federation.rounds=2", "--json", str(path), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(path.read_text())
    assert {"scheme", "dataset", "parties", "rounds", "final_accuracy"} <= set(data)
    assert data["scheme"] == "plain" and data["dataset"] == "breast_cancer" and data["parties"] == 5
    assert [r["round"] for r in data["rounds"]] == [0, 1]
    assert all({"round", "accuracy", "seconds", "bytes_up"} <= set(r) for r in data["rounds"])


def test_bench_writes_the_json_contract(tmp_path):
    path = tmp_path / "bench.json"
    assert main(["bench", "--schemes", "plain", "--parties", "3", "--params", "1000", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["results"]
    plain = next(r for r in rows if r["scheme"] == "plain")
    for key in ("scheme", "parties", "params", "encrypt_s", "aggregate_s", "decrypt_s", "bytes_per_party",
                "max_abs_error"):
        assert key in plain
    assert plain["parties"] == 3 and plain["params"] == 1000 and plain["max_abs_error"] < 1e-9
    assert plain["bytes_per_party"] >= 8000


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "missing.toml"], "does not exist"),
        (["run", PLAIN, "--set", "federation.roundz=2"], "federation.roundz: unknown key"),
        (["run", PLAIN, "--set", "federation.rounds=two"], "federation.rounds"),
        (["run", PLAIN, "--set", "nodot"], "SECTION.KEY=VALUE"),
        (["bench", "--schemes", "rot13"], "unknown scheme 'rot13'"),
        (["run", PLAIN, "--json", "/no/such/dir/x.json"], "does not exist"),
    ],
)
def test_errors_are_one_paragraph_without_traceback(args, needle):
    proc = _cli(*args)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_version_and_help():
    assert "securefl" in _cli("--version").stdout
    for cmd in ("run", "bench"):
        proc = _cli(cmd, "--help")
        assert proc.returncode == 0 and "usage" in proc.stdout


def test_role_commands_need_the_grpc_transport_and_run_refuses_it(tmp_path):
    proc = _cli("aggregator", PLAIN)
    assert proc.returncode == 2 and 'set transport.kind = "grpc"' in proc.stderr
    proc = _cli("run", PLAIN, "--set", "transport.kind=grpc")
    assert proc.returncode == 2 and "securefl authority / aggregator / party" in proc.stderr
    proc = _cli("party", PLAIN, "--id", "party-9", "--set", "transport.kind=grpc")
    assert proc.returncode == 2 and "--id 'party-9' is not a party" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_certs_command(tmp_path):
    assert main(["certs", str(tmp_path / "c"), "--config", PLAIN]) == 0
    assert sorted(p.name for p in (tmp_path / "c").glob("party-*.pem")) == [f"party-{i}.pem" for i in range(1, 6)]
    proc = _cli("certs", str(tmp_path / "c"), "--parties", "x")
    assert proc.returncode == 2 and "already holds a certificate authority" in proc.stderr
    proc = _cli("party", PLAIN, "--id", "party-1", "--set", "transport.kind=grpc",
                "--set", f"transport.cert_dir={tmp_path / 'missing'}")
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "securefl certs" in proc.stderr
