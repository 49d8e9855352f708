"""A hostile aggregator for the tests (issue 22): it folds honestly, then alters what it shows the verifiers.

Each attack takes the round's honest :class:`~securefl.core.aggregator.Combined`
and returns what a cheating aggregator would present instead: the aggregate and
its evidence (the contributors' signed statements and uploads).  The in-process
harness (``tests/securefl/core/adversary``) and the gRPC one (a real aggregator
process: ``tests/securefl/transport/grpc/cheating_aggregator.py``) run the same
attacks; ``ATTACKS`` maps each name to the attack and the words every party's
refusal must contain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from crypto_backends.envelope import Envelope
from crypto_backends.keys import PartyKey
from crypto_backends.statements import Evidence, Signed, parse_upload
from securefl.core.aggregator import Aggregator, Combined, Stream
from securefl.identity import InProcessCA

VICTIM = "party-1"


Attack = Callable[[Aggregator, Stream, Combined], Combined]


class Hostile(Aggregator):
    """Folds honestly, then hands ``attack`` the round's combined aggregate to alter (from round 0 on)."""

    attack: Attack
    keys: dict[str, PartyKey]
    """The parties' keys: what a colluding party (or, under paillier, the public key alone) lets it encrypt."""

    def stream(self, round: int, model: bytes = b"") -> Stream:
        """The honest stream, which also keeps every upload it accepts: the aggregator holds them all, also
        where the evidence keeps none (fe: its authority checks the statements alone)."""
        made = super().stream(round, model)
        seen: dict[str, bytes] = {}
        honest = made.accept

        def accept(sender: str, data: bytes) -> float:
            weight = honest(sender, data)
            seen[sender] = bytes(parse_upload(data)[1])
            return weight

        made.accept = accept  # type: ignore[method-assign]
        made.__dict__["seen"] = seen
        return made

    def finish(self, stream: Stream, refused: Mapping[str, str] | None = None) -> Combined:
        honest = super().finish(stream, refused)
        return type(self).attack(self, stream, honest)


def hostile(a: Aggregator, attack: Attack, keys: Mapping[str, PartyKey] | None = None) -> Aggregator:
    """``a`` as a :class:`Hostile` aggregator running ``attack`` (``keys``: the parties' keys it may misuse)."""
    cls = type("Attack", (Hostile,), {"attack": staticmethod(attack), "keys": dict(keys or {})})
    made: Aggregator = cls(a.scheme, a.key, num_parameters=a.num_parameters, quorum=a.quorum, fuse=a.fuse_sum,
                           max_weight=a.max_weight, statements=a.statements)
    made.norm_bound = a.norm_bound
    return made


def _uploads(stream: Stream) -> dict[str, Envelope]:
    seen: dict[str, bytes] = stream.__dict__["seen"]  # every upload accepted (Hostile.stream)
    return {p: Envelope.from_bytes(u) for p, u in seen.items()}


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
                                    tuple(c.evidence.uploads[i] for i in mine) if c.evidence.uploads else ()))


def zero_padded(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """The victim's upload folded with encryptions of zero under the others' ids and weights (the DP-minimum
    bypass: the sum is the victim's update), shown with the others' genuine statements and uploads."""
    ups = _uploads(stream)
    padded = agg.scheme.accumulator(agg.key, round=stream.round)
    padded.add(ups[VICTIM])
    for pid, env in ups.items():
        if pid != VICTIM:
            zero = np.zeros(env.length)
            key = agg.keys[pid] if isinstance(agg, Hostile) else None
            assert key is not None, "the zero-padding attack needs a party key (a colluder, or paillier's public key)"
            padded.add(agg.scheme.protect(key, zero, weight=env.weights[0], round=stream.round))
    return _with(c, padded.result(), c.evidence)


def fabricated_ids(agg: Aggregator, stream: Stream, c: Combined) -> Combined:
    """A statement of a party outside the roster, signed by a CA of the aggregator's own."""
    assert c.evidence is not None
    rogue = InProcessCA(["party-9"]).identity("party-9")
    st = dataclasses.replace(c.evidence.signed[0].statement, party="party-9")
    uploads = c.evidence.uploads + (c.evidence.uploads[:1] if c.evidence.uploads else ())
    return _with(c, c.aggregate, Evidence((*c.evidence.signed, Signed.sign(st, rogue)), uploads))


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
                                          tuple(c.evidence.uploads[i] for i in keep) if c.evidence.uploads else ()))


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


NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("secagg", "zero-padded aggregate"): "secagg's masks serve one update per key and round: no party key encrypts "
                                         "a second one",
    ("secagg", "single upload decrypted"): "secagg's verifiers check statements only (its masked uploads fold only "
                                           "with the aggregator's round setup); one masked upload passed off as the "
                                           "sum unmasks to noise: the others' pairwise masks do not cancel, and its "
                                           "consistency round pins the survivor set",
    ("secagg", "single upload, own statement"): "secagg's own share request refuses a sum below min_contributors at "
                                                "the aggregator, and its consistency round at the parties "
                                                "(tests/crypto_backends/adversary/test_secagg_aggregator.py)",
    ("fe", "single upload decrypted"): "a function key for every contributor opens only their joint sum: one "
                                       "ciphertext under it keeps the others' pads (it decrypts to noise), so the "
                                       "authority checks who and with what weight, which this attack leaves genuine",
    ("fe", "zero-padded aggregate"): "fe's party keys are each party's own secret: encrypting zeros under the others' "
                                     "ids needs every other party's key, a collusion of all but the victim",
}
"""(scheme, attack) pairs the attack cannot be mounted in, with the reason."""


def applies(scheme: str, attack: str) -> str | None:
    """``None`` if ``attack`` can be mounted under ``scheme``, else why not (:data:`NOT_APPLICABLE`)."""
    return NOT_APPLICABLE.get((scheme, attack))

