"""Issue 23 item 2: what a user's own trainer receives under ckks, against numpy's weighted mean.

Rerun (10 x 100k takes about 5 s here; 10 x 1M about 20 s and 1.2 GiB)::

    PYTHONPATH=. python3 -m tests.audit.ckks_released                      # 10 parties x 100k values
    PYTHONPATH=. python3 -m tests.audit.ckks_released --values 1000000
    PYTHONPATH=. python3 -m tests.audit.ckks_released --weight 1           # every party of weight 1

Each party's trainer returns one fixed vector (values about N(0, 0.25)) and a weight; one round runs
through :func:`securefl.simulate` at ckks' default preset, and the run's ``final_parameters`` (the
model as it is published: after ``release``'s noise flooding) is compared with numpy's weighted mean
of those vectors.  It prints the max and RMS error and the flooding width the scheme derived.
Before issue 23 (scale 2^40, one 60-bit prime) the same 10 x 100k run was off by about 0.03 (max).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

import securefl
from securefl import config


class Fixed:
    """A user's trainer that ignores the global model and returns one fixed vector with its weight."""

    def __init__(self, vector: np.ndarray, weight: float) -> None:
        self.vector, self.weight = vector, weight

    def initial_parameters(self) -> np.ndarray:
        return np.zeros(self.vector.size)

    def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
        return self.vector, self.weight

    def evaluate(self, parameters: np.ndarray) -> Mapping[str, float]:
        return {"mse": float(np.mean((parameters - self.vector) ** 2))}


@dataclass(frozen=True)
class Released:
    """One audited run: the published vector's max and RMS error against numpy's weighted mean."""

    max_abs: float
    rms: float
    vector: np.ndarray
    expected: np.ndarray


def run(parties: int = 10, values: int = 100_000, weight: float = 0.0, seed: int = 0) -> Released:
    """One round of ``parties`` fixed-vector trainers under ckks' defaults (``weight`` 0: weights 1..N)."""
    rng = np.random.default_rng(seed)  # test data, not secrets
    ids = [f"party-{i + 1}" for i in range(parties)]
    weights = [weight or float(i + 1) for i in range(parties)]
    trainers = {p: Fixed(rng.normal(0.0, 0.5, values), w) for p, w in zip(ids, weights, strict=True)}
    cfg = config.loads(f'[federation]\nparties = {parties}\nrounds = 1\n\n[crypto]\nscheme = "ckks"\n')
    result = securefl.simulate(cfg, trainers)
    assert result.final_parameters is not None
    expected = np.average(np.stack([trainers[p].vector for p in ids]), axis=0, weights=weights)
    error = result.final_parameters - expected
    return Released(float(np.max(np.abs(error))), float(np.sqrt(np.mean(error**2))),
                    result.final_parameters, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=10)
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--weight", type=float, default=0.0, help="every party's weight (default: 1..N)")
    args = parser.parse_args()
    out = run(args.parties, args.values, args.weight)
    print(f"ckks default preset, {args.parties} parties x {args.values} values, one published round: "
          f"max |error| {out.max_abs:.3e}, RMS {out.rms:.3e} against numpy's weighted mean")


if __name__ == "__main__":
    main()
