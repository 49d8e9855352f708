"""A lying aggregator under secagg: false dropouts, split views, forged, foreign or replayed signatures, two models.

Each attack is what an aggregator that deviates from the protocol can do with the
messages it relays; each must end with the typed error at the honest party and no
share let out.  The honest paths (dropouts before and during the consistency
round) must still give the exact sum of the survivors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from crypto_backends.errors import AggregateMismatchError, DecodingOverflowError, InvalidParameterError, KeyRoleError
from crypto_backends.identities import LocalAuthority
from crypto_backends.roundtrip import run_round
from crypto_backends.secagg import SecAggParams, SecAggScheme
from tests.exchange import confirm, setup_exchange

GRID = 32767 / 4096  # clip whose fixed-point scale is 4096: inputs k / 4096 encode to k exactly


def _ids(n):
    return [f"p{i:03d}" for i in range(n)]


def _round(n=10, rnd=0, params=None, contexts=None):
    """Set up round ``rnd`` of ``n`` parties, every one uploading a grid vector; the uploads and the keys."""
    scheme = SecAggScheme(params or SecAggParams(clip=GRID).for_federation(n))
    ids = _ids(n)
    keys = scheme.keygen(ids)
    ready = setup_exchange(scheme, keys, rnd)
    rng = np.random.default_rng(n + rnd)
    ints = {p: rng.integers(-32767, 32768, 50) for p in ids}
    for p, ctx in (contexts or {}).items():
        scheme.bind_round(keys.parties[p], round=rnd, context=ctx)
    ups = {p: scheme.protect(keys.parties[p], ints[p] / 4096, weight=1.0, round=rnd) for p in ready}
    return scheme, keys, ids, ints, ups


def _aggregate(scheme, keys, ups, parties, rnd=0):
    return scheme.combine(keys.aggregator, [ups[p] for p in parties], round=rnd)


def _unrevealed(keys, parties, rnd=0):
    return all(not keys.parties[p].unwrap("secagg").rounds[rnd].revealed for p in parties)


def test_false_dropouts_leaving_the_victim_and_t_minus_1_colluders_release_nothing():
    # min_contributors lowered to 2: the floor alone no longer stops the attack; the consistency round must
    scheme, keys, ids, _, ups = _round(10, params=SecAggParams(clip=GRID, min_contributors=2).for_federation(10))
    t = keys.aggregator.unwrap("secagg").rounds[0].threshold
    victim, colluders = ids[0], ids[1:t]
    aggregate = _aggregate(scheme, keys, ups, [victim, *colluders])  # every other upload declared "dropped"
    confirm(scheme, keys, aggregate)
    request = scheme.share_request(keys.aggregator, aggregate)
    with pytest.raises(AggregateMismatchError, match=rf"{t} valid survivors' signature.*7 are needed"):
        scheme.decryption_share(keys.parties[victim], aggregate, request.message)
    for p in ids[t:]:  # the parties declared dropped were never asked to vouch for that set
        with pytest.raises(AggregateMismatchError):
            scheme.decryption_share(keys.parties[p], aggregate, request.message)
    assert _unrevealed(keys, [victim, *ids[t:]])


def test_split_views_two_survivor_sets_to_two_groups_release_nothing():
    scheme, keys, ids, _, ups = _round(10)
    with_victim, without = ids[:5], ids[5:]  # the victim, ids[0], is in the first group
    view_a = _aggregate(scheme, keys, ups, ids)  # shown to the first group: the victim survived (b-shares)
    view_b = _aggregate(scheme, keys, ups, ids[1:])  # shown to the second: the victim dropped (its key shares)
    req_a = scheme.consistency_request(keys.aggregator, view_a)
    sig_a = {p: scheme.consistency_reply(keys.parties[p], view_a, req_a.message) for p in with_victim}
    scheme.consistency_done(keys.aggregator, view_a, sig_a)
    msg_a = scheme.share_request(keys.aggregator, view_a).message
    sig_b = {p: scheme.consistency_reply(keys.parties[p], view_b, b"") for p in without}
    scheme.consistency_done(keys.aggregator, view_b, sig_b)
    msg_b = scheme.share_request(keys.aggregator, view_b).message
    for p in with_victim:
        with pytest.raises(AggregateMismatchError, match="5 valid survivors' signature"):
            scheme.decryption_share(keys.parties[p], view_a, msg_a)
    for p in without:
        with pytest.raises(AggregateMismatchError, match="5 valid survivors' signature"):
            scheme.decryption_share(keys.parties[p], view_b, msg_b)
    # a party that vouched for one view neither vouches for the other nor shares for it
    with pytest.raises(AggregateMismatchError, match="different survivor sets"):
        scheme.consistency_reply(keys.parties[ids[1]], view_b, b"")
    with pytest.raises(AggregateMismatchError, match="different survivor sets"):
        scheme.decryption_share(keys.parties[ids[1]], view_b, msg_b)
    # pooling both groups' signatures helps nothing: each signature is over the set its signer saw
    pooled = json.loads(msg_b)
    pooled["confirmations"] += json.loads(msg_a)["confirmations"]
    with pytest.raises(AggregateMismatchError, match="5 valid"):
        scheme.decryption_share(keys.parties[ids[6]], view_b, json.dumps(pooled).encode())
    assert _unrevealed(keys, ids)


def _confirmed_request(scheme, keys, aggregate):
    confirm(scheme, keys, aggregate)
    return json.loads(scheme.share_request(keys.aggregator, aggregate).message)


def test_forged_and_another_federations_signatures_do_not_count():
    scheme, keys, ids, _, ups = _round(10)
    aggregate = _aggregate(scheme, keys, ups, ids)
    request = _confirmed_request(scheme, keys, aggregate)
    real, others = request["confirmations"][:6], request["confirmations"][6:]  # one short of the 7 needed
    forged = [{**c, "sig": bytes(64).hex()} for c in others]  # the aggregator's own "signatures"
    foreign_ca = LocalAuthority()  # another federation's authority, signing the very same bytes
    foreign = []
    for c in others:
        sig, cert = foreign_ca.issue(c["party"]).sign(b"anything")
        foreign.append({**c, "sig": sig.hex(), "cert": cert.hex()})
    for extra in (forged, foreign):
        message = json.dumps({**request, "confirmations": real + extra}).encode()
        with pytest.raises(AggregateMismatchError, match=r"6 valid.*7 are needed.*4 are forged"):
            scheme.decryption_share(keys.parties[ids[0]], aggregate, message)
    twice = json.dumps({**request, "confirmations": real + [real[0]] * 4}).encode()  # one signer counted once
    with pytest.raises(AggregateMismatchError, match="6 valid"):
        scheme.decryption_share(keys.parties[ids[0]], aggregate, twice)
    assert _unrevealed(keys, ids)


def test_a_replayed_signature_set_from_an_earlier_round_does_not_count():
    scheme = SecAggScheme(SecAggParams(clip=GRID).for_federation(10))
    ids = _ids(10)
    keys = scheme.keygen(ids)
    identities = LocalAuthority().issue_all(ids)  # the same identities in both rounds: only the round differs
    ups0 = [scheme.protect(keys.parties[p], np.ones(8), weight=1.0, round=0)
            for p in setup_exchange(scheme, keys, 0, identities=identities)]
    old = _confirmed_request(scheme, keys, scheme.combine(keys.aggregator, ups0, round=0))
    ready = setup_exchange(scheme, keys, 1, identities=identities)
    ups1 = [scheme.protect(keys.parties[p], np.ones(8), weight=1.0, round=1) for p in ready]
    aggregate = scheme.combine(keys.aggregator, ups1, round=1)
    for p in ids:
        scheme.consistency_reply(keys.parties[p], aggregate, b"")
    replayed = json.dumps({"dropped": [], "confirmations": old["confirmations"]}).encode()
    with pytest.raises(AggregateMismatchError, match="0 valid"):
        scheme.decryption_share(keys.parties[ids[0]], aggregate, replayed)
    assert _unrevealed(keys, ids, rnd=1)


def test_two_models_to_two_groups_release_nothing():
    model_a, model_b = b"\x0a" * 32, b"\x0b" * 32
    contexts = {p: (model_a if i < 5 else model_b) for i, p in enumerate(_ids(10))}
    scheme, keys, ids, ints, ups = _round(10, contexts=contexts)
    aggregate = _aggregate(scheme, keys, ups, ids)
    request = scheme.consistency_request(keys.aggregator, aggregate)
    replies = {p: scheme.consistency_reply(keys.parties[p], aggregate, request.message) for p in ids}
    with pytest.raises(AggregateMismatchError, match="2 different global models"):
        scheme.consistency_done(keys.aggregator, aggregate, replies)
    # an aggregator that hides it (keeps one group's replies, the other's relabelled) gets no share either
    scheme.consistency_done(keys.aggregator, aggregate, {p: replies[p] for p in ids[:5]})
    st = keys.aggregator.unwrap("secagg").rounds[0]
    for p in ids[5:]:
        st.confirmations[p] = {**json.loads(replies[p]), "context": model_a.hex()}
    message = scheme.share_request(keys.aggregator, aggregate).message
    for p in ids:
        with pytest.raises(AggregateMismatchError, match=r"[05] valid survivors' signature.*7 are needed"):
            scheme.decryption_share(keys.parties[p], aggregate, message)
    assert _unrevealed(keys, ids)


def test_the_model_digest_is_bound_into_the_masks():
    """With one party dropped, its pairwise masks are removed under the context the confirmations name: the
    right digest gives the exact sum, any other leaves masks that do not cancel."""
    digest = b"\x5a" * 32
    for context, exact in ((digest, True), (b"\x5b" * 32, False)):
        scheme, keys, ids, ints, ups = _round(10, contexts=dict.fromkeys(_ids(10), digest))
        survivors = ids[1:]
        aggregate = _aggregate(scheme, keys, ups, survivors)
        request = _confirmed_request(scheme, keys, aggregate)
        shares = {p: scheme.decryption_share(keys.parties[p], aggregate, json.dumps(request).encode())
                  for p in survivors}
        keys.aggregator.unwrap("secagg").rounds[0].context = context
        expected = sum(ints[p] for p in survivors).astype(np.float64)
        try:
            total = scheme.reveal_shares(keys.aggregator, aggregate, shares)
        except DecodingOverflowError:
            assert not exact
            continue
        assert np.array_equal(total * 4096, expected) == exact


def test_honest_dropouts_before_and_during_the_consistency_round_give_the_exact_sum():
    scheme, keys, ids, ints, ups = _round(10)
    gone_before = [ids[3]]  # set up, then never uploaded
    survivors = [p for p in ids if p not in gone_before]
    aggregate = _aggregate(scheme, keys, ups, survivors)
    gone_during = [ids[7], ids[8]]  # uploaded, then left before confirming: 7 confirmations remain
    confirm(scheme, keys, aggregate, parties=[p for p in survivors if p not in gone_during])
    request = scheme.share_request(keys.aggregator, aggregate)
    assert set(request.parties) == set(survivors) - set(gone_during)
    shares = {p: scheme.decryption_share(keys.parties[p], aggregate, request.message) for p in request.parties}
    total = scheme.reveal_shares(keys.aggregator, aggregate, shares)
    assert np.array_equal(total * 4096, sum(ints[p] for p in survivors).astype(np.float64))


def test_run_round_completes_with_a_fifth_dropped_and_refuses_without_identities():
    scheme = SecAggScheme(SecAggParams().for_federation(10))
    ids = _ids(10)
    keys = scheme.keygen(ids)
    vectors, weights = {p: np.full(20, 0.5) for p in ids}, dict.fromkeys(ids, 1.0)
    trip = run_round(scheme, keys, vectors, weights, round=0, drop=0.2)
    assert len(trip.dropped) == 2 and np.allclose(trip.fused, 0.5, atol=1e-3)
    assert len(trip.consistency_s) == 8 and all(b > 0 for b in trip.consistency_bytes)
    bare = scheme.keygen(ids)  # no identity bound: the party refuses to vouch, naming the fix
    ready = _setup_without_identities(scheme, bare)
    up = scheme.protect(bare.parties[ready[0]], np.ones(4), weight=1.0, round=0)
    others = [scheme.protect(bare.parties[p], np.ones(4), weight=1.0, round=0) for p in ready[1:]]
    aggregate = scheme.combine(bare.aggregator, [up, *others], round=0)
    with pytest.raises(KeyRoleError, match="bind one with bind_identity"):
        scheme.consistency_reply(bare.parties[ready[0]], aggregate, b"")


def _setup_without_identities(scheme, keys):
    parties, replies = tuple(sorted(keys.parties)), {}
    for step in range(scheme.setup_steps(0)):
        msgs = scheme.setup_messages(keys.aggregator, round=0, step=step, parties=parties, replies=replies)
        replies = {p: scheme.setup_reply(keys.parties[p], round=0, step=step, message=m) for p, m in msgs.items()}
    return scheme.setup_done(keys.aggregator, round=0, replies=replies)


def test_the_signature_quorum_is_above_two_thirds_and_lower_values_are_refused():
    assert [SecAggParams().signatures_needed(n) for n in (3, 5, 10, 100)] == [3, 4, 7, 67]
    assert SecAggParams().for_federation(10).signatures == 7
    with pytest.raises(InvalidParameterError, match=r"fewer than 7 \(floor\(2n/3\) \+ 1\)"):
        SecAggParams(signatures=6).check_federation(10)
    SecAggParams(signatures=9).check_federation(10)
