"""Behaviour specific to the ``paillier`` scheme: roles, typed errors, packing, weights."""

from __future__ import annotations

import dataclasses
import math
import struct
import warnings

import numpy as np
import pytest
from gmpy2 import mpz
from phe import paillier as phe_paillier

from crypto_backends import SECRET_ACCESS, Envelope, InsecureParametersWarning, registry
from crypto_backends.errors import (
    DecodingOverflowError,
    InsecureParameterError,
    InvalidInputError,
    InvalidParameterError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
)
from crypto_backends.paillier import ClippedValuesWarning, PaillierParams, PaillierScheme, djn
from crypto_backends.paillier.packing import SlotLayout
from crypto_backends.paillier.params import bytes_per_value
from crypto_backends.roundtrip import secure_weighted_mean
from tests.schemes import fold_weighted_by_rank

TEST = PaillierParams.preset("test")


def make(**changes) -> PaillierScheme:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return PaillierScheme(dataclasses.replace(TEST, **changes))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def scheme() -> PaillierScheme:
    return make()


@pytest.fixture(scope="module")
def keys(scheme):
    return scheme.keygen(["alice", "bob"])


def _pair(scheme, keys, a=None, b=None, weights=(1.0, 2.0), round=0):
    rng = np.random.default_rng(11)
    a = rng.standard_normal(100) if a is None else a
    b = rng.standard_normal(100) if b is None else b
    return [
        scheme.protect(keys.parties["alice"], a, weight=weights[0], round=round),
        scheme.protect(keys.parties["bob"], b, weight=weights[1], round=round),
    ]


def _with_payload(env: Envelope, payload: bytes) -> Envelope:
    return Envelope.from_bytes(dataclasses.replace(env, payload=payload).to_bytes())


# --- roles -----------------------------------------------------------------------------
def test_aggregator_key_has_no_private_part_even_after_export(scheme, keys):
    material = keys.aggregator.unwrap("paillier")
    assert isinstance(material, djn.PublicMaterial) and not hasattr(material, "p")
    assert not keys.aggregator.holds_secret
    data = scheme.dump_key(keys.aggregator)  # public: no export token needed
    party_data = scheme.dump_key(keys.parties["alice"], secret_access=SECRET_ACCESS)
    kb = material.key_bytes
    assert len(data) < len(party_data)
    assert int(keys.parties["alice"].unwrap("paillier").p).to_bytes(kb, "big") not in data
    loaded = scheme.load_key(data)
    assert isinstance(loaded.unwrap("paillier"), djn.PublicMaterial)
    aggregate = scheme.combine(loaded, _pair(scheme, keys), round=0)
    for key in (keys.aggregator, loaded, keys.authority):  # only parties decrypt, not even the dealer
        with pytest.raises(KeyRoleError):
            scheme.reveal(key, aggregate)


def test_aggregator_key_refuses_private_material_smuggled_in(scheme, keys):
    agg = scheme.dump_key(keys.aggregator)
    pair = keys.parties["bob"].unwrap("paillier")
    kb = pair.public.key_bytes
    primes = int(pair.p).to_bytes(kb, "big") + int(pair.q).to_bytes(kb, "big")
    with pytest.raises(MalformedCiphertextError):
        scheme.load_key(agg + primes)  # the key pair dressed up as an aggregator key


def test_party_key_round_trip_decrypts(scheme, keys):
    party = scheme.load_key(scheme.dump_key(keys.parties["bob"], secret_access=SECRET_ACCESS))
    updates = _pair(scheme, keys, a=np.full(10, 1.0), b=np.full(10, -0.5))
    aggregate = scheme.combine(keys.aggregator, updates, round=0)
    assert np.allclose(scheme.reveal(party, aggregate), 1.0 * 1 + 2 * -0.5, atol=scheme.tolerance([1, 2]) * 3)


