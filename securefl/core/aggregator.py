"""The aggregator: checks uploads, combines them, and reveals only where the scheme allows.

It checks and folds uploads, and turns the revealed weighted sum into the next
global model (or passes the sealed aggregate on, where the parties reveal).  How
the sum is revealed (function key, share exchange, its own key) is the scheme's
reveal plan, followed in its one place, :class:`~crypto_backends.protocol.SecureSum`,
which the round engine (:mod:`securefl.core.engine`) drives.  It never branches
on a scheme's name.

A bad upload (garbled, another round, another key set, another length, claiming
another party's id) costs only its sender's place in the round; the others are
kept, and the round goes on if the quorum still holds.

Uploads are folded as they arrive (:class:`Stream`, the train exchange's
``accept`` callback, over the scheme's :class:`~crypto_backends.base.Accumulator`):
the aggregator holds the running aggregate and the upload being folded, never
every upload of the round, so its memory does not grow with the number of parties.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from crypto_backends.base import Accumulator, Scheme
from crypto_backends.envelope import Envelope
from crypto_backends.errors import CryptoError, SecureFLError
from crypto_backends.keys import AggregatorKey
from crypto_backends.sampling import Sampler
from crypto_backends.statements import Evidence, SignatureChecks, Signed, check_upload, parse_upload
from securefl.core.fusion import Fuse, mean_from_sum
from securefl.core.messages import GlobalModel
from securefl.errors import PartyError, QuorumError

log = logging.getLogger(__name__)

@dataclass
class Combined:
    """One round's combined aggregate and who is in it."""

    aggregate: Envelope
    rejected: dict[str, str] = field(default_factory=dict)
    """Uploads that passed their own checks but broke combining, with the reason."""
    evidence: Evidence | None = None
    """The contributors' signed statements (and uploads, to refold) for whoever reveals; ``None``: not verified."""

    @property
    def contributors(self) -> tuple[str, ...]:
        """The parties whose updates the aggregate sums, as the aggregate lists them."""
        return self.aggregate.parties

    @property
    def weights(self) -> dict[str, float]:
        """Each contributor's weight in the aggregate, by party id (a fresh dict)."""
        return dict(zip(self.aggregate.parties, self.aggregate.weights, strict=True))


@dataclass(frozen=True)
class Statements:
    """The aggregator's side of ``crypto.verify_aggregate``: every upload's signed statement is checked on arrival
    and kept (with the upload itself where the parties refold it) as the aggregate's evidence."""

    checks: SignatureChecks
    context: bytes
    keep_uploads: bool
    """Keep each upload's bytes for the evidence: the scheme reveals at or with the parties, who refold them
    (``full``) or check blocks of them (``sampled``)."""
    sampler: Sampler | None = None
    """Under ``sampled``: how a statement commits to its upload (a block root), and how the blocks are opened."""


