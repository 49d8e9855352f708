"""What every engine shares: the pieces a configuration defines, and a run's results.

Both the in-process engine (:mod:`securefl.simulation`) and the networked roles
(:mod:`securefl.transport`) build their scheme, data, model adapters and roles
here, so one config gives the same federation in one process or across
machines, and both report rounds in the same :class:`RoundMetrics` /
:class:`RunResult` form (the ``--json`` format).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from crypto_backends import registry
from crypto_backends.base import Scheme
from crypto_backends.keys import AggregatorKey, PartyKey

from .aggregator import Aggregator, FunctionKeySource, FusionOutcome
from .config import Config
from .data import FederatedData, load_federated
from .models import ModelAdapter, make_adapter
from .party import Party


@dataclass(frozen=True)
class RoundMetrics:
    round: int
    accuracy: float
    seconds: float
    bytes_up: float
    """Mean bytes uploaded per answering party."""
    parties: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"round": self.round, "accuracy": self.accuracy, "seconds": self.seconds, "bytes_up": self.bytes_up,
                "parties": list(self.parties), "dropped": dict(self.dropped)}

    @classmethod
    def from_json(cls, obj: Mapping) -> RoundMetrics:
        return cls(int(obj["round"]), float(obj["accuracy"]), float(obj["seconds"]), float(obj["bytes_up"]),
                   tuple(obj["parties"]), {str(k): str(v) for k, v in obj["dropped"].items()})

    @classmethod
    def of_round(cls, round: int, outcome: FusionOutcome, uploads: Mapping[str, bytes], dropped: Mapping[str, str],
                 seconds: float, accuracy: float) -> RoundMetrics:
        """The metrics of a fused round: parties missing or rejected are listed with the reason."""
        sizes = [len(uploads[p]) for p in outcome.contributors]
        return cls(round, accuracy, seconds, float(np.mean(sizes)), outcome.contributors,
                   {**dropped, **outcome.rejected})


@dataclass
class RunResult:
    scheme: str
    dataset: str
    parties: int
    metric: str
    rounds: list[RoundMetrics]
    final_parameters: np.ndarray | None
    """The released model; ``None`` where the reporting role never sees it (networked, sealed schemes)."""

    @property
    def final_accuracy(self) -> float:
        return self.rounds[-1].accuracy if self.rounds else float("nan")

    def as_json(self) -> dict:
        return {"scheme": self.scheme, "dataset": self.dataset, "parties": self.parties, "metric": self.metric,
                "rounds": [r.as_json() for r in self.rounds], "final_accuracy": self.final_accuracy}


def make_scheme(cfg: Config) -> Scheme:
    """The scheme ``[crypto]`` selects, with its configured parameters."""
    return registry.create(cfg.crypto.scheme, cfg.crypto.scheme_params())


class Federation:
    """A configuration's scheme, data and model shape: everything a role derives from the config alone."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.scheme: Scheme = make_scheme(cfg)
        self.data: FederatedData = load_federated(cfg.data, cfg.federation.ids, cfg.federation.seed)

    @property
    def party_ids(self) -> tuple[str, ...]:
        return self.cfg.federation.ids

    def adapter(self) -> ModelAdapter:
        return make_adapter(self.cfg.model, self.data.n_features, self.data.classes, self.cfg.federation.seed)

    def party(self, party_id: str, key: PartyKey) -> Party:
        """Party ``party_id`` with its shard of the configured partition and its own adapter."""
        return Party(party_id, self.data.shards[party_id], self.adapter(), self.scheme, key)

    def aggregator(self, key: AggregatorKey, function_keys: FunctionKeySource | None) -> Aggregator:
        return Aggregator(self.scheme, key, num_parameters=self.adapter().num_parameters,
                          quorum=self.cfg.federation.min_parties,
                          function_keys=function_keys if self.scheme.needs_function_key else None)

    def result(self, rounds: list[RoundMetrics], final_parameters: np.ndarray | None) -> RunResult:
        return RunResult(self.scheme.name, self.data.name, len(self.party_ids), self.adapter().metric, rounds,
                         final_parameters)
