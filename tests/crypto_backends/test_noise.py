"""The secure vectorised samplers: calibrated scale and shape, secure source, exact snapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from crypto_backends import noise

N = 200_000
# a two-sided KS test at this level fails a correct sampler once in a million runs
P_MIN = 1e-6


def test_gaussian_has_the_calibrated_scale_and_shape():
    x = noise.gaussian(N, 2.5)
    assert abs(x.std() / 2.5 - 1) < 0.01
    assert abs(x.mean()) < 5 * 2.5 / math.sqrt(N)
    assert stats.kstest(x / 2.5, "norm").pvalue > P_MIN
    assert noise.gaussian(7, 1.0).shape == (7,)  # odd lengths use half of the last Box-Muller pair


def test_laplace_has_the_calibrated_scale_and_shape():
    x = noise.laplace(N, 0.7)
    assert abs(np.mean(np.abs(x)) / 0.7 - 1) < 0.01  # E|X| = b
    assert stats.kstest(x / 0.7, "laplace").pvalue > P_MIN


def test_gamma_matches_its_distribution_for_small_and_large_shapes():
    for shape in (0.2, 1.0, 3.5):
        x = noise.gamma(N // 2, shape, 2.0)
        assert stats.kstest(x, "gamma", args=(shape, 0, 2.0)).pvalue > P_MIN, shape


@pytest.mark.parametrize("shares", [1, 3, 7])
def test_shares_sum_to_exactly_the_central_noise(shares):
    gauss = sum(noise.gaussian_share(N, 1.5, shares) for _ in range(shares))
    assert stats.kstest(gauss / 1.5, "norm").pvalue > P_MIN
    lap = sum(noise.laplace_share(N, 1.5, shares) for _ in range(shares))
    assert stats.kstest(lap / 1.5, "laplace").pvalue > P_MIN
    # one share alone is much smaller than the whole (it must not protect on its own)
    if shares > 1:
        assert noise.gaussian_share(N, 1.5, shares).std() < 1.5 / math.sqrt(shares) * 1.02


def test_noise_comes_from_os_urandom_not_from_a_seeded_generator(monkeypatch):
    monkeypatch.setattr(noise.os, "urandom", lambda n: bytes(n))
    np.random.seed(0)
    a = noise.gaussian(8, 1.0)
    np.random.seed(1)
    b = noise.gaussian(8, 1.0)
    assert np.array_equal(a, b)  # only the (here constant) OS source matters


def test_fresh_draws_differ():
    assert not np.array_equal(noise.gaussian(16, 1.0), noise.gaussian(16, 1.0))


def test_uniforms_are_never_zero_and_keep_their_low_bits():
    u = noise.open_uniform(N)
    assert u.min() > 0 and u.max() <= 1
    assert np.min(u) < 1e-3  # small values are represented, not flushed


def test_snap_rounds_exactly_to_the_power_of_two_grid():
    grid = noise.grid_for(1.0)
    assert grid == 2.0**-4 and grid <= 1.0 / noise.SNAP_FRACTION
    x = np.random.default_rng(0).normal(0, 50, 10_000)
    expected = np.round(x / grid) * grid
    snapped = noise.snap(x.copy(), grid)
    assert np.array_equal(snapped, expected)
    # the low-order bits Mironov's attack reads are zero: every value is an integer multiple of the grid
    assert np.all(np.mod(snapped / grid, 1.0) == 0)


def test_snapped_outputs_of_two_neighbouring_inputs_share_one_support():
    """Mironov's attack: an output reachable from x but not from x' identifies the input. After
    snapping, the outputs of x and x + (small shift) both lie on the same grid."""
    grid = noise.grid_for(1.0)
    a = noise.snap(0.1 + noise.gaussian(50_000, 1.0), grid)
    b = noise.snap(0.1 + 1e-9 + noise.gaussian(50_000, 1.0), grid)
    assert set(np.unique(np.mod(a, grid))) == set(np.unique(np.mod(b, grid))) == {0.0}
