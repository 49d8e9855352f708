"""ckks-specific behaviour: parameters, roles, chunk framing, typed errors, noise flooding.

The shared contract (tests/crypto_backends/test_contract.py) runs for ckks too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np
import pytest
import tenseal as ts

from crypto_backends import SECRET_ACCESS, Envelope, registry
from crypto_backends.ckks import CKKSParams, CKKSScheme, ClippedValuesWarning, codec
from crypto_backends.ckks.flooding import NORM_MARGIN, error_norm_bound, flooding_sigma, secure_gaussian
from crypto_backends.errors import (
    DecodingOverflowError,
    DecryptionError,
    InsecureParameterError,
    InvalidInputError,
    InvalidParameterError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
    PolicyError,
)
from crypto_backends.roundtrip import run_round, secure_weighted_mean
from tests.schemes import fold_weighted_by_rank

PARTIES = ["alice", "bob", "carol"]


@pytest.fixture(scope="module")
def scheme() -> CKKSScheme:
    return CKKSScheme(CKKSParams.preset("test"))


@pytest.fixture(scope="module")
def keys(scheme):
    return scheme.keygen(PARTIES)


def _update(scheme, keys, values, party="alice", weight=1.0, round=0):
    return scheme.protect(keys.parties[party], np.asarray(values, dtype=float), weight=weight, round=round)


def _reframe(env: Envelope, blobs: list[bytes]) -> Envelope:
    """The envelope with its chunks replaced, framing (counts, lengths, checksums) kept consistent."""
    return dataclasses.replace(env, payload=codec.frame(blobs))


def _blobs(env: Envelope) -> list[bytes]:
    return [bytes(c) for c in codec.split(env.payload, codec.chunk_count(env.length, 1024))]


# --- parameters -------------------------------------------------------------------------
def test_presets_are_within_the_he_standard():
    presets = CKKSParams.presets()
    assert {"default", "n8192", "test"} <= set(presets)
    assert presets["default"].security_bits() == 128
    assert presets["n8192"].security_bits() == 256
    for p in presets.values():
        p.validate()
        assert p.security_bits() >= 128


def test_coefficient_modulus_above_the_standard_bound_is_insecure():
    with pytest.raises(InsecureParameterError, match="109-bit bound"):
        CKKSScheme(CKKSParams(coeff_mod_bit_sizes=(60, 50)))
    with pytest.raises(InsecureParameterError):  # not even for tests: SEAL would refuse it
        CKKSScheme(CKKSParams(coeff_mod_bit_sizes=(60, 60), allow_insecure=True))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"coeff_mod_bit_sizes": (60, 49), "scale_bits": 50}, "too large for a 60-bit data modulus"),
        ({"clip": 1e12}, "Lower scale_bits to 35"),
        ({"poly_modulus_degree": 3000}, "not one of"),
        ({"coeff_mod_bit_sizes": (60,)}, "at least two prime sizes"),
        ({"coeff_mod_bit_sizes": (61, 40)}, "outside"),
        ({"n_threads": 0}, "n_threads"),
        ({"flooding_bits": 4}, "flooding_bits"),
        ({"flooding_queries": 0}, "flooding_queries"),
    ],
)
def test_invalid_parameters_are_refused_with_the_fix(change, message):
    with pytest.raises(InvalidParameterError, match=message):  # a declared headroom: nothing is derived
        CKKSScheme(dataclasses.replace(CKKSParams(max_total_weight=16384.0), **change))


def test_headroom_is_derived_from_the_federation():
    """max_total_weight = 0: parties x max_weight, the scale lowered to fit; what cannot fit is refused."""
    p10, p1000 = (CKKSParams().for_federation(n) for n in (10, 1000))
    assert (p10.max_total_weight, p1000.max_total_weight) == (16384.0, 1000 * 1024.0)  # never below 16384
    assert p1000.scale_bits == p10.scale_bits == 52  # two data primes: the full scale fits both
    assert CKKSParams(max_weight=2.0**28).for_federation(1000).scale_bits == 47  # 1000 x 2^28 x clip 16: 42 bits
    for p in (p10, p1000):
        assert math.ceil(math.log2(p.max_abs_sum)) <= p.headroom_bits
        p.validate()
    assert CKKSParams(max_total_weight=100.0).for_federation(1000).max_total_weight == 100.0  # as declared
    with pytest.raises(InvalidParameterError, match="max_weight"):
        CKKSParams(max_weight=1e14).for_federation(10**6)


def test_a_thousand_parties_weighted_by_rows_fuse_at_the_defaults():
    scheme = CKKSScheme(CKKSParams().for_federation(1000))
    ids = [f"p{i}" for i in range(1000)]
    keys = scheme.keygen(ids)
    rng = np.random.default_rng(5)
    xs = {pid: rng.uniform(-1, 1, 8) for pid in ids}
    aggregate = fold_weighted_by_rank(scheme, keys, xs)
    fused = scheme.reveal(keys.parties["p0"], aggregate) / aggregate.total_weight
    want = np.average(np.stack([xs[p] for p in ids]), axis=0, weights=np.arange(1, 1001))
    assert np.allclose(fused, want, rtol=0, atol=scheme.tolerance(aggregate.weights))


def test_registered_under_its_name():
    assert registry.get("ckks") is CKKSScheme
    assert isinstance(registry.create("ckks"), CKKSScheme)


# --- roles and keys -----------------------------------------------------------------------
def test_aggregator_context_has_no_key_and_cannot_decrypt_or_encrypt(scheme, keys):
    agg = keys.aggregator
    assert not agg.holds_secret
    dumped = scheme.dump_key(agg)  # no export token needed: nothing secret inside
    reloaded = scheme.load_key(dumped)
    ctx = reloaded.unwrap("ckks").context
    assert not ctx.is_private() and not ctx.has_secret_key() and ctx.is_public()
    assert len(dumped) < 1024  # parameters only: no secret, public, relinearisation or Galois key
    party_ctx = keys.parties["alice"].unwrap("ckks").context
    blob = ts.ckks_vector(party_ctx, [1.0, 2.0]).serialize()
    with pytest.raises(ValueError):  # TenSEAL itself refuses: there is no key to decrypt with
        ts.ckks_vector_from(ctx, blob).decrypt()
    with pytest.raises(ValueError):
        ts.ckks_vector(ctx, [1.0])
    aggregate = scheme.combine(reloaded, [_update(scheme, keys, [1.0, 2.0])], round=0)
    with pytest.raises(KeyRoleError):
        scheme.reveal(reloaded, aggregate)
    with pytest.raises(KeyRoleError):
        scheme.release(reloaded, aggregate, scheme.reveal(reloaded, aggregate))


def test_parties_and_dealer_hold_the_secret(scheme, keys):
    assert keys.authority.holds_secret and keys.authority.unwrap("ckks").context.is_private()
    for key in keys.parties.values():
        assert key.holds_secret and key.unwrap("ckks").context.is_private()
    aggregate = scheme.combine(keys.aggregator, [_update(scheme, keys, [0.5, -0.5])], round=0)
    assert np.allclose(scheme.reveal(keys.authority, aggregate), [0.5, -0.5], atol=1e-3)


def _forge_key(scheme, key, cls_name: str) -> bytes:
    data = scheme.dump_key(key, secret_access=SECRET_ACCESS)
    (hlen,) = struct.unpack(">I", data[4:8])
    header = json.loads(data[8 : 8 + hlen])
    header["class"], header["secret"] = cls_name, cls_name != "AggregatorKey"
    head = json.dumps(header).encode()
    return b"SFLK" + struct.pack(">I", len(head)) + head + data[8 + hlen :]


def test_key_material_must_fit_its_role(scheme, keys):
    with pytest.raises(KeyRoleError, match="secret key"):
        scheme.load_key(_forge_key(scheme, keys.parties["alice"], "AggregatorKey"))
    with pytest.raises(KeyRoleError):
        scheme.load_key(_forge_key(scheme, keys.aggregator, "PartyKey"))


def test_key_for_other_parameters_is_refused(keys):
    default = CKKSScheme()
    dumped = CKKSScheme(CKKSParams.preset("test")).dump_key(keys.aggregator)
    with pytest.raises(MismatchError, match="other parameters"):
        default.load_key(dumped)


def test_garbled_key_material_is_a_typed_error(scheme, keys):
    dumped = scheme.dump_key(keys.aggregator)
    with pytest.raises(MalformedCiphertextError):
        scheme.load_key(dumped[:-20])


# --- chunking --------------------------------------------------------------------------
def test_long_vectors_travel_in_slot_sized_chunks(scheme, keys):
    rng = np.random.default_rng(0)
    vectors = {p: rng.uniform(-2, 2, 2500) for p in PARTIES}
    weights = {"alice": 1.0, "bob": 2.0, "carol": 3.0}
    env = _update(scheme, keys, vectors["alice"])
    assert len(codec.split(env.payload, 3)) == 3  # 1024 + 1024 + 452 values
    fused = secure_weighted_mean(scheme, keys, vectors, weights)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    assert np.max(np.abs(fused - expected)) <= scheme.tolerance(list(weights.values()))


def test_empty_vector_round_trips(scheme, keys):
    env = _update(scheme, keys, [])
    aggregate = scheme.combine(keys.aggregator, [env], round=0)
    assert scheme.reveal(keys.parties["bob"], aggregate).shape == (0,)


# --- typed errors ---------------------------------------------------------------------------
def test_garbled_ciphertext_is_caught_by_the_checksum(scheme, keys):
    env = _update(scheme, keys, np.ones(100))
    raw = bytearray(env.payload)
    raw[len(raw) // 2] ^= 0x01  # a low bit SEAL's validity check would let through
    with pytest.raises(MalformedCiphertextError, match="garbled"):
        scheme.combine(keys.aggregator, [dataclasses.replace(env, payload=bytes(raw))], round=0)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_garbled_ciphertext_with_consistent_framing_is_refused(scheme, keys, where):
    env = _update(scheme, keys, np.ones(100))
    blob = bytearray(_blobs(env)[0])
    for i in range(int(len(blob) * where), len(blob), 61):
        blob[i] ^= 0xA5
    with pytest.raises(MalformedCiphertextError):
        scheme.combine(keys.aggregator, [_reframe(env, [bytes(blob)])], round=0)


def test_truncated_ciphertext_is_refused(scheme, keys):
    env = _update(scheme, keys, np.ones(100))
    with pytest.raises(MalformedCiphertextError, match="truncated"):
        scheme.combine(keys.aggregator, [dataclasses.replace(env, payload=bytes(env.payload)[:-10])], round=0)
    short = _blobs(env)[0][:-100]
    with pytest.raises(MalformedCiphertextError):
        scheme.combine(keys.aggregator, [_reframe(env, [short])], round=0)


def test_wrong_chunk_count_is_a_length_mismatch(scheme, keys):
    env = _update(scheme, keys, np.ones(2000))  # two chunks
    blobs = _blobs(env)
    for wrong in (blobs[:1], blobs + blobs[:1]):
        with pytest.raises(MismatchError, match="chunk"):
            scheme.combine(keys.aggregator, [_reframe(env, wrong)], round=0)


def test_ciphertext_from_another_context_under_a_forged_fingerprint_fails_safely(scheme, keys):
    # another parameter set: the payload does not even load
    default = CKKSScheme()
    foreign_keys = default.keygen(["alice"])
    foreign = default.protect(foreign_keys.parties["alice"], np.ones(100), weight=1.0, round=0)
    forged = dataclasses.replace(foreign, key_id=keys.key_id)
    with pytest.raises(MismatchError):  # the honest case: the fingerprint differs
        scheme.combine(keys.aggregator, [foreign], round=0)
    with pytest.raises(MalformedCiphertextError):
        scheme.combine(keys.aggregator, [forged], round=0)
    # same parameters, another secret key: adds fine, but never decrypts to a plausible sum
    other_keys = scheme.keygen(["alice"])
    alien = dataclasses.replace(_update(scheme, other_keys, np.ones(100)), key_id=keys.key_id)
    aggregate = scheme.combine(keys.aggregator, [alien, _update(scheme, keys, np.ones(100), party="bob")], round=0)
    with pytest.raises(DecryptionError, match="^decryption failed$"):
        scheme.reveal(keys.parties["carol"], aggregate)


def test_nan_and_infinite_inputs_are_refused(scheme, keys):
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InvalidInputError, match="NaN or infinite"):
            _update(scheme, keys, [0.0, bad])


def test_weights_beyond_the_headroom_are_refused(scheme, keys):
    with pytest.raises(InvalidInputError, match="max_total_weight"):
        _update(scheme, keys, [1.0], weight=2000.0)
    updates = [_update(scheme, keys, [1.0], party=p, weight=600.0) for p in ("alice", "bob")]
    with pytest.raises(DecodingOverflowError, match="wrap around"):
        scheme.combine(keys.aggregator, updates, round=0)


def test_values_beyond_clip_are_clipped_and_warned(scheme, keys):
    with pytest.warns(ClippedValuesWarning, match="2 of 3"):
        env = _update(scheme, keys, [100.0, -100.0, 1.0])
    aggregate = scheme.combine(keys.aggregator, [env], round=0)
    assert np.allclose(scheme.reveal(keys.parties["alice"], aggregate), [8.0, -8.0, 1.0], atol=1e-3)


# --- precision and flooding ----------------------------------------------------------------
def _chunk_error_norms(scheme, keys, values, weights, runs):
    """Norms over each chunk of (decrypted weighted sum - exact weighted sum), over ``runs`` fresh aggregates."""
    slots, norms = scheme.params.slots, []
    exact = sum(weights[p] * np.clip(values[p], -scheme.params.clip, scheme.params.clip) for p in values)
    for r in range(runs):
        updates = [_update(scheme, keys, values[p], party=p, weight=weights[p], round=r) for p in values]
        total = scheme.reveal(keys.parties["alice"], scheme.combine(keys.aggregator, updates, round=r))
        norms.extend(np.linalg.norm((total - exact).reshape(-1, slots), axis=1))
    return np.asarray(norms), exact


@pytest.mark.parametrize("preset", ["default", "test"])
@pytest.mark.parametrize("magnitude, weights", [
    ("zero", {"alice": 1.0, "bob": 1.0, "carol": 1.0}),  # the encryption error alone
    ("full", {"alice": 1.0, "bob": 2.0, "carol": 3.0}),  # values at +-clip: float64 rounding too
    ("full", {"alice": 4000.0, "bob": 5000.0, "carol": 6000.0}),  # large weights: rounding dominates
])
def test_derived_error_bound_covers_measured_errors_with_its_margin(preset, magnitude, weights):
    """The flooding width rests on error_norm_bound: over many aggregates, every measured chunk norm must sit
    inside it with the stated margin (NORM_MARGIN = 1.25) left over, and the model must not be loose by more
    than a few times (or the flooding, hence the released error, would be wider than it needs)."""
    scheme = CKKSScheme(CKKSParams.preset(preset))
    if preset == "test":  # its headroom holds a total weight of 1024
        weights = {p: w / 16 if w > 100 else w for p, w in weights.items()}
    keys = scheme.keygen(PARTIES)
    slots, chunks = scheme.params.slots, 4
    rng = np.random.default_rng(11)
    clip = scheme.params.clip
    values = {p: (np.zeros(chunks * slots) if magnitude == "zero" else clip * rng.choice([-1.0, 1.0], chunks * slots))
              for p in PARTIES}
    norms, _ = _chunk_error_norms(scheme, keys, values, weights, runs=8)
    bound = error_norm_bound(scheme.params, len(PARTIES), math.fsum(weights.values()))
    assert float(norms.max()) <= bound  # every measured chunk is covered
    assert float(norms.mean()) * NORM_MARGIN <= bound * 1.03  # with the stated 25% over the typical norm
    if magnitude == "zero":  # the encryption error model itself: the expected norm, within a few percent
        model = math.sqrt(slots) * scheme.params.rlwe_slot_sd(len(PARTIES))
        assert 0.95 < float(norms.mean()) / model < 1.05
    else:
        assert float(norms.max()) * NORM_MARGIN > bound / 8


def test_released_mean_is_precise_at_the_defaults():
    """At the default preset, a 4-party mean of 3 chunks is published (flooded) within a proportionate ceiling:
    the flooding's sigma on the mean is about 1.4e-6 here, so 2e-5 is 14 sigma (the old 2^40 scale gave 2e-3)."""
    scheme = CKKSScheme(CKKSParams().for_federation(4))
    ids = PARTIES + ["dave"]
    keys = scheme.keygen(ids)
    rng = np.random.default_rng(3)
    vectors = {p: rng.normal(0, 0.5, 5000) for p in ids[:4]}
    weights = {p: float(i + 1) for i, p in enumerate(ids[:4])}
    trip = run_round(scheme, keys, vectors, weights, publish=True)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    sigma = flooding_sigma(scheme.params, 4, 3, 10.0) / 10.0
    assert sigma < 2e-6
    released_error = float(np.max(np.abs(trip.published - expected)))
    assert released_error <= 2e-5
    assert released_error > float(np.max(np.abs(trip.fused - expected)))  # flooding did happen
    assert abs(float(np.std(trip.published - trip.fused)) / sigma - 1) < 0.1


