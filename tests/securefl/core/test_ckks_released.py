"""What a user's own trainer receives under ckks at the default preset: the published model, flooded.

The published vector (``RunResult.final_parameters``, after ``release``'s noise flooding) is compared with
numpy's weighted mean of the fixed vectors the trainers return (:mod:`tests.audit.ckks_released`).
"""

from __future__ import annotations

import pytest

from tests.audit.ckks_released import run


def test_a_small_federation_receives_the_weighted_mean_within_its_flooding():
    """4 parties x 5000 values (3 chunks): the flooding's sigma on the mean is about 1.8e-6; 3e-5 is 16 sigma
    (the former 2^40 scale gave about 2e-3 here)."""
    out = run(parties=4, values=5_000)
    assert 0.0 < out.max_abs <= 3e-5
    assert out.rms <= 4e-6


@pytest.mark.slow
@pytest.mark.parametrize("weight", [0.0, 1.0])  # weights 1..10, and every party of weight 1
def test_ten_parties_of_100k_values_receive_the_weighted_mean_within_1e_4(weight):
    """Issue 23's figure: 10 parties x 100k at the default preset, within 1e-4 (max abs) of numpy."""
    out = run(parties=10, values=100_000, weight=weight)
    assert out.max_abs <= 1e-4
