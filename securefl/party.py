"""A party: trains on its own rows and protects its update with its own key."""

from __future__ import annotations

import numpy as np

from crypto_backends.base import Scheme
from crypto_backends.envelope import Envelope
from crypto_backends.keys import PartyKey

from .data import Shard
from .fusion import mean_from_sum
from .messages import GlobalModel
from .models import ModelAdapter


class Party:
    """One organisation's side of a round (transport-agnostic: bytes in, bytes out)."""

    def __init__(self, party_id: str, shard: Shard, adapter: ModelAdapter, scheme: Scheme, key: PartyKey) -> None:
        self.party_id, self.shard, self.adapter, self.scheme, self.key = party_id, shard, adapter, scheme, key

    @property
    def weight(self) -> float:
        """FedAvg weight: the number of local training rows (public)."""
        return float(self.shard.n)

    def open_model(self, model: GlobalModel, *, publish: bool = False) -> np.ndarray:
        """The global model as a vector, decrypting a sealed aggregate with this party's key.

        ``publish=True`` is for a model that leaves the key holders (e.g. for
        evaluation or release): the scheme may add flooding noise there.
        """
        if model.vector is not None:
            return model.vector
        aggregate = Envelope.from_bytes(model.sealed)  # type: ignore[arg-type]
        reveal = self.scheme.publish if publish else self.scheme.reveal
        return mean_from_sum(reveal(self.key, aggregate), aggregate.total_weight)

    def handle_round(self, round: int, model: bytes) -> bytes:
        """Train from the global model of ``round`` and return the protected update's bytes."""
        params = self.open_model(GlobalModel.from_bytes(model))
        update = self.adapter.fit_local(params, self.shard.X, self.shard.y)
        return self.scheme.protect(self.key, update, weight=self.weight, round=round).to_bytes()