def test_publish_adds_noise_of_the_configured_scale():
    scheme = CKKSScheme(dataclasses.replace(CKKSParams.preset("test"), flooding_queries=2))
    keys = scheme.keygen(PARTIES)
    n = 16 * scheme.params.slots
    updates = [_update(scheme, keys, np.zeros(n), party=p) for p in PARTIES[:2]]
    aggregate = scheme.combine(keys.aggregator, updates, round=0)
    sigma = scheme.publish_sigma(aggregate)
    assert sigma == flooding_sigma(scheme.params, 2, 16, 2.0)
    alice = keys.parties["alice"]
    exact = scheme.reveal(alice, aggregate)
    noise = scheme.release(alice, aggregate, exact) - exact
    z = noise / sigma
    assert abs(float(np.std(z)) - 1) < 0.03
    assert abs(float(np.mean(z))) < 4 / math.sqrt(n)
    assert abs(float(np.mean(np.abs(z) < 1)) - 0.6827) < 0.02
    kurtosis = float(np.mean(z**4) / np.mean(z**2) ** 2)
    assert abs(kurtosis - 3) < 0.25
    again = scheme.release(keys.parties["alice"], aggregate, scheme.reveal(keys.parties["alice"], aggregate))
    assert not np.array_equal(again, noise + scheme.reveal(keys.parties["alice"], aggregate))