def test_ciphertexts_are_standard_paillier_ciphertexts(scheme, keys):
    """phe's own CRT decryption opens our DJN-randomised ciphertexts to the packed plaintext."""
    pair = keys.parties["alice"].unwrap("paillier")
    pk = phe_paillier.PaillierPublicKey(int(pair.public.n))
    sk = phe_paillier.PaillierPrivateKey(pk, int(pair.p), int(pair.q))
    plaintexts = [mpz(0), mpz(1), mpz(12345678901234567890), pair.public.n - 1]
    cts = pair.public.encrypt(plaintexts)
    assert [sk.raw_decrypt(int(c)) for c in cts] == [int(m) for m in plaintexts]
    assert pair.decrypt(cts) == plaintexts


def test_fresh_randomness_per_ciphertext(scheme, keys):
    a = scheme.protect(keys.parties["alice"], np.zeros(50), weight=1.0, round=0)
    b = scheme.protect(keys.parties["alice"], np.zeros(50), weight=1.0, round=0)
    width = keys.aggregator.unwrap("paillier").ciphertext_bytes
    body_a, body_b = bytes(a.payload)[8:], bytes(b.payload)[8:]
    chunks = {body_a[i:i + width] for i in range(0, len(body_a), width)} | {
        body_b[i:i + width] for i in range(0, len(body_b), width)
    }
    assert len(chunks) == 2 * len(body_a) // width


# --- typed errors ------------------------------------------------------------------------
def test_wrong_key_fingerprint_is_refused(scheme, keys):
    other = scheme.keygen(["alice"])
    theirs = scheme.protect(other.parties["alice"], np.zeros(8), weight=1.0, round=0)
    with pytest.raises(MismatchError):
        scheme.combine(keys.aggregator, [theirs], round=0)
    aggregate = scheme.combine(other.aggregator, [theirs], round=0)
    with pytest.raises(MismatchError):
        scheme.reveal(keys.parties["alice"], aggregate)


def test_truncated_payload_is_refused(scheme, keys):
    a, b = _pair(scheme, keys)
    whole = bytes(b.payload)
    for cut in (1, len(whole) - 5, len(whole) - 8):  # inside a ciphertext, inside / right after the header
        short = _with_payload(b, whole[:-cut] if cut < len(whole) - 8 else whole[:8])
        with pytest.raises(MalformedCiphertextError):
            scheme.combine(keys.aggregator, [a, short], round=0)
    with pytest.raises(MalformedCiphertextError):
        scheme.combine(keys.aggregator, [a, _with_payload(b, whole[:5])], round=0)


@pytest.mark.parametrize("value", ["n_squared", "all_ones", "zero"])
def test_ciphertext_outside_zero_n_squared_is_refused(scheme, keys, value):
    a, b = _pair(scheme, keys)
    public = keys.aggregator.unwrap("paillier")
    width = public.ciphertext_bytes
    bad = {"n_squared": int(public.nsquare).to_bytes(width, "big"), "all_ones": b"\xff" * width,
           "zero": bytes(width)}[value]
    payload = bytes(b.payload)
    forged = _with_payload(b, payload[:8] + bad + payload[8 + width:])
    with pytest.raises(MalformedCiphertextError, match="not in"):
        scheme.combine(keys.aggregator, [a, forged], round=0)


def test_wrong_number_of_packed_slots_is_refused(scheme, keys):
    a, b = _pair(scheme, keys)
    payload = bytes(b.payload)
    slot_bits, slots, tag = struct.unpack(">HHI", payload[:8])
    fewer_slots = _with_payload(b, struct.pack(">HHI", slot_bits, slots - 1, tag) + payload[8:])
    with pytest.raises(MismatchError):
        scheme.combine(keys.aggregator, [a, fewer_slots], round=0)
    width = keys.aggregator.unwrap("paillier").ciphertext_bytes
    one_ciphertext_short = _with_payload(b, payload[: len(payload) - width])
    with pytest.raises(MismatchError):
        scheme.combine(keys.aggregator, [a, one_ciphertext_short], round=0)


def test_other_encoding_parameters_are_refused(keys):
    mine, theirs = make(), make(clip=4.0)
    update = theirs.protect(keys.parties["alice"], np.zeros(8), weight=1.0, round=0)
    with pytest.raises(MismatchError):
        mine.combine(keys.aggregator, [update], round=0)


