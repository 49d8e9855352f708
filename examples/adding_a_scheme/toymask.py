"""``toymask``: additive masking under one pad key every party holds -- a complete scheme in one file.

A party sends ``encode(w * x) + pad(K, round, party)`` modulo 2**64, where ``encode``
is fixed point with ``scale_bits`` fractional bits and the pad is ChaCha20's keystream
under a key derived from the shared ``K`` for that round and party.  The aggregator
adds the uploads modulo 2**64 and passes the sum on sealed; a party removes the pads
of the contributors the aggregate names.  A teaching example, not a recommendation:
the aggregator alone learns nothing, but any one party together with it learns every
update, and a party that protects twice in one round reuses its pad.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from crypto_backends.base import (
    AggregatorKey,
    Declarations,
    Envelope,
    FunctionKey,
    Key,
    KeySet,
    PartyKey,
    Payload,
    RevealPlan,
    Role,
    Scheme,
    SchemeParams,
    ThreatModel,
)
from crypto_backends.errors import InvalidInputError, InvalidParameterError, MalformedCiphertextError
from crypto_backends.randomness import random_bytes

BOUND = 2.0**20  # |weight * value| must stay below this, so that encodings never wrap


@dataclass(frozen=True)
class ToyMaskParams(SchemeParams):
    """``scale_bits``: fractional bits of the fixed-point encoding (8 to 40)."""

    scale_bits: int = 32

    def validate(self) -> None:
        if not 8 <= self.scale_bits <= 40:
            raise InvalidParameterError(f"toymask scale_bits must be 8 to 40, got {self.scale_bits}")

    def security_bits(self) -> int:
        return 128  # the pads: ChaCha20 under HMAC-SHA256-derived 256-bit keys


class ToyMask(Scheme):
    """Additive masking with one pad key shared by the parties (see the module docstring)."""

    name = "toymask"
    params_type = ToyMaskParams
    params: ToyMaskParams
    reveal_plan = RevealPlan.at_parties()
    threat_model = ThreatModel(
        key_holders={"party": "the one pad key K", "aggregator": "nothing secret", "authority": "not used"},
        aggregator_learns="only the weighted sum, which it cannot open",
        party_learns="the fused model; with the aggregator's uploads, every update (all parties hold K)",
        collusion="the aggregator with any one party learns every party's update",
        dropouts="any number of parties may drop; the sum is over those the aggregate names",
        not_protected="a party that protects twice in one round reuses its pad",
        malicious_aggregator="only the weighted sum of at least the quorum's signed updates from one model",
        malicious_aggregator_unverified="any one party's update, sent back to the parties as the aggregate",
    )

    def tolerance(self, weights: Sequence[float]) -> float:
        # each encoding rounds by at most half a step; the mean divides their sum by the total weight
        return float(len(weights) * 2.0 ** -(self.params.scale_bits + 1) / sum(weights))

    @property
    def declarations(self) -> Declarations:
        # optional: a known payload size is checked and reported (bench, compare, the contract suite)
        return dataclasses.replace(super().declarations, payload_bytes=lambda length: 8 * length)

    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        key_id, pad_key = random_bytes(16), random_bytes(32)
        return KeySet(
            aggregator=AggregatorKey(self.name, key_id, None, holds_secret=False),
            parties={p: PartyKey(self.name, key_id, pad_key, holds_secret=True, owner=p) for p in party_ids},
            key_id=key_id,
        )

    def _pad(self, pad_key: bytes, round: int, party: str, length: int) -> np.ndarray:
        derived = hmac.digest(pad_key, f"{round}:{party}".encode(), hashlib.sha256)
        stream = Cipher(algorithms.ChaCha20(derived, bytes(16)), mode=None).encryptor()
        return np.frombuffer(stream.update(bytes(8 * length)), dtype="<u8")

    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        scaled = x * weight
        if np.max(np.abs(scaled), initial=0.0) >= BOUND:
            raise InvalidInputError(f"toymask encodes |weight * value| below {BOUND:g}; scale the update down")
        encoded = np.rint(scaled * 2.0**self.params.scale_bits).astype("<i8").view("<u8")
        assert key.owner is not None  # the base class checked that a party key names its party
        masked: np.ndarray = encoded + self._pad(key.unwrap(self.name), round, key.owner, x.size)
        return masked.data

    def _combine(self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int,
                 weights: Sequence[float]) -> Payload:
        total = np.zeros(length, dtype="<u8")
        for env in updates:  # uploads and partial aggregates alike: uint64 addition wraps modulo 2**64
            total += self._words(env)
        return total.data

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        total = self._words(aggregate).copy()
        for party in aggregate.parties:
            total -= self._pad(key.unwrap(self.name), aggregate.round, party, aggregate.length)
        total_sum: np.ndarray = total.view("<i8") / 2.0**self.params.scale_bits
        return total_sum

    def _words(self, env: Envelope) -> np.ndarray:
        if memoryview(env.payload).nbytes != 8 * env.length:  # a truncated or padded payload is refused, typed
            raise MalformedCiphertextError(f"a toymask payload of {env.length} values holds {8 * env.length} bytes")
        return np.frombuffer(env.payload, dtype="<u8")

    def _material_to_bytes(self, key: Key) -> bytes:
        material = key.unwrap(self.name)
        return json.dumps(None if material is None else material.hex()).encode()

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        material = json.loads(data)
        return None if material is None else bytes.fromhex(material)
