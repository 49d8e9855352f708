"""What the roles send each other, as bytes.  The same bytes travel in-process and over a network.

The global model the aggregator hands to parties is either ``open`` (a float64
vector: the scheme revealed at the aggregator) or ``sealed`` (the aggregate
envelope: only parties can open it).  Framing: one tag byte, then the body.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crypto_backends.envelope import Envelope
from crypto_backends.errors import MalformedCiphertextError

_OPEN, _SEALED = b"O", b"S"
_F8 = np.dtype("<f8")


@dataclass(frozen=True)
class GlobalModel:
    """The model a round starts from."""

    vector: np.ndarray | None = None
    sealed: bytes | None = None

    @classmethod
    def open(cls, vector: np.ndarray) -> GlobalModel:
        return cls(vector=np.asarray(vector, dtype=_F8))

    @classmethod
    def of_aggregate(cls, aggregate: Envelope) -> GlobalModel:
        return cls(sealed=aggregate.to_bytes())

    @property
    def is_sealed(self) -> bool:
        return self.sealed is not None

    def to_bytes(self) -> bytes:
        if self.sealed is not None:
            return _SEALED + self.sealed
        assert self.vector is not None
        return _OPEN + self.vector.astype(_F8, copy=False).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> GlobalModel:
        tag, body = data[:1], data[1:]
        if tag == _SEALED:
            Envelope.from_bytes(body)  # validate framing now, not at first use
            return cls(sealed=bytes(body))
        if tag == _OPEN and len(body) % 8 == 0:
            vec = np.frombuffer(body, dtype=_F8).copy()
            if not np.isfinite(vec).all():
                raise MalformedCiphertextError("global model holds non-finite values")
            return cls(vector=vec)
        raise MalformedCiphertextError("not a securefl global-model message")
