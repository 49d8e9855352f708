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
* a weight vector that, with the vectors granted in the policy window (``window``
  rounds holding this one; 0, the default, is the whole run), spans a vector that is
  non-zero on fewer than ``min_changed`` parties.  Counting each party's update as
  the same in every round of the window (the conservative case: once the model
  settles, updates barely move, and the aggregator knows every global model, so it
  can remove the drift between rounds), the aggregator can compute exactly the
  combinations ``sum_i v_i x_i`` for ``v`` in that span: with ``v`` on one party, its
  update.  This covers the difference of two rounds over ``S`` and ``S - {p}`` with
  the same weights, with scaled weights, and any combination of more rounds (sets
  all / all - {4,5} / all - {3,5} / all - {3,4} differ pairwise by two parties, yet
  ``((A - B) + (C - D)) / 2`` is party 4's update: the fourth key is refused).
  A vector already in the span (the same contributors and weights again) never
  adds anything.  The check is exact (rational arithmetic, :mod:`.span`): for
  ``min_changed`` 2 or 3 always, for larger values while the search stays within
  its budget; beyond it the key is refused (sound, never a guess).  ``min_changed
  <= 1`` turns it off, which the federation does when differential privacy is on
  (the noise of each released sum covers what combining them gives, and is
  accounted for).

The record (:class:`Ledger`) holds, per round, the key set and the whole weight
vector (what the span check needs, so that an authority that adopts it refuses
exactly what the one that wrote it would).  It lives in the authority's key material
(exported with ``dump_key``) and can be exported on its own (:meth:`Ledger.to_bytes`)
so that the authority role keeps it per *federation* across key sets, durably.

What the policy does not stop: combinations that leave ``min_changed`` or more
parties (with the default 2, a sum of two parties' updates, which reveals each only
together with the other), combinations of rounds further apart than the window
(there the policy relies on the updates having changed), and collusion of the
aggregator with parties (their own updates subtract out of the sum).
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
from . import span

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
    """One round's function key: under which key set, for which weight vector (canonical, see :func:`canonical`)."""

    key_id: bytes
    vector: tuple[tuple[str, float], ...]

    @property
    def digest(self) -> bytes:
        """The weight vector's digest (:func:`digest`)."""
        return digest(self.vector)

    @property
    def parties(self) -> frozenset[str]:
        """The contributors: the parties of non-zero weight."""
        return frozenset(p for p, _ in self.vector)


RECORD_MAGIC = b"FEP\x02"  # the record with weight vectors; the first format (digests only) had no tag


class Ledger:
    """Every function key issued (see the module docstring): round -> :class:`Grant`."""

    def __init__(self, entries: Mapping[int, Grant] | None = None) -> None:
        self._entries: dict[int, Grant] = dict(entries or {})
        self._lock = threading.Lock()
        self._whole: span.Echelon | None = None  # the span of every grant (window 0), built when first needed

    def entries(self) -> dict[int, Grant]:
        """A copy of the grants recorded so far, by round."""
        with self._lock:
            return dict(self._entries)

    def claim(
        self, round: int, vector: tuple[tuple[str, float], ...], *, key_id: bytes, min_changed: int, window: int = 0
    ) -> None:
        """Record ``vector`` for ``round`` under key set ``key_id``, or raise :class:`PolicyError` (logged).

        ``min_changed``: no vector of the span of this grant and the grants in a window
        of ``window`` rounds around it (0: every round) may be non-zero on fewer parties.
        """
        grant = Grant(bytes(key_id), vector)
        with self._lock:  # one claim at a time: each sees the grants of the others
            previous = self._entries.get(round)
            finding = None
            if previous is None:
                finding = self._isolating(round, grant, min_changed, window)
                if finding is None:
                    self._entries[round] = grant
                    if self._whole is not None:
                        self._whole.add(span.integer_row(vector))
        if previous is not None:
            if previous.key_id != grant.key_id:
                refuse(
                    round,
                    "this federation already had a function key for this round under another key set "
                    f"({previous.key_id.hex()[:16]}); a second key set must not buy a second sum of the same "
                    "round. Resume from the next round, or start a new federation (a new federation.seed)",
                )
            if previous.vector != grant.vector:
                refuse(
                    round,
                    "a function key for another weight vector was already issued for this round; two "
                    "keys for one round would let the aggregator difference out a party",
                )
        elif finding is not None:
            refuse(round, finding)

    def _isolating(self, round: int, grant: Grant, min_changed: int, window: int) -> str | None:
        """Why ``grant`` would complete a span isolating fewer than ``min_changed`` parties, or None."""
        if min_changed <= 1:
            return None
        row = span.integer_row(grant.vector)
        for rounds in self._windows(round, window):
            basis = self._span(rounds, window).copy()
            basis.add(row)
            try:
                found = span.sparse_support(basis, min_changed - 1)
            except span.SearchTooLarge:
                return (
                    f"with the function keys of {_rounds(rounds)}, the exact search for a combination of the "
                    f"sums over fewer than min_parties_changed = {min_changed} parties exceeded its budget, so "
                    "the key is refused to be safe. Lower min_parties_changed (3 or less is always checked "
                    "exactly) or shorten crypto.fe.policy_window"
                )
            if found:
                return _isolation_reason(rounds, found, min_changed, window)
        return None

    def _windows(self, round: int, window: int) -> list[list[int]]:
        """The granted rounds of each window of ``window`` rounds holding ``round``, leaving out subsets."""
        if not window:
            return [sorted(self._entries)]
        near = sorted(r for r in self._entries if abs(r - round) < window)
        out: list[list[int]] = []
        last_end = -1
        for start in [r for r in near if r < round] + [round]:
            members = [r for r in near if start <= r < start + window]
            if out and not any(r > last_end for r in members):
                continue  # the window before holds every grant of this one
            out.append(members)
            last_end = start + window - 1
        return out

    def _span(self, rounds: Sequence[int], window: int) -> span.Echelon:
        """The span of the grants of ``rounds`` (kept between calls for the whole run)."""
        if window:
            return span.span_of(span.integer_row(self._entries[r].vector) for r in rounds)
        if self._whole is None:
            self._whole = span.span_of(span.integer_row(self._entries[r].vector) for r in rounds)
        return self._whole

    def merge(self, other: Ledger) -> None:
        """Adopt ``other``'s grants (a federation's durable record); its entries win over this key set's own."""
        with self._lock:
            self._entries.update(other.entries())
            self._whole = None

    def to_bytes(self) -> bytes:
        """The record in a fixed binary form (read back by :meth:`from_bytes`): every grant's full weight vector."""
        rows = []
        for r, g in sorted(self.entries().items()):
            weights = b"".join(struct.pack(">H", len(p.encode())) + p.encode() + struct.pack(">d", w)
                               for p, w in g.vector)
            rows.append(struct.pack(">QB", r, len(g.key_id)) + g.key_id + struct.pack(">I", len(g.vector)) + weights)
        return RECORD_MAGIC + struct.pack(">I", len(rows)) + b"".join(rows)

    @classmethod
    def from_bytes(cls, data: bytes, pos: int = 0) -> tuple[Ledger, int]:
        """A record and the offset after it; :class:`MalformedCiphertextError` if garbled or of the first format."""
        if data[pos : pos + len(RECORD_MAGIC)] != RECORD_MAGIC:
            raise MalformedCiphertextError(
                "this fe policy record is not of the current format (a record written before the policy kept "
                "whole weight vectors holds digests only, which the span check cannot use): start a new "
                "federation (a new federation.seed) or remove the record along with the authority's key store"
            )
        pos += len(RECORD_MAGIC)
        try:
            (rows,) = struct.unpack_from(">I", data, pos)
            pos += 4
            entries: dict[int, Grant] = {}
            for _ in range(rows):
                r, klen = struct.unpack_from(">QB", data, pos)
                key_id = data[pos + 9 : pos + 9 + klen]
                vector, pos = _vector_from_bytes(data, pos + 9 + klen)
                if len(key_id) != klen or r in entries:
                    raise MalformedCiphertextError("truncated or repeated policy record")
                entries[r] = Grant(bytes(key_id), vector)
        except (struct.error, UnicodeDecodeError) as exc:
            raise MalformedCiphertextError(f"garbled fe policy record: {exc}") from None
        return cls(entries), pos


def _vector_from_bytes(data: bytes, pos: int) -> tuple[tuple[tuple[str, float], ...], int]:
    """A canonical weight vector at ``pos`` (count, then each id and weight) and the offset after it."""
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    vector = []
    for _ in range(count):
        (n,) = struct.unpack_from(">H", data, pos)
        party = check_party_id(data[pos + 2 : pos + 2 + n].decode())
        (weight,) = struct.unpack_from(">d", data, pos + 2 + n)
        pos += 2 + n + 8
        vector.append((party, weight))
    out = tuple(vector)
    if any(not (math.isfinite(w) and w > 0) for _, w in out) or out != canonical(dict(out)) or len(out) != count:
        raise MalformedCiphertextError("a weight vector in the fe policy record is not sorted, unique and positive")
    return out, pos


def _rounds(rounds: Sequence[int]) -> str:
    """``"round 3"``, ``"rounds 0, 1, 2"``, ``"rounds 0-98, 120"`` (runs of 4 or more as ranges) or "no other round"."""
    if not rounds:
        return "no other round"
    runs: list[list[int]] = []
    for r in sorted(rounds):
        if runs and r == runs[-1][-1] + 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    parts = [f"{run[0]}-{run[-1]}" if len(run) >= 4 else ", ".join(map(str, run)) for run in runs]
    return f"round{'s' if len(rounds) > 1 else ''} {', '.join(parts)}"


def _names(parties: Sequence[str], shown: int = 6) -> str:
    """``parties`` sorted, joined; beyond ``shown``, the first few and how many more."""
    names = sorted(parties)
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _isolation_reason(rounds: Sequence[int], found: Sequence[frozenset[str]], min_changed: int, window: int) -> str:
    """The refusal's reason: which parties a combination of the window's sums would single out."""
    over = f"within the policy window of {window} rounds" if window else "over the whole run"
    if len(found[0]) == 1:
        who = _names([next(iter(s)) for s in found])
        what = (f"the update of {who} alone" if len(found) == 1
                else f"the update of any one of {who} alone")
        size = 1
    else:
        what = f"a sum over only {_names(list(found[0]))}"
        size = len(found[0])
    return (
        f"with the function keys of {_rounds(rounds)}, its weight vector lets the aggregator combine the sums "
        f"into {what} ({size} < min_parties_changed = {min_changed}), counting each party's update as constant "
        f"{over}. Wait for the missing parties to answer, reuse a contributor set (and weights) granted before, "
        "shorten crypto.fe.policy_window, or turn on differential privacy (privacy.mode)"
    )


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
