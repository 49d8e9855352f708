"""Issue 22: an aggregator that cheats is refused by every party before anything is revealed.

Each attack is a :class:`Hostile` aggregator: it runs the honest protocol, then
alters what it presents with the round's aggregate (the sealed model under
paillier and ckks, the share request under threshold_paillier and secagg).  Under
``crypto.verify_aggregate = "full"`` (the default) every party refuses with
:class:`AggregateMismatchError` naming the attack, no party opens the aggregate or
gives a share, and the round stops for want of answers.  The honest path still
gives the same model as with verification off.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from crypto_backends import InsecureParametersWarning, registry
from crypto_backends.envelope import Envelope
from crypto_backends.errors import SecureFLError
from crypto_backends.keys import PartyKey
from crypto_backends.statements import Evidence, Signed, Statement
from securefl import config
from securefl.core.aggregator import Aggregator, Combined, Stream
from securefl.core.party import Party
from securefl.identity import InProcessCA
from securefl.simulation import Simulation
from tests.paths import CONFIGS

SEALED = ["paillier", "ckks"]
"""Schemes whose parties open the aggregate themselves (the sealed model carries the evidence)."""
SHARED = ["threshold_paillier", "secagg"]
"""Schemes whose parties give decryption or unmasking shares (the share request carries it)."""
VICTIM = "party-1"


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        yield


def _sim(scheme: str, *extra: str, parties: int = 4) -> Simulation:
    fast = scheme != "ckks" and "test" in registry.params_type(scheme).presets()
    preset = [f"crypto.{scheme}.preset=test"] if fast else []
    return Simulation(config.load(CONFIGS / "plain.toml", [
        "federation.rounds=2", f"federation.parties={parties}", "federation.quorum=3", f"crypto.scheme={scheme}",
        *preset, *extra]))


Attack = Callable[[Aggregator, Stream, Combined], Combined]


class Hostile(Aggregator):
    """Folds honestly, then hands ``attack`` the round's combined aggregate to alter (from round 0 on)."""

    attack: Attack
    keys: dict[str, PartyKey]
    """The parties' keys: what a colluding party (or, under paillier, the public key alone) lets it encrypt."""

    def finish(self, stream: Stream, refused: Mapping[str, str] | None = None) -> Combined:
        honest = super().finish(stream, refused)
        return type(self).attack(self, stream, honest)


def _hostile(sim: Simulation, attack: Attack) -> None:
    a = sim.aggregator
    cls = type("Attack", (Hostile,), {"attack": staticmethod(attack),
                                      "keys": {pid: p.key for pid, p in sim.parties.items()}})
    sim.aggregator = cls(a.scheme, a.key, num_parameters=a.num_parameters, quorum=a.quorum, fuse=a.fuse_sum,
                         max_weight=a.max_weight, statements=a.statements)


def _uploads(stream: Stream) -> dict[str, Envelope]:
    kept = stream._signed  # the aggregator's own record: statements and (under full) the uploads
    return {p: Envelope.from_bytes(u) for p, (_, u) in kept.items()}


def _with(combined: Combined, aggregate: Envelope, evidence: Evidence | None) -> Combined:
    return dataclasses.replace(combined, aggregate=aggregate, evidence=evidence)


