"""A party: trains on its own rows and protects its update with its own key.

:meth:`Party.respond` is the whole of a party's side of the protocol, whatever
transport carries the bytes: a ``train`` request holds the global model and is
answered with the protected update; ``setup`` and ``share`` requests are the
scheme's own exchanges (key advertisements, decryption or unmasking shares);
an ``evaluate`` request asks for the metric of a released model.
"""

from __future__ import annotations

import hashlib
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
        self._opened: dict[bool, tuple[bytes, np.ndarray]] = {}  # publish? -> (model digest, vector)

    @property
    def weight(self) -> float:
        """This party's (public) fusion weight, as the model adapter defines it (FedAvg: its row count)."""
        return self.adapter.local_weight(self.shard.n)

    def open_model(self, model: GlobalModel, *, publish: bool = False) -> np.ndarray:
        """The global model as a vector, decrypting a sealed aggregate with this party's key.

        ``publish=True`` is for a model that leaves the key holders (e.g. for
        evaluation or release): the scheme may add flooding noise there.  Each
        kind of opening is kept for the last model, so a model is decrypted once
        for training and published at most once (a second, independently
        flooded publication of one aggregate would leak more than the first).
        """
        if model.vector is not None:
            return model.vector
        assert model.aggregate is not None
        digest = hashlib.sha256(model.to_bytes()).digest()
        cached = self._opened.get(publish)
        if cached is None or cached[0] != digest:
            reveal = self.scheme.publish if publish else self.scheme.reveal
            vector = self.adapter.fuse(reveal(self.key, model.aggregate), model.aggregate.total_weight)
            cached = self._opened[publish] = (digest, vector)
        return cached[1]

    def published(self, model: GlobalModel) -> np.ndarray | None:
        """``model`` as this party already published it, if it did."""
        cached = self._opened.get(True)
        digest = hashlib.sha256(model.to_bytes()).digest()
        return cached[1] if cached is not None and cached[0] == digest else None

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
