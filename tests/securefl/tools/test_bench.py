"""``securefl bench``: several party counts in one run, the numpy row once, plain's security, memory checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crypto_backends import registry
from securefl.cli.main import EXIT_ERROR, main
from securefl.tools import bench, machine


def test_several_party_counts_run_every_scheme_at_each():
    rows = bench.run(["plain"], parties=[3, 5], params=200)
    assert [(r.scheme, r.parties) for r in rows] == [("plain", 3), ("baseline:numpy", 3),
                                                     ("plain", 5), ("baseline:numpy", 5)]
    assert all(r.error is None and r.params == 200 for r in rows)
    plain3, plain5 = rows[0], rows[2]
    assert plain3.work_s == pytest.approx(3 * plain3.encrypt_s + plain3.aggregate_s + plain3.decrypt_s)
    assert plain5.x_numpy is not None and plain5.max_abs_error < 1e-9


def test_the_numpy_baseline_is_one_row_however_often_it_is_asked_for():
    rows = bench.run(["plain"], parties=3, params=100, baselines=["numpy", "numpy"])
    assert [r.scheme for r in rows].count("baseline:numpy") == 1


def test_plain_reports_no_security_bits():
    plain, numpy_row = bench.run(["plain"], parties=3, params=100)
    assert plain.hides_updates is False and plain.security_bits is None
    assert numpy_row.security_bits is None and numpy_row.hides_updates is False


def test_the_bench_table_says_none_for_plain(capsys):
    assert main(["bench", "--schemes", "plain", "--parties", "3", "--params", "100"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.lstrip("│| ").startswith("plain"))
    cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
    assert cells[:3] == ["plain", "3", "none"]


def test_parties_list_on_the_command_line(tmp_path):
    import json

    path = tmp_path / "b.json"
    assert main(["bench", "--schemes", "plain", "--parties", "2,4", "--params", "50", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["results"]
    assert sorted({(r["scheme"], r["parties"]) for r in rows}) == [
        ("baseline:numpy", 2), ("baseline:numpy", 4), ("plain", 2), ("plain", 4)]


def test_a_bad_parties_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--parties", "10,0"])
    assert exc.value.code == 2 and "positive" in capsys.readouterr().err


def test_memory_past_the_machine_is_a_typed_error_before_any_work(monkeypatch):
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: 10_000)
    called = []
    monkeypatch.setattr(bench, "bench_vectors", lambda *a, **k: called.append(a))
    with pytest.raises(machine.InsufficientMemoryError, match=r"lower --params"):
        bench.run(["plain"], parties=[3, 1000], params=1_000_000)
    assert not called  # refused before making the vectors


def test_a_scheme_whose_uploads_do_not_fit_is_an_error_row(monkeypatch):
    # room for the vectors and plain-sized uploads, not for uploads 8x larger
    need_plain = bench.memory_needed(4, 20_000, 8.0)
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: int(need_plain * 1.2))
    monkeypatch.setattr(bench, "_PER_VALUE", {})
    monkeypatch.setattr(bench, "upload_bytes_per_value", lambda name, params=None, parties=2: 64.0)
    rows = bench.run(["plain"], parties=4, params=20_000)
    assert rows[0].error and rows[0].error.startswith("InsufficientMemoryError") and "plain" in rows[0].error


def test_upload_bytes_per_value_is_measured_from_the_scheme():
    assert bench.upload_bytes_per_value("plain") == pytest.approx(8.0, rel=0.05)


def test_bytes_per_party_is_the_length_of_a_real_serialised_upload():
    """Checked against envelopes made here and measured with len(), and against plain's closed form."""
    small, large = (bench.run(["plain"], parties=3, params=n)[0] for n in (200, 1000))
    scheme = registry.create("plain")
    keys = scheme.keygen(["party-1", "party-2", "party-3"])  # the bench's ids: the header names the sender
    for row in (small, large):
        real = len(scheme.protect(keys.parties["party-1"], np.ones(row.params), weight=1.0, round=0).to_bytes())
        assert row.bytes_per_party == real, (row.bytes_per_party, real)
    # plain's payload is one little-endian float64 a value: 800 more values are 6400 more bytes, and the
    # header's "length" field one digit longer
    assert large.bytes_per_party - small.bytes_per_party == 8 * 800 + len("1000") - len("200")


def test_bench_cli_refuses_a_size_past_memory_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: 1_000_000)
    code = main(["bench", "--schemes", "plain", "--parties", "10", "--params", "1000000"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "memory" in err and "Traceback" not in err


def test_check_memory_passes_when_the_platform_cannot_say(monkeypatch):
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: None)
    machine.check_memory(1e18, "anything", "nothing to fix")


def test_available_memory_reads_meminfo():
    avail = machine.available_memory_bytes()
    total = machine.memory_bytes()
    assert avail is None or (total is not None and 0 < avail <= total)


def test_an_allocation_that_fails_despite_the_estimate_is_the_typed_error(monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(bench, "bench_vectors", no_memory)
    with pytest.raises(machine.InsufficientMemoryError, match="do not fit"):
        bench.run(["plain"], parties=3, params=100)


def test_the_upload_probe_keys_enough_parties_for_a_decryption_threshold():
    # threshold 3 cannot be served by two parties: the probe keys as many as the bench will
    params = registry.params_type("threshold_paillier").preset("test")
    params = dataclasses.replace(params, threshold=3)
    assert bench.upload_bytes_per_value("threshold_paillier", params, parties=5) > 1.0  # no InvalidParameterError


def test_a_long_row_is_estimated_from_a_probe_before_it_runs():
    estimates: list[tuple[str, float]] = []
    steps: list[str] = []
    rows = bench.run(["plain"], parties=3, params=4 * bench.PROBE_VALUES, on_step=steps.append,
                     on_estimate=lambda label, s: estimates.append((label, s)))
    assert steps == ["plain"] and [label for label, _ in estimates] == ["plain"]
    assert 0 < estimates[0][1] < 60 and not rows[0].error
    short: list[tuple[str, float]] = []
    bench.run(["plain"], parties=3, params=100, on_estimate=lambda label, s: short.append((label, s)))
    assert short == []  # a short row is not worth probing


def test_the_estimate_scales_the_probe_round_with_the_length(monkeypatch):
    from crypto_backends.roundtrip import RoundTrip

    seen: list[int] = []

    def probe(scheme, keys, vectors, weights, *, round, verify=False):
        seen.append(len(next(iter(vectors.values()))))
        return RoundTrip(np.zeros(1), (8,), (0.5,), (1.0, 1.0), 2.0, 0.5)  # 0.5 + 2 + 2 + 0.5 = 5 s per probe

    monkeypatch.setattr(bench, "run_round", probe)
    scheme = registry.create("plain")
    keys = scheme.keygen(["a", "b"])
    vectors = {p: np.ones(8 * bench.PROBE_VALUES) for p in ("a", "b")}
    estimate = bench.probe_estimate(scheme, keys, vectors, dict.fromkeys(vectors, 1.0), repeat=3)
    assert seen == [bench.PROBE_VALUES]  # one short round, not the long one
    assert estimate == pytest.approx(5.0 * 8 * 3)
