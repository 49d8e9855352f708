"""A party: trains on its own rows and protects its update with its own key.

:meth:`Party.respond` is the whole of a party's side of the protocol, whatever
transport carries the bytes: a ``train`` request holds the global model and is
answered with the protected update; ``setup`` and ``share`` requests are the
scheme's own exchanges (key advertisements, decryption or unmasking shares);
an ``evaluate`` request asks for the metric of a released model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from crypto_backends.base import Scheme
from crypto_backends.keys import PartyKey
from securefl.core.messages import GlobalModel, metric_bytes, parse_share_request
from securefl.errors import PartyError, SecureFLError
from securefl.ml.data import Shard
from securefl.ml.models import ModelAdapter
from securefl.privacy import PrivacyAccountant

log = logging.getLogger("securefl.party")

Metric = Callable[[np.ndarray], float]


class Party:
    """One organisation's side of a round (transport-agnostic: bytes in, bytes out)."""

    def __init__(self, party_id: str, shard: Shard, adapter: ModelAdapter, scheme: Scheme, key: PartyKey,
                 accountant: PrivacyAccountant | None = None, metric: Metric | None = None) -> None:
        self.party_id, self.shard, self.adapter, self.scheme, self.key = party_id, shard, adapter, scheme, key
        self.accountant = accountant
        """This party's own privacy budget (differential privacy): it refuses to release past it, whoever asks."""
        self.metric = metric
        """The configured metric of a released model on this party's held-out rows (``None``: it does not evaluate)."""
        # the last sealed model opened: (its digest, the revealed weighted sum, its publication if made)
        self._opened: tuple[bytes, np.ndarray, np.ndarray | None] | None = None

    @property
    def weight(self) -> float:
        """This party's (public) fusion weight, as the model adapter defines it (FedAvg: its row count)."""
        return self.adapter.local_weight(self.shard.n)

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
            self._opened = (model.digest, self.scheme.reveal(self.key, aggregate), None)
        digest, total, published = self._opened
        if not publish:
            return self.adapter.fuse(total, aggregate.total_weight)
        if published is None:
            published = self.adapter.fuse(self.scheme.release(self.key, aggregate, total), aggregate.total_weight)
            self._opened = (digest, total, published)
        return published

    def published(self, model: GlobalModel) -> np.ndarray | None:
        """``model`` as this party already published it, if it did."""
        if self._opened is not None and self._opened[0] == model.digest:
            return self._opened[2]
        return None

    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        """This party's reply to one request of the round engine (see the module docstring)."""
        if step == "train":
            return self.handle_round(round, payload)
        if step == "setup":
            return self.scheme.setup_reply(self.key, round=round, step=stage, message=payload)
        if step == "share":
            message, aggregate = parse_share_request(payload)
            self.scheme.check_envelope(aggregate, self.key, kind="aggregate", round=round)
            return self.scheme.decryption_share(self.key, aggregate, message)
        if step == "evaluate":
            model = GlobalModel.from_bytes(payload)
            try:
                return metric_bytes(self.evaluate(model))
            except SecureFLError as exc:
                # e.g. a scheme's publication budget is spent: say "not measured" rather than leave the engine waiting
                log.warning("%s: cannot measure the model of round %d: %s", self.party_id, round, exc)
                return metric_bytes(None)
        raise PartyError(f"{self.party_id} was asked for an unknown step {step!r}; upgrade this party's securefl")

    def evaluate(self, model: GlobalModel) -> float:
        """The configured metric of ``model`` as it would be released (the scheme's publication step)."""
        if self.metric is None:
            raise PartyError(f"{self.party_id} has no held-out rows to evaluate on")
        return self.metric(self.open_model(model, publish=True))

    def handle_round(self, round: int, model: bytes) -> bytes:
        """Train from the global model of ``round`` and return the protected update's bytes.

        Under differential privacy the party charges its own accountant first and raises
        :class:`~securefl.errors.BudgetExceededError` rather than release past its budget.
        """
        if self.accountant is not None:
            self.accountant.charge(round)
        # data-independent work (e.g. DP noise) first, so that after training only the cheap part remains
        self.scheme.prepare(self.key, length=self.adapter.num_parameters, weight=self.weight, round=round)
        params = self.open_model(GlobalModel.from_bytes(model))
        update = self.adapter.fit_local(params, self.shard.X, self.shard.y)
        return self.scheme.protect(self.key, update, weight=self.weight, round=round).to_bytes()