def test_publications_beyond_the_flooding_budget_are_refused(scheme):
    keys = scheme.keygen(["alice"])  # the test preset's noise covers flooding_queries=1 publication
    aggregate = scheme.combine(keys.aggregator, [_update(scheme, keys, np.ones(10))], round=0)
    scheme.release(keys.parties["alice"], aggregate, scheme.reveal(keys.parties["alice"], aggregate))
    with pytest.raises(PolicyError, match="flooding_queries=1"):
        scheme.release(keys.parties["alice"], aggregate, scheme.reveal(keys.parties["alice"], aggregate))
    scheme.reveal(keys.parties["alice"], aggregate)  # revealing inside the key holders costs nothing


def test_flooding_width_follows_the_statistical_security_parameter():
    p30, p40 = CKKSParams(), CKKSParams(flooding_bits=40)
    assert math.isclose(flooding_sigma(p40, 10, 1, 55.0) / flooding_sigma(p30, 10, 1, 55.0), 2.0**5)
    # more published decryptions need wider noise: sqrt growth
    assert math.isclose(flooding_sigma(p30, 10, 4, 55.0) / flooding_sigma(p30, 10, 1, 55.0), 2.0)
    # and it dominates the decryption error it hides by 2**(s/2) at least
    assert flooding_sigma(p30, 10, 1, 55.0) >= 2.0**15 * error_norm_bound(p30, 10, 55.0)
    # the bound follows the aggregate: more contributors and more total weight, more error to hide
    assert error_norm_bound(p30, 10, 55.0) < error_norm_bound(p30, 20, 55.0) < error_norm_bound(p30, 20, 5e5)


