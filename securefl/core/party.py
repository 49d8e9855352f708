"""A party: runs its own :class:`~securefl.ml.trainer.Trainer` and protects its update with its own key.

:meth:`Party.respond` is the whole of a party's side of the protocol, whatever
transport carries the bytes: ``init`` asks for the trainer's initial
parameters; a ``train`` request holds the global model and is answered with the
protected update (with ``crypto.verify_aggregate``, signed: see
:mod:`crypto_backends.statements`); ``setup`` and ``share`` requests are the scheme's own
exchanges (key advertisements, decryption or unmasking shares, and before them
the ``consistency`` request: a signed confirmation of the round's survivors); an
``evaluate`` request asks for the trainer's metrics of a released model.

With a :class:`~crypto_backends.statements.Verifier`, the party reveals nothing
(it opens no sealed aggregate and gives no share) for an aggregate whose evidence
does not prove it the fold of enough signed uploads of one model: it logs and
raises :class:`~crypto_backends.errors.AggregateMismatchError`.
"""

from __future__ import annotations

import logging

import numpy as np

from crypto_backends.base import C, Scheme
from crypto_backends.capabilities import BindsRound, ConsistencyCheck, InteractiveSetup, Precompute, ShareReveal
from crypto_backends.envelope import Envelope
from crypto_backends.errors import AggregateMismatchError
from crypto_backends.keys import PartyIdentity, PartyKey
from crypto_backends.statements import (
    Evidence,
    Signed,
    Statement,
    Verifier,
    digest,
    signed_upload_bytes,
    verify_aggregate,
)
from securefl.core.fusion import Fuse, mean_from_sum
from securefl.core.messages import (
    GlobalModel,
    indices_bytes,
    metrics_bytes,
    parse_challenge,
    parse_share_request,
    vector_bytes,
)
from securefl.errors import PartyError, SecureFLError
from securefl.ml.trainer import Trainer, checked_fit, checked_metrics
from securefl.privacy import PrivacyAccountant
from securefl.state.partystate import PartyState

log = logging.getLogger(__name__)

