"""The ``plain`` scheme: no protection at all, the baseline every other scheme is measured against.

Parties send ``weight * update`` as little-endian float64; the aggregator sums.
The aggregator therefore sees every party's update.  Keys carry no secret; the
key set only has a random fingerprint so that updates of two federations cannot
be mixed by mistake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import (
    Accumulator,
    AggregatorKey,
    Declarations,
    Envelope,
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
from .envelope import Kind, check_party_id
from .errors import CryptoError, InvalidParameterError, MalformedCiphertextError, MismatchError
from .keys import AuthorityKey, FunctionKey
from .randomness import random_bytes

_F8 = np.dtype("<f8")


@dataclass(frozen=True)
class PlainParams(SchemeParams):
    """``plain`` offers no confidentiality, so no security level applies.

    ``exact_sum`` (default true): the streaming aggregate keeps the exact rounding error
    of its running sum beside it, so the fused model is the same to the bit whatever
    order the uploads arrive in (two models of state).  False keeps the running sum
    alone (one model): the aggregator needs one model less, and the fused model's last
    bits then depend on the arrival order, so two runs of one seed (or the threads and
    Ray engines) can drift apart in training.
    """

    exact_sum: bool = True

    def validate(self) -> None:
        """Raise :class:`InvalidParameterError` unless ``exact_sum`` is a ``bool``."""
        if not isinstance(self.exact_sum, bool):
            raise InvalidParameterError(f"plain exact_sum must be true or false, got {self.exact_sum!r}")

    def security_bits(self) -> int:
        """128, by convention only: nothing is encrypted (so the insecure-parameter guard stays quiet)."""
        # Nothing is encrypted; report the minimum so the insecure-parameter guard
        # does not fire for a scheme whose lack of protection is its stated purpose.
        return 128


class PlainScheme(Scheme):
    """Unprotected float64 weighted sum (see the module docstring)."""

    name = "plain"
    params_type = PlainParams
    reveal_plan = RevealPlan.at_aggregator(PartyKey, AggregatorKey, AuthorityKey)  # nothing secret: any role reads
    threat_model = ThreatModel(
        key_holders={"party": "nothing secret", "aggregator": "nothing secret", "authority": "not used"},
        aggregator_learns="every party's weighted update, in the clear",
        party_learns="the fused model",
        collusion="nothing beyond what the aggregator already sees alone",
        dropouts="any number of parties may drop; the mean is over those that answered",
        not_protected="everything: updates are visible to the aggregator and to anyone on the wire without TLS",
        malicious_aggregator="every party's update, in the clear: nothing is hidden from any aggregator",
        malicious_aggregator_unverified="the same: every party's update, in the clear",
        hides_updates=False,
    )

    def tolerance(self, weights: Sequence[float]) -> float:
        """A fixed ``1e-9``: float64 sums of bounded values, whatever the weights."""
        return 1e-9

    @property
    def declarations(self) -> Declarations:
        """The default declarations, with the payload size known: 8 bytes (one float64) per value."""
        return dataclasses.replace(super().declarations,
                                   payload_bytes=self._payload_bytes)

    def _payload_bytes(self, length: int) -> int:
        return length * _F8.itemsize

    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """Keys with no material (one per party, the aggregator's, the authority's) under a random 16-byte key id.

        Raises as :func:`~crypto_backends.envelope.check_party_id` does for an invalid party id.
        """
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
        """The in-place float64 sum: with its exact rounding error (``exact_sum``, the default), or alone.

        Only the former gives a fused model independent of the uploads' arrival order.
        """
        # a subclass may bring parameters of its own (without the field): exact, as plain's default
        if not getattr(self.params, "exact_sum", True):
            return _RunningSum(self, key, round=round)
        return _PlainAccumulator(self, key, round=round)

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        return self._vector(aggregate).copy()

    def _check_envelope(
        self,
        env: Envelope,
        key: Key,
        *,
        kind: Kind,
        round: int | None = None,
        length: int | None = None,
    ) -> None:
        """The header checks of every scheme, and the payload's: its size and that every value is finite.

        The payload is the update itself, so it can be checked when it arrives (before the upload is
        acknowledged), not only when combining: a NaN or infinite value is refused at once.
        """
        super()._check_envelope(env, key, kind=kind, round=round, length=length)
        self._vector(env)

    def _vector(self, env: Envelope) -> np.ndarray:
        nbytes = memoryview(env.payload).nbytes
        if nbytes != env.length * _F8.itemsize:
            message = f"payload holds {nbytes} bytes, expected {env.length * 8} for {env.length} float64 values"
            if nbytes % _F8.itemsize:
                raise MalformedCiphertextError(message)
            raise MismatchError("length", message)
        vec = np.frombuffer(env.payload, dtype=_F8)
        block = 1 << 16  # checked in blocks: no model-sized temporary while an aggregator folds
        if not all(np.isfinite(vec[a : a + block]).all() for a in range(0, vec.size, block)):
            raise MalformedCiphertextError("payload holds non-finite values")
        return vec

    def _material_to_bytes(self, key: Key) -> bytes:
        return b""

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        if data:
            raise MalformedCiphertextError("plain keys carry no material")
        return None


class _RunningSum(Accumulator):
    """``exact_sum = false``: the float64 running sum alone, added to in place (one model of state).

    The result is the sum in arrival order, so its last bits depend on that order.
    """

    scheme: PlainScheme
    _total: np.ndarray | None = None
    _done = False

    def _checked(self, update: Envelope) -> np.ndarray:
        if self._done:
            raise CryptoError("this accumulator's result was taken; start a new one for more updates")
        return self.scheme._vector(update)  # raises for a bad payload before anything changes

    def _fold(self, update: Envelope, weights: Sequence[float]) -> None:
        vec = self._checked(update)
        if self._total is None:
            self._total = vec.copy()
        else:
            np.add(self._total, vec, out=self._total)

    def _payload(self) -> Payload:
        assert self._total is not None
        self._done = True
        return self._total.data


class _PlainAccumulator(_RunningSum):
    """A running float64 sum with its exact rounding error (Knuth's TwoSum), added to in place.

    Why the error term: the aggregator folds uploads in arrival order, and plain
    float addition would make the fused model depend on that order in its last
    bits, which training then amplifies (two runs of one seed would drift apart).
    ``sum + error`` is the exact sum up to the rounding of the error term itself,
    so the rounded result is the correctly rounded sum, whatever the order, except
    when the exact sum lies within about ``n**2 * 2**-53`` ulp of a rounding
    midpoint.  Memory: two models (sum and error), folded in blocks.
    """

    _BLOCK = 1 << 13  # temporaries of a few blocks, not of a model
    _error: np.ndarray | None = None

    def _fold(self, update: Envelope, weights: Sequence[float]) -> None:
        vec = self._checked(update)
        if self._total is None or self._error is None:
            self._total, self._error = vec.copy(), np.zeros_like(vec)
            return
        total, error = self._total, self._error
        for a in range(0, vec.size, self._BLOCK):
            s, x = total[a : a + self._BLOCK], vec[a : a + self._BLOCK]
            t = s + x
            back = t - s
            error[a : a + self._BLOCK] += (s - (t - back)) + (x - back)  # TwoSum: s + x == t + e exactly
            s[...] = t

    def _payload(self) -> Payload:
        assert self._total is not None and self._error is not None
        if not self._done:
            self._total += self._error  # in place: no third model
            self._done = True
        return self._total.data
