"""The contract every registered scheme must pass.

A new scheme joins this suite by registering; nothing here names a scheme.  Every
test runs for each registered scheme bare and inside a wrapper that overrides
nothing (:class:`tests.schemes.PassThrough`), which must be indistinguishable.
The differential-privacy wrapper promises no accuracy (its tolerance is
infinite), so its part of the contract is its noise scale instead.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import re
import warnings

import numpy as np
import pytest

from crypto_backends import SECRET_ACCESS, Envelope, InsecureParametersWarning, noise, registry
from crypto_backends.base import RevealSite, Scheme, ThreatModel
from crypto_backends.capabilities import FunctionKeys, ShareReveal
from crypto_backends.dp import DPScheme, NoisePlan, NoiseSegment
from crypto_backends.errors import (
    CryptoError,
    InvalidInputError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
    SecretExportError,
)
from crypto_backends.keys import Key, KeySet, PartyKey, Role
from crypto_backends.roundtrip import (
    function_key_for,
    reveal_mean,
    reveal_sum,
    revealing_key,
    run_round,
    run_setup,
    secure_weighted_mean,
)
from tests.schemes import contract_schemes, make_scheme

PARTIES = ["alice", "bob", "carol", "dave"]
#: Whatever a scheme declares, the fused weighted mean of values within +-3 is never further off than this,
#: neither as decrypted nor as a user receives it (published: after ``release``, e.g. ckks' noise flooding).
ACCURACY_CEILING = 1e-3
#: Values per party of the accuracy test: enough chunks that a publication's noise, which grows with
#: the chunks published (ckks), is measured at a realistic size.
RELEASED_DIM = 2_100
DECLARATIONS = (
    "name", "version", "params_type", "reveal_plan", "threat_model",
)


@pytest.fixture(params=contract_schemes())
def scheme(request) -> Scheme:
    return make_scheme(request.param)


def _inputs(scheme: Scheme, n: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    bound = min(scheme.declarations.value_bound or 3.0, 3.0)
    rng = np.random.default_rng(seed)
    return {p: rng.uniform(-bound, bound, dim) for p in PARTIES[:n]}


def _weights(n: int) -> dict[str, float]:
    return {p: float(i + 1) for i, p in enumerate(PARTIES[:n])}


def _setup(scheme, keys, round=0):
    """The scheme's setup exchange for ``round`` among every party of ``keys``, as the engine runs it (if any)."""
    run_setup(scheme, keys, list(keys.parties), round=round)
    return keys


def _updates(scheme, keys, vectors, weights, round=0):
    _setup(scheme, keys, round)
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
    bound = min(scheme.declarations.value_bound or 3.0, 3.0)
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


def test_envelope_round_trips_through_bytes(scheme):
    keys = _setup(scheme, scheme.keygen(PARTIES[:2]), round=5)
    vectors = _inputs(scheme, 2, 40, seed=3)
    env = scheme.protect(keys.parties["alice"], vectors["alice"], weight=2.0, round=5)
    back = Envelope.from_bytes(env.to_bytes())
    assert back == dataclasses.replace(env, payload=back.payload)
    assert (back.round, back.parties, back.kind, back.length) == (5, ("alice",), "update", 40)
    assert bytes(back.payload) == bytes(env.payload)
    assert env.nbytes() == len(env.to_bytes())