class Party:
    """One organisation's side of a round (transport-agnostic: bytes in, bytes out)."""

    def __init__(self, party_id: str, trainer: Trainer, scheme: Scheme, key: PartyKey,
                 accountant: PrivacyAccountant | None = None, *, fuse: Fuse = mean_from_sum,
                 state: PartyState | None = None, identity: PartyIdentity | None = None,
                 verifier: Verifier | None = None) -> None:
        self.party_id, self.trainer, self.scheme, self.key = party_id, trainer, scheme, key
        if verifier is not None and identity is None:
            raise PartyError(f"{party_id}: checking aggregates (crypto.verify_aggregate) needs the party's identity to "
                             "sign its own uploads; give it one, or set crypto.verify_aggregate = 'off'")
        self.identity, self.verifier = identity, verifier
        """This party's signing identity and its check of every aggregate before it reveals (both ``None``: off)."""
        self._signed: Statement | None = None  # what it signed for its last upload
        # under verify_aggregate = "sampled": the blocks it drew per aggregate digest (the last few), kept in memory
        # only: a restarted party has drawn none and refuses the aggregate it is then shown (liveness, not safety)
        self._drawn: dict[bytes, tuple[int, tuple[int, ...]]] = {}
        self.accountant = accountant
        """This party's own privacy budget (differential privacy): it refuses to release past it, whoever asks."""
        self.state = state if state is not None else PartyState(None, "", f"party:{party_id}")
        """The rounds this party answered and the rounds its accountant charged (durable with a path)."""
        if accountant is not None:
            accountant.replay(self.state.charged)  # what earlier runs of this party spent is spent
        self.fuse = fuse
        """Revealed weighted sum and total weight -> model (the federation's fusion rule, for sealed aggregates)."""
        self.weight: float | None = None
        """The (public) fusion weight of this party's last update."""
        # the last sealed model opened: (its digest, the revealed weighted sum, its publication if made)
        self._opened: tuple[bytes, np.ndarray, np.ndarray | None] | None = None

    def open_model(self, model: GlobalModel, *, publish: bool = False) -> np.ndarray:
        """The global model as a vector, decrypting a sealed aggregate with this party's key.

        ``publish=True`` is for a model that leaves the key holders (e.g. for
        evaluation or release): the scheme's publication step (flooding noise)
        is applied.  The last model's decryption is kept, so one model is
        decrypted once whether it is evaluated, trained from, or both, and
        published at most once (a second, independently flooded publication of
        one aggregate would leak more than the first).
        """
        if model.vector is not None:
            return model.vector
        aggregate = model.aggregate
        assert aggregate is not None
        if self._opened is None or self._opened[0] != model.digest:
            self.check(aggregate, model.evidence)
            self._opened = (model.digest, self.scheme.reveal(self.key, aggregate), None)
        digest, total, published = self._opened
        if not publish:
            return self.fuse(total, aggregate.total_weight)
        if published is None:
            published = self.fuse(self.scheme.release(self.key, aggregate, total), aggregate.total_weight)
            self._opened = (digest, total, published)
        return published

    def check(self, aggregate: Envelope, evidence: Evidence | None) -> None:
        """Refuse (log, then :class:`AggregateMismatchError`) to reveal ``aggregate`` unless ``evidence`` proves it;
        without a :attr:`verifier` every aggregate passes (``verify_aggregate = "off"``)."""
        if self.verifier is None:
            return
        own = self._signed if self._signed is not None and self._signed.round == aggregate.round else None
        drawn = self._drawn.get(digest(aggregate.to_bytes())) if self.verifier.sampler is not None else None
        try:
            verify_aggregate(self.verifier, aggregate, evidence, own=own, drawn=drawn)
        except AggregateMismatchError as exc:
            log.error("%s: reveals nothing for round %d: %s", self.party_id, aggregate.round, exc)
            raise

    def published(self, model: GlobalModel) -> np.ndarray | None:
        """``model`` as this party already published it, if it did."""
        if self._opened is not None and self._opened[0] == model.digest:
            return self._opened[2]
        return None

    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        """This party's reply to one request of the round engine (see the module docstring)."""
        if step == "train":
            return self.handle_round(round, payload)
        if step == "init":
            return vector_bytes(self.initial_parameters())
        if step == "setup":
            return self._capability(InteractiveSetup, step).setup_reply(self.key, round=round, step=stage,
                                                                        message=payload)
        if step == "consistency":
            message, aggregate, _ = self._round_aggregate(round, payload)
            return self._capability(ConsistencyCheck, step).consistency_reply(self.key, aggregate, message)
        if step == "challenge":
            return self.draw(round, payload)
        if step == "share":
            message, aggregate, evidence = self._round_aggregate(round, payload)
            self.check(aggregate, evidence)
            return self._capability(ShareReveal, step).decryption_share(self.key, aggregate, message)
        if step == "evaluate":
            model = GlobalModel.from_bytes(payload)
            try:
                return metrics_bytes(self.evaluate(model))
            except AggregateMismatchError:
                raise  # a cheated aggregate is refused, not "not measured": the engine must hear it (issue 22)
            except SecureFLError as exc:
                # e.g. a scheme's publication budget is spent: say "not measured" rather than leave the engine waiting
                log.warning("%s: cannot measure the model of round %d: %s", self.party_id, round, exc)
                return metrics_bytes({})
        raise PartyError(f"{self.party_id} was asked for an unknown step {step!r}; upgrade this party's securefl")

    def signed_upload(self, round: int, model: bytes, upload: Envelope) -> bytes:
        """``upload``'s bytes, with this party's signed statement of it when aggregates are checked."""
        data = upload.to_bytes()
        if self.verifier is None:
            return data
        assert self.identity is not None  # __init__ refuses a verifier without an identity
        self._signed = Statement(self.verifier.context, upload.key_id, round, self.party_id, upload.weights[0],
                                 model, self.verifier.commitment(upload, data))
        return signed_upload_bytes(Signed.sign(self._signed, self.identity), data)

    def draw(self, round: int, payload: bytes) -> bytes:
        """Under ``verify_aggregate = "sampled"``: the block indices this party draws, unpredictably, for the
        aggregate whose digest ``payload`` names (it is fixed before the aggregator learns them), as a reply."""
        sampler = self.verifier.sampler if self.verifier is not None else None
        if sampler is None:
            raise PartyError(f"{self.party_id} was asked to draw blocks of an aggregate, but it does not run "
                             "crypto.verify_aggregate = 'sampled' for this scheme: every role must use the same "
                             "[crypto]")
        aggregate_digest, count = parse_challenge(payload)
        indices = sampler.draw(count)
        while len(self._drawn) >= 4:  # a few rounds' aggregates at most (a model and a share request overlap)
            del self._drawn[next(iter(self._drawn))]
        self._drawn[aggregate_digest] = (count, indices)
        log.debug("%s: round %d: drew %d of %d blocks to check", self.party_id, round, len(indices), count)
        return indices_bytes(indices)

    def _round_aggregate(self, round: int, payload: bytes) -> tuple[bytes, Envelope, Evidence | None]:
        """The message, aggregate and evidence of a ``consistency`` or ``share`` request, which must be of ``round``."""
        message, aggregate, evidence = parse_share_request(payload)
        if aggregate.round != round:
            raise PartyError(f"{self.party_id} was asked about the aggregate of round {round}, but it is of round "
                             f"{aggregate.round}: refused (an old or misrouted aggregate)")
        return message, aggregate, evidence

    def _capability(self, kind: type[C], step: str) -> C:
        offered = self.scheme.capability(kind)
        if offered is None:
            raise PartyError(f"{self.party_id} was asked for a {step!r} step, which the {self.scheme.name} scheme does "
                             "not have: the aggregator runs another scheme; every role must use the same [crypto]")
        return offered

    def initial_parameters(self) -> np.ndarray:
        """The trainer's starting point, checked (a flat vector of finite floats)."""
        initial = np.asarray(self.trainer.initial_parameters(), dtype=np.float64)
        if initial.ndim != 1 or initial.size == 0:
            raise PartyError(f"{self.party_id}: Trainer.initial_parameters must return a non-empty flat vector, "
                             f"got shape {initial.shape}; flatten the model's parameters into one array")
        return checked_fit(self.party_id, (initial, 1.0), initial.size)[0]

    def evaluate(self, model: GlobalModel) -> dict[str, float]:
        """The trainer's metrics of ``model`` as it would be released (the scheme's publication step)."""
        return checked_metrics(self.party_id, self.trainer.evaluate(self.open_model(model, publish=True)))

    def handle_round(self, round: int, model: bytes) -> bytes:
        """Train from the global model of ``round`` and return the protected update's bytes.

        Under differential privacy the party charges its own accountant first and raises
        :class:`~securefl.errors.BudgetExceededError` rather than release past its budget.
        A round answered before (by this process or, with a durable state, an earlier one,
        under any key set) raises :class:`~securefl.errors.ReplayError`.  The answer and the
        accountant's count are recorded in :attr:`state` before the update is returned.
        """
        self.state.check(round, self.key.key_id)
        if self.accountant is not None:
            self.accountant.charge(round)
        global_model = GlobalModel.from_bytes(model)
        length = global_model.length
        precompute = self.scheme.capability(Precompute)
        if self.weight is not None and precompute is not None:
            # data-independent work (e.g. DP noise) first, so that after training only the cheap part remains;
            # a weight that changes makes the scheme redo it
            precompute.prepare(self.key, length=length, weight=self.weight, round=round)
        params = self.open_model(global_model)
        update, self.weight = checked_fit(self.party_id, self.trainer.fit(params.copy(), round), length)
        binder = self.scheme.capability(BindsRound)
        if binder is not None:  # the scheme binds the model this party trained from into what it makes for the round
            binder.bind_round(self.key, round=round, context=global_model.digest)
        reply = self.signed_upload(round, global_model.digest,
                                    self.scheme.protect(self.key, update, weight=self.weight, round=round))
        charged = self.accountant.rounds_charged if self.accountant is not None else 0
        self.state.record(round, self.key.key_id, charged=charged)
        return reply
