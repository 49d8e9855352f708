"""What a scheme may offer beyond the core of :class:`~crypto_backends.base.Scheme`.

The core interface is what every scheme implements: key generation, protect, an
accumulator, reveal, release, the declarations and key (de)serialisation.  The
steps only some schemes need are *capabilities*: small interfaces that a scheme
offers and the round engine discovers with
:meth:`~crypto_backends.base.Scheme.capability`, never by asking for a name:

* :class:`Precompute` - data-independent work a party may do before protecting
  (differential privacy's noise);
* :class:`InteractiveSetup` - exchanges relayed by the aggregator before a round
  (SecAgg+'s key advertisements and encrypted seed shares);
* :class:`ShareReveal` - the aggregate is opened from parties' decryption or
  unmasking shares (threshold Paillier, SecAgg+);
* :class:`ConsistencyCheck` - before any share leaves, the contributors vouch,
  with signatures, for one view of the round (SecAgg+'s consistency round);
* :class:`BindsRound` - a party's key is told the round's context (the digest of
  the global model it trained from) before it protects;
* :class:`FunctionKeys` - the authority derives a per-round function key and keeps
  the policy record of what it granted (functional encryption);
* :class:`BlockFold` - a payload is a row of ciphertext blocks that fold one index
  at a time, so a verifier can check sampled blocks of an aggregate against the
  same blocks of the signed uploads (``crypto.verify_aggregate = "sampled"``).

A scheme offers a capability by inheriting it (``capability(kind)`` then returns
the scheme itself) or by overriding ``capability`` to return another object (a
wrapper returns the wrapped scheme's, changed where it must be: differential
privacy refuses shares of an aggregate with too few contributors).  What a
scheme's :class:`~crypto_backends.base.RevealPlan` declares must match what it
offers: a plan that reveals from shares needs :class:`ShareReveal`, one that
reveals with a function key needs :class:`FunctionKeys`; the contract suite
checks both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .envelope import Envelope
from .keys import AggregatorKey, AuthorityKey, FunctionKey, PartyIdentity, PartyKey


class Capability(ABC):  # noqa: B024 - a marker: what Scheme.capability() may return
    """Base of every optional capability a scheme may offer."""


class Precompute(Capability):
    """Data-independent work for a coming ``protect`` (at the party)."""

    @abstractmethod
    def prepare(self, key: PartyKey, *, length: int, weight: float, round: int) -> None:
        """Work for a coming ``protect`` of ``length`` values at ``weight`` in ``round``.

        Anything that does not depend on the update itself (noise, randomisers) may be
        computed here, for example while the party trains.  ``protect`` must work
        whether or not ``prepare`` ran.
        """


class InteractiveSetup(Capability):
    """Exchanges the aggregator relays between parties before a round (SecAgg+).

    Step ``s`` of a round: :meth:`setup_messages` (aggregator) says what each party
    is sent, given the replies to step ``s - 1``; :meth:`setup_reply` (party) answers;
    after the last step :meth:`setup_done` (aggregator) checks the replies.
    """

    @abstractmethod
    def setup_steps(self, round: int) -> int:
        """How many setup exchanges run before ``round`` (0: none this round)."""

    @abstractmethod
    def setup_messages(
        self, key: AggregatorKey, *, round: int, step: int, parties: Sequence[str], replies: Mapping[str, bytes]
    ) -> Mapping[str, bytes]:
        """Aggregator: the message each party receives in setup ``step``.

        ``parties`` are those still in the round; ``replies`` their answers to step
        ``step - 1`` (empty for step 0).  Only parties named in the result are asked.
        """

    @abstractmethod
    def setup_reply(self, key: PartyKey, *, round: int, step: int, message: bytes) -> bytes:
        """Party: its answer to the aggregator's setup ``message``."""

    @abstractmethod
    def setup_done(self, key: AggregatorKey, *, round: int, replies: Mapping[str, bytes]) -> tuple[str, ...]:
        """Aggregator: check the replies to the last setup step; returns the parties set up for ``round``."""

    def bind_identity(self, key: PartyKey, identity: PartyIdentity) -> None:  # noqa: B027 - optional
        """Give ``key`` its party's authenticated identity (a transport calls this; default: unused).

        A scheme that advertises keys through the aggregator signs them with it and
        verifies its peers' signatures, so a substituting aggregator is detected.
        """


@dataclass(frozen=True)
class ShareRequest:
    """What the aggregator asks for after combining, when a scheme reveals from parties' shares.

    ``parties`` are asked (each receives the aggregate and ``message``); at least
    ``needed`` valid shares must come back.  ``message`` is public context every
    asked party gets, for example the list of survivors whose masks to remove.
    """

    parties: tuple[str, ...]
    needed: int
    message: bytes = b""


