"""The DP wrapper: clipping, calibrated noise per party and in the sum, snapping, refusals, delegation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crypto_backends import Envelope, noise
from crypto_backends.dp import DPScheme, NoisePlan, NoiseSegment
from crypto_backends.errors import InvalidInputError, InvalidParameterError, MismatchError, PolicyError
from crypto_backends.roundtrip import revealing_key
from tests.schemes import SealedPlain, make_scheme

DIM = 100_000
PARTIES = ["alice", "bob", "carol", "dave", "erin"]


def _plan(mode="local", mechanism="gaussian", scale=0.5, clip=1.0, m=1, wb=1.0, length=DIM):
    return NoisePlan(mechanism, (NoiseSegment(length, scale),), mode=mode, clip_norm=clip,
                     min_contributors=m, weight_bound=wb)


def _sum(scheme, keys, vectors, weights, round=0):
    updates = [scheme.protect(keys.parties[p], v, weight=weights[p], round=round) for p, v in vectors.items()]
    aggregate = scheme.combine(keys.aggregator, [Envelope.from_bytes(u.to_bytes()) for u in updates], round=round)
    return updates, scheme.reveal(revealing_key(scheme, keys), aggregate)


def test_local_noise_has_the_calibrated_scale_on_each_update():
    dp = DPScheme(make_scheme("plain"), _plan(scale=0.5))
    keys = dp.keygen(PARTIES[:1])
    env = dp.protect(keys.parties["alice"], np.zeros(DIM), weight=1.0, round=0)
    seen = np.frombuffer(env.payload, dtype="<f8")  # what the aggregator of `plain` reads
    assert abs(seen.std() / 0.5 - 1) < 0.02
    grid = noise.grid_for(0.5)
    assert np.all(np.mod(seen / grid, 1.0) == 0)  # snapped before it left the party


def test_local_weighted_contribution_carries_weight_times_the_scale():
    dp = DPScheme(make_scheme("plain"), _plan(scale=0.5))
    keys = dp.keygen(PARTIES[:1])
    env = dp.protect(keys.parties["alice"], np.zeros(DIM), weight=4.0, round=0)
    assert abs(np.frombuffer(env.payload, dtype="<f8").std() / (4 * 0.5) - 1) < 0.02


def test_updates_are_clipped_to_the_l2_bound_before_noise():
    dp = DPScheme(make_scheme("plain"), _plan(scale=1e-6, clip=2.0, length=4))
    keys = dp.keygen(PARTIES[:1])
    env = dp.protect(keys.parties["alice"], np.array([30.0, 40.0, 0.0, 0.0]), weight=1.0, round=0)
    assert np.allclose(np.frombuffer(env.payload, dtype="<f8"), [1.2, 1.6, 0, 0], atol=1e-5)
    small = dp.protect(keys.parties["alice"], np.array([0.3, 0.4, 0.0, 0.0]), weight=1.0, round=1)
    assert np.allclose(np.frombuffer(small.payload, dtype="<f8"), [0.3, 0.4, 0, 0], atol=1e-5)  # not scaled up


@pytest.mark.parametrize("mechanism", ["gaussian", "laplace"])
def test_distributed_sum_carries_exactly_the_central_noise(sealed_scheme, mechanism):
    scale, wb = 0.3, 5.0
    dp = DPScheme(SealedPlain(), _plan("distributed", mechanism, scale=scale, m=5, wb=wb))
    keys = dp.keygen(PARTIES)
    weights = {p: float(i + 1) for i, p in enumerate(PARTIES)}  # the largest is the weight bound
    updates, total = _sum(dp, keys, {p: np.zeros(DIM) for p in PARTIES}, weights)
    central_std = noise.share_std(mechanism, scale * wb, 1)
    assert abs(total.std() / central_std - 1) < 0.02
    from scipy import stats

    grid = noise.grid_for(central_std)
    assert np.all(np.mod(total / grid, 1.0) == 0)  # the revealed sum is snapped
    # undo the discretisation with a uniform dither (test data) before a continuous KS test
    dithered = total + np.random.default_rng(0).uniform(-grid / 2, grid / 2, total.size)
    assert stats.kstest(dithered / (scale * wb), "norm" if mechanism == "gaussian" else "laplace").pvalue > 1e-6
    # each single share is far smaller than the central noise: alone it would not protect
    one = np.frombuffer(updates[-1].payload, dtype="<f8")
    assert one.std() < 0.5 * central_std


def test_distributed_noise_survives_dropouts_down_to_the_minimum(sealed_scheme):
    dp = DPScheme(SealedPlain(), _plan("distributed", scale=0.3, m=3, wb=1.0))
    keys = dp.keygen(PARTIES)
    _, total = _sum(dp, keys, {p: np.zeros(DIM) for p in PARTIES[:3]}, dict.fromkeys(PARTIES, 1.0))
    assert abs(total.std() / 0.3 - 1) < 0.02  # three of five answered: still the full noise


def test_distributed_mode_refuses_a_scheme_that_shows_updates():
    with pytest.raises(InvalidParameterError, match="hides individual updates"):
        DPScheme(make_scheme("plain"), _plan("distributed", m=3))


def test_weight_above_the_bound_is_refused(sealed_scheme):
    dp = DPScheme(SealedPlain(), _plan("distributed", m=2, wb=2.0, length=4))
    keys = dp.keygen(PARTIES[:2])
    with pytest.raises(InvalidInputError, match="weight_bound"):
        dp.protect(keys.parties["alice"], np.zeros(4), weight=3.0, round=0)


def test_wrong_length_and_double_wrapping_are_refused():
    dp = DPScheme(make_scheme("plain"), _plan(length=4))
    keys = dp.keygen(PARTIES[:1])
    with pytest.raises(MismatchError):
        dp.protect(keys.parties["alice"], np.zeros(5), weight=1.0, round=0)
    with pytest.raises(InvalidParameterError, match="already wrapped"):
        DPScheme(dp, _plan(length=4))
    with pytest.raises(InvalidParameterError):
        NoisePlan("gaussian", (NoiseSegment(4, 0.0),))


def test_prepared_noise_is_used_once_for_its_round():
    dp = DPScheme(make_scheme("plain"), _plan(scale=1.0, clip=None, length=8))
    keys = dp.keygen(PARTIES[:1])
    key = keys.parties["alice"]
    dp.prepare(key, length=8, weight=1.0, round=3)
    prepared = dp._prepared[("alice", 3)][1].copy()
    env = dp.protect(key, np.zeros(8), weight=1.0, round=3)
    assert np.array_equal(np.frombuffer(env.payload, dtype="<f8"), noise.snap(prepared, noise.grid_for(1.0)))
    again = dp.protect(key, np.zeros(8), weight=1.0, round=3)  # a second protect draws fresh noise
    assert not np.array_equal(np.frombuffer(again.payload, dtype="<f8"), np.frombuffer(env.payload, dtype="<f8"))


def test_the_wrapper_is_the_inner_scheme_on_the_wire():
    inner = make_scheme("plain")
    dp = DPScheme(inner, _plan(length=4))
    assert (dp.name, dp.reveal_plan.site, dp.declarations.hides_updates, dp.declarations.security_bits) == (
        inner.name, inner.reveal_plan.site, inner.declarations.hides_updates, inner.declarations.security_bits)
    assert "local differential privacy" in dp.threat_model.aggregator_learns
    assert math.isinf(dp.tolerance([1.0]))
    keys = dp.keygen(PARTIES[:2])
    env = dp.protect(keys.parties["alice"], np.ones(4), weight=1.0, round=0)
    dp._check_envelope(Envelope.from_bytes(env.to_bytes()), keys.aggregator, kind="update", round=0, length=4)
    assert dp.load_key(dp.dump_key(keys.aggregator)).key_id == keys.key_id


def test_distributed_shares_are_dithered_beyond_the_inner_schemes_rounding(sealed_scheme, monkeypatch):
    monkeypatch.setattr(SealedPlain, "tolerance", lambda self, weights: 0.01)
    dp = DPScheme(SealedPlain(), _plan("distributed", scale=1e-9, m=2, wb=1.0))
    assert dp.dither_std(1.0) == 0.08
    assert abs(dp.sample_noise(DIM, 1.0).std() / 0.08 - 1) < 0.02
    assert DPScheme(SealedPlain(), _plan("local", scale=1.0)).dither_std(1.0) == 0.0


def test_fewer_contributors_than_the_noise_plan_needs_are_refused_wherever_decryption_happens():
    """Issue 15 item 3: the key holders, not only the aggregator, refuse an aggregate short of noise shares."""
    dp = DPScheme(SealedPlain(), _plan("distributed", scale=0.3, m=3, wb=1.0, length=8))
    keys = dp.keygen(PARTIES)
    updates = [dp.protect(keys.parties[p], np.zeros(8), weight=1.0, round=0) for p in PARTIES[:2]]
    two = dp.combine(keys.aggregator, updates, round=0)
    holder = revealing_key(dp, keys)
    for call in (lambda: dp.reveal(holder, two), lambda: dp.release(holder, two, np.zeros(8)),
                 lambda: dp.check_contributors(two)):
        with pytest.raises(PolicyError, match="sums 2 update"):
            call()
    with pytest.raises(PolicyError, match="covers 2 contributor"):
        dp.check_weights(0, {"alice": 1.0, "bob": 1.0, "carol": 0.0})
    three = dp.combine(keys.aggregator, [*updates, dp.protect(keys.parties["carol"], np.zeros(8), weight=1.0,
                                                                round=0)], round=0)
    assert dp.reveal(holder, three).shape == (8,)
    local = DPScheme(SealedPlain(), _plan("local", scale=0.3, length=8))  # local noise needs no minimum
    lkeys = local.keygen(PARTIES)
    one = local.combine(lkeys.aggregator, [local.protect(lkeys.parties["alice"], np.zeros(8), weight=1.0, round=0)],
                        round=0)
    assert local.reveal(revealing_key(local, lkeys), one).shape == (8,)


@pytest.mark.parametrize("mechanism, scale", [("gaussian", 0.5), ("gaussian", 0.01), ("laplace", 0.3)])
def test_an_honest_local_release_stays_within_the_release_norm_bound_which_is_not_loose(mechanism, scale):
    dp = DPScheme(make_scheme("plain"), _plan(mechanism=mechanism, scale=scale, clip=1.0, length=2000))
    keys = dp.keygen(PARTIES[:1])
    bound = dp.declarations.release_norm_bound
    assert bound is not None
    norms = []
    for r in range(30):  # inputs far beyond the clip: the release is the clipped vector plus noise, snapped
        env = dp.protect(keys.parties["alice"], np.full(2000, 50.0), weight=3.0, round=r)
        released = dp.reveal(keys.aggregator, dp.combine(keys.aggregator, [env], round=r)) / 3.0
        norms.append(float(np.linalg.norm(released)))
    assert max(norms) <= bound
    typical = math.sqrt(1.0 + 2000 * noise.share_std(mechanism, scale, 1) ** 2)
    assert bound < 1.0 + 3 * typical  # a bound a party's influence can actually be held to


def test_the_release_norm_bound_is_the_inner_schemes_outside_local_mode_with_a_clip():
    assert DPScheme(make_scheme("plain"), _plan(clip=None)).declarations.release_norm_bound is None
    assert DPScheme(SealedPlain(), _plan(mode="distributed", m=2)).declarations.release_norm_bound is None