def single_upload(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """The victim's upload alone, dressed as an aggregate of everyone (every party would decrypt it)."""
    alone = agg.scheme.combine(agg.key, [_uploads(stream)[VICTIM]], round=stream.round)
    forged = dataclasses.replace(alone, parties=c.aggregate.parties, weights=c.aggregate.weights)
    return _with(c, forged, c.evidence)


def single_upload_own_statement(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """The victim's upload with only its own statement: below the quorum of signed contributors."""
    alone = agg.scheme.combine(agg.key, [_uploads(stream)[VICTIM]], round=stream.round)
    assert c.evidence is not None
    mine = [i for i, s in enumerate(c.evidence.signed) if s.statement.party == VICTIM]
    return _with(c, alone, Evidence(tuple(c.evidence.signed[i] for i in mine),
                                    tuple(c.evidence.uploads[i] for i in mine)))


def zero_padded(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """The victim's upload folded with encryptions of zero under the others' ids and weights (the DP-minimum
    bypass: the sum is the victim's update), shown with the others' genuine statements and uploads."""
    ups = _uploads(stream)
    padded = agg.scheme.accumulator(agg.key, round=stream.round)
    padded.add(ups[VICTIM])
    for pid, env in ups.items():
        if pid != VICTIM:
            zero = np.zeros(env.length)
            padded.add(agg.scheme.protect(Hostile_keys(agg)[pid], zero, weight=env.weights[0], round=stream.round))
    return _with(c, padded.result(), c.evidence)


def Hostile_keys(agg: Aggregator) -> dict[str, PartyKey]:  # noqa: N802 - reads the class attribute
    return type(agg).keys  # type: ignore[attr-defined, no-any-return]


def fabricated_ids(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """A statement of a party outside the roster, signed by a CA of the aggregator's own."""
    assert c.evidence is not None
    rogue = InProcessCA(["party-9"]).identity("party-9")
    st = dataclasses.replace(c.evidence.signed[0].statement, party="party-9")
    return _with(c, c.aggregate, Evidence((*c.evidence.signed, Signed.sign(st, rogue)), c.evidence.uploads + (b"",)))


def other_federation(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """The victim's statement re-signed by another federation's CA (same ids): not our CA."""
    assert c.evidence is not None
    rogue = InProcessCA([VICTIM]).identity(VICTIM)
    signed = tuple(Signed.sign(s.statement, rogue) if s.statement.party == VICTIM else s for s in c.evidence.signed)
    return _with(c, c.aggregate, Evidence(signed, c.evidence.uploads))


def replayed_round(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """Round 1's aggregate relabelled as round 1 but shown with round 0's evidence (kept from then)."""
    keep = agg.__dict__.setdefault("_kept", [])
    keep.append(c)
    if stream.round == 0:
        return c
    old = keep[0]
    return _with(c, dataclasses.replace(old.aggregate, round=c.aggregate.round), old.evidence)


def dropped_statement(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """The victim's statement withheld (the aggregate still sums its upload)."""
    assert c.evidence is not None
    keep = [i for i, s in enumerate(c.evidence.signed) if s.statement.party != VICTIM]
    return _with(c, c.aggregate, Evidence(tuple(c.evidence.signed[i] for i in keep),
                                          tuple(c.evidence.uploads[i] for i in keep)))


def two_models(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """One contributor's statement names another global model (it was sent a different one), re-signed by
    nobody: the statement is changed, so its signature fails; the honest variant is in its own test."""
    assert c.evidence is not None
    signed = tuple(dataclasses.replace(s, statement=dataclasses.replace(s.statement, model=b"\x07" * 32))
                   if s.statement.party == VICTIM else s for s in c.evidence.signed)
    return _with(c, c.aggregate, Evidence(signed, c.evidence.uploads))


def no_evidence(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """The aggregate with no statements at all (an aggregator running verify_aggregate = 'off')."""
    return _with(c, c.aggregate, None)


ATTACKS: dict[str, tuple[Attack, str]] = {
    "single upload decrypted": (single_upload, "not the fold"),
    "single upload, own statement": (single_upload_own_statement, "signed contributor(s), fewer than"),
    "zero-padded aggregate": (zero_padded, "not the fold"),
    "fabricated contributor": (fabricated_ids, "not parties of this federation"),
    "another federation's signature": (other_federation, "does not verify"),
    "replayed round": (replayed_round, "replayed statement"),
    "statement withheld": (dropped_statement, "claims contributors"),
    "altered model digest": (two_models, "does not verify"),
    "no evidence": (no_evidence, "without its contributors' signed statements"),
}


@pytest.mark.parametrize("scheme", SEALED + SHARED)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_party_refuses_a_cheating_aggregator_and_reveals_nothing(scheme, attack, caplog):
    if attack == "zero-padded aggregate" and scheme == "secagg":
        pytest.skip("secagg's masks serve one update per key and round: no party key encrypts a second one")
    if attack == "single upload, own statement" and scheme == "secagg":
        pytest.skip("secagg's own share request refuses a sum below min_contributors at the aggregator, and its "
                    "consistency round at the parties (tests/crypto_backends/adversary/test_secagg_aggregator.py)")
    sim = _sim(scheme)
    fn, why = ATTACKS[attack]
    _hostile(sim, fn)
    opened: list[str] = []
    for p in sim.parties.values():  # record every reveal: none may happen for a cheated round
        _spy(p, opened)
    with caplog.at_level(logging.ERROR), pytest.raises(SecureFLError):
        sim.run()
    refusals = [r for r in caplog.records if "reveals nothing" in r.getMessage()]
    assert refusals and all(why in r.getMessage() for r in refusals), [r.getMessage() for r in caplog.records]
    cheated = 1 if attack == "replayed round" else 0
    assert not [o for o in opened if int(o.split(":")[1]) >= cheated], opened


def _spy(party: Party, opened: list[str]) -> None:
    """Record each aggregate ``party`` passes (then opens or gives a share of)."""
    def check_then(aggregate: Envelope, evidence: Evidence | None) -> None:
        Party.check(party, aggregate, evidence)
        opened.append(f"{party.party_id}:{aggregate.round}")

    party.check = check_then  # type: ignore[method-assign]


@pytest.mark.parametrize("scheme", SEALED + SHARED)
def test_the_honest_path_gives_the_same_model_with_verification_on_and_off(scheme):
    on, off = _sim(scheme).run(), _sim(scheme, "crypto.verify_aggregate=off").run()
    assert [r.parties for r in on.rounds] == [r.parties for r in off.rounds]
    if scheme in ("paillier", "threshold_paillier"):  # exact schemes: bit-identical
        np.testing.assert_array_equal(on.final_parameters, off.final_parameters)
    else:  # ckks's encryption noise and secagg's stochastic rounding differ run to run: equal up to them
        np.testing.assert_allclose(on.final_parameters, off.final_parameters, atol=2e-3)


def test_a_statement_carries_what_the_issue_asks_and_round_trips():
    st = Statement(b"\x01" * 32, b"k" * 16, 3, "party-2", 12.5, b"\x02" * 32, b"\x03" * 32)
    assert Statement.from_bytes(st.to_bytes()) == st
    with pytest.raises(SecureFLError):
        Statement.from_bytes(st.to_bytes() + b"x")
