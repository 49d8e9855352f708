from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from crypto_backends.encoding import FixedPoint
from crypto_backends.errors import DecodingOverflowError, InvalidParameterError


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-8, 8)))
@settings(deadline=None)  # a property of values, not of speed: no wall-clock deadline on a busy machine
def test_nearest_rounding_error_is_half_a_step(x):
    fp = FixedPoint(clip=8.0, bits=16)
    q = fp.encode(x)
    assert q.clipped == 0
    assert np.max(np.abs(fp.decode(q.values) - x)) <= fp.value_error() + 1e-12


def test_clipping_is_counted():
    fp = FixedPoint(clip=1.0, bits=8)
    q = fp.encode(np.array([-3.0, 0.5, 2.0]))
    assert q.clipped == 2
    assert list(q.values) == [-127, 64, 127]


def test_stochastic_rounding_is_unbiased_and_within_one_step():
    fp = FixedPoint(clip=1.0, bits=4, stochastic=True)
    x = np.full(20000, 0.05)
    q = fp.encode(x)
    decoded = fp.decode(q.values)
    assert np.max(np.abs(decoded - x)) <= fp.step
    assert abs(decoded.mean() - 0.05) < 0.01  # nearest rounding would give 0.0 here
    assert len(np.unique(q.values)) == 2


def test_overflow_is_detected_not_wrapped():
    fp = FixedPoint(clip=1.0, bits=8)
    fp.check_sum_range(np.array([127 * 3, -127 * 3]), total_weight=3)
    with pytest.raises(DecodingOverflowError, match="wrapped around"):
        fp.check_sum_range(np.array([127 * 3 + 1]), total_weight=3)
    with pytest.raises(DecodingOverflowError):
        fp.check_sum_range(np.array([2**70], dtype=object), total_weight=3)
    assert fp.headroom_bits(1) == 8 and fp.headroom_bits(4) == 10


@pytest.mark.parametrize("kw", [{"bits": 1}, {"bits": 63}, {"clip": 0}, {"clip": -1.0}])
def test_bad_parameters_are_refused(kw):
    with pytest.raises(InvalidParameterError):
        FixedPoint(**kw)
