"""Issue 21 item 1: one party of three sends ``bound + 1`` at many coordinates; what does the fe reveal cost?

Rerun (about 10 s; the default table takes ~2 s to build)::

    PYTHONPATH=. python3 -m tests.audit.fe_dlog_budget            # weights 20000, 4000 values
    PYTHONPATH=. python3 -m tests.audit.fe_dlog_budget --weight 60000
    PYTHONPATH=. python3 -m tests.audit.fe_dlog_budget --spread 0.0001   # honest sums all inside the table

It reveals an honest round and the attacked round of the same size side by side, under the default
parameters, and prints each one's CPU time and giant steps and their ratio.  Before the fix the attacked
reveal walked every bad value to the last giant step (36.5 s at weights 20000); now it stops at its budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from crypto_backends.errors import DecodingOverflowError
from crypto_backends.fe import FEParams, FEScheme, dlog, group, kernels
from crypto_backends.fe.scheme import _round_scalar
from crypto_backends.roundtrip import contributor_weights

PARTIES = ("p0", "p1", "p2")


Reveal = Callable[[], Any]


def rounds(params: FEParams, length: int, weight: float, spread: float = 0.01) -> tuple[Reveal, Reveal, int]:
    """(honest reveal, attacked reveal, bound) for three parties of ``weight``; p2 attacks the second round."""
    s = FEScheme(params)
    keys = s.keygen(list(PARTIES))
    authority = keys.authority
    assert authority is not None
    rng = np.random.default_rng(0)  # public test data, not a secret
    weights = dict.fromkeys(PARTIES, weight)

    def reveal(round: int, attacker: bool) -> Callable[[], Any]:
        honest = [rng.uniform(-spread, spread, length) if not attacker else np.zeros(length) for _ in PARTIES[:2]]
        pairs = zip(PARTIES[:2], honest, strict=True)
        updates = [s.protect(keys.parties[p], x, weight=weight, round=round) for p, x in pairs]
        last = s.protect(keys.parties["p2"], rng.uniform(-spread, spread, length), weight=weight, round=round)
        bound = s._sum_bound([weight] * 3)
        if attacker:  # p2's own pad, values of bound + 1 (the other two encrypt zeros)
            secret = keys.parties["p2"].unwrap("fe").secret
            values = np.full(length, bound + 1, dtype="<i8").tobytes()
            last = dataclasses.replace(last, payload=kernels.encrypt(_round_scalar(secret, round, weight), 0, values))
        aggregate = s.combine(keys.aggregator, [*updates, last], round=round)
        fkey = s.function_key(authority, round=round, weights=contributor_weights(aggregate))
        assert contributor_weights(aggregate) == weights
        return lambda: s.reveal(keys.aggregator, aggregate, function_key=fkey)

    # the rounds' contributors are the same set: the policy's change check does not apply
    return reveal(0, False), reveal(1, True), s._sum_bound([weight] * 3)


class Steps:
    """Counts the giant steps (point additions / 2) the discrete logarithm performs."""

    def __init__(self) -> None:
        self.additions = 0
        self._real = group.add

    def __enter__(self) -> Steps:
        def counted(points: Any) -> Any:
            self.additions += 1
            return self._real(points)

        group.add = counted  # dlog calls group.add by name
        return self

    def __exit__(self, *exc: object) -> None:
        group.add = self._real


def measure(fn: Callable[[], Any]) -> tuple[float, int, str]:
    with Steps() as steps:
        start = time.process_time()
        try:
            fn()
            outcome = "revealed"
        except DecodingOverflowError as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:90]}..."
        cpu = time.process_time() - start
    return cpu, steps.additions // 2, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--weight", type=float, default=20000.0)
    parser.add_argument("--length", type=int, default=4000)
    parser.add_argument("--spread", type=float, default=0.01, help="honest values are uniform in +-spread")
    parser.add_argument("--table-bits", type=int, default=FEParams().dlog_table_bits)
    args = parser.parse_args(argv)
    params = dataclasses.replace(FEParams(dlog_table_bits=args.table_bits).for_federation(3), workers=1)
    dlog.table(params.dlog_table_bits)  # built before timing
    honest, attacked, bound = rounds(params, args.length, args.weight, args.spread)
    table = dlog.table(params.dlog_table_bits)
    budget = getattr(dlog, "reveal_budget", None)  # absent before the fix: the script runs on either
    limit = budget(table, args.length, bound).limit if budget else "none"
    print(f"fe reveal, 3 parties of weight {args.weight:g}, {args.length} values, 2^{params.dlog_table_bits} table; "
          f"bound {bound}, up to {table.max_steps(bound)} giant steps per value, budget {limit}")
    h_cpu, h_steps, h_out = measure(honest)
    a_cpu, a_steps, a_out = measure(attacked)
    print(f"honest:   {h_cpu:7.3f} s CPU, {h_steps:8d} giant steps, {h_out}")
    print(f"attacked: {a_cpu:7.3f} s CPU, {a_steps:8d} giant steps, {a_out}")
    print(f"ratio attacked / honest (CPU): {a_cpu / h_cpu:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