def test_overflow_on_decode_is_refused(scheme, keys):
    clip = scheme.declarations.value_bound
    updates = _pair(scheme, keys, a=np.full(100, clip), b=np.full(100, clip), weights=(3.0, 4.0))
    aggregate = scheme.combine(keys.aggregator, updates, round=0)
    # an aggregate that understates its weights decodes beyond the range they allow
    forged = Envelope.from_bytes(dataclasses.replace(aggregate, weights=(1.0, 1.0)).to_bytes())
    with pytest.raises(DecodingOverflowError):
        scheme.reveal(keys.parties["alice"], forged)


def test_carry_out_of_the_top_slot_is_detected():
    layout = SlotLayout(slot_bits=13, slots=5)
    values = np.array([1, 2, 3, 8191, 0, 7], dtype=np.uint64)
    plaintexts = layout.pack(values)
    assert np.array_equal(layout.unpack(plaintexts, values.size), values)
    with pytest.raises(DecodingOverflowError):
        layout.unpack([plaintexts[0] + (mpz(1) << 65), plaintexts[1]], values.size)
    with pytest.raises(DecodingOverflowError):  # a padding slot that is not zero
        layout.unpack([plaintexts[0], plaintexts[1] + 1], values.size)


def test_more_updates_or_a_heavier_weight_than_the_slots_hold_are_refused(keys):
    one = make(max_parties=1)
    updates = [one.protect(keys.parties[p], np.zeros(8), weight=2.0, round=0) for p in ("alice", "bob")]
    with pytest.raises(DecodingOverflowError, match="max_parties=1"):
        one.combine(keys.aggregator, updates, round=0)
    light = make(max_weight=4.0, weight_unit=1.0)
    with pytest.raises(InvalidInputError, match="max_weight"):
        light.protect(keys.parties["alice"], np.zeros(8), weight=5.0, round=0)
    # an upload declaring a weight past the bound (made under other parameters, or forged) is not combined
    fine = light.protect(keys.parties["alice"], np.zeros(8), weight=4.0, round=0)
    heavy = Envelope.from_bytes(dataclasses.replace(fine, weights=(5.0,)).to_bytes())
    with pytest.raises(DecodingOverflowError, match="above max_weight"):
        light.combine(keys.aggregator, [heavy], round=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_input_is_refused(scheme, keys, bad):
    with pytest.raises(InvalidInputError):
        scheme.protect(keys.parties["alice"], np.array([0.0, bad]), weight=1.0, round=0)


def test_values_beyond_clip_are_clipped_and_counted(scheme, keys):
    with pytest.warns(ClippedValuesWarning, match="2 of 4 values"):
        env = scheme.protect(keys.parties["alice"], np.array([0.0, 100.0, -100.0, 1.0]), weight=1.0, round=0)
    fused = scheme.reveal(keys.parties["bob"], scheme.combine(keys.aggregator, [env], round=0))
    assert np.allclose(fused, [0.0, 8.0, -8.0, 1.0], atol=scheme.tolerance([1.0]))


# --- packing and weights ----------------------------------------------------------------
@pytest.mark.parametrize("slot_bits", [7, 8, 20, 28, 63])
def test_packing_round_trip(slot_bits):
    layout = SlotLayout(slot_bits=slot_bits, slots=max(1, 760 // slot_bits))
    rng = np.random.default_rng(slot_bits)
    values = rng.integers(0, 2**slot_bits, size=1000, dtype=np.uint64, endpoint=False)
    values[:3] = [0, 2**slot_bits - 1, 1]
    plaintexts = layout.pack(values)
    assert len(plaintexts) == layout.count(1000)
    assert max(m.bit_length() for m in plaintexts) <= slot_bits * layout.slots
    assert np.array_equal(layout.unpack(plaintexts, 1000), values)


def test_fused_vector_is_the_weighted_mean_of_standard_normal_updates(scheme):
    rng = np.random.default_rng(5)
    ids = [f"p{i}" for i in range(6)]
    keys = scheme.keygen(ids)
    vectors = {p: rng.standard_normal(500) for p in ids}
    weights = {p: float(i + 1) for i, p in enumerate(ids)}
    fused = secure_weighted_mean(scheme, keys, vectors, weights)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    assert np.max(np.abs(fused - expected)) <= scheme.tolerance(list(weights.values())) <= 1e-3


def test_fractional_weights_are_applied_as_given():
    scheme = make(weight_unit=0.25)
    keys = scheme.keygen(["alice", "bob"])
    a, b = np.full(20, 2.0), np.full(20, -1.0)
    assert scheme.protect(keys.parties["alice"], a, weight=1.5, round=0).weights == (1.5,)  # not rounded
    fused = secure_weighted_mean(scheme, keys, {"alice": a, "bob": b}, {"alice": 1.5, "bob": 2.25})
    value_error = scheme.params.fixed_point().value_error()
    assert scheme.tolerance([1.5, 2.25]) == pytest.approx(value_error * 2 * 0.25 / 3.75, rel=1e-6)
    assert np.allclose(fused, (1.5 * 2 - 2.25) / 3.75, atol=scheme.tolerance([1.5, 2.25]))


def test_weights_below_the_unit_cost_precision_as_the_tolerance_says():
    """Weights far below weight_unit are accepted; the fused mean's error grows as tolerance() states, no more."""
    scheme = make(max_weight=64.0, weight_unit=64.0)
    keys = scheme.keygen(["alice", "bob"])
    rng = np.random.default_rng(4)
    xs = {"alice": rng.uniform(-8, 8, 400), "bob": rng.uniform(-8, 8, 400)}
    weights = {"alice": 1.4, "bob": 2.6}
    fused = secure_weighted_mean(scheme, keys, xs, weights)
    want = np.average(np.stack(list(xs.values())), axis=0, weights=list(weights.values()))
    tol = scheme.tolerance(list(weights.values()))
    assert tol == pytest.approx(scheme.params.fixed_point().value_error() * 2 * 64 / 4.0, rel=1e-6)
    error = np.max(np.abs(fused - want))
    assert tol / 4 < error <= tol  # the bound is met, and it is not vacuous: the error is of its order


def test_stochastic_rounding_stays_within_its_bound():
    scheme = make(stochastic_rounding=True, bits=10)
    keys = scheme.keygen(["alice"])
    x = np.random.default_rng(3).uniform(-8, 8, 300)
    fused = secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0})
    assert np.max(np.abs(fused - x)) <= scheme.tolerance([1.0])


# --- parameters -----------------------------------------------------------------------------
def test_key_sizes():
    assert PaillierParams().key_bits == 3072 and PaillierParams().security_bits() == 128
    assert PaillierParams(key_bits=2048).security_bits() == 112
    PaillierScheme(PaillierParams(key_bits=2048))  # accepted without allow_insecure
    for bits in (1024, 1536, 768):
        with pytest.raises(InsecureParameterError):
            PaillierScheme(PaillierParams(key_bits=bits))
    assert registry.get("paillier") is PaillierScheme


def test_upload_size_at_2048_bits_and_16_bit_quantisation():
    params = PaillierParams(key_bits=2048, bits=16).for_federation(3)
    assert bytes_per_value(params) <= 7.6  # 8.53 when 16 bits of every slot were kept for integer weights
    assert params.slots_per_ciphertext * params.slot_bits <= 2047


@pytest.mark.parametrize("parties", [3, 10, 100, 1000])
def test_a_stated_weight_bound_packs_near_the_floor(parties):
    """max_weight stated, weight_unit an eighth of it: 3 bits per slot above bits + log2(parties) + 1, at most."""
    tight = PaillierParams(max_weight=1000.0, weight_unit=125.0).for_federation(parties)
    floor = tight.floor_bytes_per_value(parties)
    assert tight.slot_bits <= tight.bits + math.ceil(math.log2(parties)) + 3
    assert bytes_per_value(tight) <= 1.15 * floor
    if parties == 10:  # issue 23: <= 6 bytes per value at 10 parties, 3072 bits (goal 5 with weight_unit = max_weight)
        assert bytes_per_value(tight) <= 6.0
        assert bytes_per_value(dataclasses.replace(tight, weight_unit=1000.0)) <= 5.05


def test_headroom_is_derived_from_the_federation():
    """max_parties = 0 sizes the slots for the federation's size: a few bits more per tenfold parties."""
    small, large = (PaillierParams().for_federation(n) for n in (10, 1000))
    assert (small.max_parties, large.max_parties) == (10, 1000)
    assert bytes_per_value(small) < bytes_per_value(large) <= 9.6  # at 3072 bits; 10.52 before weights were scaled
    assert PaillierParams(max_parties=7).for_federation(1000).max_parties == 7  # as set
    with pytest.raises(InvalidParameterError, match="weight_unit"):
        PaillierParams(bits=32, max_weight=2.0**30, weight_unit=1.0).for_federation(1000)  # past 63-bit slots
    with pytest.raises(InvalidParameterError, match="weight_unit"):
        PaillierParams(max_weight=4.0, weight_unit=8.0).validate()


def test_a_thousand_parties_weighted_by_rows_combine_at_the_defaults():
    """The failure of issue 14: weights 1..N summing far past any fixed total do not overflow the derived slots."""
    ids = [f"p{i}" for i in range(1000)]
    scheme = PaillierScheme(PaillierParams.preset("test").for_federation(1000))
    keys = scheme.keygen(ids)
    rng = np.random.default_rng(3)
    xs = {pid: rng.uniform(-1, 1, 5) for pid in ids}
    aggregate = fold_weighted_by_rank(scheme, keys, xs)
    assert aggregate.total_weight == 500500.0
    fused = scheme.reveal(keys.parties["p0"], aggregate) / aggregate.total_weight
    want = np.average(np.stack([xs[p] for p in ids]), axis=0, weights=np.arange(1, 1001))
    assert np.allclose(fused, want, rtol=0, atol=scheme.tolerance(aggregate.weights))


@pytest.mark.parametrize("spread", ["all_heaviest", "heaviest_and_tiny"])
def test_a_thousand_adversarial_parties_at_the_clip_bound_never_overflow(spread):
    """Every party at max_weight with values at +-clip fills each slot to its last bit, and it does not wrap."""
    params = dataclasses.replace(PaillierParams.preset("test"), max_weight=1000.0, weight_unit=125.0)
    scheme = PaillierScheme(params.for_federation(1000))
    ids = [f"p{i:04d}" for i in range(1000)]
    keys = scheme.keygen([*ids, "late"])
    clip = float(params.clip)
    signs = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
    if spread == "all_heaviest":
        weights = dict.fromkeys(ids, 1000.0)
        xs = {p: clip * signs for p in ids}
    else:  # half at the bound, half with weights a millionth of it, every value at the clip bound
        weights = {p: 1000.0 if i % 2 else 1e-3 for i, p in enumerate(ids)}
        xs = {p: clip * signs * (1 if i % 2 else -1) for i, p in enumerate(ids)}
    acc = scheme.accumulator(keys.aggregator, round=0)
    for p in ids:
        acc.add(scheme.protect(keys.parties[p], xs[p], weight=weights[p], round=0))
    aggregate = acc.result()
    total = scheme.reveal(keys.parties["p0000"], aggregate)
    want = sum(weights[p] * xs[p] for p in ids)
    assert np.allclose(total / aggregate.total_weight, want / sum(weights.values()), rtol=0,
                       atol=scheme.tolerance(aggregate.weights))
    if spread == "all_heaviest":  # the top slot value is exactly the most the slot was sized for
        assert 2 * 1000 * scheme.params.party_bound < 2**scheme.params.slot_bits
        assert np.allclose(total, want, rtol=1e-12, atol=0)  # weights at the bound, values at clip: no rounding
    # one more update, or one heavier, is refused with a typed error rather than wrapped
    with pytest.raises(DecodingOverflowError, match="max_parties=1000"):
        acc.add(scheme.protect(keys.parties["late"], xs["p0000"], weight=1.0, round=0))
    with pytest.raises(InvalidInputError, match="max_weight"):
        scheme.protect(keys.parties["p0000"], xs["p0000"], weight=1000.5, round=0)


@pytest.mark.slow
def test_real_2048_bit_key_standard_normal_updates():
    scheme = PaillierScheme(PaillierParams(key_bits=2048).for_federation(3))
    ids = [f"p{i}" for i in range(3)]
    keys = scheme.keygen(ids)
    rng = np.random.default_rng(8)
    vectors = {p: rng.standard_normal(5000) for p in ids}
    weights = {p: float(i + 1) for i, p in enumerate(ids)}
    env = scheme.protect(keys.parties["p0"], vectors["p0"], weight=1.0, round=0)
    assert env.nbytes() / 5000 <= 7.7  # 8.56 when 16 bits of every slot were kept for integer weights
    fused = secure_weighted_mean(scheme, keys, vectors, weights)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    assert np.max(np.abs(fused - expected)) <= 1e-3


# --- helper processes ------------------------------------------------------------------------
def test_helper_processes_share_the_encryption_and_failures_fall_back():
    from crypto_backends.paillier import helpers

    scheme = make(encrypt_processes=2)
    keys = scheme.keygen(["alice"])
    x = np.random.default_rng(4).uniform(-8, 8, 64 * scheme.params.slots_per_ciphertext)
    try:
        fused = secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0})
        assert helpers._pool is not None and helpers._pool[0] == keys.key_id
        assert np.max(np.abs(fused - x)) <= scheme.tolerance([1.0])
        (helper,) = helpers._pool[1]
        helper.proc.kill()
        helper.proc.wait()
        with pytest.warns(RuntimeWarning, match="helper processes disabled"):
            fused = secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0})  # computed locally instead
        assert np.max(np.abs(fused - x)) <= scheme.tolerance([1.0])
        assert helpers._pool is None
        secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0})
        assert helpers._pool is None  # no new helpers after a failure
    finally:
        helpers.shutdown()


