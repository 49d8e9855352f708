"""``threshold_paillier``: t-of-n decryption, proofs of correct decryption, what t-1 shares and the dealer keep.

The shared contract (round trip, weights, keys, envelopes) is in ``test_contract.py``;
this file tests what only a threshold scheme promises.  Keys are the small insecure
``test`` preset, except in the one slow test at the default size.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import gmpy2
import numpy as np
import pytest

from crypto_backends import SECRET_ACCESS, Envelope, InsecureParametersWarning, registry
from crypto_backends.errors import (
    CryptoError,
    DecodingOverflowError,
    InvalidParameterError,
    KeyRoleError,
    ShareError,
)
from crypto_backends.keys import KeySet
from crypto_backends.roundtrip import collect_shares, reveal_mean, secure_weighted_mean
from crypto_backends.threshold_paillier import ThresholdPaillierParams, ThresholdPaillierScheme, primes, shoup
from crypto_backends.threshold_paillier.scheme import PublicKeyMaterial, ShareMaterial

PARTIES = ["p1", "p2", "p3", "p4", "p5"]
WEIGHTS = {p: float(i + 1) for i, p in enumerate(PARTIES)}


def _scheme(**changes: object) -> ThresholdPaillierScheme:
    params = dataclasses.replace(ThresholdPaillierParams.preset("test"), **changes)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return ThresholdPaillierScheme(params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup() -> tuple[ThresholdPaillierScheme, KeySet]:
    scheme = _scheme(threshold=3)
    return scheme, scheme.keygen(PARTIES)


def _vectors(seed: int, parties=PARTIES, dim: int = 60) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p: rng.uniform(-3, 3, dim) for p in parties}


def _aggregate(scheme, keys, vectors, round=0) -> Envelope:
    updates = [scheme.protect(keys.parties[p], v, weight=WEIGHTS[p], round=round) for p, v in vectors.items()]
    return Envelope.from_bytes(scheme.combine(keys.aggregator, updates, round=round).to_bytes())


def _expected(vectors) -> np.ndarray:
    return np.average(np.stack(list(vectors.values())), axis=0, weights=[WEIGHTS[p] for p in vectors])


def _shares(scheme, keys, aggregate, parties) -> dict[str, bytes]:
    return {p: scheme.decryption_share(keys.parties[p], aggregate, b"") for p in parties}


def test_any_t_of_n_shares_give_the_weighted_sum(setup):
    scheme, keys = setup
    vectors = _vectors(1)
    aggregate = _aggregate(scheme, keys, vectors)
    shares = _shares(scheme, keys, aggregate, PARTIES)
    tol = scheme.tolerance(list(WEIGHTS.values()))
    for subset in itertools.combinations(PARTIES, 3):
        total = scheme.reveal_shares(keys.aggregator, aggregate, {p: shares[p] for p in subset})
        assert np.max(np.abs(total / aggregate.total_weight - _expected(vectors))) <= tol, subset
    # more than t shares: t of them are used, the result is the same
    total = scheme.reveal_shares(keys.aggregator, aggregate, shares)
    assert np.max(np.abs(total / aggregate.total_weight - _expected(vectors))) <= tol


def test_t_minus_one_shares_and_the_aggregator_key_reveal_nothing(setup):
    scheme, keys = setup
    vectors = _vectors(2)
    aggregate = _aggregate(scheme, keys, vectors)
    two = _shares(scheme, keys, aggregate, ["p1", "p4"])
    with pytest.raises(ShareError, match="needs 3"):
        scheme.reveal_shares(keys.aggregator, aggregate, two)
    with pytest.raises(KeyRoleError):
        scheme.reveal(keys.aggregator, aggregate)
    for p in ("p1", "p4"):  # a colluding party's own key does not decrypt either
        with pytest.raises(KeyRoleError):
            scheme.reveal(keys.parties[p], aggregate)
    # interpolating in the exponent through the t-1 shares they have gives no plaintext: decoding fails
    material = keys.aggregator.unwrap(scheme.name)
    cts = scheme._ciphertexts(material.dealt.public, aggregate)
    partials = {1: shoup.partial(material.dealt, keys.parties["p1"].unwrap(scheme.name).share, cts),
                4: shoup.partial(material.dealt, keys.parties["p4"].unwrap(scheme.name).share, cts)}
    with pytest.raises(DecodingOverflowError):
        scheme._decode(shoup.combine(material.dealt, partials), aggregate)


def test_a_forged_share_fails_its_proof_and_names_its_sender(setup):
    scheme, keys = setup
    aggregate = _aggregate(scheme, keys, _vectors(3))
    honest = scheme.decryption_share(keys.parties["p2"], aggregate, b"")
    scheme.check_share(keys.aggregator, aggregate, "p2", honest)
    width = keys.aggregator.unwrap(scheme.name).dealt.public.ciphertext_bytes
    # one partial decryption changed (still a number below n^2), the proof left as it was
    tampered = bytearray(honest)
    tampered[6 + width // 2] ^= 0x01
    with pytest.raises(ShareError, match="'p2'.*proof"):
        scheme.check_share(keys.aggregator, aggregate, "p2", bytes(tampered))
    # a consistent forgery: every partial raised to another exponent, with a proof made for that exponent
    material = keys.parties["p2"].unwrap(scheme.name)
    forged_key = dataclasses.replace(material, share=material.share + 1)
    cts = scheme._ciphertexts(material.public.dealt.public, aggregate)
    partials = shoup.partial(material.public.dealt, forged_key.share, cts)
    proof = shoup.prove(material.public.dealt, forged_key.share, 2, _context(aggregate), cts, partials)
    assert not shoup.verify(material.public.dealt, 2, _context(aggregate), cts, partials, proof)
    # an honest share presented as another party's
    with pytest.raises(ShareError, match="index"):
        scheme.check_share(keys.aggregator, aggregate, "p3", honest)
    with pytest.raises(ShareError, match="truncated"):
        scheme.check_share(keys.aggregator, aggregate, "p2", honest[:40])
    with pytest.raises(ShareError, match="holds no share"):
        scheme.check_share(keys.aggregator, aggregate, "mallory", honest)


def _context(aggregate: Envelope) -> bytes:
    from crypto_backends.threshold_paillier.scheme import _context as context

    return context(aggregate)


def test_a_share_of_another_round_or_aggregate_is_refused(setup):
    scheme, keys = setup
    vectors = _vectors(4)
    first, second = _aggregate(scheme, keys, vectors, round=0), _aggregate(scheme, keys, vectors, round=1)
    old = scheme.decryption_share(keys.parties["p1"], first, b"")
    with pytest.raises(ShareError, match="another aggregate or round"):
        scheme.check_share(keys.aggregator, second, "p1", old)
    # the same ciphertexts relabelled as round 1: the proof is bound to the round too
    relabelled = dataclasses.replace(first, round=1)
    with pytest.raises(ShareError):
        scheme.check_share(keys.aggregator, relabelled, "p1", old)
    # and to the contributors and weights the aggregate names
    reweighted = dataclasses.replace(first, weights=tuple(w + 1 for w in first.weights))
    with pytest.raises(ShareError):
        scheme.check_share(keys.aggregator, reweighted, "p1", old)


def test_reveal_shares_refuses_a_share_that_was_never_checked(setup):
    scheme, keys = setup
    aggregate = _aggregate(scheme, keys, _vectors(5))
    shares = _shares(scheme, keys, aggregate, ["p1", "p2", "p3"])
    bad = bytearray(shares["p3"])
    bad[10] ^= 0x80
    shares["p3"] = bytes(bad)
    with pytest.raises(ShareError, match="'p3'"):
        scheme.reveal_shares(keys.aggregator, aggregate, shares)


def test_a_round_with_n_minus_t_parties_dropped_completes(setup):
    scheme, keys = setup
    present = _vectors(6, parties=["p2", "p3", "p5"])  # 2 = n - t parties dropped before uploading
    fused = secure_weighted_mean(scheme, keys, present, WEIGHTS)
    assert np.max(np.abs(fused - _expected(present))) <= scheme.tolerance([WEIGHTS[p] for p in present])
    aggregate = _aggregate(scheme, keys, present)
    request = scheme.share_request(keys.aggregator, aggregate)
    assert request is not None and request.parties == ("p2", "p3", "p5") and request.needed == 3
    # one fewer would be below t: the share exchange says so
    fewer = _aggregate(scheme, keys, _vectors(6, parties=["p2", "p3"]))
    with pytest.raises(ShareError, match="needs 3"):
        collect_shares(scheme, keys, fewer, scheme.share_request(keys.aggregator, fewer))


def test_no_key_holds_the_factors_or_the_decryption_exponent(monkeypatch):
    drawn: list[gmpy2.mpz] = []
    real = primes.safe_prime

    def recording(bits: int) -> gmpy2.mpz:
        drawn.append(real(bits))
        return drawn[-1]

    monkeypatch.setattr(shoup, "safe_prime", recording)
    scheme = _scheme()
    keys = scheme.keygen(PARTIES)
    dealt = keys.aggregator.unwrap(scheme.name).dealt
    p, q = next((a, b) for a, b in itertools.combinations(drawn, 2) if a * b == dealt.public.n)
    m = (p // 2) * (q // 2)
    d = m * gmpy2.invert(m, dealt.public.n) % (dealt.public.n * m)
    secrets_ = [p, q, m, d, (p - 1) * (q - 1)]
    assert not keys.aggregator.holds_secret and keys.authority is not None and not keys.authority.holds_secret
    for key in [keys.aggregator, keys.authority, *keys.parties.values()]:
        blob = scheme.dump_key(key, secret_access=SECRET_ACCESS)
        for value in secrets_:
            raw = int(value).to_bytes((int(value).bit_length() + 7) // 8, "big")
            assert raw not in blob, f"{key!r} holds a secret of the dealer"
        material = key.unwrap(scheme.name)
        assert isinstance(material, (PublicKeyMaterial, ShareMaterial))
        if isinstance(material, ShareMaterial):
            assert material.share != d and material.share % m != 0  # one share is not the key
    # the shares really are of d: t of them interpolate to it, by Lagrange at 0 scaled by Delta
    shares = {i + 1: keys.parties[pid].unwrap(scheme.name).share for i, pid in enumerate(sorted(PARTIES))}
    lam = shoup.lagrange([1, 2, 3], dealt.delta)
    assert sum(lam[i] * shares[i] for i in lam) % (dealt.public.n * m) == dealt.delta * d % (dealt.public.n * m)
    # no role that the engine asks to reveal alone can: every reveal needs t shares
    assert keys.parties["p1"].holds_secret


def test_threshold_defaults_to_a_majority_and_is_validated():
    for parties, t in ((1, 1), (2, 2), (4, 3), (5, 3), (6, 4)):
        assert ThresholdPaillierParams(threshold=0).threshold_for(parties) == t
    assert _scheme(threshold=2).keygen(["a", "b", "c"]).aggregator.unwrap("threshold_paillier").dealt.threshold == 2
    with pytest.raises(InvalidParameterError, match=r"threshold=4.*federation has 3 parties"):
        _scheme(threshold=4).keygen(["a", "b", "c"])
    with pytest.raises(InvalidParameterError, match=r"crypto\.threshold_paillier\.threshold"):
        _scheme(threshold=-1)


def test_combining_is_associative_so_partial_aggregates_fold(setup):
    scheme, keys = setup
    vectors = _vectors(9)
    updates = [scheme.protect(keys.parties[p], v, weight=WEIGHTS[p], round=0) for p, v in vectors.items()]
    whole = scheme.combine(keys.aggregator, updates, round=0)
    left = scheme.combine(keys.aggregator, updates[:2], round=0)
    right = scheme.combine(keys.aggregator, updates[2:], round=0)
    folded = scheme._combine(keys.aggregator, [left, right], length=whole.length, weights=whole.weights)
    assert bytes(folded) == bytes(whole.payload)  # the product of ciphertexts does not depend on grouping
    total = scheme.reveal_shares(keys.aggregator, whole, _shares(scheme, keys, whole, PARTIES[:3]))
    assert np.max(np.abs(total / whole.total_weight - _expected(vectors))) <= scheme.tolerance(list(WEIGHTS.values()))


def test_share_requests_ask_every_contributor_or_that_many_in_turn(setup):
    scheme, keys = setup
    aggregates = [_aggregate(scheme, keys, _vectors(8, dim=4), round=r) for r in range(5)]
    assert all(scheme.share_request(keys.aggregator, a).parties == tuple(PARTIES) for a in aggregates)
    frugal = _scheme(threshold=3, share_requests=3)
    asked = [frugal.share_request(keys.aggregator, a) for a in aggregates]
    assert all(len(r.parties) == 3 and r.needed == 3 for r in asked)
    assert {p for r in asked for p in r.parties} == set(PARTIES)  # the work rotates
    fused = reveal_mean(frugal, keys, aggregates[1])
    assert np.max(np.abs(fused - _expected(_vectors(8, dim=4)))) <= scheme.tolerance(list(WEIGHTS.values()))
    with pytest.raises(InvalidParameterError, match="share_requests"):
        _scheme(threshold=3, share_requests=2)


def test_key_sizes_are_paillier_s():
    assert ThresholdPaillierParams().key_bits == 3072
    assert ThresholdPaillierParams.preset("fast").security_bits() == 112
    with pytest.raises(CryptoError, match="112-bit minimum"):
        registry.create("threshold_paillier", ThresholdPaillierParams(key_bits=1024))


def test_safe_primes_are_safe():
    for bits in (64, 128, 256):
        p = primes.safe_prime(bits)
        assert p.bit_length() == bits and gmpy2.is_prime(p) and gmpy2.is_prime((p - 1) // 2)


def test_a_threshold_of_one_still_proves_and_checks():
    scheme = _scheme(threshold=1)
    keys = scheme.keygen(["a", "b"])
    vectors = {"a": np.full(8, 1.5), "b": np.full(8, -0.5)}
    fused = secure_weighted_mean(scheme, keys, vectors, {"a": 1.0, "b": 1.0})
    assert np.allclose(fused, 0.5, atol=scheme.tolerance([1.0, 1.0]))


@pytest.mark.slow
@pytest.mark.parametrize("bits", [2048, 3072])
def test_real_key_sizes_round_trip_and_refuse_a_forged_share(bits):
    scheme = ThresholdPaillierScheme(ThresholdPaillierParams(key_bits=bits, threshold=3))
    keys = scheme.keygen(PARTIES)
    assert keys.aggregator.unwrap(scheme.name).dealt.public.n.bit_length() == bits
    vectors = _vectors(7, dim=500)
    aggregate = _aggregate(scheme, keys, vectors)
    assert np.max(np.abs(reveal_mean(scheme, keys, aggregate) - _expected(vectors))) <= scheme.tolerance(
        list(WEIGHTS.values()))
    share = bytearray(scheme.decryption_share(keys.parties["p5"], aggregate, b""))
    share[-1] ^= 1  # the response z
    with pytest.raises(ShareError):
        scheme.check_share(keys.aggregator, aggregate, "p5", bytes(share))
    assert math.factorial(5) == keys.aggregator.unwrap(scheme.name).dealt.delta
