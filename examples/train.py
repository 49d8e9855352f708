"""The same machine-learning program under any scheme: the config file decides the protection.

    python examples/train.py examples/configs/plain.toml
    python examples/train.py examples/configs/paillier.toml   # once that scheme is installed

Nothing below mentions a scheme; swapping the [crypto] section of the config is
the whole change a security team makes.
"""

from __future__ import annotations

import sys

from securefl import config
from securefl.simulation import Simulation


def main(path: str) -> None:
    cfg = config.load(path)
    sim = Simulation(cfg)
    print(f"{cfg.crypto.scheme}: aggregator can read updates: {not sim.scheme.declarations.hides_updates}; "
          f"decryption at: {sim.scheme.reveal_plan.site.value}")
    result = sim.run(lambda m: print(f"round {m.round + 1}: {result_metric(sim)} {m.accuracy:.3f} "
                                     f"({m.bytes_up / 1024:.1f} KiB uploaded per party)"))
    print(f"final {result.metric}: {result.final_accuracy:.4f}")


def result_metric(sim: Simulation) -> str:
    return sim.evaluator.metric


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/configs/plain.toml")
