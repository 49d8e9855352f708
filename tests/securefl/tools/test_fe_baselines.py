"""The baselines the fe scheme is compared with run and report the bench's columns."""

from __future__ import annotations

import numpy as np
import pytest

from securefl.tools import baselines

# pymife is in the `test` and `bench` extras; without it (a bare install) this baseline's test is skipped
pytest.importorskip("mife")

COLUMNS = {"encrypt_s", "aggregate_s", "decrypt_s", "bytes_per_party", "max_abs_error", "note"}


def _inputs(parties: int = 3, dim: int = 40):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(dim) for _ in range(parties)], [float(i + 1) for i in range(parties)]


def test_pymife_damgard_baseline_reports_extrapolated_columns():
    vectors, weights = _inputs()
    row = baselines.measure("pymife_damgard", vectors, weights, repeat=1)
    assert COLUMNS <= set(row) and "extrapolated" in row["note"]
    assert row["encrypt_s"] > 0 and row["max_abs_error"] < 1e-3
