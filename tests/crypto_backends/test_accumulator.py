"""Streaming aggregation: every scheme's :class:`~crypto_backends.base.Accumulator` against its batch combine.

Nothing here names a scheme but the in-place ones' own edge cases: every
registered scheme (bare and wrapped) must fold updates one by one into the
aggregate :meth:`Scheme.combine` makes, refuse a bad update without changing
its state, and the default accumulator (over ``_combine``) must do the same.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crypto_backends import Envelope
from crypto_backends.base import Accumulator, Scheme
from crypto_backends.dp import DPScheme, NoisePlan, NoiseSegment
from crypto_backends.errors import (
    CryptoError,
    MalformedCiphertextError,
    MismatchError,
    SecureFLError,
)
from crypto_backends.plaintext import PlainScheme
from crypto_backends.roundtrip import reveal_sum, run_setup
from tests.schemes import contract_schemes, make_scheme

PARTIES = ["p1", "p2", "p3", "p4", "p5"]
DIM = 37


class DefaultFoldPlain(PlainScheme):
    """``plain`` with the base class's accumulator: folds through ``_combine`` (the default every scheme gets)."""

    def accumulator(self, key, *, round):  # type: ignore[no-untyped-def]
        return Accumulator(self, key, round=round)


@pytest.fixture(params=[*contract_schemes(), "default-fold", "dp-local"])
def scheme(request) -> Scheme:
    if request.param == "default-fold":
        return DefaultFoldPlain()
    if request.param == "dp-local":
        plan = NoisePlan("gaussian", (NoiseSegment(DIM, 0.1),), mode="local", clip_norm=10.0, min_contributors=1,
                         weight_bound=5.0)
        return DPScheme(make_scheme("plain"), plan)
    return make_scheme(request.param)


def _updates(scheme: Scheme, keys, rnd: int = 0) -> list[Envelope]:  # type: ignore[no-untyped-def]
    run_setup(scheme, keys, PARTIES, round=rnd)  # a scheme with a setup exchange (secagg) masks after it
    rng = np.random.default_rng(7)
    bound = min(scheme.declarations.value_bound or 2.0, 2.0)
    return [Envelope.from_bytes(scheme.protect(keys.parties[p], rng.uniform(-bound, bound, DIM), weight=i + 1.0,
                                               round=rnd).to_bytes())
            for i, p in enumerate(PARTIES)]


def test_streamed_aggregate_is_the_batch_aggregate(scheme: Scheme) -> None:
    keys = scheme.keygen(PARTIES)
    updates = _updates(scheme, keys)
    acc = scheme.accumulator(keys.aggregator, round=0)
    for env in reversed(updates):  # arrival order is not party order
        acc.add(env)
    streamed = acc.result()
    batch = scheme.combine(keys.aggregator, updates, round=0)
    assert (streamed.parties, streamed.weights, streamed.length) == (batch.parties, batch.weights, batch.length)
    assert streamed.kind == "aggregate" and streamed.round == 0
    tol = scheme.tolerance(batch.weights) * batch.total_weight
    if np.isfinite(tol):
        again = Envelope.from_bytes(streamed.to_bytes())
        assert np.allclose(reveal_sum(scheme, keys, again), reveal_sum(scheme, keys, batch), rtol=0,
                           atol=2 * tol + 1e-9)


def test_a_bad_update_costs_only_its_sender(scheme: Scheme) -> None:
    keys = scheme.keygen(PARTIES)
    updates = _updates(scheme, keys)
    other_round = _updates(scheme, keys, rnd=1)[2]
    acc = scheme.accumulator(keys.aggregator, round=0)
    acc.add(updates[0])
    with pytest.raises(MismatchError):
        acc.add(other_round)
    with pytest.raises(MalformedCiphertextError):
        acc.add(updates[0])  # a second update of one party
    short = dataclasses.replace(updates[1], length=DIM - 1)
    with pytest.raises(MismatchError):
        acc.add(short)
    for env in updates[1:]:
        acc.add(env)
    assert acc.result().parties == tuple(PARTIES)
    assert not acc.rejected


def test_a_garbled_payload_is_refused_or_rejected_and_the_rest_folds(scheme: Scheme) -> None:
    keys = scheme.keygen(PARTIES)
    updates = _updates(scheme, keys)
    raw = bytearray(bytes(updates[2].payload))
    raw[len(raw) // 2 :] = b"\xff" * (len(raw) - len(raw) // 2)  # not a float, point or ciphertext any more
    garbled = dataclasses.replace(updates[2], payload=bytes(raw))
    acc = scheme.accumulator(keys.aggregator, round=0)
    refused = set()
    for env in [updates[0], updates[1], garbled, *updates[3:]]:
        try:
            acc.add(env)
        except SecureFLError:
            refused.add(env.party)
    result = acc.result()
    lost = refused | set(acc.rejected)
    assert lost in ({"p3"}, set())  # set(): a scheme whose payload carries no structure to break (none today)
    assert set(result.parties) == set(PARTIES) - lost
    if lost:
        good = [u for u in updates if u.party != "p3"]
        tol = scheme.tolerance(result.weights) * result.total_weight
        if np.isfinite(tol):
            want = reveal_sum(scheme, keys, scheme.combine(keys.aggregator, good, round=0))
            assert np.allclose(reveal_sum(scheme, keys, result), want, rtol=0, atol=2 * tol + 1e-9)


def test_an_empty_accumulator_has_no_result(scheme: Scheme) -> None:
    keys = scheme.keygen(PARTIES[:1])
    with pytest.raises(CryptoError, match="nothing to combine"):
        scheme.accumulator(keys.aggregator, round=0).result()


def test_the_accumulator_needs_the_aggregator_key(scheme: Scheme) -> None:
    keys = scheme.keygen(PARTIES[:1])
    with pytest.raises(SecureFLError):
        scheme.accumulator(keys.parties["p1"], round=0)  # type: ignore[arg-type]
