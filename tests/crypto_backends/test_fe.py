"""Behaviour specific to the ``fe`` scheme: policy, dropouts, round binding, garbling, bounds, leaks."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_backends import SECRET_ACCESS, FunctionKey
from crypto_backends.encoding import ClippedValuesWarning
from crypto_backends.errors import (
    DecodingOverflowError,
    InvalidInputError,
    InvalidParameterError,
    KeyReuseError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
    PolicyError,
)
from crypto_backends.fe import FEParams, FEScheme, dlog, group, kernels, pointsum
from crypto_backends.fe.scheme import _round_scalar
from crypto_backends.roundtrip import contributor_weights, secure_weighted_mean

PARTIES = ["p0", "p1", "p2", "p3", "p4"]
TEST = FEParams.preset("test")


def scheme(**changes) -> FEScheme:
    return FEScheme(dataclasses.replace(TEST, **changes))


def strict() -> FEScheme:
    """The default policy (3 parties, no share above one half) with the small test table."""
    return scheme(min_parties=3, max_share=0.5)


def vectors(n: int = 5, dim: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p: rng.uniform(-2, 2, dim) for p in PARTIES[:n]}


def protect_all(s, keys, vecs, weights, round=0):
    return [s.protect(keys.parties[p], v, weight=weights[p], round=round) for p, v in vecs.items()]


# --- the policy ---------------------------------------------------------------------------
def test_too_few_parties_is_refused_and_logged(caplog):
    s = strict()
    keys = s.keygen(PARTIES)
    with caplog.at_level(logging.WARNING, logger="crypto_backends.fe.policy"), pytest.raises(
        PolicyError, match="non-zero weight"
    ):
        s.function_key(keys.authority, round=0, weights={"p0": 1.0, "p1": 1.0, "p2": 0.0})
    assert "refused" in caplog.text and "round 0" in caplog.text


def test_a_dominant_share_is_refused():
    s = strict()
    keys = s.keygen(PARTIES)
    with pytest.raises(PolicyError, match="max_share"):
        s.function_key(keys.authority, round=0, weights={"p0": 10.0, "p1": 1.0, "p2": 1.0, "p3": 1.0})


def test_a_second_vector_in_one_round_is_refused_the_same_one_is_not():
    s = strict()
    keys = s.keygen(PARTIES)
    first = {"p0": 1.0, "p1": 1.0, "p2": 1.0, "p3": 1.0}
    key = s.function_key(keys.authority, round=4, weights=first)
    again = s.function_key(keys.authority, round=4, weights=dict(first, p4=0.0))  # a zero changes nothing
    assert again.unwrap("fe") == key.unwrap("fe")
    with pytest.raises(PolicyError, match="already issued"):
        s.function_key(keys.authority, round=4, weights={"p0": 1.0, "p1": 1.0, "p2": 1.0})
    s.function_key(keys.authority, round=5, weights={"p0": 1.0, "p1": 1.0, "p4": 1.0})  # another round: fine


def test_a_round_whose_contributors_differ_by_one_party_from_another_round_is_refused():
    """Issue 15 item 2: sums of rounds r and r+1 over sets differing by one party give that party's update."""
    s = strict()
    keys = s.keygen(PARTIES)
    ones = dict.fromkeys(PARTIES[:4], 1.0)
    s.function_key(keys.authority, round=0, weights=ones)
    s.function_key(keys.authority, round=1, weights=ones)  # the same set again: a sum of other inputs, fine
    dropped = {p: 1.0 for p in PARTIES[:3]}
    with pytest.raises(PolicyError, match=r"rounds 0, 1, .* the update of p3 alone \(1 < min_parties_changed = 2\)"):
        s.function_key(keys.authority, round=2, weights=dropped)
    with pytest.raises(PolicyError, match="update of p4 alone"):  # one party joining is the same difference
        s.function_key(keys.authority, round=2, weights=dict(ones, p4=1.0))
    swapped = {"p0": 1.0, "p1": 1.0, "p2": 1.0, "p4": 1.0}  # p3 out, p4 in: two parties changed
    s.function_key(keys.authority, round=2, weights=swapped)
    with pytest.raises(PolicyError, match="any one of p3, p4 alone"):  # every earlier round counts
        s.function_key(keys.authority, round=3, weights=dropped | {"p3": 0.0, "p4": 0.0} | {"p0": 1.0})
    # the threshold is the configured one; 1 (or 0) turns the check off, as differential privacy does
    wide = scheme(min_parties=3, max_share=0.5, min_parties_changed=3)
    wkeys = wide.keygen(PARTIES)
    wide.function_key(wkeys.authority, round=0, weights=ones)
    with pytest.raises(PolicyError, match=r"a sum over only p3, p4 \(2 < min_parties_changed = 3\)"):
        wide.function_key(wkeys.authority, round=1, weights=swapped)
    assert TEST.under_differential_privacy().min_parties_changed == 0
    relaxed = FEScheme(strict().params.under_differential_privacy())
    rkeys = relaxed.keygen(PARTIES)
    relaxed.function_key(rkeys.authority, round=0, weights=ones)
    relaxed.function_key(rkeys.authority, round=1, weights=dropped)


