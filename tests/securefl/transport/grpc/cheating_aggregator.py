"""``python -m tests.securefl.transport.grpc.cheating_aggregator ATTACK aggregator CONFIG ...``: the real
aggregator process (``securefl aggregator``), its aggregator replaced by :func:`tests.adversary.hostile` with
``ATTACK`` (a name of :data:`tests.adversary.ATTACKS`); everything else, TLS and the round engine included, is
the shipped code."""

from __future__ import annotations

import sys

from crypto_backends.keys import AggregatorKey
from crypto_backends.statements import SignatureChecks
from securefl.cli.main import main
from securefl.core import federation
from securefl.core.aggregator import Aggregator
from tests.adversary import ATTACKS, hostile


def run(attack: str, argv: list[str]) -> int:
    """Run ``securefl ARGV`` with every aggregator it builds cheating by ``attack``."""
    honest = federation.Federation.aggregator

    def cheating(self: federation.Federation, key: AggregatorKey, checks: SignatureChecks | None = None) -> Aggregator:
        return hostile(honest(self, key, checks), ATTACKS[attack][0])

    federation.Federation.aggregator = cheating  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
