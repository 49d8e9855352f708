"""The same Flower app under Flower's own SecAgg+ and under securefl's secagg, in one run: time and bytes.

    python examples/flower/side_by_side.py --nodes 5 --rounds 2

Three runs of examples/flower/app.py under Flower's run_simulation, one after the other in this
process: plain FedAvg (no protection, the floor), Flower's ``SecAggPlusWorkflow`` +
``secaggplus_mod`` (every node a neighbour of every other, reconstruction threshold a majority), and
securefl's ``SecureFLWorkflow`` + ``securefl_mod`` with ``crypto.scheme = "secagg"`` (its default,
128-bit parameters).  Printed per run: the median wall time of a round's fit workflow (the secure
aggregation and the nodes' training; the round's evaluation is outside it), the median bytes one node
sends in a round (the protobuf size of every reply it sends: keys, shares, the masked update, the
unmasking), and the final accuracy.  Absolute times on a shared machine are noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402
from app import BYTES_ENV  # noqa: E402


def _bytes_per_node_round(directory: Path) -> float:
    """The median over nodes and rounds of the bytes a node sent in a round's fit (evaluation excluded)."""
    per: dict[tuple[str, str], int] = defaultdict(int)
    for path in directory.glob("bytes-node-*.txt"):
        for line in path.read_text().splitlines():
            group, size = line.split()
            per[(path.stem, group)] += int(size)
    return statistics.median(per.values())


def measure(label: str, rounds: int, nodes: int, **kwargs: Any) -> dict[str, Any]:
    """One run with every node's reply sizes recorded; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[BYTES_ENV] = tmp
        try:
            out = run.simulate(rounds, nodes, **kwargs)
        finally:
            del os.environ[BYTES_ENV]
        sizes = _bytes_per_node_round(Path(tmp))
    return {"label": label, "round_s": statistics.median(out["fit_seconds"]), "bytes": sizes,
            "accuracy": run.accuracy(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=5)
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    rows = [measure("plain FedAvg (no protection)", args.rounds, args.nodes),
            measure("Flower SecAgg+ (flwr)", args.rounds, args.nodes, flower_secaggplus=True),
            measure("securefl secagg", args.rounds, args.nodes,
                    secure=run.scheme_config("secagg", args.nodes, args.rounds))]
    print(f"{args.nodes} nodes, {args.rounds} rounds, 650 parameters (digits softmax regression)")
    print(f"{'run':<30} {'round s':>9} {'bytes/node/round':>17} {'accuracy':>9}")
    for r in rows:
        print(f"{r['label']:<30} {r['round_s']:>9.3f} {r['bytes']:>17,.0f} {r['accuracy']:>9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
