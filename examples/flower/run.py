"""Run the digits Flower app (app.py) under Flower's simulation, with a securefl scheme by one config line.

    python examples/flower/run.py --scheme paillier
    python examples/flower/run.py --scheme ckks --rounds 5 --nodes 4
    python examples/flower/run.py --scheme secagg --test-keys      # small insecure keys, for a quick look

Runs the same app twice, one after the other: plain Flower FedAvg, then FedAvg with securefl's
workflow and mod, and prints both accuracies (each node's held-out rows, pooled) and how far
apart the final arrays are.  Needs the flower and ray extras (pip install -e ".[flower,ray]").
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from flwr.simulation import run_simulation

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import client_app, server_app  # noqa: E402

from crypto_backends import InsecureParametersWarning, registry  # noqa: E402
from securefl import config  # noqa: E402
from securefl.flower import simulation_backend  # noqa: E402


def scheme_config(scheme: str, nodes: int, rounds: int, *, test_keys: bool = False) -> config.Config:
    """The securefl config of a run: ``[crypto] scheme`` is the one line that differs between schemes."""
    text = f'[federation]\nparties = {nodes}\nrounds = {rounds}\n\n[crypto]\nscheme = "{scheme}"\n'
    if test_keys and "test" in registry.params_type(scheme).presets():
        text += f'\n[crypto.{scheme}]\npreset = "test"\n'
    return config.loads(text)


def simulate(rounds: int, nodes: int, *, secure: config.Config | None = None, flower_secaggplus: bool = False,
             **server: Any) -> dict[str, Any]:
    """One run_simulation of the app; its history, strategy, workflow, and wall time (``seconds``)."""
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    run_simulation(server_app=server_app(rounds, nodes, secure=secure, flower_secaggplus=flower_secaggplus, out=out,
                                             **server),
                   client_app=client_app(secure=secure is not None, flower_secaggplus=flower_secaggplus),
                   num_supernodes=nodes, backend_config=simulation_backend())
    out["seconds"] = time.perf_counter() - t0
    if "error" in out:
        raise out["error"]
    if "history" not in out:
        raise RuntimeError("the ServerApp did not finish (see Flower's log above)")
    return out


def accuracy(out: dict[str, Any]) -> float:
    """The last round's pooled held-out accuracy."""
    return float(out["history"].metrics_distributed["accuracy"][-1][1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="paillier", choices=registry.builtin())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--test-keys", action="store_true", help="the schemes' small insecure test presets")
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    warnings.simplefilter("ignore", InsecureParametersWarning)
    cfg = scheme_config(args.scheme, args.nodes, args.rounds, test_keys=args.test_keys)
    plain = simulate(args.rounds, args.nodes)
    secure = simulate(args.rounds, args.nodes, secure=cfg)
    last = args.rounds
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(plain["strategy"].aggregated[last],
                                                            secure["strategy"].aggregated[last], strict=True))
    print(f"plain FedAvg        accuracy {accuracy(plain):.4f}  ({plain['seconds']:.1f} s)")
    print(f"securefl {args.scheme:<10} accuracy {accuracy(secure):.4f}  ({secure['seconds']:.1f} s); final arrays "
          f"within {gap:.2e} of plain FedAvg's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