def test_unknown_parties_and_negative_weights_are_refused():
    s = strict()
    keys = s.keygen(PARTIES)
    with pytest.raises(PolicyError, match="not a member"):
        s.function_key(keys.authority, round=0, weights={"p0": 1.0, "p1": 1.0, "mallory": 1.0})
    with pytest.raises(PolicyError, match="finite number"):
        s.function_key(keys.authority, round=0, weights={"p0": 1.0, "p1": 1.0, "p2": -1.0})


def test_the_ledger_survives_an_authority_key_export():
    s = strict()
    keys = s.keygen(PARTIES)
    s.function_key(keys.authority, round=2, weights={"p0": 1.0, "p1": 1.0, "p2": 1.0})
    restored = s.load_key(s.dump_key(keys.authority, secret_access=SECRET_ACCESS))
    with pytest.raises(PolicyError):
        s.function_key(restored, round=2, weights={"p0": 1.0, "p1": 1.0, "p3": 1.0})


def test_only_the_authority_derives_function_keys():
    s = strict()
    keys = s.keygen(PARTIES)
    with pytest.raises(KeyRoleError):
        s.function_key(keys.aggregator, round=0, weights={p: 1.0 for p in PARTIES})  # type: ignore[arg-type]


# --- dropouts ---------------------------------------------------------------------------------
def test_a_dropped_party_leaves_a_mean_over_those_that_answered():
    s = strict()
    keys = s.keygen(PARTIES)
    vecs = vectors(5)
    weights = {p: float(i + 2) for i, p in enumerate(PARTIES)}
    answered = {p: v for p, v in vecs.items() if p != "p3"}
    fused = secure_weighted_mean(s, keys, answered, weights, round=7)
    expected = np.average(np.stack(list(answered.values())), axis=0, weights=[weights[p] for p in answered])
    assert np.max(np.abs(fused - expected)) <= s.tolerance([weights[p] for p in answered])


def test_a_key_that_includes_a_dropped_party_is_refused_before_decryption():
    s = strict()
    keys = s.keygen(PARTIES)
    updates = protect_all(s, keys, {p: v for p, v in vectors(4).items() if p != "p3"}, dict.fromkeys(PARTIES, 1.0))
    aggregate = s.combine(keys.aggregator, updates, round=0)
    fkey = s.function_key(keys.authority, round=0, weights={"p0": 1.0, "p1": 1.0, "p2": 1.0, "p3": 1.0})
    with pytest.raises(MismatchError):
        s.reveal(keys.aggregator, aggregate, function_key=fkey)


# --- rounds are bound ---------------------------------------------------------------------------
@pytest.fixture
def two_rounds():
    s = strict()
    keys = s.keygen(PARTIES)
    vecs = vectors(3)
    rounds = {}
    for r in (1, 2):
        updates = protect_all(s, keys, vecs, dict.fromkeys(vecs, 1.0), round=r)
        rounds[r] = (updates, s.combine(keys.aggregator, updates, round=r))
    key1 = s.function_key(keys.authority, round=1, weights=contributor_weights(rounds[1][1]))
    return s, keys, rounds, key1


def test_mixing_rounds_is_the_typed_error(two_rounds):
    s, keys, rounds, key1 = two_rounds
    with pytest.raises(MismatchError):
        s.combine(keys.aggregator, [rounds[1][0][0], *rounds[2][0][1:]], round=2)
    with pytest.raises(MismatchError):
        s.reveal(keys.aggregator, rounds[2][1], function_key=key1)


