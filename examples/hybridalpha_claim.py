"""A paper's claim, kept checkable: HybridAlpha against threshold-Paillier SMC on one federation.

HybridAlpha (Xu, Baracaldo, Zhou, Anwar, Ludwig: "HybridAlpha: An Efficient Approach
for Privacy-Preserving Federated Learning", AISec 2019) reports about 68% less
training time and 92% less data transfer than a threshold-Paillier SMC baseline at
the same accuracy.  This script trains the same federation (one config, only
``crypto.scheme`` changed) under ``fe`` (securefl's multi-input functional encryption
with a key authority, HybridAlpha's construction) and ``threshold_paillier``, and
prints both savings and both accuracies, computed from what it measured:

    python examples/hybridalpha_claim.py examples/configs/plain.toml
    python examples/hybridalpha_claim.py examples/configs/plain.toml --set federation.rounds=3 --json claim.json

What is measured, per scheme, in one process on threads (the in-process transport
carries the same bytes a networked deployment sends):

* ``train_s``: the wall time of the training rounds (:meth:`Simulation.run`); key
  generation and data loading (``setup_s``) are reported apart, since a federation
  pays them once (threshold Paillier's safe-prime dealing is slow at 3072 bits);
* ``bytes``: every byte the aggregator sends and receives: the model sent to each
  asked party, every upload, every decryption share and evaluation reply, and the
  function keys the authority hands the aggregator;
* ``accuracy``: the run's main metric after the last round.

What is not promised: absolute times on a loaded machine are noisy (run both in one
invocation and read the ratio); the paper's own setting (its models, data and
network) is not reproduced, only its comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from crypto_backends.keys import FunctionKey
from crypto_backends.statements import Evidence
from securefl import config
from securefl.config import Config
from securefl.simulation import Simulation
from securefl.transport.base import Accept, Replies, Request, T
from securefl.transport.inproc import InProcessTransport

PAPER_TIME_SAVING = 0.68
PAPER_BYTES_SAVING = 0.92
SCHEMES = ("fe", "threshold_paillier")

clock: Callable[[], float] = time.perf_counter
"""Seconds for ``train_s`` and ``setup_s`` (a test may replace it)."""


class CountingTransport(InProcessTransport):
    """The in-process transport, counting every byte that crosses the aggregator's side of it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0
        self.received = 0

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        """Count each asked party's request bytes and each accepted reply's, then exchange as usual."""
        self.sent += sum(len(payload) for payload in request.payloads.values())
        replies = super().exchange(request, accept, timeout=timeout)
        self.received += sum(replies.sizes.values())
        return replies

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        """The authority's function key and the signed statements sent for it, counted at their serialised
        sizes (what a network would carry)."""
        self.sent += len(evidence.to_bytes()) if evidence is not None else 0
        key = super().function_key(round, weights, evidence)
        from crypto_backends import SECRET_ACCESS  # the count needs the bytes; they never leave this process

        self.received += len(self.authority.scheme.dump_key(key, secret_access=SECRET_ACCESS))
        return key


class _CountedSimulation(Simulation):
    counted: CountingTransport | None = None

    def transport(self) -> CountingTransport:
        self.counted = CountingTransport(self.parties, self.authority)
        return self.counted


@dataclass(frozen=True)
class Run:
    """One scheme's training run: its measured time, bytes and accuracy."""

    scheme: str
    setup_s: float
    train_s: float
    bytes: int
    upload_bytes: float
    accuracy: float
    metric: str
    rounds: int


@dataclass(frozen=True)
class Claim:
    """Both runs and the savings of ``fe`` against ``threshold_paillier``, computed from them."""

    fe: Run
    threshold_paillier: Run

    @property
    def time_saving(self) -> float:
        """``1 - train_s(fe) / train_s(threshold_paillier)`` (the paper: about 0.68)."""
        return 1.0 - self.fe.train_s / self.threshold_paillier.train_s

    @property
    def bytes_saving(self) -> float:
        """``1 - bytes(fe) / bytes(threshold_paillier)`` (the paper: about 0.92)."""
        return 1.0 - self.fe.bytes / self.threshold_paillier.bytes

    def as_json(self) -> dict[str, Any]:
        """Both runs, both savings and the paper's figures."""
        return {"fe": asdict(self.fe), "threshold_paillier": asdict(self.threshold_paillier),
                "time_saving": self.time_saving, "bytes_saving": self.bytes_saving,
                "paper": {"time_saving": PAPER_TIME_SAVING, "bytes_saving": PAPER_BYTES_SAVING}}


def measure(cfg: Config, scheme: str) -> Run:
    """Train ``cfg`` with ``crypto.scheme = scheme`` and measure it (see the module docstring)."""
    run_cfg = cfg.replace(**{"crypto.scheme": scheme})
    t0 = clock()
    sim = _CountedSimulation(run_cfg)
    t1 = clock()
    result = sim.run()
    t2 = clock()
    assert sim.counted is not None  # run() asked for its transport
    uploads = sum(m.bytes_up * len(m.parties) for m in result.rounds)
    return Run(scheme, t1 - t0, t2 - t1, sim.counted.sent + sim.counted.received, uploads,
               float(result.final_accuracy), result.metric, len(result.rounds))


def claim(cfg: Config) -> Claim:
    """The same federation under ``fe`` and ``threshold_paillier``, one after the other in this process."""
    fe, tp = (measure(cfg, name) for name in SCHEMES)
    return Claim(fe, tp)


def report(c: Claim) -> str:
    """The two runs and the two savings, beside the paper's."""
    lines = [f"{'scheme':<20}{'setup':>10}{'train':>10}{'bytes':>14}{'uploads':>14}  {c.fe.metric}"]
    for r in (c.fe, c.threshold_paillier):
        lines.append(f"{r.scheme:<20}{r.setup_s:>9.2f}s{r.train_s:>9.2f}s{r.bytes:>14,}{r.upload_bytes:>14,.0f}"
                     f"  {r.accuracy:.4f}")
    lines.append(f"fe saves {c.time_saving:.1%} of the training time (paper: {PAPER_TIME_SAVING:.0%}) and "
                 f"{c.bytes_saving:.1%} of the data transfer (paper: {PAPER_BYTES_SAVING:.0%}); accuracy "
                 f"{c.fe.accuracy:.4f} against {c.threshold_paillier.accuracy:.4f} over {c.fe.rounds} rounds")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run both schemes, print the report (and write ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/configs/plain.toml")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key (repeatable), e.g. crypto.threshold_paillier.key_bits=2048")
    parser.add_argument("--json", metavar="PATH", help="also write the measurements and savings as JSON")
    args = parser.parse_args(argv)
    result = claim(config.load(args.config, list(args.set)))
    print(report(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result.as_json(), fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
