"""The key authority's inference-prevention policy (HybridAlpha's "inference module").

A function key lets the aggregator decrypt one weighted sum.  These requests would
let it learn more than a fused update, and are refused with
:class:`~crypto_backends.errors.PolicyError` (and logged at WARNING on the logger
``crypto_backends.fe.policy``):

* fewer than ``min_parties`` non-zero weights: the "sum" of one party is its update;
* one party holding more than ``max_share`` of the total weight: the sum is then
  mostly that party's update;
* a second, different weight vector for a round that already has one: two sums
  over sets that differ by one party difference that party out.  Asking again for
  the same vector is allowed (it yields the same key);
* a key for a round that already had one under *another key set*: a restarted
  authority that made new keys (or a second key set for the same federation) would
  otherwise buy a second sum of the same round's inputs over another set;
* a contributor set that differs from the set of another round by fewer than
  ``min_changed`` parties (the symmetric difference is non-empty but smaller): the
  sums of consecutive rounds are of nearly the same inputs once the model settles,
  so their difference is nearly the update of the party that joined or left.
  Identical sets are allowed: each sum is then of other inputs (the model moved),
  and no party is singled out.  ``min_changed <= 1`` turns this check off, which
  the federation does when differential privacy is on (the noise of each released
  sum covers what differencing two of them gives, and is accounted for).

The record (:class:`Ledger`) holds, per round, the key set, the digest of the weight
vector and the contributor set.  It lives in the authority's key material (exported
with ``dump_key``) and can be exported on its own (:meth:`Ledger.to_bytes`) so that
the authority role keeps it per *federation* across key sets, durably.

What the policy does not stop: differencing two rounds whose sets differ by
``min_changed`` or more parties (the difference is then a sum of those parties'
updates, and of the model's change), collusion of the aggregator with parties
(their own updates subtract out of the sum), and a sum over a set that is the union
of two earlier ones minus their intersection (linear combinations of three or more
sums are not tracked).
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..envelope import check_party_id
from ..errors import MalformedCiphertextError, PolicyError

log = logging.getLogger(__name__)


def canonical(weights: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """The non-zero entries of a weight vector, sorted by party id."""
    return tuple(sorted((p, float(w)) for p, w in weights.items() if w != 0))


def digest(vector: tuple[tuple[str, float], ...]) -> bytes:
    """The domain-separated SHA-256 of a weight vector (its parties and weights in order)."""
    h = hashlib.sha256(b"securefl/fe/v1/weights\x00")
    for party, weight in vector:
        h.update(party.encode() + b"\x00" + struct.pack(">d", weight))
    return h.digest()


@dataclass(frozen=True)
class Grant:
    """One round's function key: under which key set, for which weight vector, over which parties."""

    key_id: bytes
    digest: bytes
    parties: frozenset[str]


class Ledger:
    """Every function key issued (see the module docstring): round -> :class:`Grant`."""

    def __init__(self, entries: Mapping[int, Grant] | None = None) -> None:
        self._entries: dict[int, Grant] = dict(entries or {})
        self._lock = threading.Lock()

    def entries(self) -> dict[int, Grant]:
        """A copy of the grants recorded so far, by round."""
        with self._lock:
            return dict(self._entries)

    def claim(self, round: int, vector: tuple[tuple[str, float], ...], *, key_id: bytes, min_changed: int) -> None:
        """Record ``vector`` for ``round`` under key set ``key_id``, or raise :class:`PolicyError` (logged)."""
        grant = Grant(bytes(key_id), digest(vector), frozenset(p for p, _ in vector))
        with self._lock:
            previous = self._entries.get(round)
            if previous is None:
                close = _too_close(grant.parties, self._entries, min_changed)
                if close is None:
                    self._entries[round] = grant
        if previous is not None:
            if previous.key_id != grant.key_id:
                refuse(
                    round,
                    "this federation already had a function key for this round under another key set "
                    f"({previous.key_id.hex()[:16]}); a second key set must not buy a second sum of the same "
                    "round. Resume from the next round, or start a new federation (a new federation.seed)",
                )
            if previous.digest != grant.digest:
                refuse(
                    round,
                    "a function key for another weight vector was already issued for this round; two "
                    "keys for one round would let the aggregator difference out a party",
                )
        elif close is not None:
            other, changed = close
            refuse(
                round,
                f"its contributors differ from round {other}'s only by {', '.join(sorted(changed))} "
                f"({len(changed)} < min_parties_changed = {min_changed}): the difference of the two sums would "
                "be close to that party's update. Wait for the party to answer again, or turn on differential "
                "privacy (privacy.mode)",
            )

    def merge(self, other: Ledger) -> None:
        """Adopt ``other``'s grants (a federation's durable record); its entries win over this key set's own."""
        with self._lock:
            self._entries.update(other.entries())

    def to_bytes(self) -> bytes:
        """The record in a fixed binary form (read back by :meth:`from_bytes`)."""
        rows = []
        for r, g in sorted(self.entries().items()):
            rows.append(struct.pack(">QB", r, len(g.key_id)) + g.key_id + g.digest + names_to_bytes(sorted(g.parties)))
        return struct.pack(">I", len(rows)) + b"".join(rows)

    @classmethod
    def from_bytes(cls, data: bytes, pos: int = 0) -> tuple[Ledger, int]:
        """A record and the offset after it; :class:`MalformedCiphertextError` if it is garbled."""
        try:
            (rows,) = struct.unpack_from(">I", data, pos)
            pos += 4
            entries: dict[int, Grant] = {}
            for _ in range(rows):
                r, klen = struct.unpack_from(">QB", data, pos)
                pos += 9
                key_id, d = data[pos : pos + klen], data[pos + klen : pos + klen + 32]
                pos += klen + 32
                names, pos = names_from_bytes(data, pos)
                if len(key_id) != klen or len(d) != 32 or r in entries:
                    raise MalformedCiphertextError("truncated or repeated policy record")
                entries[r] = Grant(bytes(key_id), bytes(d), frozenset(names))
        except (struct.error, UnicodeDecodeError) as exc:
            raise MalformedCiphertextError(f"garbled fe policy record: {exc}") from None
        return cls(entries), pos


def names_to_bytes(names: Sequence[str]) -> bytes:
    """Party ids as a 4-byte count, then each as a 2-byte length and its UTF-8 bytes."""
    return struct.pack(">I", len(names)) + b"".join(struct.pack(">H", len(n.encode())) + n.encode() for n in names)


def names_from_bytes(data: bytes, pos: int) -> tuple[list[str], int]:
    """Inverse of :func:`names_to_bytes` at ``pos``: the (checked) ids and the offset after them."""
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    names = []
    for _ in range(count):
        (n,) = struct.unpack_from(">H", data, pos)
        names.append(check_party_id(data[pos + 2 : pos + 2 + n].decode()))
        pos += 2 + n
    return names, pos


def _too_close(parties: frozenset[str], entries: Mapping[int, Grant], min_changed: int) -> tuple[int, set[str]] | None:
    """The first recorded round whose contributors differ from ``parties`` by 1 .. min_changed - 1 parties."""
    for other, g in sorted(entries.items()):
        changed = set(parties ^ g.parties)
        if 0 < len(changed) < min_changed:
            return other, changed
    return None


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
    """Log the refusal of round ``round``'s function key and raise ``PolicyError`` with ``reason``."""
    log.warning("fe authority refused a function key for round %d: %s", round, reason)
    raise PolicyError(f"function key for round {round} refused: {reason}")
