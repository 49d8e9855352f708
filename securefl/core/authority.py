"""The key authority (dealer): makes a federation's keys and hands each role only its own.

For schemes with function keys (``fe``) it also answers the aggregator's
per-round function-key requests; the scheme enforces its inference-prevention
policy inside :meth:`~crypto_backends.base.Scheme.function_key`, and this role
logs every grant and refusal.  The master secret never leaves this object.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from crypto_backends.base import Scheme
from crypto_backends.errors import PolicyError
from crypto_backends.keys import AggregatorKey, FunctionKey, KeySet, PartyKey

log = logging.getLogger("securefl.authority")


class Authority:
    """Holds the :class:`~crypto_backends.keys.KeySet`; gives out role keys one at a time."""

    def __init__(self, scheme: Scheme, party_ids: Sequence[str], *, keys: KeySet | None = None) -> None:
        """Make a new key set for ``party_ids``, or take ``keys`` (a key set made earlier, e.g. reloaded)."""
        self.scheme = scheme
        self._keys = keys if keys is not None else scheme.keygen(list(party_ids))
        log.info("keys %s for %d parties under %s (fingerprint %s)", "loaded" if keys else "made", len(party_ids),
                 scheme.name, self._keys.aggregator.fingerprint)

    @property
    def party_ids(self) -> list[str]:
        return sorted(self._keys.parties)

    def party_key(self, party_id: str) -> PartyKey:
        """The key for ``party_id`` (to be delivered to that party only)."""
        return self._keys.parties[party_id]

    def aggregator_key(self) -> AggregatorKey:
        """The aggregator's key: public material only for schemes that decrypt at the parties."""
        return self._keys.aggregator

    def function_key(self, round: int, weights: Mapping[str, float]) -> FunctionKey:
        """A function key for ``weights`` in ``round``, if the scheme's policy allows it."""
        if self._keys.authority is None:
            raise PolicyError(f"the {self.scheme.name} scheme has no authority key to derive function keys")
        try:
            key = self.scheme.function_key(self._keys.authority, round=round, weights=weights)
        except PolicyError as exc:
            log.warning("round %d: function key refused: %s", round, exc)
            raise
        log.info("round %d: function key granted for %d parties", round, len(weights))
        return key
