"""A party: trains on its own rows and protects its update with its own key."""

from __future__ import annotations

import numpy as np

from crypto_backends.base import Scheme
from crypto_backends.envelope import Envelope
from crypto_backends.keys import PartyKey

from securefl.ml.data import Shard
from securefl.core.messages import GlobalModel
from securefl.ml.models import ModelAdapter
from securefl.privacy import PrivacyAccountant


class Party:
    """One organisation's side of a round (transport-agnostic: bytes in, bytes out)."""

    def __init__(self, party_id: str, shard: Shard, adapter: ModelAdapter, scheme: Scheme, key: PartyKey,
                 accountant: PrivacyAccountant | None = None) -> None:
        self.party_id, self.shard, self.adapter, self.scheme, self.key = party_id, shard, adapter, scheme, key
        self.accountant = accountant
        """This party's own privacy budget (differential privacy): it refuses to release past it, whoever asks."""

    @property
    def weight(self) -> float:
        """This party's (public) fusion weight, as the model adapter defines it (FedAvg: its row count)."""
        return self.adapter.local_weight(self.shard.n)

    def open_model(self, model: GlobalModel, *, publish: bool = False) -> np.ndarray:
        """The global model as a vector, decrypting a sealed aggregate with this party's key.

        ``publish=True`` is for a model that leaves the key holders (e.g. for
        evaluation or release): the scheme may add flooding noise there.
        """
        if model.vector is not None:
            return model.vector
        aggregate = Envelope.from_bytes(model.sealed)  # type: ignore[arg-type]
        reveal = self.scheme.publish if publish else self.scheme.reveal
        return self.adapter.fuse(reveal(self.key, aggregate), aggregate.total_weight)

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
