"""``python -m tests.securefl.transport.grpc.cheating_aggregator ATTACK aggregator CONFIG ...``: the real
aggregator process (``securefl aggregator``), its aggregator replaced by :func:`tests.adversary.hostile` with
``ATTACK`` (a name of :data:`tests.adversary.ATTACKS`); everything else, TLS and the round engine included, is
the shipped code.

Where the authority's key store (``transport.authority_keys``) holds the parties' keys, the cheating
aggregator reads them: it colludes with whoever holds them (what the zero-padding attack needs)."""

from __future__ import annotations

import sys
from pathlib import Path

from crypto_backends.keys import AggregatorKey, PartyKey
from crypto_backends.statements import SignatureChecks
from securefl.cli.main import main
from securefl.core import federation
from securefl.core.aggregator import Aggregator
from securefl.state.keystore import load_keyset
from tests.adversary import ATTACKS, hostile


def _colluders(fed: federation.Federation) -> dict[str, PartyKey]:
    """The parties' keys from the authority's key store, where it keeps them (none otherwise)."""
    store = Path(fed.cfg.transport.authority_keys) if fed.cfg.transport.authority_keys else None
    if store is None or not store.exists() or fed.scheme.declarations.threat_model.dealer_erases_party_keys:
        return {}
    return dict(load_keyset(fed.scheme, store.read_bytes(), fed.party_ids).parties)


def run(attack: str, argv: list[str]) -> int:
    """Run ``securefl ARGV`` with every aggregator it builds cheating by ``attack``."""
    honest = federation.Federation.aggregator

    def cheating(self: federation.Federation, key: AggregatorKey, checks: SignatureChecks | None = None) -> Aggregator:
        return hostile(honest(self, key, checks), ATTACKS[attack][0], _colluders(self))

    federation.Federation.aggregator = cheating  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
