"""Flower's own SecAgg+ (client mod + server workflow) as a bench baseline: its sum, its columns, its dropouts."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from securefl.errors import ConfigError
from securefl.tools import baselines, bench


def test_a_missing_flwr_is_a_config_error_naming_the_bench_extra(monkeypatch):
    # import flwr (and any flwr.* submodule another test already imported) now raises ImportError
    for name in [m for m in sys.modules if m == "flwr" or m.startswith("flwr.")] + ["flwr"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "securefl.tools.baselines.flower_secaggplus", raising=False)
    with pytest.raises(ConfigError, match=r"\[bench\]"):
        baselines.load("flower_secaggplus")


def test_default_neighbours_is_the_log_degree_or_the_full_graph():
    flower = pytest.importorskip("securefl.tools.baselines.flower_secaggplus", exc_type=ImportError)
    assert flower.default_neighbours(5) == 4  # 2*ceil(log2 5) = 6 >= n-1: the full graph
    assert flower.default_neighbours(100) == 14
    assert flower.default_neighbours(1000) == 20


def test_flowers_round_sums_the_parties_vectors():
    flower = pytest.importorskip("securefl.tools.baselines.flower_secaggplus", exc_type=ImportError)
    vectors, weights = bench.bench_vectors(5, 1000, seed=3)
    ints = [round(w) for w in weights]
    parties, before, unmask, fused = flower._one_round(vectors, ints, 4, 3, set())
    expected = np.average(np.stack(vectors), axis=0, weights=ints)
    # Flower quantises to 2^22 levels over [-8, 8]: about 4e-6 per value
    assert np.max(np.abs(fused - expected)) < 5e-5
    assert np.max(np.abs(fused - vectors[0])) > 0.1  # a real mean, not one party's vector
    assert all(p.seconds > 0 and p.sent > 8 * 1000 for p in parties)
    assert before > 0 and unmask > 0


def test_dropped_parties_are_recovered_and_left_out_of_the_sum():
    flower = pytest.importorskip("securefl.tools.baselines.flower_secaggplus", exc_type=ImportError)
    vectors, weights = bench.bench_vectors(10, 1000, seed=4)
    ints = [round(w) for w in weights]
    *_, fused = flower._one_round(vectors, ints, 6, 4, {9})
    survivors = np.average(np.stack(vectors[:9]), axis=0, weights=ints[:9])
    everyone = np.average(np.stack(vectors), axis=0, weights=ints)
    assert np.max(np.abs(fused - survivors)) < 5e-5
    assert np.max(np.abs(fused - everyone)) > 1e-2


@pytest.mark.parametrize("name", ["flower_secaggplus", "flower_secaggplus_drop10"])
def test_the_baseline_row_in_bench_has_every_column(name):
    pytest.importorskip("flwr")
    rows = bench.run(["plain"], parties=10, params=1000, baselines=[name])
    row = next(r for r in rows if r.scheme == f"baseline:{name}")
    assert row.error is None
    assert row.encrypt_s > 0 and row.aggregate_s > 0 and row.decrypt_s > 0 and row.work_s > row.round_s
    assert row.bytes_per_party > 8 * 1000 and row.max_abs_error < 5e-5
    assert row.security_bits == 32 and "32 bits" in row.note and "neighbours" in row.note
    assert ("1 of 10 parties dropped" in row.note) == name.endswith("drop10")


def test_the_neighbour_count_is_a_parameter_passed_from_the_command_line(tmp_path):
    pytest.importorskip("flwr")
    import json

    from securefl.cli.main import main

    path = tmp_path / "b.json"
    assert main(["bench", "--schemes", "plain", "--parties", "8", "--params", "200", "--baselines",
                 "flower_secaggplus,phe", "--neighbours", "4", "--json", str(path)]) == 0
    rows = {r["scheme"]: r for r in json.loads(path.read_text())["results"]}
    assert "4 neighbours (num_shares 5)" in rows["baseline:flower_secaggplus"]["note"]
    assert rows["baseline:phe"]["error"] is None  # a baseline without the option ignores it


def test_a_neighbour_count_out_of_range_is_refused(capsys):
    pytest.importorskip("flwr")
    from securefl.cli.main import EXIT_ERROR, main

    assert main(["bench", "--parties", "5", "--baselines", "flower_secaggplus", "--neighbours", "5"]) == EXIT_ERROR
    assert "N-1" in capsys.readouterr().err
    assert main(["bench", "--parties", "5", "--baselines", "phe", "--neighbours", "3"]) == EXIT_ERROR
    assert "SecAgg+" in capsys.readouterr().err
