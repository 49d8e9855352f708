"""The phe per-value baseline reports the bench columns, from a sample, extrapolated."""

from __future__ import annotations

import numpy as np

from securefl.tools import baselines
from securefl.tools.baselines import phe_per_value


def test_phe_baseline_columns_and_extrapolation():
    vectors = [np.random.default_rng(i).standard_normal(1000) for i in range(2)]
    m = baselines.measure("phe", vectors, [1.0, 2.0], repeat=1)
    assert {"encrypt_s", "aggregate_s", "decrypt_s", "bytes_per_party", "max_abs_error", "note"} <= set(m)
    assert m["bytes_per_party"] == 1000 * 512  # one 2048-bit-key ciphertext per value
    assert m["max_abs_error"] < 1e-9
    assert f"{phe_per_value.SAMPLE} values per party timed" in m["note"]
    assert "phe3072" in baselines.available()
