"""ckks inside the round engine: same accuracy as plain, and the baseline it is measured against."""

from __future__ import annotations

import numpy as np

from securefl import config
from securefl.simulation import Simulation
from securefl.tools.baselines import measure
from tests.paths import CONFIGS


def test_ckks_trains_as_well_as_plain():
    plain = Simulation(config.load(str(CONFIGS / "plain.toml"))).run()
    ckks = Simulation(config.load(str(CONFIGS / "ckks.toml"))).run()
    assert ckks.scheme == "ckks"
    assert abs(ckks.final_accuracy - plain.final_accuracy) <= 0.01
    # published models carry flooding noise, far below what changes a prediction here
    assert np.max(np.abs(ckks.final_parameters - plain.final_parameters)) < 1e-2


def test_tenseal_nvflare_baseline_reports_the_bench_columns():
    rng = np.random.default_rng(0)
    vectors = [rng.standard_normal(5000) for _ in range(3)]
    row = measure("tenseal_nvflare", vectors, [1.0, 2.0, 3.0], repeat=1)
    assert {"encrypt_s", "aggregate_s", "decrypt_s", "bytes_per_party", "max_abs_error", "note"} <= set(row)
    assert row["max_abs_error"] < 1e-4
    assert 70 < row["bytes_per_party"] / 8192 < 90  # two 4096-slot chunks, about 81 bytes per slot