class Aggregator:
    """Fuses one round's uploads (transport-agnostic: bytes in, bytes out)."""

    def __init__(self, scheme: Scheme, key: AggregatorKey, *, num_parameters: int | None, quorum: int,
                 fuse: Fuse = mean_from_sum, max_weight: float = math.inf,
                 max_update_norm: float | None = None, statements: Statements | None = None) -> None:
        self.scheme, self.key, self.num_parameters, self.quorum = scheme, key, num_parameters, quorum
        self.statements = statements
        """Signed uploads required and their evidence kept (``None``: ``verify_aggregate = "off"``)."""
        self.fuse_sum = fuse
        """Revealed weighted sum and total weight -> next global vector (the federation's rule)."""
        self.max_weight = max_weight
        """Largest weight an update may declare (``federation.max_weight``)."""
        declared = scheme.declarations
        bounds = [b for b in (declared.release_norm_bound, max_update_norm) if b is not None]
        self.norm_bound = min(bounds) if bounds and not declared.hides_updates else None
        """L2 bound of an unweighted update, checked where the scheme shows updates to the aggregator."""
        # ``num_parameters`` is ``None`` until the engine has the model's starting point (from a party)

    # --- uploads ------------------------------------------------------------------------
    def check_upload(self, sender: str, data: bytes | memoryview, round: int,
                     accumulator: Accumulator | None = None) -> Envelope:
        """Parse and check one upload, once; ``sender`` is the transport-authenticated party id.

        ``accumulator``: the round's running aggregate (a :class:`Stream`'s), which also
        refuses a second upload of ``sender``; without it a fresh one checks the envelope.
        """
        env = Envelope.from_bytes(data)
        acc = accumulator if accumulator is not None else self.scheme.accumulator(self.key, round=round)
        acc.check(env, length=self.num_parameters)
        if env.party != sender:
            raise PartyError(f"upload from {sender!r} claims to be from {env.party!r}: a party may only send its own "
                             "update (check that each party process uses its own certificate and key)")
        weight = env.weights[0]
        if weight > self.max_weight:
            raise PartyError(f"{sender} declares weight {weight:g}, above federation.max_weight {self.max_weight:g}: "
                             "one party would outweigh the others; raise federation.max_weight if it is honest")
        if self.norm_bound is not None:
            self._check_norm(sender, env, round, weight, self.norm_bound)
        return env

    def _check_norm(self, sender: str, env: Envelope, round: int, weight: float, bound: float) -> None:
        # the scheme shows updates to the aggregator (hides_updates is false): read this one as its own sum
        alone = self.scheme.reveal(self.key, self.scheme.combine(self.key, [env], round=round))
        norm = math.sqrt(float(np.einsum("i,i->", alone, alone))) / weight
        if not norm <= bound:
            raise PartyError(f"the update of {sender} has L2 norm {norm:.6g} per unit weight, above the bound "
                             f"{bound:.6g} (federation.max_update_norm, or privacy.clip_norm plus the noise): "
                             "refused; an honest party's trainer or clipping does not produce it")

    def stream(self, round: int, model: bytes = b"") -> Stream:
        """A running aggregate of ``round`` whose :meth:`Stream.accept` checks and folds each upload on arrival.

        ``model``: the digest of the global model sent for the round (each signed statement must name it).
        """
        return Stream(self, round, model)

    def combine(self, round: int, accepted: Mapping[str, Envelope]) -> Combined:
        """Combine checked uploads of ``round``, folded one by one; :class:`QuorumError` if too few are usable."""
        stream = self.stream(round)
        refused: dict[str, str] = {}
        for sender in sorted(accepted):
            try:
                stream.fold(accepted[sender])
            except SecureFLError as exc:  # a payload-level fault shows only when folding: it costs its sender
                refused[sender] = f"{type(exc).__name__}: {exc}"
        return self.finish(stream, refused)

    def finish(self, stream: Stream, refused: Mapping[str, str] | None = None) -> Combined:
        """Close ``stream`` and take its aggregate; :class:`QuorumError` if too few uploads are in it.

        ``refused``: uploads refused while folding, by sender (they are reported with
        those the accumulator rejected when it ran a deferred fold).
        """
        acc = stream.close()
        rejected = {**(refused or {})}
        try:
            aggregate: Envelope | None = acc.result()
        except CryptoError:
            if len(acc):
                raise
            aggregate = None  # nothing usable came: the quorum check below says so
        rejected.update(acc.rejected)
        self.require_quorum(stream.round, len(acc), rejected, "update")
        assert aggregate is not None  # the quorum is at least one
        for sender, why in rejected.items():
            log.warning("round %d: update of %s rejected: %s", stream.round, sender, why)
        return Combined(aggregate, rejected, stream.evidence(aggregate.parties))

    def require_quorum(self, round: int, usable: int, rejected: Mapping[str, str], what: str,
                       needed: int | None = None) -> None:
        """Raise :class:`QuorumError` unless ``usable`` reaches ``needed`` (default: the federation's quorum).

        ``what`` names the items counted, in the message (``"update"``, ``"share"``); ``rejected``
        lists, by sender, why the others were not usable.
        """
        needed = self.quorum if needed is None else needed
        if usable < needed:
            detail = "; ".join(f"{p}: {why}" for p, why in rejected.items())
            raise QuorumError(
                f"round {round}: only {usable} usable {what}(s), the quorum is {needed}"
                + (f" (rejected: {detail})" if detail else "")
                + ". Check the failing parties or lower federation.quorum"
            )

    # --- revealing ----------------------------------------------------------------------
    def next_model(self, combined: Combined, total: np.ndarray | None) -> GlobalModel:
        """The next global model from the revealed weighted sum ``total``, or sealed for the parties (``None``)."""
        if total is None:  # sealed: the parties open it, after checking its evidence (crypto.verify_aggregate)
            return GlobalModel.of_aggregate(combined.aggregate, combined.evidence)
        return GlobalModel.open(self.fuse_sum(total, combined.aggregate.total_weight))


