"""What each party is shown with an aggregate it is asked to reveal (``crypto.verify_aggregate``).

Under ``full`` (and statements-only) every party gets the aggregate's evidence as
the aggregator keeps it.  Under ``sampled`` each party first draws the blocks it
will check, for the aggregate's digest (a ``challenge`` request: the aggregate is
fixed before anyone learns the indices), and is then shown its own openings of
those blocks of every signed upload (:class:`~crypto_backends.sampling.Prover`),
nothing more: a fraction of the bytes ``full`` sends.  A party that does not
answer the challenge is shown the statements alone, and refuses the aggregate
itself (it cannot have drawn): nobody waits for it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from crypto_backends.envelope import Envelope
from crypto_backends.sampling import Prover, Sampler, detection
from crypto_backends.statements import Evidence, digest
from securefl.core.messages import GlobalModel, challenge_bytes, parse_indices
from securefl.transport.base import Request, Transport

log = logging.getLogger(__name__)


class Proofs:
    """Per aggregate, the evidence each party is shown; under ``sampled``, the challenge exchange that makes it."""

    def __init__(self, sampler: Sampler | None, transport: Transport, *, timeout: float) -> None:
        self.sampler, self.transport, self.timeout = sampler, transport, timeout
        # aggregate digest -> (its prover, party -> the evidence shown to it); the last two aggregates only
        self._shown: dict[bytes, tuple[Prover, dict[str, Evidence]]] = {}
        self._last: tuple[Envelope, bytes] | None = None  # the last aggregate digested: one hash per aggregate

    def _digest(self, aggregate: Envelope) -> bytes:
        if self._last is None or self._last[0] is not aggregate:
            self._last = (aggregate, digest(aggregate.to_bytes()))
        return self._last[1]

    def for_parties(self, rnd: int, aggregate: Envelope, evidence: Evidence | None,
                    parties: Sequence[str]) -> dict[str, Evidence | None]:
        """The evidence each of ``parties`` is shown with ``aggregate`` (in round ``rnd``'s exchanges)."""
        if self.sampler is None or evidence is None:
            return dict.fromkeys(parties, evidence)
        key = self._digest(aggregate)
        if key not in self._shown:
            while len(self._shown) >= 2:
                del self._shown[next(iter(self._shown))]
            self._shown[key] = (Prover(self.sampler, evidence.uploads), {})
        prover, shown = self._shown[key]
        missing = [p for p in parties if p not in shown]
        if missing:
            count, most = self.sampler.blocks.block_count(aggregate.length), self.sampler.samples
            replies = self.transport.exchange(
                Request("challenge", rnd, dict.fromkeys(missing, challenge_bytes(key, count))),
                lambda sender, reply: parse_indices(reply, count, most), timeout=self.timeout)
            for party, why in replies.dropped.items():
                log.warning("round %d: %s drew no blocks of the aggregate to check: %s", rnd, party, why)
            for party, indices in replies.accepted.items():
                shown[party] = Evidence(evidence.signed, (), indices, prover.open(indices))
        bare = evidence.statements_only()
        return {p: shown.get(p, bare) for p in parties}

    def model_payloads(self, rnd: int, model: GlobalModel, parties: Sequence[str]) -> dict[str, bytes]:
        """``model``'s message for each of ``parties``: one message for all, or each its own sampled evidence."""
        if self.sampler is None or model.aggregate is None or model.evidence is None:
            return dict.fromkeys(parties, model.to_bytes())
        shown = self.for_parties(rnd, model.aggregate, model.evidence, parties)
        return {p: model.shown(e) for p, e in shown.items()}

    def report(self, aggregate: Envelope) -> dict[str, Any]:
        """The run JSON's ``verification`` of the round whose aggregate is ``aggregate`` (empty unless sampled)."""
        if self.sampler is None:
            return {}
        entry = self._shown.get(self._digest(aggregate))
        verifiers = len(entry[1]) if entry is not None else 0
        blocks = self.sampler.blocks.block_count(aggregate.length)
        one = detection(blocks, self.sampler.samples)
        return {"mode": "sampled", "blocks": blocks, "samples": min(self.sampler.samples, blocks),
                "verifiers": verifiers, "detect_one_block": one, "detect_one_block_any": 1 - (1 - one) ** verifiers}
