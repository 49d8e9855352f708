"""The ``secagg`` scheme (SecAgg+): exact sums with dropouts, and what colluders, forgers and replayers get.

Every test uses real X25519 keys, real ChaCha20 masks and real AEAD boxes (the
scheme has no insecure preset: its defaults are already fast).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from crypto_backends.errors import (
    AggregateMismatchError,
    InvalidParameterError,
    KeyReuseError,
    PolicyError,
    ShareError,
)
from crypto_backends.roundtrip import dropouts, run_round, run_setup
from crypto_backends.secagg import SecAggParams, SecAggScheme, shamir
from crypto_backends.secagg.masking import neighbours
from tests.exchange import confirm, setup_exchange

#: clip chosen so that the fixed-point scale is exactly 4096: inputs k / 4096 encode to k, deterministically
GRID_CLIP = 32767 / 4096


def _ids(n: int) -> list[str]:
    return [f"p{i:03d}" for i in range(n)]


def _upload(scheme, keys, vectors, weights, rnd, ready, drop=()):
    ups = [scheme.protect(keys.parties[p], vectors[p], weight=weights[p], round=rnd) for p in ready if p not in drop]
    return scheme.combine(keys.aggregator, ups, round=rnd)


def _claim(dropped):
    """A share request's message as a lying aggregator writes it: the dropped list, no confirmations."""
    return json.dumps({"dropped": list(dropped), "confirmations": []}).encode()


def _shares(scheme, keys, aggregate):
    confirm(scheme, keys, aggregate)
    req = scheme.share_request(keys.aggregator, aggregate)
    return req, {p: scheme.decryption_share(keys.parties[p], aggregate, req.message) for p in req.parties}


def _grid_inputs(ids, dim, seed):
    rng = np.random.default_rng(seed)
    ints = {p: rng.integers(-32767, 32768, dim) for p in ids}
    return ints, {p: k / 4096 for p, k in ints.items()}


@pytest.mark.parametrize("n", [5, 20])
def test_ten_percent_dropped_after_the_key_exchange_gives_the_exact_sum_of_the_survivors(n):
    scheme = SecAggScheme(SecAggParams(clip=GRID_CLIP))
    ids = _ids(n)
    keys = scheme.keygen(ids)
    ints, vectors = _grid_inputs(ids, 301, seed=n)
    weights = {p: float(i + 1) for i, p in enumerate(ids)}
    ready = setup_exchange(scheme, keys, 0)
    assert ready == tuple(ids)
    gone = dropouts(ready, 0.1) or (ids[1],)
    aggregate = _upload(scheme, keys, vectors, weights, 0, ready, gone)
    _, shares = _shares(scheme, keys, aggregate)
    for p, s in shares.items():
        scheme.check_share(keys.aggregator, aggregate, p, s)
    total = scheme.reveal_shares(keys.aggregator, aggregate, shares)
    exact = sum(int(weights[p]) * ints[p] for p in ids if p not in gone)  # integer-exact, in Z_(2**k)
    assert np.array_equal(total * 4096, exact.astype(np.float64))
    assert set(aggregate.parties) == set(ids) - set(gone)


def test_run_round_drops_a_fraction_after_setup_and_means_over_the_survivors():
    scheme = SecAggScheme()
    ids = _ids(30)
    keys = scheme.keygen(ids)
    rng = np.random.default_rng(1)
    vectors = {p: rng.standard_normal(500) for p in ids}
    weights = {p: float(i + 1) for i, p in enumerate(ids)}
    trip = run_round(scheme, keys, vectors, weights, round=3, drop=0.1)
    assert len(trip.dropped) == 3 and len(trip.protect_s) == 27 and trip.unmask_s > 0 and trip.setup_s > 0
    alive = [p for p in ids if p not in trip.dropped]
    expected = np.average(np.stack([vectors[p] for p in alive]), axis=0, weights=[weights[p] for p in alive])
    assert np.max(np.abs(trip.fused - expected)) <= scheme.tolerance([weights[p] for p in alive])


