"""The key authority's inference-prevention policy (HybridAlpha's "inference module").

A function key lets the aggregator decrypt one weighted sum.  Three requests would
let it learn more than a fused update, and are refused with
:class:`~crypto_backends.errors.PolicyError` (and logged at WARNING on the logger
``crypto_backends.fe.policy``):

* fewer than ``min_parties`` non-zero weights: the "sum" of one party is its update;
* one party holding more than ``max_share`` of the total weight: the sum is then
  mostly that party's update;
* a second, different weight vector for a round that already has one: two sums
  over sets that differ by one party difference that party out.  Asking again for
  the same vector is allowed (it yields the same key).

The per-round record (:class:`Ledger`) lives in the authority's key material, so it
is exported with the key (``dump_key``) and survives a restart that reloads it.
What the policy does not stop: differencing *across* rounds (updates change from
round to round, which blurs but does not remove this), and collusion of the
aggregator with parties (their own updates subtract out of the sum).
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import threading
from collections.abc import Mapping

from ..errors import PolicyError

log = logging.getLogger(__name__)


def canonical(weights: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """The non-zero entries of a weight vector, sorted by party id."""
    return tuple(sorted((p, float(w)) for p, w in weights.items() if w != 0))


def digest(vector: tuple[tuple[str, float], ...]) -> bytes:
    h = hashlib.sha256(b"securefl/fe/v1/weights\x00")
    for party, weight in vector:
        h.update(party.encode() + b"\x00" + struct.pack(">d", weight))
    return h.digest()


class Ledger:
    """Which weight vector (by digest) each round's function key was issued for."""

    def __init__(self, entries: Mapping[int, bytes] | None = None) -> None:
        self._entries: dict[int, bytes] = dict(entries or {})
        self._lock = threading.Lock()

    def entries(self) -> dict[int, bytes]:
        with self._lock:
            return dict(self._entries)

    def claim(self, round: int, vector: tuple[tuple[str, float], ...]) -> None:
        """Record ``vector`` for ``round``; :class:`PolicyError` if the round has another one."""
        d = digest(vector)
        with self._lock:
            previous = self._entries.setdefault(round, d)
        if previous != d:
            refuse(
                round,
                "a function key for another weight vector was already issued for this round; two "
                "keys for one round would let the aggregator difference out a party",
            )


def check(weights: Mapping[str, float], *, round: int, min_parties: int, max_share: float) -> None:
    """Raise :class:`PolicyError` if the weight vector may single out a party."""
    nonzero = {p: float(w) for p, w in weights.items() if w != 0}
    if len(nonzero) < min_parties:
        refuse(
            round,
            f"the weight vector has {len(nonzero)} non-zero weight(s), the policy needs at least "
            f"{min_parties}: wait for more parties to answer or lower min_parties",
        )
    if not nonzero:
        refuse(round, "the weight vector has no non-zero weight")
    total = math.fsum(nonzero.values())
    party, largest = max(nonzero.items(), key=lambda item: item[1])
    if largest / total > max_share + 1e-12:
        refuse(
            round,
            f"party {party!r} would hold {largest / total:.3f} of the total weight, above the "
            f"policy's max_share {max_share}: rebalance the weights or raise max_share",
        )


def refuse(round: int, reason: str) -> None:
    log.warning("fe authority refused a function key for round %d: %s", round, reason)
    raise PolicyError(f"function key for round {round} refused: {reason}")