def test_relabelled_rounds_decrypt_to_nothing(two_rounds):
    """Forged round numbers pass the metadata checks but the pads do not cancel."""
    s, keys, rounds, key1 = two_rounds
    forged_key = FunctionKey("fe", key1.key_id, key1.unwrap("fe"), round=2, weights=key1.weights)
    with pytest.raises(DecodingOverflowError):
        s.reveal(keys.aggregator, rounds[2][1], function_key=forged_key)
    # one round-1 update relabelled into round 2
    mixed = [dataclasses.replace(rounds[1][0][0], round=2), *rounds[2][0][1:]]
    aggregate = s.combine(keys.aggregator, mixed, round=2)
    key2 = s.function_key(keys.authority, round=2, weights=contributor_weights(aggregate))
    with pytest.raises(DecodingOverflowError):
        s.reveal(keys.aggregator, aggregate, function_key=key2)


def test_a_key_for_other_weights_decrypts_to_nothing():
    """The aggregator cannot choose weights: a key for weights the parties did not use is noise."""
    s = strict()
    keys = s.keygen(PARTIES)
    vecs = vectors(3)
    updates = protect_all(s, keys, vecs, {"p0": 1.0, "p1": 2.0, "p2": 3.0})
    lied = [dataclasses.replace(u, weights=(2.0,)) for u in updates]  # claim equal weights
    aggregate = s.combine(keys.aggregator, lied, round=0)
    fkey = s.function_key(keys.authority, round=0, weights=contributor_weights(aggregate))
    with pytest.raises(DecodingOverflowError):
        s.reveal(keys.aggregator, aggregate, function_key=fkey)


# --- garbled ciphertexts and out-of-bound results ----------------------------------------------------
def two_updates(x: np.ndarray):
    s = scheme()
    keys = s.keygen(PARTIES[:2])
    return s, keys, *(s.protect(keys.parties[p], x, weight=1.0, round=0) for p in ("p0", "p1"))


@pytest.mark.parametrize(
    "garble",
    [
        lambda b: b[:63] + bytes([b[63] ^ 1]),  # y changed: off the curve
        lambda b: b"\xff" * 32 + b[32:],  # x >= p
        lambda b: b[:32] + b"\xff" * 32,  # y >= p
        lambda b: (7).to_bytes(32, "big") + b[32:],  # x^3 + 7 is not a square (x = 7): no y fits
        lambda b: bytes(32) + b[32:],  # x = 0 (libsecp256k1's own "invalid" marker)
    ],
)
def test_garbled_points_are_malformed(garble):
    s, keys, a, b = two_updates(np.ones(8))
    payload = bytes(b.payload)
    bad = payload[:64 * 3] + garble(payload[64 * 3 : 64 * 4]) + payload[64 * 4 :]
    with pytest.raises(MalformedCiphertextError, match="party 'p1' holds no curve point at position 3"):
        s.combine(keys.aggregator, [a, dataclasses.replace(b, payload=bad)], round=0)
    aggregate = s.combine(keys.aggregator, [a, b], round=0)
    agg_payload = bytes(aggregate.payload)
    garbled = dataclasses.replace(aggregate, payload=garble(agg_payload[:64]) + agg_payload[64:])
    fkey = s.function_key(keys.authority, round=0, weights=contributor_weights(aggregate))
    with pytest.raises(MalformedCiphertextError):
        s.reveal(keys.aggregator, garbled, function_key=fkey)


def test_a_swapped_valid_point_decrypts_to_nothing():
    s, keys, a, b = two_updates(np.ones(8))
    payload = bytes(b.payload)
    swapped = payload[64:128] + payload[:64] + payload[128:]
    aggregate = s.combine(keys.aggregator, [a, dataclasses.replace(b, payload=swapped)], round=0)
    fkey = s.function_key(keys.authority, round=0, weights=contributor_weights(aggregate))
    with pytest.raises(DecodingOverflowError):
        s.reveal(keys.aggregator, aggregate, function_key=fkey)


def test_an_out_of_range_value_is_the_typed_error_not_a_hang():
    s, keys, a, b = two_updates(np.full(4, 8.0))
    # A misbehaving party encrypts a value beyond clip (its pad is right, its value is not).
    secret = keys.parties["p1"].unwrap("fe").secret
    huge = np.array([0, 0, 10**9, 0], dtype="<i8").tobytes()
    bad = dataclasses.replace(b, payload=kernels.encrypt(_round_scalar(secret, 0, 1.0), 0, huge))
    aggregate = s.combine(keys.aggregator, [a, bad], round=0)
    fkey = s.function_key(keys.authority, round=0, weights=contributor_weights(aggregate))
    with pytest.raises(DecodingOverflowError):
        s.reveal(keys.aggregator, aggregate, function_key=fkey)


