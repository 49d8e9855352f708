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
from dataclasses import dataclass, field

import numpy as np

from crypto_backends import registry
from crypto_backends.base import Scheme
from crypto_backends.dp import DPScheme

from . import privacy
from .aggregator import Aggregator
from .authority import Authority
from .config import Config
from .data import FederatedData, load_federated
from .messages import GlobalModel
from .models import ModelAdapter, make_adapter
from .party import Party

log = logging.getLogger("securefl.simulation")


@dataclass(frozen=True)
class RoundMetrics:
    round: int
    accuracy: float
    seconds: float
    bytes_up: float
    """Mean bytes uploaded per answering party."""
    parties: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)
    epsilon_spent: float | None = None
    """Differential privacy: epsilon spent up to and including this round (``None`` when privacy is off)."""
    delta_spent: float | None = None

    def as_json(self) -> dict:
        data = {"round": self.round, "accuracy": self.accuracy, "seconds": self.seconds, "bytes_up": self.bytes_up,
                "parties": list(self.parties), "dropped": dict(self.dropped)}
        if self.epsilon_spent is not None:
            data.update(epsilon_spent=self.epsilon_spent, delta_spent=self.delta_spent)
        return data


@dataclass
class RunResult:
    scheme: str
    dataset: str
    parties: int
    metric: str
    rounds: list[RoundMetrics]
    final_parameters: np.ndarray
    privacy: dict | None = None
    """The accountant's summary (mode, per-round and spent epsilon/delta, budget), when privacy is on."""

    @property
    def final_accuracy(self) -> float:
        return self.rounds[-1].accuracy if self.rounds else float("nan")

    def as_json(self) -> dict:
        data = {"scheme": self.scheme, "dataset": self.dataset, "parties": self.parties, "metric": self.metric,
                "rounds": [r.as_json() for r in self.rounds], "final_accuracy": self.final_accuracy}
        if self.privacy is not None:
            data["privacy"] = dict(self.privacy)
        return data


class Simulation:
    """A federation in one process, built from a :class:`~securefl.config.Config`."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        fed = cfg.federation
        self.data: FederatedData = load_federated(cfg.data, fed.ids, fed.seed)
        self._bounds = (privacy.feature_bounds(cfg.privacy, [s.X for s in self.data.shards.values()],
                                               self.data.n_features) if cfg.model.kind == "naive_bayes" else None)
        # public divisor of summed statistics (naive Bayes): the largest party's row count, or more (below)
        self._stat_scale = float(max(shard.n for shard in self.data.shards.values()))
        self.evaluator: ModelAdapter = self._adapter()
        self.scheme: Scheme = self._protection(registry.create(cfg.crypto.scheme, cfg.crypto.scheme_params()))
        # the engine refuses a round past the budget up front; each party also enforces its own
        self.accountant = self._accountant()
        self.authority = Authority(self.scheme, fed.ids)
        self.parties: dict[str, Party] = {
            pid: Party(pid, shard, self._adapter(), self.scheme, self.authority.party_key(pid), self._accountant())
            for pid, shard in self.data.shards.items()
        }
        self.aggregator = Aggregator(
            self.scheme, self.authority.aggregator_key(), num_parameters=self.evaluator.num_parameters,
            quorum=fed.min_parties,
            function_keys=self.authority.function_key if self.scheme.needs_function_key else None,
            fuse=self.evaluator.fuse,
        )

        self._busy: dict[str, cf.Future] = {}

    def _accountant(self) -> privacy.PrivacyAccountant | None:
        pcfg = self.cfg.privacy
        return privacy.PrivacyAccountant(pcfg, self.evaluator.sensitivity(pcfg.clip_norm)) if pcfg.enabled else None

    def _protection(self, inner: Scheme) -> Scheme:
        """``inner``, wrapped with differential privacy when ``[privacy]`` asks for it."""
        pcfg, quorum = self.cfg.privacy, self.cfg.federation.min_parties
        weights = {pid: self.evaluator.local_weight(shard.n) for pid, shard in self.data.shards.items()}
        factor = privacy.required_rescale(inner, pcfg, self.evaluator, min_contributors=quorum, weights=weights)
        if factor > 1:  # noisy statistics must fit the scheme's clip range: shrink them all alike
            self._stat_scale *= factor
            self.evaluator = self._adapter()
        scheme = privacy.wrap(inner, pcfg, self.evaluator, min_contributors=quorum, weights=weights)
        if isinstance(scheme, DPScheme):
            self.evaluator.set_release_noise(privacy.release_noise(scheme.plan, len(self.data.shards)))
        return scheme

    def _adapter(self) -> ModelAdapter:
        return make_adapter(self.cfg.model, self.data.n_features, self.data.classes, self.cfg.federation.seed,
                            bounds=self._bounds, stat_scale=self._stat_scale,
                            row_norm=self.cfg.privacy.row_norm if self.cfg.privacy.enabled else 0.0)

    @property
    def rounds(self) -> int:
        """Rounds this run performs: as configured, or fewer when the model is complete sooner (naive Bayes: 1)."""
        needed = self.evaluator.rounds_needed
        return min(self.cfg.federation.rounds, needed) if needed else self.cfg.federation.rounds

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
                dropped.update(outcome.rejected)
                sizes = [len(uploads[p]) for p in outcome.contributors]
                spent = self.accountant.spent if self.accountant is not None else (None, None)
                metrics = RoundMetrics(
                    rnd, self.evaluator.evaluate(params, self.data.X_test, self.data.y_test), seconds,
                    float(np.mean(sizes)), outcome.contributors, dropped, *spent,
                )
                history.append(metrics)
                on_round(metrics)
        finally:
            # do not wait for a party that never answered: the run is over without it
            pool.shutdown(wait=False, cancel_futures=True)
        return RunResult(self.scheme.name, self.data.name, len(self.parties), self.evaluator.metric, history,
                         np.asarray(params), self.accountant.as_json() if self.accountant is not None else None)


def run(cfg: Config, on_round: Callable[[RoundMetrics], None] = lambda m: None) -> RunResult:
    """Build a :class:`Simulation` from ``cfg`` and run every round."""
    return Simulation(cfg).run(on_round)