def test_keys_survive_an_explicit_export_to_the_same_role(scheme):
    keys = scheme.keygen(PARTIES[:3])

    def exported(key: Key) -> Key:
        data = scheme.dump_key(key, secret_access=SECRET_ACCESS)
        back = scheme.load_key(data)
        assert (type(back), back.key_id, back.owner, back.holds_secret) == (
            type(key), key.key_id, key.owner, key.holds_secret)
        assert scheme.dump_key(back, secret_access=SECRET_ACCESS) == data  # the material itself came back
        return back

    loaded = KeySet(
        aggregator=exported(keys.aggregator),
        parties={p: exported(k) for p, k in keys.parties.items()},
        authority=exported(keys.authority) if keys.authority is not None else None,
        key_id=keys.key_id,
    )
    vectors, weights = _inputs(scheme, 3, 40, seed=3), _weights(3)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    tol = scheme.tolerance(list(weights.values()))
    # an original party key and loaded ones contribute to one aggregate, combined under the loaded
    # aggregator key: the loaded keys are the same keys, not merely a consistent new set
    mixed = KeySet(aggregator=loaded.aggregator, parties={"alice": keys.parties["alice"], "bob": loaded.parties["bob"],
                   "carol": loaded.parties["carol"]}, key_id=keys.key_id)
    _setup(scheme, mixed, round=5)
    updates = [
        scheme.protect(keys.parties["alice"], vectors["alice"], weight=weights["alice"], round=5),
        *(scheme.protect(loaded.parties[p], vectors[p], weight=weights[p], round=5) for p in ("bob", "carol")),
    ]
    aggregate = Envelope.from_bytes(scheme.combine(loaded.aggregator, updates, round=5).to_bytes())
    for revealing in (loaded, keys):
        if scheme.declarations.reveal.shares:  # shares: the set-up keys reveal
            revealing = mixed
        assert np.max(np.abs(reveal_mean(scheme, revealing, aggregate) - expected)) <= tol


def test_secret_keys_need_the_export_token(scheme):
    keys = scheme.keygen(PARTIES[:2])
    for key in [*keys.parties.values(), keys.aggregator, keys.authority]:
        if key is not None and key.holds_secret:
            with pytest.raises(SecretExportError):
                scheme.dump_key(key)


def test_update_from_another_key_set_is_refused(scheme):
    keys, other = _setup(scheme, scheme.keygen(PARTIES[:2])), _setup(scheme, scheme.keygen(PARTIES[:2]))
    vectors = _inputs(scheme, 2, 8, seed=4)
    mine = scheme.protect(keys.parties["alice"], vectors["alice"], weight=1.0, round=0)
    theirs = scheme.protect(other.parties["bob"], vectors["bob"], weight=1.0, round=0)
    with pytest.raises(MismatchError):
        scheme.combine(keys.aggregator, [mine, theirs], round=0)


def test_update_of_another_scheme_is_refused(scheme):
    keys = _setup(scheme, scheme.keygen(PARTIES[:1]))
    env = scheme.protect(keys.parties["alice"], np.zeros(4), weight=1.0, round=0)
    forged = dataclasses.replace(env, scheme="other-scheme")
    with pytest.raises(MismatchError):
        scheme.combine(keys.aggregator, [Envelope.from_bytes(forged.to_bytes())], round=0)


def test_updates_of_different_lengths_are_refused(scheme):
    keys = _setup(scheme, scheme.keygen(PARTIES[:2]))
    a = scheme.protect(keys.parties["alice"], np.zeros(8), weight=1.0, round=0)
    b = scheme.protect(keys.parties["bob"], np.zeros(9), weight=1.0, round=0)
    with pytest.raises(MismatchError):
        scheme.combine(keys.aggregator, [a, b], round=0)


def test_update_of_another_round_is_refused(scheme):
    keys = _setup(scheme, scheme.keygen(PARTIES[:1]), round=1)
    env = scheme.protect(keys.parties["alice"], np.zeros(4), weight=1.0, round=1)
    with pytest.raises(MismatchError):
        scheme.combine(keys.aggregator, [env], round=2)


@pytest.mark.parametrize("cut", [1, 7, 100])
def test_truncated_bytes_are_refused(scheme, cut):
    keys = _setup(scheme, scheme.keygen(PARTIES[:1]))
    wire = scheme.protect(keys.parties["alice"], np.ones(64), weight=1.0, round=0).to_bytes()
    with pytest.raises(MalformedCiphertextError):
        Envelope.from_bytes(wire[: len(wire) - min(cut, len(wire) - 1)])


def test_truncated_payload_with_consistent_framing_is_refused(scheme):
    keys = _setup(scheme, scheme.keygen(PARTIES[:2]))
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
    if scheme.reveal_plan.site is RevealSite.PARTIES:
        aggregate = scheme.combine(keys.aggregator, updates, round=0)
        with pytest.raises(KeyRoleError):
            scheme.reveal(keys.aggregator, aggregate)
    if scheme.declarations.hides_updates:
        assert not keys.aggregator.holds_secret