def test_the_dlog_table_finds_values_across_giant_steps_and_refuses_beyond():
    t = dlog.table(8)  # baby steps 1..256, giant steps of 513
    values = [0, 1, -1, 256, -256, 257, -257, 513, -513, 1026, 3000, -3000]
    enc = [group.encode(group.base_mul(v)) for v in values]
    assert t.solve(enc, 3000).tolist() == values
    with pytest.raises(DecodingOverflowError):
        t.solve([group.encode(group.base_mul(5000))], 3000)
    with pytest.raises(DecodingOverflowError, match="giant"):
        t.solve(enc, 513 * (dlog.MAX_GIANT_STEPS + 2))


# --- nothing leaks between ciphertexts ------------------------------------------------------------------
def _leaks_difference(p: bytes, q: bytes) -> bool:
    """Whether ``p - q`` is a small multiple of G (what HybridAlpha's shared randomness gives)."""
    diff = group.add([group.from_wire(p), group.mul(group.from_wire(q), -1)])
    try:
        dlog.table(12).solve([group.encode(diff)], 1 << 20)
    except DecodingOverflowError:
        return False
    return True


def test_two_ciphertexts_of_one_party_reveal_nothing_about_their_difference():
    s = scheme()
    keys = s.keygen(PARTIES[:1])
    x = np.array([0.5, 0.25, 0.5, -1.0])
    r1 = bytes(s.protect(keys.parties["p0"], x, weight=1.0, round=1).payload)
    r2 = bytes(s.protect(keys.parties["p0"], x, weight=1.0, round=2).payload)
    points1 = [r1[64 * j : 64 * j + 64] for j in range(4)]
    points2 = [r2[64 * j : 64 * j + 64] for j in range(4)]
    assert points1[0] != points2[0]  # same value, same coordinate, another round
    assert not _leaks_difference(points1[0], points2[0])  # ... and the ratio is no g^(x1 - x2)
    assert not _leaks_difference(points1[0], points1[2])  # equal values, two coordinates
    assert not _leaks_difference(points1[0], points1[1])  # different values, two coordinates
    # The flaw of a shared random value, for contrast: c_j = v_j G + r h leaks v_0 - v_1.
    h, r = group.base_point(0), 12345678901234567890
    shared = [group.to_wire(group.add([group.base_mul(v), group.mul(h, r)])) for v in (40, 7)]
    assert _leaks_difference(*shared)


def test_ciphertexts_of_a_constant_vector_look_uniform():
    s = scheme()
    keys = s.keygen(PARTIES[:1])
    payload = bytes(s.protect(keys.parties["p0"], np.zeros(2048), weight=1.0, round=0).payload)
    points = [payload[64 * j : 64 * j + 64] for j in range(2048)]
    assert len(set(points)) == 2048
    top = np.array([p[0] >> 4 for p in points])  # top nibble of x: 16 equally likely values
    counts = np.bincount(top, minlength=16)
    chi2 = float(((counts - 128.0) ** 2 / 128.0).sum())
    assert chi2 < 45  # 15 degrees of freedom; p < 1e-4
    parity = np.array([p[63] & 1 for p in points])  # of y
    assert 0.4 < parity.mean() < 0.6


def test_a_second_different_update_in_one_round_is_refused():
    s = scheme()
    keys = s.keygen(PARTIES[:1])
    first = s.protect(keys.parties["p0"], np.ones(4), weight=1.0, round=3)
    again = s.protect(keys.parties["p0"], np.ones(4), weight=1.0, round=3)  # a retry: identical bytes
    assert bytes(first.payload) == bytes(again.payload)
    with pytest.raises(KeyReuseError):
        s.protect(keys.parties["p0"], np.zeros(4), weight=1.0, round=3)
    with pytest.raises(KeyReuseError):
        s.protect(keys.parties["p0"], np.ones(4), weight=2.0, round=3)


# --- roles and parameters ----------------------------------------------------------------------------------
def test_the_aggregator_holds_no_secret_and_needs_a_function_key():
    s = scheme()
    keys = s.keygen(PARTIES[:2])
    assert not keys.aggregator.holds_secret
    assert keys.aggregator.unwrap("fe") is None
    updates = protect_all(s, keys, vectors(2, 4), {"p0": 1.0, "p1": 1.0})
    aggregate = s.combine(keys.aggregator, updates, round=0)
    with pytest.raises(KeyRoleError):
        s.reveal(keys.aggregator, aggregate)
    fkey = s.function_key(keys.authority, round=0, weights=contributor_weights(aggregate))
    with pytest.raises(KeyRoleError):
        s.reveal(keys.parties["p0"], aggregate, function_key=fkey)
    assert "fingerprint" in repr(fkey) and str(fkey.unwrap("fe")) not in repr(fkey)


