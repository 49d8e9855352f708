"""The aggregator: checks uploads, combines them, and reveals only where the scheme allows.

It follows the scheme's declarations: it reveals the fused model itself when
``reveal_site`` is the aggregator (after fetching a function key from the
authority when ``needs_function_key``), and otherwise passes the combined
ciphertext on to the parties.  It never branches on a scheme's name.

A bad upload (garbled, another round, another key set, another length, claiming
another party's id) costs only its sender's place in the round; the others are
kept, and the round goes on if the quorum still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from crypto_backends.base import RevealSite, Scheme
from crypto_backends.envelope import Envelope
from crypto_backends.errors import SecureFLError
from crypto_backends.keys import AggregatorKey, FunctionKey

from securefl.errors import QuorumError, UsageError
from securefl.core.fusion import mean_from_sum
from securefl.core.messages import GlobalModel

log = logging.getLogger("securefl.core.aggregator")

FunctionKeySource = Callable[[int, Mapping[str, float]], FunctionKey]
Fuse = Callable[[np.ndarray, float], np.ndarray]


@dataclass
class FusionOutcome:
    """The next global model and who made it."""

    model: GlobalModel
    contributors: tuple[str, ...]
    rejected: dict[str, str] = field(default_factory=dict)


class Aggregator:
    """Fuses one round's uploads (transport-agnostic: bytes in, bytes out)."""

    def __init__(
        self,
        scheme: Scheme,
        key: AggregatorKey,
        *,
        num_parameters: int,
        quorum: int,
        function_keys: FunctionKeySource | None = None,
        fuse: Fuse = mean_from_sum,
    ) -> None:
        if scheme.needs_function_key and function_keys is None:
            raise UsageError(f"the {scheme.name} scheme needs function keys: pass function_keys (the key "
                             "authority's function-key source) to Aggregator")
        self.scheme, self.key, self.num_parameters, self.quorum = scheme, key, num_parameters, quorum
        self.function_keys = function_keys
        self.fuse_sum = fuse
        """Revealed weighted sum and total weight -> next global vector (the model adapter's rule)."""

    def check_upload(self, sender: str, data: bytes, round: int) -> Envelope:
        """Parse and check one upload; ``sender`` is the transport-authenticated party id."""
        env = Envelope.from_bytes(data)
        self.scheme.check_envelope(env, self.key, kind="update", round=round, length=self.num_parameters)
        if env.party != sender:
            raise SecureFLError(f"upload from {sender!r} claims to be from {env.party!r}")
        return env

    def fuse(self, round: int, uploads: Mapping[str, bytes]) -> FusionOutcome:
        """Combine the valid uploads of ``round``; raise :class:`QuorumError` if too few remain."""
        rejected: dict[str, str] = {}
        accepted: dict[str, Envelope] = {}
        for sender in sorted(uploads):
            try:
                accepted[sender] = self.check_upload(sender, uploads[sender], round)
            except SecureFLError as exc:
                rejected[sender] = f"{type(exc).__name__}: {exc}"
        while True:
            self._require_quorum(round, accepted, rejected)
            try:
                aggregate = self.scheme.combine(self.key, list(accepted.values()), round=round)
                break
            except SecureFLError:
                # a payload-level fault shows only when combining: find the culprits, keep the rest
                culprits = {s: err for s, env in accepted.items() if (err := self._solo_error(env, round))}
                if not culprits:
                    raise
                for sender, err in culprits.items():
                    rejected[sender] = err
                    del accepted[sender]
        for sender, why in rejected.items():
            log.warning("round %d: update of %s rejected: %s", round, sender, why)
        return FusionOutcome(self._next_model(aggregate), aggregate.parties, rejected)

    def _solo_error(self, env: Envelope, round: int) -> str | None:
        try:
            self.scheme.combine(self.key, [env], round=round)
        except SecureFLError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _require_quorum(self, round: int, accepted: Mapping[str, Envelope], rejected: Mapping[str, str]) -> None:
        if len(accepted) < self.quorum:
            detail = "; ".join(f"{p}: {why}" for p, why in rejected.items())
            raise QuorumError(
                f"round {round}: only {len(accepted)} usable update(s), the quorum is {self.quorum}"
                + (f" (rejected: {detail})" if detail else "")
                + ". Check the failing parties or lower federation.quorum"
            )

    def _next_model(self, aggregate: Envelope) -> GlobalModel:
        if self.scheme.reveal_site is RevealSite.PARTIES:
            return GlobalModel.of_aggregate(aggregate)
        fkey = None
        if self.scheme.needs_function_key:
            assert self.function_keys is not None
            fkey = self.function_keys(aggregate.round, dict(zip(aggregate.parties, aggregate.weights)))
        total = self.scheme.reveal(self.key, aggregate, function_key=fkey)
        return GlobalModel.open(self.fuse_sum(total, aggregate.total_weight))
