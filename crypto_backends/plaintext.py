"""The ``plain`` scheme: no protection at all, the baseline every other scheme is measured against.

Parties send ``weight * update`` as little-endian float64; the aggregator sums.
The aggregator therefore sees every party's update.  Keys carry no secret; the
key set only has a random fingerprint so that updates of two federations cannot
be mixed by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import (
    Accumulator,
    AggregatorKey,
    Envelope,
    Key,
    KeySet,
    PartyKey,
    Payload,
    RevealSite,
    Role,
    Scheme,
    SchemeParams,
    ThreatModel,
)
from .envelope import check_party_id
from .errors import LengthMismatchError, MalformedCiphertextError
from .keys import AuthorityKey, FunctionKey
from .randomness import random_bytes

_F8 = np.dtype("<f8")


@dataclass(frozen=True)
class PlainParams(SchemeParams):
    """``plain`` has no parameters; it offers no confidentiality, so no security level applies."""

    def security_bits(self) -> int:
        # Nothing is encrypted; report the minimum so the insecure-parameter guard
        # does not fire for a scheme whose lack of protection is its stated purpose.
        return 128


class PlainScheme(Scheme):
    """Unprotected float64 weighted sum (see the module docstring)."""

    name = "plain"
    params_type = PlainParams
    reveal_site = RevealSite.AGGREGATOR
    reveal_roles = (PartyKey, AggregatorKey, AuthorityKey)  # nothing is secret: any role may read the sum
    hides_updates = False
    threat_model = ThreatModel(
        key_holders={"party": "nothing secret", "aggregator": "nothing secret", "authority": "not used"},
        aggregator_learns="every party's weighted update, in the clear",
        party_learns="the fused model",
        collusion="nothing beyond what the aggregator already sees alone",
        dropouts="any number of parties may drop; the mean is over those that answered",
        not_protected="everything: updates are visible to the aggregator and to anyone on the wire without TLS",
    )

    def tolerance(self, weights: Sequence[float]) -> float:
        return 1e-9

    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        key_id = random_bytes(16)
        parties = {
            pid: PartyKey(self.name, key_id, None, holds_secret=False, owner=check_party_id(pid))
            for pid in party_ids
        }
        return KeySet(
            aggregator=AggregatorKey(self.name, key_id, None, holds_secret=False),
            parties=parties,
            authority=AuthorityKey(self.name, key_id, None, holds_secret=False),
            key_id=key_id,
        )

    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        scaled: np.ndarray = np.multiply(x, weight, dtype=_F8)
        return scaled.data

    def _combine(
        self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int, weights: Sequence[float]
    ) -> Payload:
        total = np.zeros(length, dtype=_F8)
        for env in updates:
            np.add(total, self._vector(env), out=total)
        return total.data

    def accumulator(self, key: AggregatorKey, *, round: int) -> Accumulator:
        return _PlainAccumulator(self, key, round=round)

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        return self._vector(aggregate).copy()

    def _vector(self, env: Envelope) -> np.ndarray:
        nbytes = memoryview(env.payload).nbytes
        if nbytes != env.length * _F8.itemsize:
            cls = MalformedCiphertextError if nbytes % _F8.itemsize else LengthMismatchError
            raise cls(f"payload holds {nbytes} bytes, expected {env.length * 8} for {env.length} float64 values")
        vec = np.frombuffer(env.payload, dtype=_F8)
        if not np.isfinite(vec).all():
            raise MalformedCiphertextError("payload holds non-finite values")
        return vec

    def _material_to_bytes(self, key: Key) -> bytes:
        return b""

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        if data:
            raise MalformedCiphertextError("plain keys carry no material")
        return None


class _PlainAccumulator(Accumulator):
    """One float64 running sum, added to in place: memory one model, whatever the number of parties."""

    scheme: PlainScheme
    _total: np.ndarray | None = None

    def _fold(self, update: Envelope, weights: Sequence[float]) -> None:
        vec = self.scheme._vector(update)  # raises for a bad payload before anything changes
        if self._total is None:
            self._total = vec.copy()
        else:
            np.add(self._total, vec, out=self._total)

    def _payload(self) -> Payload:
        assert self._total is not None
        return self._total.data