def test_function_keys_round_trip_through_bytes():
    s = scheme()
    keys = s.keygen(PARTIES[:2])
    vecs = vectors(2, 6)
    aggregate = s.combine(keys.aggregator, protect_all(s, keys, vecs, {"p0": 1.0, "p1": 3.0}, round=9), round=9)
    fkey = s.function_key(keys.authority, round=9, weights=contributor_weights(aggregate))
    back = s.load_key(s.dump_key(fkey, secret_access=SECRET_ACCESS))
    fused = s.reveal(keys.aggregator, aggregate, function_key=back) / aggregate.total_weight
    expected = np.average(np.stack(list(vecs.values())), axis=0, weights=[1, 3])
    assert np.max(np.abs(fused - expected)) <= s.tolerance([1.0, 3.0])


@pytest.mark.parametrize(
    "bad", [{"min_parties": 1}, {"max_share": 0.0}, {"bits": 30}, {"dlog_table_bits": 40}, {"workers": -1}]
)
def test_bad_parameters_are_refused(bad):
    with pytest.raises(InvalidParameterError):
        FEScheme(dataclasses.replace(FEParams(), **bad))


def test_the_default_preset_is_128_bit():
    assert FEParams.preset("default").security_bits() == 128
    assert FEScheme.reveal_plan.site.value == "aggregator" and FEScheme.reveal_plan.function_key


@pytest.mark.slow
def test_worker_processes_give_the_same_ciphertexts():
    vec = np.random.default_rng(1).uniform(-1, 1, 9000)
    one, two = scheme(workers=1), scheme(workers=2)
    keys = one.keygen(PARTIES[:2])
    a = one.protect(keys.parties["p0"], vec, weight=2.0, round=0)
    keys2 = two.load_key(one.dump_key(keys.parties["p0"], secret_access=SECRET_ACCESS))
    b = two.protect(keys2, vec, weight=2.0, round=0)
    assert bytes(a.payload) == bytes(b.payload)
    c = one.protect(keys.parties["p1"], -vec, weight=1.0, round=0)
    aggregate = two.combine(keys.aggregator, [b, c], round=0)
    assert bytes(aggregate.payload) == bytes(one.combine(keys.aggregator, [a, c], round=0).payload)
    fkey = one.function_key(keys.authority, round=0, weights=contributor_weights(aggregate))
    fused = two.reveal(keys.aggregator, aggregate, function_key=fkey) / 3.0
    assert np.max(np.abs(fused - vec / 3.0)) <= one.tolerance([2.0, 1.0])


def test_rounds_must_be_valid_integers():
    s = scheme()
    keys = s.keygen(PARTIES[:2])
    for bad in (-1, 2**31, 1.5, True):
        with pytest.raises(InvalidInputError):
            s.protect(keys.parties["p0"], np.zeros(2), weight=1.0, round=bad)
        with pytest.raises(InvalidInputError):
            s.function_key(keys.authority, round=bad, weights={"p0": 1.0, "p1": 1.0})


@given(
    data=st.lists(
        st.lists(st.floats(-8, 8, allow_nan=False), min_size=3, max_size=3), min_size=2, max_size=4
    ),
    weights=st.lists(st.floats(0.01, 1000), min_size=4, max_size=4),
)
@settings(max_examples=25, deadline=None)
def test_any_inputs_within_clip_fuse_within_the_declared_tolerance(data, weights):
    s = scheme(dlog_table_bits=16)  # sums near clip x 1000 fit the reveal's budget of giant steps (dlog.reveal_budget)
    ids = PARTIES[: len(data)]
    keys = s.keygen(ids)
    vecs = {p: np.array(v) for p, v in zip(ids, data, strict=True)}
    w = dict(zip(ids, weights[: len(ids)], strict=True))  # four weights drawn, one per party used
    fused = secure_weighted_mean(s, keys, vecs, w)
    expected = np.average(np.stack(list(vecs.values())), axis=0, weights=[w[p] for p in ids])
    assert np.max(np.abs(fused - expected)) <= s.tolerance([w[p] for p in ids])


def test_a_value_inside_the_table_but_beyond_the_bound_is_refused():
    with pytest.raises(DecodingOverflowError):
        dlog.table(8).solve([group.encode(group.base_mul(200))], 100)