def test_no_helper_process_when_asked_for_one_process():
    from crypto_backends.paillier import helpers

    helpers.shutdown()
    scheme = make(encrypt_processes=1)
    keys = scheme.keygen(["alice"])
    secure_weighted_mean(scheme, keys, {"alice": np.zeros(3000)}, {"alice": 1.0})
    assert helpers._pool is None


def test_a_forked_child_does_not_use_its_parents_helpers():
    import os

    from crypto_backends.paillier import helpers

    scheme = make(encrypt_processes=2)
    keys = scheme.keygen(["alice"])
    x = np.zeros(64 * scheme.params.slots_per_ciphertext)
    try:
        secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0})
        parent_helpers = list(helpers._pool[1])
        pid = os.fork()
        if pid == 0:  # child: must start its own helpers, leaving the parent's pipes alone
            ok = np.allclose(secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0}), 0.0, atol=1e-3)
            ok = ok and all(h not in parent_helpers for h in helpers._pool[1])
            helpers.shutdown()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert helpers._pool[1] == parent_helpers
        assert np.allclose(secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0}), 0.0, atol=1e-3)
    finally:
        helpers.shutdown()


def test_a_key_whose_material_does_not_match_its_fingerprint_is_refused(scheme, keys):
    other = scheme.keygen(["alice"])
    data = scheme.dump_key(keys.aggregator)
    forged = data.replace(keys.key_id.hex().encode(), other.key_id.hex().encode())
    with pytest.raises(MismatchError, match="altered"):
        scheme.combine(scheme.load_key(forged), _pair(scheme, keys), round=0)


def test_helpers_that_cannot_run_leave_encryption_to_this_process(monkeypatch):
    from crypto_backends.paillier import helpers

    helpers.shutdown()
    monkeypatch.setattr(helpers, "_SCRIPT", "/nonexistent/securefl_helper.py")
    scheme = make(encrypt_processes=3)
    keys = scheme.keygen(["alice"])
    x = np.random.default_rng(9).uniform(-1, 1, 64 * scheme.params.slots_per_ciphertext)
    try:
        with pytest.warns(RuntimeWarning, match="helper processes disabled"):
            fused = secure_weighted_mean(scheme, keys, {"alice": x}, {"alice": 1.0})
        assert np.max(np.abs(fused - x)) <= scheme.tolerance([1.0])
    finally:
        helpers.shutdown()
