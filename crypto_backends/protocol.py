"""The order of one secure round, written once: setup, protect and combine, reveal.

Every driver of a scheme runs a round through :class:`SecureSum`: the round
engine (:mod:`securefl.core.engine`) over a transport to parties in threads, Ray
actors or other processes; :mod:`crypto_backends.roundtrip` (the benchmark, the
contract tests) by direct calls in one process.  A driver supplies only
:class:`Roles`, which carries the round's messages to the other roles and back;
the order of the steps and every decision taken from the scheme's declarations
are here, so two drivers cannot drift apart:

1. **setup**, if the scheme offers
   :class:`~crypto_backends.capabilities.InteractiveSetup` and declares steps for
   the round: for each step, the aggregator's messages to the parties still in
   the round, their replies back; then the scheme says who is set up;
2. **collect**: every set-up party protects its update and the aggregator
   combines them (:meth:`Roles.collect`: uploads folded as they arrive, dropouts
   allowed, is the driver's business);
3. **reveal**, as the scheme's :class:`~crypto_backends.base.RevealPlan` says:

   * ``from_shares``: first, if the scheme offers
     :class:`~crypto_backends.capabilities.ConsistencyCheck`, the consistency
     exchange: the contributors each sign the round state they were shown, each
     reply checked on arrival, at least its ``needed`` must pass; then the scheme's
     share request (carrying those signatures) names the parties asked; each
     share is checked on arrival (its sender was asked, the scheme accepts it); at least
     ``needed`` must pass, then the aggregator combines them;
   * ``with_function_key``: the authority derives the function key for the
     aggregate's contributors and the aggregator reveals with it;
   * ``at_aggregator``: the aggregator reveals with its own key;
   * ``at_parties``: the aggregate goes back sealed (:meth:`Roles.open` says whether
     a party opens it now, as in one process, or later, as in a federation).

What this module does not do: authenticate senders, enforce deadlines or quorums
beyond the scheme's own ``needed`` (the driver's :class:`Roles` does that), or
account privacy budgets (the federation's accountant does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .base import RevealSite, Scheme, offered
from .capabilities import ConsistencyCheck, InteractiveSetup, ShareRequest, ShareReveal
from .envelope import Envelope
from .errors import KeyRoleError, ShareError
from .keys import AggregatorKey, FunctionKey

CheckShare = Callable[[str, bytes], bytes]
"""Checks one party's share on arrival: returns it, or raises :class:`~crypto_backends.errors.ShareError`."""


