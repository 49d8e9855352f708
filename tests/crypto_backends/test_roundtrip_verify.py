"""The in-process round's verified reveal (``run_round(verify=...)``, full and sampled): same result, its costs, a
cheat refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crypto_backends.base import offered
from crypto_backends.capabilities import BlockFold
from crypto_backends.errors import AggregateMismatchError, InvalidParameterError
from crypto_backends.identities import LocalAuthority
from crypto_backends.roundtrip import run_round
from crypto_backends.sampling import Sampler
from crypto_backends.statements import Evidence
from tests.schemes import make_scheme

PARTIES = ["alice", "bob", "carol"]
VECTORS = {"alice": np.array([1.0, -2.0, 0.5]), "bob": np.array([4.0, 2.0, -0.5]), "carol": np.array([0.0, 1.0, 2.0])}
WEIGHTS = {"alice": 1.0, "bob": 3.0, "carol": 2.0}


def test_a_verified_round_reveals_the_same_mean_and_counts_its_costs():
    scheme = make_scheme("paillier")
    keys = scheme.keygen(PARTIES)
    plain = run_round(scheme, keys, VECTORS, WEIGHTS, round=0)
    checked = run_round(scheme, keys, VECTORS, WEIGHTS, round=1, verify=True)
    assert np.array_equal(checked.fused, plain.fused)  # paillier is exact: verification changes nothing
    assert checked.verifiers == ("alice",)  # the party that opens the sealed aggregate
    assert len(checked.sign_s) == len(checked.statement_bytes) == 3 and len(checked.verify_s) == 1
    assert checked.upload_bytes == plain.upload_bytes  # the envelopes; the statements are counted apart
    assert all(200 < b < 1000 for b in checked.statement_bytes)  # statement, Ed25519 signature, certificate
    assert checked.evidence_bytes > sum(checked.upload_bytes) + sum(checked.statement_bytes) - 3 * 16
    assert checked.check_s > 0 and checked.verify_s[0] > 0
    # without verify, none of it is measured
    assert (plain.sign_s, plain.verifiers, plain.verify_s, plain.evidence_bytes, plain.check_s) == ((), (), (), 0, 0.0)


def test_every_party_asked_for_a_share_verifies_first():
    scheme = make_scheme("threshold_paillier")
    keys = scheme.keygen(PARTIES)
    trip = run_round(scheme, keys, VECTORS, WEIGHTS, verify=True)
    assert np.array_equal(trip.fused, run_round(scheme, keys, VECTORS, WEIGHTS, round=1).fused)
    assert len(trip.verifiers) == len(trip.share_s) >= 2 and len(trip.verify_s) == len(trip.verifiers)


def test_a_scheme_revealed_at_the_aggregator_only_signs_and_checks():
    scheme = make_scheme("fe")
    keys = scheme.keygen(PARTIES)
    trip = run_round(scheme, keys, VECTORS, WEIGHTS, verify=True)
    assert (trip.verifiers, trip.verify_s, trip.evidence_bytes) == ((), (), 0)
    assert len(trip.sign_s) == 3 and trip.check_s > 0


def test_the_given_identities_sign_the_statements(monkeypatch):
    scheme = make_scheme("paillier")
    keys = scheme.keygen(PARTIES)
    identities = LocalAuthority().issue_all(PARTIES)
    seen: list[Evidence] = []
    real = Evidence.from_bytes
    monkeypatch.setattr(Evidence, "from_bytes", classmethod(lambda cls, data: seen.append(real(data)) or seen[-1]))
    run_round(scheme, keys, VECTORS, WEIGHTS, verify=True, identities=identities)
    (evidence,) = seen
    for signed in evidence.signed:  # each certificate is the given identity's, not a fresh one
        identities["alice"].verify(signed.statement.party, signed.statement.to_bytes(), signed.signature,
                                   signed.certificate)
    assert sorted(s.statement.party for s in evidence.signed) == PARTIES and len(evidence.uploads) == 3


def _substituting(monkeypatch, scheme, keys):
    """Make the aggregator fold its own encryption in place of bob's upload (same party, weight and round)."""
    real = scheme.combine

    def combine(key, updates, *, round):
        forged = scheme.protect(keys.parties["bob"], np.array([5.0, 5.0, 5.0]), weight=3.0, round=round)
        return real(key, [forged if u.party == "bob" else u for u in updates], round=round)
    monkeypatch.setattr(scheme, "combine", combine)