def test_the_graph_is_sparse_symmetric_and_drawn_from_the_public_seed():
    params = SecAggParams()
    assert (params.degree(100), params.share_threshold(100)) == (14, 8)
    assert params.degree(5) == 4  # small federations: the complete graph (classic SecAgg)
    ids = _ids(100)
    seed = bytes(range(32))
    graph = {p: neighbours(ids, seed, p, 14) for p in ids}
    assert all(len(n) == 14 for n in graph.values())
    assert all(p in graph[q] for p in ids for q in graph[p])
    assert graph == {p: neighbours(ids, seed, p, 14) for p in ids}  # everyone derives the same graph
    assert graph != {p: neighbours(ids, bytes(32), p, 14) for p in ids}


def test_a_masked_update_looks_uniform_and_does_not_depend_on_the_input():
    scheme = SecAggScheme()
    ids = _ids(6)
    keys = scheme.keygen(ids)
    ready = setup_exchange(scheme, keys, 0)
    zero = scheme.protect(keys.parties[ready[0]], np.zeros(20_000), weight=1.0, round=0)
    words = np.frombuffer(bytes(zero.payload)[13:], dtype="<u8").astype(np.float64) / 2**scheme.params.ring_bits
    assert abs(words.mean() - 0.5) < 0.01 and abs(words.std() - 12**-0.5) < 0.01
    assert np.count_nonzero(words == 0) < 5  # the zeros do not show through


def test_the_aggregator_with_t_minus_1_colluding_neighbours_cannot_unmask_a_party():
    scheme = SecAggScheme()
    ids = _ids(10)
    keys = scheme.keygen(ids)
    ready = setup_exchange(scheme, keys, 0)
    agg_state = keys.aggregator.unwrap("secagg").rounds[0]
    victim, t = ready[0], agg_state.threshold
    nbrs = agg_state.live_nbrs(victim)
    colluders, honest = nbrs[: t - 1], nbrs[t - 1:]
    vectors = {p: np.full(64, 0.5) for p in ids}
    aggregate = _upload(scheme, keys, vectors, dict.fromkeys(ids, 1.0), 0, ready)
    # the colluders hand over both of their shares of the victim's secrets: t - 1 of each
    held = {c: keys.parties[c].unwrap("secagg").rounds[0].held[victim] for c in colluders}
    xs = {c: agg_state.roster.index(c) + 1 for c in colluders}
    for kind in ("b", "sk"):
        pooled = {xs[c]: getattr(h, kind) for c, h in held.items()}
        with pytest.raises(ShareError, match="cannot rebuild"):
            shamir.combine(pooled, t)
    # an honest neighbour that let out the victim's self-mask share refuses its mask-key share afterwards: it
    # confirmed the set with the victim, and shares only for that set
    _shares(scheme, keys, aggregate)
    forged = type(aggregate)(**{**aggregate.__dict__, "parties": tuple(p for p in aggregate.parties if p != victim),
                                "weights": (1.0,) * (len(aggregate.parties) - 1)})
    with pytest.raises(AggregateMismatchError, match="different survivor sets"):
        scheme.decryption_share(keys.parties[honest[0]], forged, _claim([victim]))


def test_t_minus_1_shares_are_consistent_with_any_secret():
    secret, other = b"\x01" * 32, b"\x02" * 32
    shares = shamir.split(secret, [1, 2, 3, 4, 5], 3)
    assert shamir.combine({x: shares[x] for x in (1, 4, 5)}, 3) == secret
    # with two shares fixed, a third share exists that makes any other secret: two say nothing about it
    known = {1: shares[1], 2: shares[2]}
    forged_third = _third_share_for(known, other)
    assert shamir.combine({**known, 3: forged_third}, 3) == other


def _third_share_for(known: dict[int, int], target: bytes) -> int:
    """The share at x = 3 that, with ``known`` (x = 1, 2), interpolates to ``target`` at 0."""
    p = shamir.PRIME
    # f(0) = sum_i y_i * L_i(0) with L_1(0) = 3, L_2(0) = -3, L_3(0) = 1 for points 1, 2, 3
    return (int.from_bytes(target, "big") - 3 * known[1] + 3 * known[2]) % p