def test_large_weights_need_a_larger_weight_unit():
    vecs = vectors(3, 6)
    weights = {"p0": 300_000.0, "p1": 200_000.0, "p2": 250_000.0}
    big = scheme(dlog_table_bits=10)
    with pytest.raises(DecodingOverflowError, match="weight_unit"):
        secure_weighted_mean(big, big.keygen(PARTIES[:3]), vecs, weights)
    unit = scheme(dlog_table_bits=10, weight_unit=1000.0)
    fused = secure_weighted_mean(unit, unit.keygen(PARTIES[:3]), vecs, weights)
    expected = np.average(np.stack(list(vecs.values())), axis=0, weights=list(weights.values()))
    assert np.max(np.abs(fused - expected)) <= unit.tolerance(list(weights.values()))


def test_the_encryption_kernel_computes_v_g_plus_k_h():
    values = [0, 1, -1, 4095, 4096, -4096, -4097, 2**24 - 1, -(2**24), 2**24, -(2**40), 123456789]
    k = 0xC0FFEE * 2**200 + 12345
    out = kernels.encrypt(k, 5, np.array(values, dtype="<i8").tobytes())
    for j, v in enumerate(values):
        expected = group.add([group.base_mul(v), group.mul(group.base_point(5 + j), k)])
        assert out[64 * j : 64 * j + 64] == group.to_wire(expected), v


class _Forbidding:
    """libsecp256k1 through coincurve's binding, except the functions named, which fail the test if called."""

    def __init__(self, lib, *forbidden: str) -> None:
        self._lib, self._forbidden = lib, forbidden

    def __getattr__(self, name: str):
        if name in self._forbidden:
            pytest.fail(f"{name} was called: it runs in time that depends on the scalar")
        return getattr(self._lib, name)


def test_secret_scalars_never_take_the_variable_time_multiplication(monkeypatch):
    """Round keys and function keys are multiplied only on libsecp256k1's constant-time ECDH path.

    ``pubkey_tweak_mul`` (coincurve's ``PublicKey.multiply``) takes time that depends on
    the scalar.  Here both fail if called, and every call of the constant-time
    ``group.secret_mul`` is recorded: a protect and a reveal must still work, each
    coordinate's pad computed by ``secret_mul`` with exactly the secret scalar.
    """
    from coincurve import PublicKey

    def multiply(self, scalar):
        pytest.fail("PublicKey.multiply was called with a scalar: it runs in variable time")

    scalars: list[bytes] = []
    real_secret_mul = group.secret_mul

    def recording_secret_mul(dest, base, k_bytes, scratch):
        scalars.append(bytes(k_bytes))
        real_secret_mul(dest, base, k_bytes, scratch)

    for module in (group, kernels):
        monkeypatch.setattr(module, "lib", _Forbidding(group.lib, "secp256k1_ec_pubkey_tweak_mul"))
    monkeypatch.setattr(PublicKey, "multiply", multiply)
    monkeypatch.setattr(group, "secret_mul", recording_secret_mul)

    s = scheme()  # one worker: the kernels run in this process, under the patches
    keys = s.keygen(PARTIES[:2])
    vecs, weights = vectors(2, 6), {"p0": 1.0, "p1": 2.0}
    updates = protect_all(s, keys, vecs, weights, round=3)
    aggregate = s.combine(keys.aggregator, updates, round=3)
    fkey = s.function_key(keys.authority, round=3, weights=contributor_weights(aggregate))
    fused = s.reveal(keys.aggregator, aggregate, function_key=fkey) / aggregate.total_weight
    expected = np.average(np.stack(list(vecs.values())), axis=0, weights=list(weights.values()))
    assert np.max(np.abs(fused - expected)) <= s.tolerance(list(weights.values()))
    pads = [group.scalar_bytes(_round_scalar(keys.parties[p].unwrap("fe").secret, 3, weights[p])) for p in vecs]
    # party round keys: constant time only; the function key (the aggregator's own) takes vartime's kernel
    # when it is built, and the constant-time fallback otherwise
    unmask = [group.scalar_bytes(-fkey.unwrap("fe"))] * 6 if not hasattr(pointsum.kernel(), "mul_add") else []
    assert scalars == [pads[0]] * 6 + [pads[1]] * 6 + unmask


def test_clipped_values_are_counted_in_a_warning():
    s = scheme()
    keys = s.keygen(PARTIES[:1])
    with pytest.warns(ClippedValuesWarning, match="2 of 3 values"):
        s.protect(keys.parties["p0"], np.array([100.0, 0.0, -9.0]), weight=1.0, round=0)



