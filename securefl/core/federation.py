"""What every engine shares: the pieces a configuration defines, and a run's results.

Both the in-process engine (:mod:`securefl.transport.inproc`) and the networked roles
(:mod:`securefl.transport`) build their scheme (with differential privacy
wrapped around it when ``[privacy]`` asks), data, model adapters, accountants
and roles here, so one config gives the same federation in one process or
across machines, and both report rounds in the same :class:`RoundMetrics` /
:class:`RunResult` form (the ``--json`` format).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crypto_backends import registry
from crypto_backends.base import RevealSite, Scheme
from crypto_backends.dp import DPScheme
from crypto_backends.keys import AggregatorKey, PartyIdentity, PartyKey
from crypto_backends.sampling import Sampler
from crypto_backends.statements import SignatureChecks, Verifier, block_sampler, context_of, refoldable
from securefl import privacy
from securefl.config import OWN_DATA, Config
from securefl.core.aggregator import Aggregator, Combined, Statements
from securefl.core.fusion import mean_from_sum, sum_of
from securefl.core.jsonout import finite
from securefl.core.party import Party
from securefl.errors import BudgetExceededError, ConfigError, QuorumError
from securefl.identity import bind_identity
from securefl.ml.data import FederatedData, PartyData, held_out_parts, load_federated, load_party
from securefl.ml.models import ModelAdapter, make_adapter
from securefl.ml.trainer import KindTrainer, Trainer
from securefl.state.partystate import PartyState, PolicyState, federation_id


@dataclass(frozen=True)
class RoundMetrics:
    """One finished round as reported: its number, main metric, time, upload size, contributors and dropouts.

    ``accuracy`` is the value of the run's main metric (:attr:`RunResult.metric`; NaN
    when no contributor measured it), ``seconds`` the time from the round's start to
    its fused model, ``parties`` the contributors in the aggregate, ``dropped`` the asked
    parties left out, with why.  ``delta_spent`` is set together with ``epsilon_spent``.
    """

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
    metrics: dict[str, float] = field(default_factory=dict)
    """Every metric the parties reported, averaged over the contributors (``accuracy`` is the run's main one)."""
    verification: dict[str, Any] = field(default_factory=dict)
    """Under ``crypto.verify_aggregate = "sampled"``: the blocks and samples of the round's check and the chance
    that one altered block is caught, by one verifier and by any of them (empty otherwise)."""

    def as_json(self) -> dict[str, Any]:
        """The round in the ``--json`` form: a NaN ``accuracy`` as ``null``; privacy spend and metrics only if set."""
        # a metric nobody measured is NaN here and null in JSON (strict JSON has no NaN)
        data = {"round": self.round, "accuracy": finite(self.accuracy), "seconds": self.seconds,
                "bytes_up": self.bytes_up,
                "parties": list(self.parties), "dropped": dict(self.dropped)}
        if self.epsilon_spent is not None:
            data.update(epsilon_spent=self.epsilon_spent, delta_spent=self.delta_spent)
        if self.metrics:
            data["metrics"] = dict(self.metrics)
        if self.verification:
            data["verification"] = dict(self.verification)
        return data

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RoundMetrics:
        """The round :meth:`as_json` wrote (from a checkpoint or a ``--json`` file), types coerced.

        A missing field raises ``KeyError``, a mistyped one ``TypeError`` or ``ValueError``; the
        caller turns these into its own error (the checkpoint reader does).
        """
        spent = obj.get("epsilon_spent"), obj.get("delta_spent")
        accuracy = math.nan if obj["accuracy"] is None else float(obj["accuracy"])
        return cls(int(obj["round"]), accuracy, float(obj["seconds"]), float(obj["bytes_up"]),
                   tuple(obj["parties"]), {str(k): str(v) for k, v in obj["dropped"].items()},
                   None if spent[0] is None else float(spent[0]), None if spent[1] is None else float(spent[1]),
                   {str(k): float(v) for k, v in obj.get("metrics", {}).items()},
                   dict(obj.get("verification", {})))

    @classmethod
    def of_round(cls, round: int, combined: Combined, sizes: Mapping[str, int], dropped: Mapping[str, str],
                 seconds: float, accuracy: float, spent: tuple[float | None, float | None] = (None, None),
                 metrics: Mapping[str, float] | None = None,
                 verification: Mapping[str, Any] | None = None) -> RoundMetrics:
        """The metrics of a fused round: parties missing or rejected are listed with the reason."""
        mean_size = float(np.mean([sizes[p] for p in combined.contributors]))
        return cls(round, accuracy, seconds, mean_size, combined.contributors, dict(dropped), *spent,
                   metrics=dict(metrics or {}), verification=dict(verification or {}))


STOP_REASONS = {QuorumError: "quorum lost", BudgetExceededError: "budget exhausted", KeyboardInterrupt: "interrupted"}
"""The ``stopped`` field of a run that ended early, by the error that ended it (any other error: ``error``)."""


def stop_reason(exc: BaseException) -> str:
    """The ``stopped`` field for a run ended by ``exc`` (see :data:`STOP_REASONS`)."""
    return next((why for cls, why in STOP_REASONS.items() if isinstance(exc, cls)), "error")


@dataclass
class RunResult:
    """A whole run as reported (the ``--json`` form): the scheme, data set, number of parties, main metric and rounds.

    ``rounds`` holds every round that finished, also when the run stopped early.
    """

    scheme: str
    dataset: str
    parties: int
    metric: str
    rounds: list[RoundMetrics]
    final_parameters: np.ndarray | None
    """The released model; ``None`` where the reporting role never sees it (networked, sealed schemes)."""
    privacy: dict[str, Any] | None = None
    """The accountant's summary (mode, per-round and spent epsilon/delta, budget), when privacy is on."""
    stopped: str | None = None
    """Why the run ended before its last round (:data:`STOP_REASONS`), ``None`` when every round ran."""
    stop_message: str = ""
    """The error that stopped it, when ``stopped``."""

    @property
    def final_accuracy(self) -> float:
        """The main metric after the last finished round; NaN when no round finished."""
        return self.rounds[-1].accuracy if self.rounds else float("nan")

    def as_json(self) -> dict[str, Any]:
        """The run in the ``--json`` form; a NaN ``final_accuracy`` (and non-finite privacy numbers) as ``null``.

        ``final_parameters`` is not included; ``stop_message`` only when the run stopped early,
        ``privacy`` only when privacy is on.
        """
        data = {"scheme": self.scheme, "dataset": self.dataset, "parties": self.parties, "metric": self.metric,
                "rounds": [r.as_json() for r in self.rounds], "final_accuracy": finite(self.final_accuracy),
                "stopped": self.stopped}
        if self.stopped is not None:
            data["stop_message"] = self.stop_message
        if self.privacy is not None:
            data["privacy"] = finite(dict(self.privacy))
        return data


def make_scheme(cfg: Config) -> Scheme:
    """The scheme ``[crypto]`` selects, with its configured parameters (without the privacy wrapper).

    With ``[privacy]`` on, the parameters are the scheme's own choice for that case
    (:meth:`~crypto_backends.base.SchemeParams.under_differential_privacy`: ``fe`` drops
    its consecutive-round check, whose differences the noise covers).
    """
    # headroom that grows with the federation (e.g. paillier's slots) is sized here, before keys are made
    params = cfg.crypto.scheme_params().for_federation(len(cfg.federation.ids))
    return registry.create(cfg.crypto.scheme, params.under_differential_privacy() if cfg.privacy.enabled else params)


def min_contributors(cfg: Config) -> int:
    """Fewest contributors a revealed sum may have: the noise plan's (the quorum) under distributed DP, else 1."""
    return cfg.federation.min_parties if cfg.privacy.mode == "distributed" else 1


def party_state(cfg: Config, party_id: str, state_dir: str | Path | None) -> PartyState | None:
    """Party ``party_id``'s durable state in ``state_dir`` (``None``: in memory only)."""
    if state_dir is None:
        return None
    return PartyState.in_dir(state_dir, federation_id(cfg.federation.ids, cfg.federation.seed), party_id)


def policy_state(cfg: Config, state_dir: str | Path | None) -> PolicyState | None:
    """The authority's durable function-key record for this federation in ``state_dir`` (``None``: in memory)."""
    if state_dir is None:
        return None
    return PolicyState.in_dir(state_dir, federation_id(cfg.federation.ids, cfg.federation.seed))


def verifies(cfg: Config, scheme: Scheme) -> bool:
    """Whether uploads are signed and checked before any reveal (``crypto.verify_aggregate`` not ``"off"``).

    Where the parties reveal (they open the aggregate, or give shares of it), they check it; under a
    function-key reveal (``fe``) the key authority checks the request before it derives the key (who
    contributed, with what weight: :meth:`~securefl.core.authority.Authority.function_key`).  Not where the
    aggregator reveals on its own key (``plain``): no one else takes part in what it reveals.
    """
    plan = scheme.declarations.reveal
    return cfg.crypto.verify_aggregate != "off" and (plan.shares or plan.function_key
                                                     or plan.site is RevealSite.PARTIES)


def refolds(cfg: Config, scheme: Scheme) -> bool:
    """Whether verifiers refold the signed uploads (``full``) with the aggregator's public key alone: under
    ``full``, for a scheme :func:`~crypto_backends.statements.refoldable` (not secagg, whose fold needs the
    aggregator's setup, nor fe, whose key authority checks the statements only: see there)."""
    return cfg.crypto.verify_aggregate == "full" and refoldable(scheme)


def sampler(cfg: Config, scheme: Scheme, aggregator_key: AggregatorKey) -> Sampler | None:
    """Under ``sampled``, how uploads commit to their blocks and verifiers check some (``None`` otherwise).

    As with :func:`refolds`, not for a scheme with setup exchanges nor under a function-key reveal, and
    only for one whose payloads are blocks that fold one by one
    (:class:`~crypto_backends.capabilities.BlockFold`): :func:`~crypto_backends.statements.block_sampler`;
    elsewhere the verifiers check the signed statements alone.
    """
    if cfg.crypto.verify_aggregate != "sampled":
        return None
    return block_sampler(scheme, aggregator_key, cfg.crypto.verify_samples)


def statement_verifier(cfg: Config, scheme: Scheme, aggregator_key: AggregatorKey,
                       checks: SignatureChecks) -> Verifier:
    """The check of an aggregate before a reveal, for a role holding ``checks`` (see
    :func:`~crypto_backends.statements.verify_aggregate`): at least the quorum (and the DP minimum) of
    distinct signed contributors of the roster, refolded with ``aggregator_key`` where :func:`refolds`,
    sampled where :func:`sampler`.

    A function of the config and the scheme only (no data), so that a role that is no party (the key
    authority) builds the very check the parties build.
    """
    least = max(cfg.federation.min_parties, min_contributors(cfg))
    ids = cfg.federation.ids
    return Verifier(scheme, aggregator_key, checks, frozenset(ids), context_of(ids, scheme.name.encode()),
                    least, full=refolds(cfg, scheme), sampler=sampler(cfg, scheme, aggregator_key))


class Federation:
    """What every role derives from the config alone: the scheme, the fusion rule, the rounds, the results.

    This base class reads no data: it is the federation of parties that bring
    their own trainers or files (``data.dataset = "own"``, :func:`securefl.simulate`,
    :func:`securefl.serve_party`).  The fusion rule is ``[model] fusion``; the
    model's starting point and length come from a party (the engine's ``init``
    step).  :class:`SharedDataFederation` is the demo that splits one data set.
    """

    metric: str | None = None
    """The main metric's name (``None``: the first one the trainers report)."""
    initial: np.ndarray | None = None
    """The starting point when the config defines it (``None``: asked of a party)."""

    def __init__(self, cfg: Config) -> None:
        if not cfg.whole_run:
            raise ConfigError(f"{cfg.source} was read for one section only (whole_run=False); a federation needs "
                              "a whole, cross-checked config: load it with securefl.config.load(path)")
        self.cfg = cfg
        self.scheme: Scheme = self._protection(make_scheme(cfg))

    def _protection(self, inner: Scheme) -> Scheme:
        if self.cfg.privacy.enabled:
            raise ConfigError("privacy.mode: differential privacy with the parties' own trainers or data is not "
                              "available yet: calibrating the noise needs the parties' public weights and the "
                              "model's sensitivity before the first round. Set privacy.mode = 'off', or use a "
                              "built-in model kind on a bundled or csv: data set")
        return inner

    @property
    def party_ids(self) -> tuple[str, ...]:
        """Every party of the federation: ``federation.ids``."""
        return self.cfg.federation.ids

    @property
    def dataset(self) -> str:
        """The data set's name for the results: ``own`` here, as the parties bring their own data."""
        return OWN_DATA

    @property
    def rounds(self) -> int:
        """Rounds a run performs: ``federation.rounds``."""
        return self.cfg.federation.rounds

    def fuse(self, weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
        """The fusion rule (``[model] fusion``): the weighted mean, or the plain sum."""
        return (sum_of if self.cfg.model.fusion == "sum" else mean_from_sum)(weighted_sum, total_weight)

    def accountant(self) -> privacy.PrivacyAccountant | None:
        """A fresh privacy accountant (the engine's, or one party's own), or ``None`` when privacy is off."""
        return None

    def party(self, party_id: str, key: PartyKey, trainer: Trainer | None = None, *,
              state_dir: str | Path | None = None, identity: PartyIdentity | None = None,
              aggregator_key: AggregatorKey | None = None) -> Party:
        """Party ``party_id`` running ``trainer`` (the federation's own for ``party_id`` when omitted).

        ``state_dir``: where the party keeps its durable security state (``None``: in memory).
        ``identity``: its identity key and certificate (:mod:`securefl.identity`), bound wherever the
        scheme signs (``None``: the party signs nothing, and a scheme that needs signatures refuses).
        ``aggregator_key``: the aggregator's public key, with which the party refolds the signed uploads
        of an aggregate before it reveals it; both it and ``identity`` are needed unless
        ``crypto.verify_aggregate = "off"`` (:class:`ConfigError` otherwise).
        """
        if identity is not None:
            bind_identity(self.scheme, key, identity)
        verifier = None
        if self.verifies:
            if identity is None or aggregator_key is None:
                raise ConfigError(f"crypto.verify_aggregate = {self.cfg.crypto.verify_aggregate!r}: {party_id} needs "
                                  "its identity (its TLS certificate over gRPC; a simulation's own CA) and the "
                                  "aggregator's public key to sign its uploads and check aggregates. Use TLS "
                                  "certificates (`securefl certs`), or set crypto.verify_aggregate = 'off' "
                                  "(honest-but-curious aggregator)")
            verifier = self.verifier(aggregator_key, identity)
        return Party(party_id, trainer if trainer is not None else self.trainer(party_id), self.scheme, key,
                     self.accountant(), fuse=self.fuse, state=party_state(self.cfg, party_id, state_dir),
                     identity=identity if verifier is not None else None, verifier=verifier)

    @property
    def verifies(self) -> bool:
        """Whether uploads are signed and checked before any reveal (``crypto.verify_aggregate``): see
        :func:`verifies`."""
        return verifies(self.cfg, self.scheme)

    @property
    def statement_context(self) -> bytes:
        """What every signed statement of this federation is bound to: its roster and scheme."""
        return context_of(self.party_ids, self.scheme.name.encode())

    def verifier(self, aggregator_key: AggregatorKey, checks: SignatureChecks) -> Verifier:
        """The check of an aggregate (or of a function-key request) before a reveal, for a role holding
        ``checks``: see :func:`statement_verifier`."""
        return statement_verifier(self.cfg, self.scheme, aggregator_key, checks)

    @property
    def refolds(self) -> bool:
        """Whether verifiers refold the signed uploads (see :func:`refolds`)."""
        return refolds(self.cfg, self.scheme)

    def sampler(self, aggregator_key: AggregatorKey) -> Sampler | None:
        """Under ``sampled``, how uploads commit to their blocks and verifiers check some (see :func:`sampler`)."""
        return sampler(self.cfg, self.scheme, aggregator_key)

    def statements(self, checks: SignatureChecks | None,
                   aggregator_key: AggregatorKey | None = None) -> Statements | None:
        """The aggregator's check of each upload's signed statement (``None`` when verification is off).

        The uploads themselves are kept for the evidence only where parties reveal (at the parties or with
        their shares) and check them: they refold them (``full``) or blocks of them (``sampled``, which
        needs ``aggregator_key``).  Under a function-key reveal (``fe``) the key authority checks the
        statements alone.  :class:`ConfigError` without ``checks`` while verification is on.
        """
        if not self.verifies:
            return None
        if checks is None:
            raise ConfigError(f"crypto.verify_aggregate = {self.cfg.crypto.verify_aggregate!r}: the aggregator "
                              "needs the federation's CA to check the parties' signed uploads. Use TLS "
                              "certificates (`securefl certs`), or set crypto.verify_aggregate = 'off'")
        drawn = self.sampler(aggregator_key) if aggregator_key is not None else None
        return Statements(checks, self.statement_context, self.refolds or drawn is not None, drawn)

    def trainer(self, party_id: str) -> Trainer:
        """Always raises :class:`ConfigError`: parties of this federation bring their own trainers or data."""
        raise ConfigError(f"{party_id} brings its own data or trainer (data.dataset = 'own'): start it with "
                          "securefl party CONFIG --id NAME --data PATH.csv, or securefl.serve_party(...)")

    def aggregator(self, key: AggregatorKey, checks: SignatureChecks | None = None) -> Aggregator:
        """The aggregator under ``key`` with the federation's quorum, fusion rule and weight and norm bounds.

        The model's length is known only when the config defines the starting point;
        otherwise the engine sets it from the initial parameters it asks of a party.
        ``checks``: the parties' signatures checker (the federation's CA), needed unless
        ``crypto.verify_aggregate = "off"`` (:meth:`statements`).
        """
        length = None if self.initial is None else int(self.initial.size)
        fed = self.cfg.federation
        return Aggregator(self.scheme, key, num_parameters=length, quorum=fed.min_parties, fuse=self.fuse,
                          max_weight=fed.max_weight, max_update_norm=fed.max_update_norm or None,
                          statements=self.statements(checks, key))

    def result(self, rounds: list[RoundMetrics], final_parameters: np.ndarray | None,
               accountant: privacy.PrivacyAccountant | None = None, metric: str | None = None,
               stopped: BaseException | None = None) -> RunResult:
        """The run's result; ``stopped``: the error that ended it early (its rounds so far are kept)."""
        return RunResult(self.scheme.name, self.dataset, len(self.party_ids), metric or self.metric or "accuracy",
                         rounds, final_parameters, accountant.as_json() if accountant is not None else None,
                         stopped=None if stopped is None else stop_reason(stopped),
                         stop_message="" if stopped is None else str(stopped) or type(stopped).__name__)


def federation(cfg: Config) -> Federation:
    """The federation ``cfg`` describes: one data set split across the parties, or the parties' own."""
    return Federation(cfg) if cfg.data.dataset == OWN_DATA else SharedDataFederation(cfg)


class KindFederation(Federation):
    """A federation of one built-in (or plug-in) model kind: its adapter gives the fusion rule and the rounds."""

    evaluator: ModelAdapter

    @property
    def metric(self) -> str | None:  # type: ignore[override]
        """The adapter's metric (built-in kinds: ``r2`` for ``linear_regression``, else ``accuracy``)."""
        return self.evaluator.metric

    @property
    def rounds(self) -> int:
        """Rounds a run performs: as configured, or fewer when the model is complete sooner (naive Bayes: 1)."""
        needed = self.evaluator.rounds_needed
        return min(self.cfg.federation.rounds, needed) if needed else self.cfg.federation.rounds

    def fuse(self, weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
        """The adapter's fusion rule, not ``[model] fusion``: FedAvg's mean, or the kind's own (naive Bayes, trees)."""
        return self.evaluator.fuse(weighted_sum, total_weight)


class SharedDataFederation(KindFederation):
    """The demo: one data set (bundled or ``csv:``) split across the parties, each training a built-in kind."""

    def __init__(self, cfg: Config) -> None:
        fed = cfg.federation
        self.cfg = cfg
        self.data: FederatedData = load_federated(cfg.data, fed.ids, fed.seed)
        self.held_out = held_out_parts(self.data, fed.ids, fed.seed)
        self._bounds = (privacy.feature_bounds(cfg.privacy, [s.X for s in self.data.shards.values()],
                                               self.data.n_features) if cfg.model.kind == "naive_bayes" else None)
        # public divisor of summed statistics (naive Bayes): the largest party's row count, or more (below)
        self._stat_scale = float(max(shard.n for shard in self.data.shards.values()))
        self.evaluator = self.adapter()
        """The adapter at the aggregator (fusion rule, rounds, sensitivity; it knows the public noise)."""
        super().__init__(cfg)

    @property
    def initial(self) -> np.ndarray:  # type: ignore[override]
        """The adapter's initial parameters: the config defines the starting point, so no party is asked."""
        return self.evaluator.initial_parameters()

    @property
    def dataset(self) -> str:
        """The name of the data set split across the parties."""
        return self.data.name

    def _protection(self, inner: Scheme) -> Scheme:
        """``inner``, wrapped with differential privacy when ``[privacy]`` asks for it."""
        pcfg, quorum = self.cfg.privacy, min_contributors(self.cfg)
        weights = {pid: self.evaluator.local_weight(shard.n) for pid, shard in self.data.shards.items()}
        factor = privacy.required_rescale(inner, pcfg, self.evaluator, min_contributors=quorum, weights=weights)
        if factor > 1:  # noisy statistics must fit the scheme's clip range: shrink them all alike
            self._stat_scale *= factor
            self.evaluator = self.adapter()
        scheme = privacy.wrap(inner, pcfg, self.evaluator, min_contributors=quorum, weights=weights)
        if isinstance(scheme, DPScheme):
            self.release_noise = privacy.release_noise(scheme.plan, len(self.data.shards))
            self.evaluator.set_release_noise(self.release_noise)
        return scheme

    release_noise: tuple[float, ...] | None = None

    def adapter(self) -> ModelAdapter:
        """A fresh model adapter (each party trains its own)."""
        adapter = make_adapter(self.cfg.model, self.data.n_features, self.data.classes, self.cfg.federation.seed,
                               bounds=self._bounds, stat_scale=self._stat_scale,
                               row_norm=self.cfg.privacy.row_norm if self.cfg.privacy.enabled else 0.0)
        if self.release_noise is not None:
            adapter.set_release_noise(self.release_noise)
        return adapter

    def accountant(self) -> privacy.PrivacyAccountant | None:
        """A fresh accountant for the adapter's sensitivity at ``privacy.clip_norm``; ``None`` when privacy is off."""
        pcfg = self.cfg.privacy
        return privacy.PrivacyAccountant(pcfg, self.evaluator.sensitivity(pcfg.clip_norm)) if pcfg.enabled else None

    def trainer(self, party_id: str) -> Trainer:
        """Party ``party_id``'s built-in trainer: its shard of the partition, its part of the held-out rows."""
        return KindTrainer(self.adapter(), self.data.shards[party_id], self.held_out[party_id])

    def metric_of(self, params: np.ndarray) -> float:
        """The configured metric of a released model on all the held-out rows (what the parts average to)."""
        return self.evaluator.evaluate(params, self.data.X_test, self.data.y_test)


class PartyDataFederation(KindFederation):
    """One party's side of ``data.dataset = "own"``: a built-in kind trained on this party's own file only."""

    def __init__(self, cfg: Config, path: str | Path) -> None:
        self.own: PartyData = load_party(cfg.data, path, cfg.federation.seed)
        self.evaluator = make_adapter(cfg.model, self.own.n_features, self.own.classes, cfg.federation.seed)
        super().__init__(cfg)

    def trainer(self, party_id: str) -> Trainer:
        """This party's trainer: the configured kind on its own file's training rows, measured on its held-out rows.

        ``party_id`` is not used: this federation holds one party's data only.
        """
        return KindTrainer(self.evaluator, self.own.train, self.own.held_out)