class Stream:
    """One round's uploads folded into the scheme's accumulator as they arrive (thread-safe).

    :meth:`accept` is the train exchange's ``accept`` callback: it parses and checks
    the upload (:meth:`Aggregator.check_upload`), folds it in, and returns only the
    sender's weight, so the upload's bytes can be dropped as soon as it returns.
    An upload that fails to fold raises, which drops only its sender; the
    accumulator is left as it was.  After :meth:`close` (the exchange is over) a
    late upload is refused.
    """

    def __init__(self, aggregator: Aggregator, round: int, model: bytes = b"") -> None:
        self.aggregator, self.round, self.model = aggregator, round, model
        self._acc: Accumulator = aggregator.scheme.accumulator(aggregator.key, round=round)
        self._lock = threading.Lock()
        self._closed = False
        self._signed: dict[str, tuple[Signed, bytes]] = {}

    def accept(self, sender: str, data: bytes) -> float:
        """Check and fold one upload of ``sender`` (and its signed statement); returns its (applied) weight."""
        signed, body = parse_upload(data)
        env = self.aggregator.check_upload(sender, body, self.round, self._acc)
        rules = self.aggregator.statements
        if rules is not None:
            check_upload(signed, sender, env, body, context=rules.context, model=self.model, checks=rules.checks,
                         sampler=rules.sampler)
        self.fold(env)
        if rules is not None and signed is not None:
            with self._lock:
                self._signed[sender] = (signed, bytes(body) if rules.keep_uploads else b"")
        return env.weights[0]

    def evidence(self, parties: tuple[str, ...]) -> Evidence | None:
        """The signed statements (and uploads, where kept) of ``parties``; ``None`` when statements are off."""
        rules = self.aggregator.statements
        if rules is None:
            return None
        with self._lock:
            if not set(parties) <= set(self._signed):  # folded without their statements (Aggregator.combine)
                return None
            kept = [self._signed[p] for p in parties]
        return Evidence(tuple(s for s, _ in kept), tuple(u for _, u in kept) if rules.keep_uploads else ())

    def fold(self, env: Envelope) -> None:
        """Fold an upload already checked by :meth:`Aggregator.check_upload`."""
        with self._lock:  # gRPC handlers fold from many threads
            if self._closed:
                raise PartyError(f"the update of {env.parties[0]} for round {self.round} came after the round "
                                 "closed; it was not used")
            self._acc.add(env)

    @property
    def parties(self) -> tuple[str, ...]:
        """The parties folded in so far (a snapshot; later uploads may still be added until :meth:`close`)."""
        with self._lock:
            return self._acc.parties

    def close(self) -> Accumulator:
        """No more uploads; returns the accumulator."""
        with self._lock:
            self._closed = True
            return self._acc