@pytest.mark.parametrize("honest_first", [3, 300])
def test_the_first_value_beyond_the_bound_ends_the_reveal(monkeypatch, honest_first):
    """Out-of-range values (a party encrypting beyond clip) end the reveal early, not after M steps each."""
    t = dlog.table(8)  # giant steps of 513
    bound = 513 * 100
    steps = t.max_steps(bound)
    honest = [group.encode(group.base_mul(v)) for v in range(-honest_first // 2, honest_first - honest_first // 2)]
    forged = [group.encode(group.base_mul(3 * bound + i)) for i in range(1000)]
    calls = []
    real_add = dlog.group.add
    monkeypatch.setattr(dlog.group, "add", lambda points: calls.append(1) or real_add(points))
    with pytest.raises(DecodingOverflowError, match="outside"):
        t.solve(honest + forged, bound)
    # two point additions (both directions) per value and step, for one batch of values at most
    batch = 16 if honest_first < 16 else 256
    assert len(calls) <= 2 * steps * batch
    assert len(calls) < 2 * steps * len(forged) / 3  # walking every forged value to the end costs 2 * steps each
    calls.clear()
    far = [group.encode(group.base_mul(v)) for v in (600, -40_000, bound)]
    assert t.solve(honest + far, bound).tolist()[-3:] == [600, -40_000, bound]  # in range, however far: found


def test_a_new_key_set_that_adopts_the_federations_record_refuses_a_round_already_granted():
    """Issue 15 item 1, at the scheme: the record outlives its key set (policy_record / adopt_policy_record)."""
    s = strict()
    old, new = s.keygen(PARTIES), s.keygen(PARTIES)
    ones = dict.fromkeys(PARTIES[:4], 1.0)
    s.function_key(old.authority, round=0, weights=ones)
    record = s.policy_record(old.authority)
    s.adopt_policy_record(new.authority, record)
    for weights in (ones, {p: 1.0 for p in PARTIES[:3]}):  # the same set or one party fewer: both refused
        with pytest.raises(PolicyError, match="under another key set"):
            s.function_key(new.authority, round=0, weights=weights)
    s.function_key(new.authority, round=1, weights=ones)  # the next round is the new key set's
    assert s.policy_record(new.authority) != record
    restored = s.load_key(s.dump_key(new.authority, secret_access=SECRET_ACCESS))
    assert s.policy_record(restored) == s.policy_record(new.authority)
    with pytest.raises(MalformedCiphertextError):
        s.adopt_policy_record(new.authority, record[:-3])


def test_weight_unit_is_derived_from_the_federation():
    """weight_unit = 0: whole weights while parties x max_weight fits the discrete log, a larger unit beyond."""
    assert FEParams().for_federation(10).weight_unit == 1.0
    big = FEParams().for_federation(1000)
    assert big.weight_unit > 1.0
    assert FEParams(weight_unit=3.0).for_federation(1000).weight_unit == 3.0  # as declared
    fe = FEScheme(dataclasses.replace(big, workers=1))
    size = 2**big.dlog_table_bits
    reach = size + dlog.MAX_GIANT_STEPS * (2 * size + 1)
    weights = [float(i + 1) for i in range(1000)]  # sum 500500: beyond whole weights' reach (about 262k)
    assert fe._sum_bound(weights) <= reach < FEScheme(FEParams(workers=1))._sum_bound(weights)
    assert fe.tolerance(weights) < 1e-4  # the cost: rounding in larger units


# --- points = "compressed": 33 bytes per value, the slower combine ---------------------------------------------
def test_compressed_points_fuse_the_same_mean_in_33_bytes_per_value():
    vecs, weights = vectors(3, 40), {"p0": 1.0, "p1": 2.0, "p2": 5.0}
    expected = np.average(np.stack(list(vecs.values())), axis=0, weights=list(weights.values()))
    for points, size in (("uncompressed", 64), ("compressed", 33)):
        s = scheme(points=points)
        keys = s.keygen(PARTIES[:3])
        updates = protect_all(s, keys, vecs, weights)
        assert {len(bytes(u.payload)) for u in updates} == {size * 40}
        assert s.declarations.max_payload_bytes(40) == size * 40
        aggregate = s.combine(keys.aggregator, updates, round=0)
        fkey = s.function_key(keys.authority, round=0, weights=contributor_weights(aggregate))
        fused = s.reveal(keys.aggregator, aggregate, function_key=fkey) / aggregate.total_weight
        assert np.max(np.abs(fused - expected)) <= s.tolerance(list(weights.values()))


@pytest.mark.parametrize(
    "garble",
    [
        lambda b: bytes([5]) + b[1:],  # not a compressed point
        lambda b: b[:1] + b"\xff" * 32,  # x >= p
        lambda b: b[:1] + (7).to_bytes(32, "big"),  # x^3 + 7 is not a square (x = 7)
    ],
)
def test_garbled_compressed_points_are_malformed(garble):
    s = scheme(points="compressed")
    keys = s.keygen(PARTIES[:2])
    a, b = (s.protect(keys.parties[p], np.ones(8), weight=1.0, round=0) for p in ("p0", "p1"))
    payload = bytes(b.payload)
    bad = payload[: 33 * 3] + garble(payload[33 * 3 : 33 * 4]) + payload[33 * 4 :]
    with pytest.raises(MalformedCiphertextError, match="party 'p1' holds no curve point at position 3"):
        s.combine(keys.aggregator, [a, dataclasses.replace(b, payload=bad)], round=0)


def test_roles_with_different_point_encodings_are_told_to_agree():
    vecs = vectors(2, 6)
    fast, slow = scheme(), scheme(points="compressed")
    keys = fast.keygen(PARTIES[:2])
    updates = [slow.protect(keys.parties[p], vecs[p], weight=1.0, round=0) for p in vecs]
    with pytest.raises(MalformedCiphertextError, match="33-byte points, so its sender uses another crypto.fe.points"):
        fast.combine(keys.aggregator, updates, round=0)
    with pytest.raises(InvalidParameterError, match="fe points must be one of"):
        scheme(points="hybrid")


def test_bound_plus_one_values_from_one_party_cost_the_reveal_at_most_its_budget(monkeypatch):
    """Issue 21 item 1: ``bound + 1`` lies within the last giant step's reach, so each bad value used to walk all
    ``M`` steps before the bound was checked (after every batch); now the reveal stops at its budget of giant steps
    (``STEPS_PER_VALUE`` per value plus one value's walk), a count of work, not of seconds."""
    from tests.audit.fe_dlog_budget import rounds

    params = dataclasses.replace(TEST, dlog_table_bits=8, min_parties=3, max_share=0.5)
    length, weight = 100, 100.0
    honest, attacked, bound = rounds(params, length, weight)
    table = dlog.table(8)
    steps = table.max_steps(bound)
    assert steps > 1000  # each bad value used to cost 2 * steps point additions: 200k for the reveal
    calls = []
    real_add = dlog.group.add
    monkeypatch.setattr(dlog.group, "add", lambda points: calls.append(1) or real_add(points))
    honest()
    honest_steps = len(calls) // 2
    calls.clear()
    with pytest.raises(DecodingOverflowError, match="budget|outside"):
        attacked()
    per_value, floor = getattr(dlog, "STEPS_PER_VALUE", 2), getattr(dlog, "MIN_BUDGET", 1024)  # (absent before)
    budget = per_value * length + max(steps, floor)
    assert len(calls) // 2 <= budget  # both directions: two additions per giant step
    assert len(calls) // 2 < length * steps / 20  # walking every bad value to the end: length * steps
    assert honest_steps <= per_value * length  # the honest round of the same size fits well within


def test_a_value_just_beyond_the_bound_ends_the_reveal_in_its_own_batch(monkeypatch):
    """``bound + 1`` is found by the last giant step: refused (naming its position) before the next batch walks."""
    t = dlog.table(8)
    bound = 513 * 50
    steps = t.max_steps(bound)
    batch = [group.encode(group.base_mul(v)) for v in range(20)]
    later = [group.encode(group.base_mul(bound + 1 + i)) for i in range(600)]
    calls = []
    real_add = dlog.group.add
    monkeypatch.setattr(dlog.group, "add", lambda points: calls.append(1) or real_add(points))
    with pytest.raises(DecodingOverflowError, match="position 2[0-9] lies outside"):
        t.solve([*batch, group.encode(group.base_mul(-bound - 1)), *later], bound)
    assert len(calls) <= 2 * steps * 256  # one batch walked, not all 601 bad values
    with pytest.raises(DecodingOverflowError, match="position 0 lies outside"):
        t.solve([group.encode(group.base_mul(bound + 1))], bound)
    assert t.solve([group.encode(group.base_mul(bound))], bound).tolist() == [bound]