class ShareReveal(Capability):
    """The aggregate is opened at the aggregator from at least ``needed`` parties' shares."""

    @abstractmethod
    def share_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        """Aggregator: who is asked for a share of ``aggregate``, how many must be valid, and the public context."""

    @abstractmethod
    def decryption_share(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        """Party: its decryption or unmasking share of ``aggregate`` (checks the aggregate first)."""

    @abstractmethod
    def check_share(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> None:
        """Aggregator: raise :class:`~crypto_backends.errors.ShareError` unless ``share`` is ``party``'s valid share."""

    @abstractmethod
    def reveal_shares(self, key: AggregatorKey, aggregate: Envelope, shares: Mapping[str, bytes]) -> np.ndarray:
        """Aggregator: the weighted sum in ``aggregate`` from checked shares (at least ``needed`` of them)."""

    def share_floor_s(self, key: AggregatorKey, aggregate: Envelope) -> float | None:
        """Benchmarks: CPU seconds, on one core and measured now, of the arithmetic that one share of ``aggregate``
        cannot go below (default ``None``: the scheme states no floor)."""
        return None


class ConsistencyCheck(Capability):
    """Before any share is asked for, the contributors each vouch for the round's state (signed), and see the others'.

    Bonawitz et al., CCS 2017, section 4 (the malicious-model consistency check): the
    aggregator sends the contributors :meth:`consistency_request`'s message with the
    aggregate; each answers with :meth:`consistency_reply` (a signature over what it
    was shown, at most one view per round); the aggregator checks each reply on
    arrival (:meth:`check_consistency`) and, with at least ``needed`` of them, keeps
    them (:meth:`consistency_done`): the share request that follows carries them, and
    a party lets out a share only when they vouch for the view it signed.
    """

    @abstractmethod
    def consistency_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        """Aggregator: who is asked to vouch for ``aggregate``'s round, how many must, and the public context."""

    @abstractmethod
    def consistency_reply(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        """Party: its signed confirmation of the round state ``aggregate`` and ``message`` show it."""

    @abstractmethod
    def check_consistency(self, key: AggregatorKey, aggregate: Envelope, party: str, reply: bytes) -> None:
        """Aggregator: :class:`~crypto_backends.errors.ShareError` unless ``reply`` is ``party``'s, well-formed."""

    @abstractmethod
    def consistency_done(self, key: AggregatorKey, aggregate: Envelope, replies: Mapping[str, bytes]) -> None:
        """Aggregator: keep the checked confirmations (at least ``needed``) for the share request that follows."""


class BindsRound(Capability):
    """A party's key is bound to the round's context before it protects an update.

    The context is public bytes every honest party of a round shares, such as the
    digest of the global model it trained from; a scheme binds it into what it makes
    for the round (secagg: into its mask derivation and its signed confirmation), so
    parties shown different contexts cannot produce an aggregate that opens.
    """

    @abstractmethod
    def bind_round(self, key: PartyKey, *, round: int, context: bytes) -> None:
        """Bind ``key``'s ``round`` to ``context`` (called before ``protect``; a second call replaces it)."""


class FunctionKeys(Capability):
    """The authority derives the aggregator's per-round function key and keeps its policy record."""

    @abstractmethod
    def function_key(self, key: AuthorityKey, *, round: int, weights: Mapping[str, float]) -> FunctionKey:
        """The function key for one round and weight vector (raises PolicyError to refuse it)."""

    def policy_record(self, key: AuthorityKey) -> bytes:
        """The record of the function keys granted under ``key``, apart from the key set (default: empty).

        The authority role keeps it durably per federation, so that a new key set for
        the same federation (a restarted authority without its key store) answers as
        the old one would (:meth:`adopt_policy_record`).
        """
        return b""

    def adopt_policy_record(self, key: AuthorityKey, record: bytes) -> None:  # noqa: B027 - optional
        """Make ``key``'s policy honour ``record`` (from :meth:`policy_record`, maybe of another key set)."""


__all__ = [
    "BindsRound",
    "Capability",
    "ConsistencyCheck",
    "FunctionKeys",
    "InteractiveSetup",
    "Precompute",
    "ShareRequest",
    "ShareReveal",
]


class BlockFold(Capability):
    """A payload is a row of ciphertext blocks, and block ``i`` of a fold is the fold of the uploads' blocks ``i``.

    What ``crypto.verify_aggregate = "sampled"`` needs: each party commits to its
    upload block by block (a Merkle root in its signed statement), and a verifier
    checks the blocks it picked at random, after the aggregate was fixed, instead of
    refolding every block (:mod:`crypto_backends.statements`).  Promised: the blocks
    of an envelope cover every ciphertext of its payload, in order, and
    :meth:`fold_blocks` over the uploads' blocks ``i`` gives exactly the bytes of
    block ``i`` of the aggregate :meth:`~crypto_backends.base.Scheme.accumulator`
    makes of them, with the aggregator's (public) key.
    """

    @abstractmethod
    def block_count(self, length: int) -> int:
        """How many blocks the payload of a ``length``-value envelope holds."""

    @abstractmethod
    def blocks(self, key: AggregatorKey, envelope: Envelope) -> list[memoryview]:
        """``envelope``'s payload blocks (views, not copies) under ``key``, its framing checked (typed error
        otherwise)."""

    @abstractmethod
    def fold_blocks(self, key: AggregatorKey, index: int, blocks: Sequence[bytes | memoryview]) -> bytes:
        """Block ``index`` of the aggregate of the uploads whose blocks ``index`` are ``blocks``."""
