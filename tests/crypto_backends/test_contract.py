"""The contract every registered scheme must pass.

A new scheme joins this suite by registering; nothing here names a scheme.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re

import numpy as np
import pytest

from crypto_backends import SECRET_ACCESS, Envelope
from crypto_backends.base import RevealSite, Scheme
from crypto_backends.errors import (
    InvalidInputError,
    KeyMismatchError,
    KeyRoleError,
    LengthMismatchError,
    MalformedCiphertextError,
    RoundMismatchError,
    SchemeMismatchError,
    SecretExportError,
)
from crypto_backends.roundtrip import reveal_mean, revealing_key, secure_weighted_mean

PARTIES = ["alice", "bob", "carol", "dave"]


def _inputs(scheme: Scheme, n: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    bound = min(scheme.value_bound or 3.0, 3.0)
    rng = np.random.default_rng(seed)
    return {p: rng.uniform(-bound, bound, dim) for p in PARTIES[:n]}


def _weights(n: int) -> dict[str, float]:
    return {p: float(i + 1) for i, p in enumerate(PARTIES[:n])}


def _updates(scheme, keys, vectors, weights, round=0):
    return [scheme.protect(keys.parties[p], v, weight=weights[p], round=round) for p, v in vectors.items()]


def test_fused_vector_is_the_weighted_mean(scheme):
    keys = scheme.keygen(PARTIES)
    vectors, weights = _inputs(scheme, 4, 257, seed=1), _weights(4)
    fused = secure_weighted_mean(scheme, keys, vectors, weights, round=3)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    assert fused.shape == expected.shape
    assert np.max(np.abs(fused - expected)) <= scheme.tolerance(list(weights.values()))


def test_weights_are_respected(scheme):
    keys = scheme.keygen(PARTIES[:2])
    bound = min(scheme.value_bound or 3.0, 3.0)
    vectors = {"alice": np.full(16, -bound / 2), "bob": np.full(16, bound / 2)}
    weights = {"alice": 1.0, "bob": 3.0}
    fused = secure_weighted_mean(scheme, keys, vectors, weights)
    tol = scheme.tolerance([1.0, 3.0])
    assert np.allclose(fused, bound / 4, atol=tol)
    assert not np.allclose(fused, 0.0, atol=tol)  # the unweighted mean would be 0


def test_subset_of_parties_is_a_mean_over_that_subset(scheme):
    keys = scheme.keygen(PARTIES)
    vectors, weights = _inputs(scheme, 4, 33, seed=2), _weights(4)
    present = {p: vectors[p] for p in ("alice", "carol", "dave")}
    fused = secure_weighted_mean(scheme, keys, present, weights, round=1)
    expected = np.average(np.stack(list(present.values())), axis=0, weights=[weights[p] for p in present])
    assert np.max(np.abs(fused - expected)) <= scheme.tolerance([weights[p] for p in present])


def test_envelope_and_keys_round_trip_through_bytes(scheme):
    keys = scheme.keygen(PARTIES[:2])
    vectors, weights = _inputs(scheme, 2, 40, seed=3), _weights(2)
    env = scheme.protect(keys.parties["alice"], vectors["alice"], weight=1.0, round=5)
    back = Envelope.from_bytes(env.to_bytes())
    assert (back.scheme, back.version, back.key_id, back.round, back.parties, back.length) == (
        env.scheme, env.version, env.key_id, 5, ("alice",), 40,
    )
    assert bytes(back.payload) == bytes(env.payload)
    assert env.nbytes() == len(env.to_bytes())
    # keys survive an explicit export to the same role
    party2 = scheme.load_key(scheme.dump_key(keys.parties["bob"], secret_access=SECRET_ACCESS))
    assert type(party2) is type(keys.parties["bob"]) and party2.key_id == keys.key_id
    agg2 = scheme.load_key(scheme.dump_key(keys.aggregator, secret_access=SECRET_ACCESS))
    updates = [back, scheme.protect(party2, vectors["bob"], weight=2.0, round=5)]
    aggregate = scheme.combine(agg2, updates, round=5)
    fused = reveal_mean(scheme, keys, Envelope.from_bytes(aggregate.to_bytes()))
    expected = np.average(np.stack([vectors["alice"], vectors["bob"]]), axis=0, weights=[1, 2])
    assert np.max(np.abs(fused - expected)) <= scheme.tolerance([1.0, 2.0])


def test_secret_keys_need_the_export_token(scheme):
    keys = scheme.keygen(PARTIES[:2])
    for key in [*keys.parties.values(), keys.aggregator, keys.authority]:
        if key is not None and key.holds_secret:
            with pytest.raises(SecretExportError):
                scheme.dump_key(key)


def test_update_from_another_key_set_is_refused(scheme):
    keys, other = scheme.keygen(PARTIES[:2]), scheme.keygen(PARTIES[:2])
    vectors = _inputs(scheme, 2, 8, seed=4)
    mine = scheme.protect(keys.parties["alice"], vectors["alice"], weight=1.0, round=0)
    theirs = scheme.protect(other.parties["bob"], vectors["bob"], weight=1.0, round=0)
    with pytest.raises(KeyMismatchError):
        scheme.combine(keys.aggregator, [mine, theirs], round=0)


def test_update_of_another_scheme_is_refused(scheme):
    keys = scheme.keygen(PARTIES[:1])
    env = scheme.protect(keys.parties["alice"], np.zeros(4), weight=1.0, round=0)
    forged = dataclasses.replace(env, scheme="other-scheme")
    with pytest.raises(SchemeMismatchError):
        scheme.combine(keys.aggregator, [Envelope.from_bytes(forged.to_bytes())], round=0)


def test_updates_of_different_lengths_are_refused(scheme):
    keys = scheme.keygen(PARTIES[:2])
    a = scheme.protect(keys.parties["alice"], np.zeros(8), weight=1.0, round=0)
    b = scheme.protect(keys.parties["bob"], np.zeros(9), weight=1.0, round=0)
    with pytest.raises(LengthMismatchError):
        scheme.combine(keys.aggregator, [a, b], round=0)


def test_update_of_another_round_is_refused(scheme):
    keys = scheme.keygen(PARTIES[:1])
    env = scheme.protect(keys.parties["alice"], np.zeros(4), weight=1.0, round=1)
    with pytest.raises(RoundMismatchError):
        scheme.combine(keys.aggregator, [env], round=2)


@pytest.mark.parametrize("cut", [1, 7, 100])
def test_truncated_bytes_are_refused(scheme, cut):
    keys = scheme.keygen(PARTIES[:1])
    wire = scheme.protect(keys.parties["alice"], np.ones(64), weight=1.0, round=0).to_bytes()
    with pytest.raises(MalformedCiphertextError):
        Envelope.from_bytes(wire[: len(wire) - min(cut, len(wire) - 1)])


def test_truncated_payload_with_consistent_framing_is_refused(scheme):
    keys = scheme.keygen(PARTIES[:2])
    a = scheme.protect(keys.parties["alice"], np.ones(64), weight=1.0, round=0)
    b = scheme.protect(keys.parties["bob"], np.ones(64), weight=1.0, round=0)
    short = dataclasses.replace(b, payload=bytes(b.payload)[: memoryview(b.payload).nbytes // 2])
    with pytest.raises(MalformedCiphertextError):
        scheme.combine(keys.aggregator, [a, Envelope.from_bytes(short.to_bytes())], round=0)


def test_non_finite_input_is_refused(scheme):
    keys = scheme.keygen(PARTIES[:1])
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InvalidInputError):
            scheme.protect(keys.parties["alice"], np.array([0.0, bad, 1.0]), weight=1.0, round=0)


def test_roles_are_enforced(scheme):
    keys = scheme.keygen(PARTIES[:2])
    with pytest.raises(KeyRoleError):
        scheme.protect(keys.aggregator, np.zeros(4), weight=1.0, round=0)  # type: ignore[arg-type]
    updates = _updates(scheme, keys, _inputs(scheme, 2, 4, seed=5), _weights(2))
    with pytest.raises(KeyRoleError):
        scheme.combine(keys.parties["alice"], updates, round=0)  # type: ignore[arg-type]
    if scheme.reveal_site is RevealSite.PARTIES:
        aggregate = scheme.combine(keys.aggregator, updates, round=0)
        with pytest.raises(KeyRoleError):
            scheme.reveal(keys.aggregator, aggregate)
        assert not keys.aggregator.holds_secret


def test_keys_show_no_secret_and_refuse_pickling(scheme):
    keys = scheme.keygen(PARTIES[:2])
    for key in [*keys.parties.values(), keys.aggregator, keys.authority]:
        if key is None:
            continue
        text = repr(key)
        assert len(text) < 200
        assert not re.search(r"\d{20,}", text), text  # no big integers
        assert key.fingerprint in text
        with pytest.raises(TypeError):
            pickle.dumps(key)
        assert copy.deepcopy(key) is key  # never duplicated implicitly
    assert revealing_key(scheme, keys) is not None


def test_threat_model_is_declared(scheme):
    tm = scheme.threat_model
    assert tm.aggregator_learns and tm.collusion and tm.not_protected
    assert set(tm.key_holders) == {"party", "aggregator", "authority"}