def test_a_party_asked_for_both_kinds_of_share_of_one_peer_refuses():
    scheme = SecAggScheme()
    ids = _ids(5)
    keys = scheme.keygen(ids)
    ready = setup_exchange(scheme, keys, 0)
    aggregate = _upload(scheme, keys, {p: np.ones(8) for p in ids}, dict.fromkeys(ids, 1.0), 0, ready)
    both = _claim([ids[1]])  # ids[1] also contributed: survivor and dropped at once
    with pytest.raises(ShareError, match="both kinds"):
        scheme.decryption_share(keys.parties[ids[0]], aggregate, both)


def test_a_forged_share_box_is_detected_and_its_sender_excluded():
    scheme = SecAggScheme()
    ids = _ids(6)
    keys = scheme.keygen(ids)

    def forge(step, party, reply):
        if step == 1 and party == ids[2]:
            obj = json.loads(reply)
            to = sorted(obj["boxes"])[0]
            box = bytearray.fromhex(obj["boxes"][to])
            box[20] ^= 1
            obj["boxes"][to] = box.hex()
            return json.dumps(obj).encode()
        return reply

    ready = setup_exchange(scheme, keys, 0, tamper_reply=forge)
    assert ids[2] not in ready and len(ready) == 5
    aggregate = _upload(scheme, keys, {p: np.ones(8) for p in ids}, dict.fromkeys(ids, 1.0), 0, ready)
    _, shares = _shares(scheme, keys, aggregate)
    assert np.allclose(scheme.reveal_shares(keys.aggregator, aggregate, shares), 5.0, atol=1e-3)


def test_a_forged_unmasking_share_is_refused_and_names_its_sender():
    scheme = SecAggScheme()
    ids = _ids(6)
    keys = scheme.keygen(ids)
    ready = setup_exchange(scheme, keys, 0)
    aggregate = _upload(scheme, keys, {p: np.ones(8) for p in ids}, dict.fromkeys(ids, 1.0), 0, ready, (ids[5],))
    _, shares = _shares(scheme, keys, aggregate)
    obj = json.loads(shares[ids[0]])
    value = int(obj["shares"][0]["share"], 16) ^ 1
    obj["shares"][0]["share"] = value.to_bytes(shamir.SHARE_BYTES, "big").hex()
    with pytest.raises(ShareError, match=ids[0]):
        scheme.check_share(keys.aggregator, aggregate, ids[0], json.dumps(obj).encode())
    # the round still completes from the other shares (each secret has enough holders left)
    rest = {p: s for p, s in shares.items() if p != ids[0]}
    assert np.allclose(scheme.reveal_shares(keys.aggregator, aggregate, rest), 5.0, atol=1e-3)


def test_replayed_setup_messages_and_shares_are_refused():
    scheme = SecAggScheme()
    ids = _ids(5)
    keys = scheme.keygen(ids)
    first = scheme.setup_messages(keys.aggregator, round=0, step=0, parties=ids, replies={})
    scheme.setup_reply(keys.parties[ids[0]], round=0, step=0, message=first[ids[0]])
    with pytest.raises(ShareError, match="replay"):
        scheme.setup_reply(keys.parties[ids[0]], round=0, step=0, message=first[ids[0]])
    with pytest.raises(ShareError, match="another key set or round"):
        scheme.setup_reply(keys.parties[ids[1]], round=1, step=0, message=first[ids[1]])
    with pytest.raises(ShareError, match="out of order"):
        scheme.setup_reply(keys.parties[ids[1]], round=0, step=2, message=b"{}")
    # a whole round's shares replayed into the next round do not match its commitments
    keys = scheme.keygen(ids)
    vectors, weights = {p: np.ones(8) for p in ids}, dict.fromkeys(ids, 1.0)
    old = _upload(scheme, keys, vectors, weights, 0, setup_exchange(scheme, keys, 0))
    _, old_shares = _shares(scheme, keys, old)
    new = _upload(scheme, keys, vectors, weights, 1, setup_exchange(scheme, keys, 1))
    with pytest.raises(ShareError):
        scheme.check_share(keys.aggregator, new, ids[0], old_shares[ids[0]])