def test_secure_gaussian_is_standard_normal():
    z = secure_gaussian(200_001)
    assert z.shape == (200_001,) and np.isfinite(z).all()
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert not np.array_equal(secure_gaussian(8), secure_gaussian(8))


def test_default_parameters_meet_the_bytes_and_error_targets():
    """10 standard-normal parties, weights 1..10: <= 40 bytes per value and fused error <= 1e-4."""
    scheme = CKKSScheme()
    ids = [f"p{i}" for i in range(10)]
    keys = scheme.keygen(ids)
    rng = np.random.default_rng(3)
    vectors = {p: rng.standard_normal(3 * scheme.params.slots) for p in ids}
    weights = {p: float(i + 1) for i, p in enumerate(ids)}
    env = scheme.protect(keys.parties["p0"], vectors["p0"], weight=1.0, round=0)
    assert env.nbytes() / vectors["p0"].size <= 33
    fused = secure_weighted_mean(scheme, keys, vectors, weights)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    assert np.max(np.abs(fused - expected)) <= min(1e-4, scheme.tolerance(list(weights.values())))


@pytest.mark.slow
def test_a_million_parameters_round_trip():
    scheme = CKKSScheme()
    keys = scheme.keygen(["alice", "bob"])
    rng = np.random.default_rng(4)
    vectors = {"alice": rng.standard_normal(1_000_000), "bob": rng.standard_normal(1_000_000)}
    weights = {"alice": 3.0, "bob": 5.0}
    fused = secure_weighted_mean(scheme, keys, vectors, weights)
    expected = (3 * vectors["alice"] + 5 * vectors["bob"]) / 8
    assert np.max(np.abs(fused - expected)) <= scheme.tolerance([3.0, 5.0])