@pytest.mark.parametrize("name", ["paillier", "threshold_paillier"])
def test_an_aggregate_that_is_not_the_fold_of_the_signed_uploads_is_refused(monkeypatch, name):
    scheme = make_scheme(name)
    keys = scheme.keygen(PARTIES)
    honest = run_round(scheme, keys, VECTORS, WEIGHTS).fused
    _substituting(monkeypatch, scheme, keys)
    cheated = run_round(scheme, keys, VECTORS, WEIGHTS, round=1).fused
    assert not np.allclose(cheated, honest)  # without verification the substitution goes through
    with pytest.raises(AggregateMismatchError, match="not the fold"):
        run_round(scheme, keys, VECTORS, WEIGHTS, round=2, verify=True)


LONG = {p: np.linspace(-1.0, 1.0, 600) * (i + 1) for i, p in enumerate(PARTIES)}


def test_a_sampled_round_reveals_the_same_mean_and_shows_each_verifier_its_draw_only():
    scheme = make_scheme("threshold_paillier")
    keys = scheme.keygen(PARTIES)
    full = run_round(scheme, keys, LONG, WEIGHTS, round=0, verify="full")
    sampled = run_round(scheme, keys, LONG, WEIGHTS, round=1, verify="sampled", samples=3)
    assert np.array_equal(sampled.fused, full.fused)
    assert (sampled.verify_mode, sampled.samples) == ("sampled", 3) and sampled.blocks > 3
    assert sampled.verifiers == full.verifiers and len(sampled.challenge_bytes) == len(sampled.verifiers)
    assert sampled.prove_s > 0 and full.prove_s == 0 and full.blocks == 0
    assert sampled.evidence_bytes < full.evidence_bytes / 3  # 3 of the blocks, not every upload


def test_verify_names_a_mode():
    scheme = make_scheme("paillier")
    with pytest.raises(InvalidParameterError, match="'full', 'sampled' or 'off'"):
        run_round(scheme, scheme.keygen(PARTIES), VECTORS, WEIGHTS, verify="some")  # type: ignore[arg-type]


def _one_block_altered(monkeypatch, scheme, keys, altered: int) -> None:
    """Make the aggregator swap block ``altered`` of the honest aggregate for that block of a forged one."""
    real, blocks = scheme.combine, offered(scheme, BlockFold)

    def combine(key, updates, *, round):
        honest = real(key, updates, round=round)
        forged = scheme.protect(keys.parties["bob"], np.full(600, 5.0), weight=3.0, round=round)
        other = real(key, [forged if u.party == "bob" else u for u in updates], round=round)
        payload = bytes(honest.payload)
        old, new = bytes(blocks.blocks(key, honest)[altered]), bytes(blocks.blocks(key, other)[altered])
        at = payload.index(old)
        return dataclasses.replace(honest, payload=payload[:at] + new + payload[at + len(old):])
    monkeypatch.setattr(scheme, "combine", combine)


@pytest.mark.parametrize("name", ["paillier", "threshold_paillier"])
def test_sampled_refuses_an_altered_block_it_drew_and_misses_one_it_did_not(monkeypatch, name):
    scheme = make_scheme(name)
    keys = scheme.keygen(PARTIES)
    honest = run_round(scheme, keys, LONG, WEIGHTS).fused
    _one_block_altered(monkeypatch, scheme, keys, altered=5)
    monkeypatch.setattr(Sampler, "draw", lambda self, count: (0, 5, count - 1))
    with pytest.raises(AggregateMismatchError, match="block 5 of the aggregate is not the fold"):
        run_round(scheme, keys, LONG, WEIGHTS, round=1, verify="sampled", samples=3)
    with pytest.raises(AggregateMismatchError, match="not the fold"):  # full refolds every block
        run_round(scheme, keys, LONG, WEIGHTS, round=2, verify="full")
    # drawn elsewhere, one altered block goes through: the k/B chance sampled trades for its bytes
    monkeypatch.setattr(Sampler, "draw", lambda self, count: (0, 1, 2))
    missed = run_round(scheme, keys, LONG, WEIGHTS, round=3, verify="sampled", samples=3).fused
    assert not np.allclose(missed, honest)