def test_a_party_masks_one_update_per_round_and_only_after_setup():
    scheme = SecAggScheme()
    ids = _ids(3)
    keys = scheme.keygen(ids)
    with pytest.raises(ShareError, match="not set up"):
        scheme.protect(keys.parties[ids[0]], np.ones(4), weight=1.0, round=0)
    setup_exchange(scheme, keys, 0)
    scheme.protect(keys.parties[ids[0]], np.ones(4), weight=1.0, round=0)
    with pytest.raises(KeyReuseError):
        scheme.protect(keys.parties[ids[0]], np.zeros(4), weight=1.0, round=0)


def test_too_many_dropouts_fail_with_the_typed_error():
    # min_contributors = 2 (below its default, t + 1): the share threshold is still a floor of its own
    scheme = SecAggScheme(SecAggParams(min_contributors=2))
    ids = _ids(5)  # complete graph, 4 neighbours, threshold 3
    keys = scheme.keygen(ids)
    ready = run_setup(scheme, keys, ids, round=0)
    aggregate = _upload(scheme, keys, {p: np.ones(8) for p in ids}, dict.fromkeys(ids, 1.0), 0, ready, ids[:3])
    with pytest.raises(ShareError, match="fewer than the threshold"):
        scheme.decryption_share(keys.parties[ids[3]], aggregate, _claim(ids[:3]))
    with pytest.raises(PolicyError, match=r"sums 2 update\(s\), fewer than the 4"):  # the default floor, t + 1
        SecAggScheme().share_request(keys.aggregator, aggregate)


def _victim_and_colluders(scheme, n=5):
    """A round of ``n`` where the aggregate holds only a victim's and ``t - 1`` colluders' updates."""
    ids = _ids(n)
    keys = scheme.keygen(ids)
    ready = setup_exchange(scheme, keys, 0)
    t = keys.aggregator.unwrap("secagg").rounds[0].threshold
    victim, colluders, honest = ids[0], ids[1:t], ids[t:]
    ints, vectors = _grid_inputs(ids, 64, seed=21)
    # the others dropped, or uploaded and the aggregator declares them dropped: the aggregate leaves them out
    aggregate = _upload(scheme, keys, vectors, dict.fromkeys(ids, 1.0), 0, ready, drop=honest)
    return keys, ints, t, victim, colluders, honest, aggregate


def test_a_sum_of_a_victim_and_t_minus_1_colluders_is_not_unmasked_by_the_honest_parties():
    """Issue 21 item 4: such a sum minus the colluders' inputs is the victim's update; the parties refuse to open it."""
    scheme = SecAggScheme(SecAggParams(clip=GRID_CLIP))
    keys, _, t, victim, colluders, honest, aggregate = _victim_and_colluders(scheme)
    assert t == 3 and len(aggregate.parties) == t
    with pytest.raises(PolicyError, match=r"sums 3 update\(s\), fewer than the 4 that crypto.secagg.min_contributors "
                                          r"requires.*federation.quorum = 4"):
        scheme.share_request(keys.aggregator, aggregate)
    # the aggregator cannot be trusted to check: asked directly, no honest party lets out a share
    claim = _claim(honest)
    for p in (victim, *honest):
        with pytest.raises(PolicyError, match=rf"{p}: the aggregate of round 0 sums 3 update"):
            scheme.decryption_share(keys.parties[p], aggregate, claim)
    assert all(not keys.parties[p].unwrap("secagg").rounds[0].revealed for p in (victim, *honest))
    with pytest.raises(PolicyError, match="sums 3 update"):  # nor does the reveal open it, whatever shares it has
        scheme.reveal_shares(keys.aggregator, aggregate, {})
    assert scheme.params.contributors_needed(5) == t + 1  # the default


def test_below_t_plus_1_contributors_the_consistency_round_still_refuses_the_victims_sum():
    """With min_contributors = t the floor no longer stops issue 21 item 4's attack; the consistency round does:
    the survivor set of the victim and t - 1 colluders cannot gather floor(2n/3) + 1 survivors' signatures."""
    scheme = SecAggScheme(SecAggParams(clip=GRID_CLIP, min_contributors=3))
    keys, ints, _, victim, colluders, honest, aggregate = _victim_and_colluders(scheme)
    replies = confirm(scheme, keys, aggregate)  # the victim signs a set with itself in it; so do the colluders
    assert sorted(replies) == sorted((victim, *colluders)) and scheme.params.signatures_needed(5) == 4
    req = scheme.share_request(keys.aggregator, aggregate)
    # the aggregator also asks the parties it declared dropped (alive, or late), each of which holds a share
    with pytest.raises(AggregateMismatchError, match="3 valid survivors' signature.*4 are needed"):
        scheme.decryption_share(keys.parties[victim], aggregate, req.message)
    for p in honest:  # it confirmed no survivor set: a share request is refused outright
        with pytest.raises(AggregateMismatchError, match="before it confirmed a survivor set"):
            scheme.decryption_share(keys.parties[p], aggregate, req.message)
    assert all(not keys.parties[p].unwrap("secagg").rounds[0].revealed for p in (victim, *honest))


