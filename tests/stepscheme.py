"""A test scheme that uses both declared protocol steps, so the engine's seam is proven before real schemes use it.

``relay-test`` (NOT secure: every party holds the one unmasking secret) works like this:

* setup, two stages every round: each party publishes a fresh nonce; the
  aggregator relays the list of all nonces to every party; each party answers
  with the digest of the list it got, and keeps it as the round's session.
  :meth:`setup_done` keeps the parties whose digest agrees with the majority
  (a misrouted or tampered relay drops its victim).  ``protect`` refuses a round
  whose setup this party did not complete.
* protect: ``weight * x + pad(K, round, party)``, pads from ChaCha20 under a key
  derived from the shared secret ``K`` with HMAC-SHA256, exact multiples of 2**-31.
* share exchange after combining: ``threshold`` contributors are needed; each
  returns ``K``; the aggregator checks every share against its commitment
  ``SHA-256(K)`` (a forged share is refused and its sender named) and removes
  the contributors' pads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from crypto_backends.base import (
    AggregatorKey,
    AuthorityKey,
    Envelope,
    Key,
    KeySet,
    PartyKey,
    Payload,
    RevealPlan,
    Role,
    SchemeParams,
)
from crypto_backends.capabilities import InteractiveSetup, ShareRequest, ShareReveal
from crypto_backends.errors import CryptoError, MalformedCiphertextError, ShareError
from crypto_backends.keys import FunctionKey
from crypto_backends.plaintext import PlainScheme
from tests.paths import REPO
from tests.plugins import entry_point

NAME = "relay-test"


@dataclass(frozen=True)
class RelayParams(SchemeParams):
    threshold: int = 2

    def security_bits(self) -> int:
        return 128  # a test double: its (absent) security is stated in the module docstring


def pad(secret: bytes, round: int, party: str, length: int) -> np.ndarray:
    """The mask of ``party`` in ``round``: exact multiples of 2**-31 in [-1, 1)."""
    key = hmac.new(secret, f"{round}:{party}".encode(), hashlib.sha256).digest()
    stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor().update(bytes(4 * length))
    return np.frombuffer(stream, dtype="<u4").astype(np.float64) * 2.0**-31 - 1.0


class RelayScheme(PlainScheme, InteractiveSetup, ShareReveal):
    name = NAME
    params_type = RelayParams  # type: ignore[assignment]  # plain's arithmetic, parameters of its own
    reveal_plan = RevealPlan.from_shares()
    threat_model = dataclasses.replace(PlainScheme.threat_model, hides_updates=True)

    def __init__(self, params: SchemeParams | None = None) -> None:
        super().__init__(params)
        self._sessions: dict[tuple[str, int], bytes] = {}  # (party, round) -> digest of the relayed nonces
        self._nonces: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()

    # --- keys: the parties share K, the aggregator holds SHA-256(K) ----------------------
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        plain = super().keygen(party_ids)
        secret = os.urandom(32)
        parties = {pid: PartyKey(self.name, plain.key_id, secret, holds_secret=True, owner=pid) for pid in party_ids}
        aggregator = AggregatorKey(self.name, plain.key_id, hashlib.sha256(secret).digest(), holds_secret=False)
        authority = AuthorityKey(self.name, plain.key_id, None, holds_secret=False)
        return KeySet(aggregator=aggregator, parties=parties, authority=authority, key_id=plain.key_id)

    def _material_to_bytes(self, key: Key) -> bytes:
        return key.unwrap(self.name) or b""

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        return bytes(data) or None

    # --- setup ---------------------------------------------------------------------------
    def setup_steps(self, round: int) -> int:
        return 2

    def setup_messages(self, key: AggregatorKey, *, round: int, step: int, parties: Sequence[str],
                       replies: Mapping[str, bytes]) -> Mapping[str, bytes]:
        if step == 0:
            return {p: b"nonce please" for p in parties}
        relayed = json.dumps({p: replies[p].hex() for p in sorted(replies)}).encode()
        return dict.fromkeys(replies, relayed)

    def setup_reply(self, key: PartyKey, *, round: int, step: int, message: bytes) -> bytes:
        owner = str(key.owner)
        if step == 0:
            nonce = os.urandom(16)
            with self._lock:
                self._nonces[(owner, round)] = nonce
            return nonce
        nonces = json.loads(message)
        with self._lock:
            mine = self._nonces.pop((owner, round), None)
        if mine is None or nonces.get(owner) != mine.hex():
            raise ShareError(f"the relayed nonces of round {round} do not hold {owner}'s own nonce")
        digest = hashlib.sha256(message).digest()
        with self._lock:
            self._sessions[(owner, round)] = digest
        return digest

    def setup_done(self, key: AggregatorKey, *, round: int, replies: Mapping[str, bytes]) -> tuple[str, ...]:
        common, _ = Counter(replies.values()).most_common(1)[0]
        return tuple(sorted(p for p, d in replies.items() if d == common))

    def session(self, party: str, round: int) -> bytes | None:
        return self._sessions.get((party, round))

    # --- the round -----------------------------------------------------------------------
    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        owner = str(key.owner)
        if self.session(owner, round) is None:
            raise CryptoError(f"{owner} has not completed the setup of round {round}")
        masked: np.ndarray = x * weight + pad(key.unwrap(self.name), round, owner, x.size)
        return masked.data

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        raise CryptoError("relay-test reveals only from the contributors' shares")

    def share_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        needed = min(self.params.threshold, len(aggregate.parties))  # type: ignore[attr-defined]
        return ShareRequest(parties=aggregate.parties, needed=needed, message=b"unmask")

    def decryption_share(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        if message != b"unmask":
            raise MalformedCiphertextError("unexpected share request")
        return key.unwrap(self.name)  # type: ignore[no-any-return]

    def check_share(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> None:
        if not hmac.compare_digest(hashlib.sha256(share).digest(), key.unwrap(self.name)):
            raise ShareError(f"the share of {party} does not match the key set's commitment")

    def reveal_shares(self, key: AggregatorKey, aggregate: Envelope, shares: Mapping[str, bytes]) -> np.ndarray:
        for party, share in shares.items():
            self.check_share(key, aggregate, party, share)
        secret = next(iter(shares.values()))
        self._check_envelope(aggregate, key, kind="aggregate")
        total = self._vector(aggregate).copy()
        for party in aggregate.parties:
            total -= pad(secret, aggregate.round, party, aggregate.length)
        return total


Plugin = RelayScheme


@contextlib.contextmanager
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register ``relay-test`` as a plug-in, for this process and for the role processes it starts."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), str(REPO),
                                                                   os.environ.get("PYTHONPATH", "")])))
    with entry_point(tmp_path, monkeypatch, NAME, "tests.stepscheme:RelayScheme"):
        yield
