"""All three roles in one process: the embedded default and the reference for every deployment.

The round engine passes the same bytes between roles as a networked deployment
would, so upload sizes are real and every message is parsed and checked.
Parties run concurrently on a thread pool; a party that raises, or does not
answer within ``federation.round_timeout``, is dropped for that round, and the
round goes on if the quorum holds.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Callable

import numpy as np

from crypto_backends.base import Scheme

from securefl.core.aggregator import Aggregator
from securefl.core.authority import Authority
from securefl.config import Config
from securefl.ml.data import FederatedData
from securefl.core.federation import Federation, RoundMetrics, RunResult
from securefl.core.messages import GlobalModel
from securefl.ml.models import ModelAdapter
from securefl.core.party import Party

log = logging.getLogger("securefl.transport.inproc")

__all__ = ["RoundMetrics", "RunResult", "Simulation", "run"]


class Simulation:
    """A federation in one process, built from a :class:`~securefl.config.Config`."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.federation = Federation(cfg)
        self.data: FederatedData = self.federation.data
        self.evaluator: ModelAdapter = self.federation.evaluator
        self.scheme: Scheme = self.federation.scheme
        # the engine refuses a round past the budget up front; each party also enforces its own
        self.accountant = self.federation.accountant()
        self.authority = Authority(self.scheme, cfg.federation.ids)
        self.parties: dict[str, Party] = {
            pid: self.federation.party(pid, self.authority.party_key(pid)) for pid in self.data.shards
        }
        self.aggregator: Aggregator = self.federation.aggregator(self.authority.aggregator_key(),
                                                                 self.authority.function_key)
        self._busy: dict[str, cf.Future] = {}

    @property
    def rounds(self) -> int:
        """Rounds this run performs: as configured, or fewer when the model is complete sooner (naive Bayes: 1)."""
        return self.federation.rounds

    def _collect(self, pool: cf.ThreadPoolExecutor, round: int, model: bytes) -> tuple[dict[str, bytes], dict[str, str]]:
        uploads: dict[str, bytes] = {}
        dropped: dict[str, str] = {}
        futures: dict[cf.Future, str] = {}
        for pid, party in self.parties.items():
            if pid in self._busy and not self._busy[pid].done():
                # a thread cannot be killed; a party still working on an old round sits this one out
                dropped[pid] = "still busy with an earlier round"
                continue
            fut = pool.submit(party.handle_round, round, model)
            self._busy[pid] = fut
            futures[fut] = pid
        done, late = cf.wait(futures, timeout=self.cfg.federation.round_timeout)
        for fut in done:
            pid = futures[fut]
            try:
                uploads[pid] = fut.result()
            except Exception as exc:  # noqa: BLE001 - a failing party is dropped, not fatal
                dropped[pid] = f"{type(exc).__name__}: {exc}"
                log.warning("round %d: party %s failed: %s", round, pid, dropped[pid])
        for fut in late:
            dropped[futures[fut]] = f"no answer within {self.cfg.federation.round_timeout} s"
        return uploads, dropped

    def published_parameters(self, model: GlobalModel) -> np.ndarray:
        """The model as it would be released: opened by a key holder, with the scheme's publication step."""
        if not model.is_sealed:
            return model.vector  # type: ignore[return-value]
        holder = self.parties[sorted(self.parties)[0]]
        return holder.open_model(model, publish=True)

    def run(self, on_round: Callable[[RoundMetrics], None] = lambda m: None) -> RunResult:
        model = GlobalModel.open(self.evaluator.initial_parameters())
        history: list[RoundMetrics] = []
        params = model.vector
        self._busy = {}
        pool = cf.ThreadPoolExecutor(max_workers=len(self.parties), thread_name_prefix="party")
        try:
            for rnd in range(self.rounds):
                if self.accountant is not None:
                    self.accountant.charge(rnd)  # refuses the round before any party releases anything
                t0 = time.perf_counter()
                uploads, dropped = self._collect(pool, rnd, model.to_bytes())
                outcome = self.aggregator.fuse(rnd, uploads)
                model = outcome.model
                seconds = time.perf_counter() - t0
                params = self.published_parameters(model)
                spent = self.accountant.spent if self.accountant is not None else (None, None)
                metrics = RoundMetrics.of_round(rnd, outcome, uploads, dropped, seconds,
                                                self.federation.metric(params), spent)
                history.append(metrics)
                on_round(metrics)
        finally:
            # do not wait for a party that never answered: the run is over without it
            pool.shutdown(wait=False, cancel_futures=True)
        return self.federation.result(history, np.asarray(params), self.accountant)


def run(cfg: Config, on_round: Callable[[RoundMetrics], None] = lambda m: None) -> RunResult:
    """Build a :class:`Simulation` from ``cfg`` and run every round."""
    return Simulation(cfg).run(on_round)
