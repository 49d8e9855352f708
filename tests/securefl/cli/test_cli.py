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


def _stop_in_round_1(monkeypatch, error: BaseException) -> None:
    """Every party fails (or the user interrupts) from round 1 on: round 0 completes, round 1 cannot."""
    from securefl.core.party import Party

    honest = Party.respond

    def respond(self, step, round, stage, payload):
        if round >= 1:
            raise error
        return honest(self, step, round, stage, payload)

    monkeypatch.setattr(Party, "respond", respond)


@pytest.mark.parametrize("error, status, reason", [
    (RuntimeError("disk full"), 2, "quorum lost"),  # every party dropped: below the quorum
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_a_run_that_stops_early_writes_its_json_with_the_rounds_done_and_why(tmp_path, monkeypatch, error, status,
                                                                              reason):
    path = tmp_path / "run.json"
    if isinstance(error, KeyboardInterrupt):  # the interrupt reaches the engine's thread, as Ctrl-C does
        from securefl.transport.inproc import InProcessTransport

        exchange = InProcessTransport.exchange

        def interrupted(self, request, accept, *, timeout):
            if request.round >= 1:
                raise KeyboardInterrupt
            return exchange(self, request, accept, timeout=timeout)

        monkeypatch.setattr(InProcessTransport, "exchange", interrupted)
    else:
        _stop_in_round_1(monkeypatch, error)
    assert main(["run", PLAIN, "--set", "federation.rounds=3", "--json", str(path)]) == status
    data = json.loads(path.read_text())
    assert [r["round"] for r in data["rounds"]] == [0] and data["stopped"] == reason
    assert data["final_accuracy"] == data["rounds"][0]["accuracy"] > 0.5


def test_a_run_whose_budget_runs_out_writes_its_json_and_exits_non_zero(tmp_path):
    path = tmp_path / "run.json"
    result = _cli("run", str(CONFIGS / "logistic_dp.toml"), "--set", "federation.rounds=3", "--set",
                  "privacy.epsilon_budget=2", "--set", "privacy.epsilon=1", "--json", str(path))
    assert result.returncode == 2, result.stderr
    data = json.loads(path.read_text())
    assert [r["round"] for r in data["rounds"]] == [0, 1] and data["stopped"] == "budget exhausted"
    assert "round 2 refused" in data["stop_message"] and data["privacy"]["epsilon_spent"] == 2


def test_a_complete_run_says_it_did_not_stop(tmp_path):
    path = tmp_path / "run.json"
    assert main(["run", PLAIN, "--set", "federation.rounds=1", "--json", str(path)]) == 0
    assert json.loads(path.read_text())["stopped"] is None


def _strict(text: str):
    def refuse(name: str):
        raise AssertionError(f"the JSON holds {name}")
    return json.loads(text, parse_constant=refuse)


def test_a_metric_nobody_measured_is_null_in_the_json_not_nan(tmp_path, monkeypatch):
    from securefl.core.messages import metrics_bytes
    from securefl.core.party import Party

    honest = Party.respond
    monkeypatch.setattr(Party, "respond", lambda self, step, *a: metrics_bytes({}) if step == "evaluate"
                        else honest(self, step, *a))
    path = tmp_path / "run.json"
    assert main(["run", PLAIN, "--set", "federation.rounds=2", "--json", str(path)]) == 0
    data = _strict(path.read_text())
    assert [r["accuracy"] for r in data["rounds"]] == [None, None] and data["final_accuracy"] is None


def test_a_run_that_stops_before_its_first_round_writes_its_json_with_no_rounds(tmp_path, monkeypatch):
    # the model's starting point must come from a party, and every party's trainer fails to give it
    from securefl.core.federation import SharedDataFederation
    from securefl.core.party import Party

    def no_initial(self):
        raise RuntimeError("the trainer cannot build its model")

    monkeypatch.setattr(SharedDataFederation, "initial", property(lambda self: None))
    monkeypatch.setattr(Party, "initial_parameters", no_initial)
    path = tmp_path / "run.json"
    assert main(["run", PLAIN, "--set", "federation.rounds=2", "--json", str(path)]) == 2
    data = json.loads(path.read_text())
    assert data["rounds"] == [] and data["stopped"] == "quorum lost" and data["final_accuracy"] is None
    assert "no party gave the model's initial parameters" in data["stop_message"]


def test_bench_shows_each_step_when_stderr_is_not_a_terminal():
    # a CI log or a pipe gets a line per scheme, with the time the previous one took, not a hidden bar
    result = _cli("bench", "--schemes", "plain,secagg", "--parties", "3", "--params", "1000")
    assert result.returncode == 0, result.stderr
    assert "securefl bench [1/2] plain (at +" in result.stderr
    assert "securefl bench [2/2] secagg (at +" in result.stderr and "the last step took" in result.stderr
    assert "securefl bench: 2 step(s) in" in result.stderr


def test_bench_prints_an_estimate_before_a_slow_row(monkeypatch, capsys):
    from securefl.cli import bench as bench_cli

    monkeypatch.setattr(bench_cli, "SLOW_S", 0.0)  # every probed row counts as slow
    assert main(["bench", "--schemes", "plain", "--parties", "3", "--params", "16384"]) == 0
    err = capsys.readouterr().err
    assert "plain at 16,384 values: about" in err and "4,096-value probe" in err


def test_bench_verify_prints_the_verified_reveal_table_and_writes_its_columns(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--schemes", "paillier", "--parties", "3", "--params", "300", "--verify",
                 "--verify-samples", "2", "--set", "crypto.paillier.key_bits=1024",
                 "--set", "crypto.paillier.allow_insecure=true", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "verified reveal (verify_aggregate = full / sampled)" in out and "2 of " in out
    row = next(r for r in json.loads(path.read_text())["results"] if r["scheme"] == "paillier")
    for mode in ("full", "sampled"):  # no value: both modes
        assert {f"{c}_{mode}" for c in ("sign_s", "check_s", "prove_s", "verify_s", "verify_x", "verify_added_x",
                                         "verify_round_x", "statement_bytes", "evidence_bytes", "verify_bytes_x",
                                         "detect_one_block", "detect_one_block_any")} <= set(row["extra"])
    assert row["extra"]["samples_sampled"] == 2
    assert main(["bench", "--schemes", "plain", "--parties", "3", "--params", "100", "--verify", "full",
                 "--json", str(path)]) == 0
    plain = next(r for r in json.loads(path.read_text())["results"] if r["scheme"] == "plain")
    assert "verify_x_full" in plain["extra"] and "verify_x_sampled" not in plain["extra"]
    capsys.readouterr()
    assert main(["bench", "--schemes", "plain", "--parties", "3", "--params", "100"]) == 0
    assert "verified reveal" not in capsys.readouterr().out  # the default bench runs no verified round


@pytest.mark.parametrize(("flags", "message"), [(["--verify", "fast"], "unknown mode 'fast'"),
                                                (["--verify", "full", "--verify-samples", "0"], "--verify-samples 0")])
def test_bench_verify_refuses_an_unknown_mode_or_sample_count(capsys, flags, message):
    assert main(["bench", "--schemes", "plain", "--parties", "3", "--params", "10", *flags]) != 0
    assert message in capsys.readouterr().err