class Roles(ABC):
    """How one round's messages reach the parties and the authority, and come back (the driver's part).

    Every method is called by :class:`SecureSum` in the round's one order; a
    method that cannot get an answer from a role raises (a driver's own error, such
    as a lost quorum, or :class:`~crypto_backends.errors.ShareError`).
    """

    @abstractmethod
    def setup(self, step: int, messages: Mapping[str, bytes]) -> dict[str, bytes]:
        """Each party in ``messages`` gets its setup message of ``step``; the replies of those that answered."""

    @abstractmethod
    def collect(self, parties: tuple[str, ...]) -> Envelope:
        """Every party of ``parties`` protects its update; the aggregate of those the aggregator combined."""

    def shares(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        """The shares of ``aggregate`` from ``request.parties``, each passed through ``check`` on arrival.

        A share that ``check`` refuses costs only its sender.  Needed only when the
        scheme reveals from shares; the default refuses.
        """
        raise KeyRoleError(f"{type(self).__name__} cannot ask parties for decryption shares")

    def consistency(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        """The confirmations of ``aggregate``'s round state from ``request.parties``, each checked on arrival.

        A reply that ``check`` refuses costs only its sender.  Needed only when the
        scheme offers a consistency exchange before its shares; the default refuses.
        """
        raise KeyRoleError(f"{type(self).__name__} cannot run a consistency exchange with the parties")

    def function_key(self, aggregate: Envelope) -> FunctionKey:
        """The authority's function key for ``aggregate``'s round and contributors' weights.

        Needed only when the scheme reveals with function keys; the default refuses.
        """
        raise KeyRoleError(f"{type(self).__name__} cannot ask the authority for a function key")

    def open(self, aggregate: Envelope) -> np.ndarray | None:
        """Where the parties open the sealed aggregate: its weighted sum now, or ``None`` for them to open later."""
        return None

    def left_out(self, party: str, why: str) -> None:  # noqa: B027 - optional: a driver that names dropouts
        """``party`` left the round for the reason ``why`` (the scheme left it out); by default not recorded."""


class SecureSum:
    """The aggregator's side of one round under ``scheme``, in its one order (see the module docstring)."""

    def __init__(self, scheme: Scheme, key: AggregatorKey) -> None:
        self.scheme, self.key = scheme, key
        self.plan = scheme.declarations.reveal
        self.shares = offered(scheme, ShareReveal) if self.plan.shares else None
        """The scheme's share exchange, where its plan reveals from parties' shares."""

    def run(self, roles: Roles, round: int, parties: Sequence[str]) -> tuple[Envelope, np.ndarray | None]:
        """Steps 1-3: the round's aggregate and its weighted sum (``None``: sealed, for the parties to open)."""
        aggregate = self.collect(roles, round, parties)
        return aggregate, self.reveal(roles, aggregate)

    def collect(self, roles: Roles, round: int, parties: Sequence[str]) -> Envelope:
        """Steps 1-2: the setup exchanges, then every set-up party's protected update, combined."""
        return roles.collect(self.setup(roles, round, parties))

    def setup(self, roles: Roles, round: int, parties: Sequence[str]) -> tuple[str, ...]:
        """Step 1: the scheme's setup exchanges for ``round`` among ``parties``; returns who is set up (sorted)."""
        current = tuple(sorted(parties))
        setup = self.scheme.capability(InteractiveSetup)
        steps = setup.setup_steps(round) if setup is not None else 0
        if setup is None or not steps:
            return current
        replies: dict[str, bytes] = {}
        for step in range(steps):
            messages = setup.setup_messages(self.key, round=round, step=step, parties=current, replies=replies)
            asked = {p: bytes(m) for p, m in messages.items() if p in current}
            for party in current:  # a party the scheme stops asking (garbled or refused reply) is named, not lost
                if party not in asked:
                    roles.left_out(party, f"left out by the scheme at setup stage {step}")
            replies = roles.setup(step, asked)
            current = tuple(sorted(p for p in replies if p in asked))
        done = tuple(sorted(setup.setup_done(self.key, round=round, replies=replies)))
        for party in sorted(set(replies) - set(done)):
            roles.left_out(party, "its setup was refused by the scheme")
        return done

    def reveal(self, roles: Roles, aggregate: Envelope) -> np.ndarray | None:
        """Step 3: the weighted sum in ``aggregate`` as the reveal plan says (``None``: sealed for the parties)."""
        if self.shares is not None:
            self.confirm(roles, aggregate)
            request = self.shares.share_request(self.key, aggregate)
            shares = roles.shares(request, aggregate, self.share_check(aggregate, request))
            if len(shares) < request.needed:
                raise ShareError(
                    f"round {aggregate.round}: {len(shares)} valid share(s), but the {self.scheme.name} scheme "
                    f"needs {request.needed}: its share request must name enough parties, and enough must answer"
                )
            return self.shares.reveal_shares(self.key, aggregate, shares)
        if self.plan.function_key:
            return self.scheme.reveal(self.key, aggregate, function_key=roles.function_key(aggregate))
        if self.plan.site is RevealSite.PARTIES:
            return roles.open(aggregate)
        return self.scheme.reveal(self.key, aggregate)

    def confirm(self, roles: Roles, aggregate: Envelope) -> None:
        """Step 3's consistency exchange, when the scheme offers one: at least ``needed`` checked confirmations."""
        cap = self.scheme.capability(ConsistencyCheck)
        if cap is None:
            return
        request = cap.consistency_request(self.key, aggregate)
        check = _from_asked(request, f"confirmed round {aggregate.round} but was not asked to",
                            lambda sender, reply: cap.check_consistency(self.key, aggregate, sender, reply))
        replies = roles.consistency(request, aggregate, check)
        if len(replies) < request.needed:
            raise ShareError(f"round {aggregate.round}: {len(replies)} valid confirmation(s) of the round state, but "
                             f"the {self.scheme.name} scheme needs {request.needed} before any share is asked for")
        cap.consistency_done(self.key, aggregate, replies)

    def share_check(self, aggregate: Envelope, request: ShareRequest) -> CheckShare:
        """The check each share of ``aggregate`` passes on arrival: its sender was asked, and the scheme accepts it."""
        shares = offered(self.scheme, ShareReveal)
        return _from_asked(request, f"sent a share of round {aggregate.round} but was not asked for one",
                           lambda sender, share: shares.check_share(self.key, aggregate, sender, share))


def _from_asked(request: ShareRequest, unasked: str, accept: Callable[[str, bytes], None]) -> CheckShare:
    """A reply's check on arrival: its sender is one of ``request.parties`` (else ``ShareError``: sender +
    ``unasked``), and ``accept`` (the scheme's own check, raising to refuse) passes it."""
    asked = frozenset(request.parties)

    def check(sender: str, reply: bytes) -> bytes:
        if sender not in asked:
            raise ShareError(f"{sender} {unasked}")
        accept(sender, reply)
        return reply
    return check


__all__ = ["CheckShare", "Roles", "SecureSum"]
