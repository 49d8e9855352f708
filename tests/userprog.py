"""A user's own program, as an organisation would write it: a numpy Trainer that names no scheme.

Run as a networked party: ``python -m tests.userprog CONFIG PARTY_ID`` (it calls :func:`securefl.serve_party`).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping

import numpy as np

import securefl

LENGTH = 40


class Drift:
    """Moves the global vector towards this party's own target: a least-squares step on made-up rows.

    Deterministic per party and round (the rows come from a hash of the party id), so an in-process run
    and a networked run of the same config make the same vectors.
    """

    def __init__(self, party_id: str, rows: int = 0) -> None:
        seed = int.from_bytes(hashlib.sha256(party_id.encode()).digest()[:8], "big")
        rng = np.random.default_rng(seed)  # test data, not a secret
        self.rows = rows or int(rng.integers(20, 60))
        self.target = rng.uniform(-0.5, 0.5, LENGTH)
        self.held_out = self.target + rng.normal(0, 0.01, LENGTH)
        self.seen: list[np.ndarray] = []
        self.sent: list[np.ndarray] = []

    def initial_parameters(self) -> np.ndarray:
        return np.zeros(LENGTH)

    def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
        self.seen.append(parameters.copy())
        update = parameters + 0.5 * (self.target - parameters)
        self.sent.append(update)
        return update, float(self.rows)

    def evaluate(self, parameters: np.ndarray) -> Mapping[str, float]:
        return {"mse": float(np.mean((parameters - self.held_out) ** 2)), "num_examples": float(LENGTH)}


def main(argv: list[str]) -> int:
    config, party_id = argv
    securefl.serve_party(config, party_id, Drift(party_id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