def test_the_declared_reveal_site_reveals_and_the_other_role_cannot(scheme):
    keys = scheme.keygen(PARTIES[:3])
    vectors, weights = _inputs(scheme, 3, 8, seed=6), _weights(3)
    aggregate = scheme.combine(keys.aggregator, _updates(scheme, keys, vectors, weights), round=0)
    fkey = function_key_for(scheme, keys, aggregate)
    site_key = revealing_key(scheme, keys)
    roles = {RevealSite.AGGREGATOR: Role.AGGREGATOR, RevealSite.PARTIES: Role.PARTY}
    assert site_key.role is roles[scheme.reveal_plan.site]
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    if not scheme.declarations.reveal.shares:
        total = scheme.reveal(site_key, aggregate, function_key=fkey)
    else:  # the site reveals from the parties' shares; its own key alone opens nothing
        with pytest.raises(CryptoError):
            scheme.reveal(site_key, aggregate, function_key=fkey)
        total = reveal_sum(scheme, keys, aggregate)
    assert np.max(np.abs(total / aggregate.total_weight - expected)) <= scheme.tolerance(list(weights.values()))
    if scheme.declarations.hides_updates:  # whoever the scheme does not name must not be able to read the sum
        other = keys.parties["alice"] if scheme.reveal_plan.site is RevealSite.AGGREGATOR else keys.aggregator
        with pytest.raises(KeyRoleError):
            scheme.reveal(other, aggregate, function_key=fkey)


def test_a_party_key_that_names_no_party_is_refused(scheme):
    keys = scheme.keygen(PARTIES[:1])
    real = keys.parties["alice"]
    nameless = PartyKey(real.scheme, real.key_id, real.unwrap(real.scheme), holds_secret=real.holds_secret)
    with pytest.raises(KeyRoleError, match="names no party"):
        scheme.protect(nameless, np.zeros(4), weight=1.0, round=0)


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


def test_declarations_are_the_registered_classes(scheme):
    """The registry, the documentation and the reports read declarations from the class: the instance agrees."""
    cls = registry.get(scheme.name)
    for attr in DECLARATIONS:
        assert getattr(scheme, attr) == getattr(cls, attr), attr


def test_threat_model_says_who_holds_what_and_who_learns_what(scheme):
    tm = scheme.threat_model
    assert isinstance(tm, ThreatModel)
    assert set(tm.key_holders) == {role.value for role in Role}
    statements = {**{f"key_holders[{r}]": t for r, t in tm.key_holders.items()},
                  **{f.name: getattr(tm, f.name) for f in dataclasses.fields(tm)
                     if f.name != "key_holders" and not isinstance(getattr(tm, f.name), bool)}}
    for where, text in statements.items():
        assert isinstance(text, str) and len(text.split()) >= 2, f"{where} is not a statement: {text!r}"
    if not scheme.declarations.hides_updates:
        assert "update" in tm.aggregator_learns, "a scheme that shows updates must say so"


# --- accuracy: an absolute ceiling, at the parameters users get -------------------------------
@pytest.mark.parametrize("name", registry.available())
def test_default_parameters_meet_the_accuracy_ceiling(name):
    """A scheme cannot pass by declaring a large tolerance, nor by hiding its publication's noise: at its
    defaults, the published vector, the decrypted one and the tolerance are all within 1e-3."""
    scheme = registry.create(name)
    keys = scheme.keygen(PARTIES)
    vectors, weights = _inputs(scheme, 4, RELEASED_DIM, seed=7), _weights(4)
    trip = run_round(scheme, keys, vectors, weights, publish=True)
    expected = np.average(np.stack(list(vectors.values())), axis=0, weights=list(weights.values()))
    assert trip.released is not None and trip.released.shape == expected.shape
    assert np.max(np.abs(trip.released - expected)) <= ACCURACY_CEILING
    assert np.max(np.abs(trip.fused - expected)) <= ACCURACY_CEILING
    assert scheme.tolerance(list(weights.values())) <= ACCURACY_CEILING


# --- the differential-privacy wrapper: its noise has the plan's scale ---------------------------
DP_DIM = 6_000
DP_WEIGHTS = {"alice": 1.0, "bob": 2.0, "carol": 3.0}


def _hiding_schemes() -> list[str]:
    return [name for name in registry.available() if registry.get(name).threat_model.hides_updates]