def test_a_partys_floor_is_its_federations_not_the_roster_the_aggregator_sends():
    """Resolved from the federation's size (for_federation), the floor does not shrink with a shrunken roster."""
    params = SecAggParams().for_federation(10)  # 8 neighbours, t = 5: at least 6 updates
    assert params.min_contributors == 6 and SecAggParams(min_contributors=3).for_federation(10).min_contributors == 3
    scheme = SecAggScheme(params)
    ids = _ids(10)[:4]  # the aggregator sets the round up with 4 of the 10 (3 of them colluders)
    keys = scheme.keygen(ids)
    ready = setup_exchange(scheme, keys, 0)
    aggregate = _upload(scheme, keys, {p: np.ones(8) for p in ids}, dict.fromkeys(ids, 1.0), 0, ready)
    with pytest.raises(PolicyError, match=r"p000: the aggregate of round 0 sums 4 update\(s\), fewer than the 6"):
        scheme.decryption_share(keys.parties[ids[0]], aggregate, _claim([]))


def test_min_contributors_is_checked_against_the_federation():
    with pytest.raises(InvalidParameterError, match="min_contributors=1: the sum of one update is that update"):
        SecAggParams(min_contributors=1).validate()
    with pytest.raises(InvalidParameterError, match="no sum of the 5 parties could be unmasked.*at least 6 updates"):
        SecAggParams(min_contributors=6).check_federation(5)
    assert [SecAggParams().fewest_contributors(n) for n in (2, 3, 5, 10, 100)] == [2, 3, 4, 6, 9]


def test_parameters_that_cannot_fit_the_ring_or_the_graph_are_refused():
    with pytest.raises(InvalidParameterError, match="ring"):
        SecAggScheme(SecAggParams(bits=40, max_total_weight=1 << 30))
    with pytest.raises(InvalidParameterError, match="threshold"):
        SecAggParams(threshold=2).share_threshold(100)  # 14 neighbours: 2 is not above half
    assert SecAggParams(bits=16, max_total_weight=4096).ring_bits == 28  # 15 + 12 magnitude bits, and the sign


def test_every_round_has_fresh_keys_seed_and_graph():
    scheme = SecAggScheme()
    ids = _ids(40)
    keys = scheme.keygen(ids)
    rounds = keys.aggregator.unwrap("secagg").rounds
    setup_exchange(scheme, keys, 0)
    setup_exchange(scheme, keys, 1)
    r0, r1 = rounds[0], rounds[1]
    assert r0.seed != r1.seed and r0.nbrs(ids[0]) != r1.nbrs(ids[0])
    for p in ids:
        assert r0.adverts[p].s_pk != r1.adverts[p].s_pk and r0.adverts[p].c_pk != r1.adverts[p].c_pk


def test_an_update_masked_under_another_key_exchange_is_refused():
    scheme = SecAggScheme()
    ids = _ids(4)
    keys, other = scheme.keygen(ids), scheme.keygen(ids)
    setup_exchange(scheme, keys, 0)
    setup_exchange(scheme, other, 0)
    mine = scheme.protect(keys.parties[ids[0]], np.ones(4), weight=1.0, round=0)
    # the same key set, but the aggregator's view of round 0 is another key exchange (e.g. it restarted)
    foreign = scheme.protect(other.parties[ids[1]], np.ones(4), weight=1.0, round=0)
    forged = type(foreign)(**{**foreign.__dict__, "key_id": keys.key_id})
    with pytest.raises(ShareError, match="another key exchange"):
        scheme.combine(keys.aggregator, [mine, forged], round=0)
