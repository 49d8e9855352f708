"""What every engine shares: the pieces a configuration defines, and a run's results.

Both the in-process engine (:mod:`securefl.transport.inproc`) and the networked roles
(:mod:`securefl.transport`) build their scheme (with differential privacy
wrapped around it when ``[privacy]`` asks), data, model adapters, accountants
and roles here, so one config gives the same federation in one process or
across machines, and both report rounds in the same :class:`RoundMetrics` /
:class:`RunResult` form (the ``--json`` format).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crypto_backends import registry
from crypto_backends.base import Scheme
from crypto_backends.dp import DPScheme
from crypto_backends.keys import AggregatorKey, PartyKey
from securefl import privacy
from securefl.config import Config
from securefl.core.aggregator import Aggregator, Combined
from securefl.core.party import Party
from securefl.errors import ConfigError
from securefl.ml.data import FederatedData, load_federated
from securefl.ml.models import ModelAdapter, make_adapter


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

    def as_json(self) -> dict[str, Any]:
        data = {"round": self.round, "accuracy": self.accuracy, "seconds": self.seconds, "bytes_up": self.bytes_up,
                "parties": list(self.parties), "dropped": dict(self.dropped)}
        if self.epsilon_spent is not None:
            data.update(epsilon_spent=self.epsilon_spent, delta_spent=self.delta_spent)
        return data

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RoundMetrics:
        spent = obj.get("epsilon_spent"), obj.get("delta_spent")
        return cls(int(obj["round"]), float(obj["accuracy"]), float(obj["seconds"]), float(obj["bytes_up"]),
                   tuple(obj["parties"]), {str(k): str(v) for k, v in obj["dropped"].items()},
                   None if spent[0] is None else float(spent[0]), None if spent[1] is None else float(spent[1]))

    @classmethod
    def of_round(cls, round: int, combined: Combined, sizes: Mapping[str, int], dropped: Mapping[str, str],
                 seconds: float, accuracy: float,
                 spent: tuple[float | None, float | None] = (None, None)) -> RoundMetrics:
        """The metrics of a fused round: parties missing or rejected are listed with the reason."""
        mean_size = float(np.mean([sizes[p] for p in combined.contributors]))
        return cls(round, accuracy, seconds, mean_size, combined.contributors, dict(dropped), *spent)


@dataclass
class RunResult:
    scheme: str
    dataset: str
    parties: int
    metric: str
    rounds: list[RoundMetrics]
    final_parameters: np.ndarray | None
    """The released model; ``None`` where the reporting role never sees it (networked, sealed schemes)."""
    privacy: dict[str, Any] | None = None
    """The accountant's summary (mode, per-round and spent epsilon/delta, budget), when privacy is on."""

    @property
    def final_accuracy(self) -> float:
        return self.rounds[-1].accuracy if self.rounds else float("nan")

    def as_json(self) -> dict[str, Any]:
        data = {"scheme": self.scheme, "dataset": self.dataset, "parties": self.parties, "metric": self.metric,
                "rounds": [r.as_json() for r in self.rounds], "final_accuracy": self.final_accuracy}
        if self.privacy is not None:
            data["privacy"] = dict(self.privacy)
        return data


def make_scheme(cfg: Config) -> Scheme:
    """The scheme ``[crypto]`` selects, with its configured parameters (without differential privacy)."""
    return registry.create(cfg.crypto.scheme, cfg.crypto.scheme_params())


class Federation:
    """A configuration's scheme, data and model: everything a role derives from the config alone."""

    def __init__(self, cfg: Config) -> None:
        if not cfg.whole_run:
            raise ConfigError(f"{cfg.source} was read for one section only (whole_run=False); a federation needs "
                              "a whole, cross-checked config: load it with securefl.config.load(path)")
        self.cfg = cfg
        fed = cfg.federation
        self.data: FederatedData = load_federated(cfg.data, fed.ids, fed.seed)
        self._bounds = (privacy.feature_bounds(cfg.privacy, [s.X for s in self.data.shards.values()],
                                               self.data.n_features) if cfg.model.kind == "naive_bayes" else None)
        # public divisor of summed statistics (naive Bayes): the largest party's row count, or more (below)
        self._stat_scale = float(max(shard.n for shard in self.data.shards.values()))
        self.evaluator: ModelAdapter = self.adapter()
        """The adapter that measures released models (it knows the public noise they carry)."""
        self.scheme: Scheme = self._protection(make_scheme(cfg))

    @property
    def party_ids(self) -> tuple[str, ...]:
        return self.cfg.federation.ids

    def _protection(self, inner: Scheme) -> Scheme:
        """``inner``, wrapped with differential privacy when ``[privacy]`` asks for it."""
        pcfg, quorum = self.cfg.privacy, self.cfg.federation.min_parties
        weights = {pid: self.evaluator.local_weight(shard.n) for pid, shard in self.data.shards.items()}
        factor = privacy.required_rescale(inner, pcfg, self.evaluator, min_contributors=quorum, weights=weights)
        if factor > 1:  # noisy statistics must fit the scheme's clip range: shrink them all alike
            self._stat_scale *= factor
            self.evaluator = self.adapter()
        scheme = privacy.wrap(inner, pcfg, self.evaluator, min_contributors=quorum, weights=weights)
        if isinstance(scheme, DPScheme):
            self.evaluator.set_release_noise(privacy.release_noise(scheme.plan, len(self.data.shards)))
        return scheme

    def adapter(self) -> ModelAdapter:
        """A fresh model adapter (each party trains its own)."""
        return make_adapter(self.cfg.model, self.data.n_features, self.data.classes, self.cfg.federation.seed,
                            bounds=self._bounds, stat_scale=self._stat_scale,
                            row_norm=self.cfg.privacy.row_norm if self.cfg.privacy.enabled else 0.0)

    def accountant(self) -> privacy.PrivacyAccountant | None:
        """A fresh privacy accountant (the engine's, or one party's own), or ``None`` when privacy is off."""
        pcfg = self.cfg.privacy
        return privacy.PrivacyAccountant(pcfg, self.evaluator.sensitivity(pcfg.clip_norm)) if pcfg.enabled else None

    @property
    def rounds(self) -> int:
        """Rounds a run performs: as configured, or fewer when the model is complete sooner (naive Bayes: 1)."""
        needed = self.evaluator.rounds_needed
        return min(self.cfg.federation.rounds, needed) if needed else self.cfg.federation.rounds

    def party(self, party_id: str, key: PartyKey) -> Party:
        """Party ``party_id`` with its shard of the configured partition, its own adapter and accountant."""
        return Party(party_id, self.data.shards[party_id], self.adapter(), self.scheme, key, self.accountant(),
                     metric=self.metric)

    def aggregator(self, key: AggregatorKey) -> Aggregator:
        return Aggregator(self.scheme, key, num_parameters=self.evaluator.num_parameters,
                          quorum=self.cfg.federation.min_parties, fuse=self.evaluator.fuse)

    def metric(self, params: np.ndarray) -> float:
        """The configured metric of a released model on the held-out rows."""
        return self.evaluator.evaluate(params, self.data.X_test, self.data.y_test)

    def result(self, rounds: list[RoundMetrics], final_parameters: np.ndarray | None,
               accountant: privacy.PrivacyAccountant | None = None) -> RunResult:
        return RunResult(self.scheme.name, self.data.name, len(self.party_ids), self.evaluator.metric, rounds,
                         final_parameters, accountant.as_json() if accountant is not None else None)