def _dp_error(dp: DPScheme, seed: int) -> np.ndarray:
    """fused - exact over DP_DIM coordinates, inputs well inside every scheme's clip (no L2 clipping)."""
    keys = dp.keygen(list(DP_WEIGHTS))
    rng = np.random.default_rng(seed)
    vectors = {p: rng.uniform(-0.5, 0.5, DP_DIM) for p in DP_WEIGHTS}
    fused = secure_weighted_mean(dp, keys, vectors, DP_WEIGHTS)
    return fused - np.average(np.stack(list(vectors.values())), axis=0, weights=list(DP_WEIGHTS.values()))


def _assert_std(error: np.ndarray, expected_std: float, mechanism: str) -> None:
    # five standard errors of a sample standard deviation (kurtosis 3 Gaussian, at most 6 Laplace)
    kurtosis = 3.0 if mechanism == "gaussian" else 6.0
    bound = 5 * math.sqrt((kurtosis - 1) / (4 * error.size))
    assert abs(float(error.std()) / expected_std - 1) < bound, (float(error.std()), expected_std)
    assert abs(float(error.mean())) < 5 * expected_std / math.sqrt(error.size)  # unbiased


def _wrap(name: str, plan: NoisePlan) -> DPScheme:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return DPScheme(make_scheme(name), plan)


@pytest.mark.parametrize("mechanism", ["gaussian", "laplace"])
@pytest.mark.parametrize("name", registry.available())
def test_local_dp_noise_has_the_plan_scale(name, mechanism):
    scale = 0.25
    dp = _wrap(name, NoisePlan(mechanism, (NoiseSegment(DP_DIM, scale),), mode="local"))
    # each party's unweighted update carries the full noise; the mean weighs it by w_i / W
    w = np.array(list(DP_WEIGHTS.values()))
    expected = noise.share_std(mechanism, scale, 1) * math.sqrt(float(np.sum(w**2))) / float(np.sum(w))
    _assert_std(_dp_error(dp, seed=8), expected, mechanism)


@pytest.mark.parametrize("mechanism", ["gaussian", "laplace"])
@pytest.mark.parametrize("name", _hiding_schemes())
def test_distributed_dp_noise_adds_up_to_the_central_scale(name, mechanism):
    scale, bound = 0.15, max(DP_WEIGHTS.values())
    plan = NoisePlan(mechanism, (NoiseSegment(DP_DIM, scale),), mode="distributed",
                     min_contributors=len(DP_WEIGHTS), weight_bound=bound)
    dp = _wrap(name, plan)
    # the shares of the contributors sum to the central noise of scale * weight_bound; each share also
    # carries a dither of dither_std(w) (small, data-independent), weighted by w like the share
    central = noise.share_std(mechanism, scale * bound, 1)
    dither = sum((w * dp.dither_std(w)) ** 2 for w in DP_WEIGHTS.values())
    expected = math.sqrt(central**2 + dither) / sum(DP_WEIGHTS.values())
    _assert_std(_dp_error(dp, seed=9), expected, mechanism)


@pytest.mark.parametrize("length", [1, 37, 3000])
def test_an_honest_payload_fits_the_declared_maximum(scheme, length):
    bound = scheme.declarations.max_payload_bytes(length)
    if bound is None:
        pytest.skip(f"{scheme.name} declares no payload bound")
    keys = scheme.keygen(["alice"])
    x = np.random.default_rng(length).uniform(-1, 1, length)
    env = scheme.protect(keys.parties["alice"], x, weight=3.0, round=length)
    assert memoryview(env.payload).nbytes <= bound <= 2 * memoryview(env.payload).nbytes + 65536


def test_the_core_interface_has_at_most_twelve_public_names():
    public = [n for n in vars(Scheme) if not n.startswith("_")]
    assert len(public) <= 12, public


def test_the_reveal_plan_matches_the_capabilities_offered(scheme):
    """A plan revealing from shares needs ShareReveal, one with a function key FunctionKeys; other plans neither."""
    plan = scheme.declarations.reveal
    assert plan == scheme.reveal_plan
    assert (scheme.capability(ShareReveal) is not None) == plan.shares
    assert (scheme.capability(FunctionKeys) is not None) == plan.function_key
    assert scheme.declarations.security_bits == scheme.params.security_bits()
