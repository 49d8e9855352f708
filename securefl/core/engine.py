"""The one round engine: every run of securefl, in one process or across machines, is driven here.

Before the first round, when the config does not define the model's starting
point (the parties bring their own trainers), the party with the smallest id
that answers is asked for its initial parameters.

A round, as the scheme declares it (the engine never asks for a scheme's name):

1. account: the privacy accountant refuses the round before anyone releases anything;
2. setup: the scheme's setup exchanges, if it declares any for this round
   (:class:`~crypto_backends.capabilities.InteractiveSetup`);
3. train: every party gets the global model and returns its protected update;
   each upload is parsed, checked and folded into the running aggregate once, on
   arrival, and its bytes dropped (:class:`~securefl.core.aggregator.Stream`);
4. combine: close the running aggregate (bad uploads cost only their sender; the
   quorum holds or the run stops);
5. reveal, as the scheme's :class:`~crypto_backends.base.RevealPlan` says: a
   function key from the authority, or a share exchange with at least ``needed``
   parties (:class:`~crypto_backends.capabilities.ShareReveal`; first, where the
   scheme offers :class:`~crypto_backends.capabilities.ConsistencyCheck`, the
   survivors' signed confirmations, a ``consistency`` request), or nothing (the
   aggregate goes back sealed for the parties to open);
6. evaluate: every contributor measures the model as it would be released on
   its own held-out rows; each metric is averaged, weighted by the rows the
   party measured on (or by its fusion weight);
7. checkpoint, report :class:`~securefl.core.federation.RoundMetrics`.

Everything that differs between in-process threads and gRPC processes sits
beneath, in a :class:`~securefl.transport.base.Transport`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from crypto_backends.capabilities import ShareRequest
from crypto_backends.envelope import Envelope
from crypto_backends.keys import FunctionKey
from crypto_backends.protocol import CheckShare, Roles, SecureSum
from crypto_backends.statements import Evidence
from securefl.core.aggregator import Aggregator, Combined
from securefl.core.federation import Federation, RoundMetrics, RunResult
from securefl.core.messages import GlobalModel, parse_metrics, parse_vector, share_request_bytes
from securefl.core.proofs import Proofs
from securefl.errors import QuorumError, SecureFLError
from securefl.ml.trainer import NUM_EXAMPLES
from securefl.privacy import PrivacyAccountant
from securefl.transport.base import Replies, Request, Step, Transport

log = logging.getLogger(__name__)

OnRound = Callable[[RoundMetrics], None]
OnStop = Callable[[RunResult], None]


class Checkpointer(Protocol):
    """Where a run records each finished round, so that a restarted aggregator resumes from it."""

    def save(self, model: GlobalModel, history: Sequence[RoundMetrics]) -> None:
        """Record ``model`` as it stands after the rounds of ``history`` (called once per finished round).

        The engine calls it before reporting the round; an exception stops the run.
        Whether the write is atomic is the implementation's promise, not this protocol's.
        """
        ...


@dataclass
class Outcome:
    """One fused round."""

    model: GlobalModel
    combined: Combined
    sizes: dict[str, int]
    dropped: dict[str, str]


@dataclass
class Collected:
    """Steps 2-4 of a round: the combined aggregate, the upload sizes, and who dropped (with why)."""

    combined: Combined
    sizes: dict[str, int]
    dropped: dict[str, str]


class _OverTransport(Roles):
    """One round's messages over the federation's transport: deadlines, quorums and dropouts named."""

    def __init__(self, steps: SecureRound, rnd: int, model: GlobalModel) -> None:
        self.aggregator, self.transport, self.timeout = steps.aggregator, steps.transport, steps.timeout
        self.proofs = steps.proofs
        self.rnd, self.model = rnd, model
        self.dropped: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.combined: Combined | None = None

    def setup(self, step: int, messages: Mapping[str, bytes]) -> dict[str, bytes]:
        replies = self.transport.exchange(Request("setup", self.rnd, dict(messages), stage=step), lambda s, r: r,
                                          timeout=self.timeout)
        self.dropped.update(replies.dropped)
        self.aggregator.require_quorum(self.rnd, len(replies.accepted), self.dropped, f"setup reply (stage {step})")
        return replies.accepted

    def collect(self, parties: tuple[str, ...]) -> Envelope:
        # each upload is checked and folded on arrival, then dropped (unless kept as evidence for the parties)
        stream = self.aggregator.stream(self.rnd, self.model.digest)
        uploads: Replies[float] = self.transport.exchange(
            Request("train", self.rnd, self.proofs.model_payloads(self.rnd, self.model, parties)), stream.accept,
            timeout=self.timeout)
        combined = self.aggregator.finish(stream)
        # an upload folded just as the deadline passed is in the aggregate: it is not a dropout
        self.dropped.update({p: why for p, why in uploads.dropped.items() if p not in combined.weights})
        self.dropped.update(combined.rejected)
        self.sizes, self.combined = uploads.sizes, combined
        return combined.aggregate

    def consistency(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        return self._ask("consistency", "confirmation", request, aggregate, check)

    def shares(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        # a share leaves a party only for an aggregate its evidence proves (crypto.verify_aggregate)
        evidence = self.combined.evidence if self.combined is not None else None
        return self._ask("share", "share", request, aggregate, check, evidence)

    def _ask(self, step: Step, what: str, request: ShareRequest, aggregate: Envelope,
             check: CheckShare, evidence: Evidence | None = None) -> dict[str, bytes]:
        """``request.parties`` get the aggregate and ``request.message`` (and ``evidence``) as a ``step`` request;
        the replies that ``check`` passed, at least ``request.needed`` of them (else the quorum rule stops the
        round)."""
        shown = self.proofs.for_parties(self.rnd, aggregate, evidence, request.parties)
        bodies = {p: share_request_bytes(request.message, aggregate, e) for p, e in shown.items()}
        replies = self.transport.exchange(Request(step, self.rnd, bodies), check, timeout=self.timeout)
        self.dropped.update({p: f"{what} refused or missing: {why}" for p, why in replies.dropped.items()})
        self.aggregator.require_quorum(self.rnd, len(replies.accepted), replies.dropped, what, request.needed)
        return replies.accepted

    def function_key(self, aggregate: Envelope) -> FunctionKey:
        # the authority derives it only for contributors whose signed statements come along (verify_aggregate)
        evidence = self.combined.evidence if self.combined is not None else None
        return self.transport.function_key(self.rnd, dict(zip(aggregate.parties, aggregate.weights, strict=True)),
                                           evidence)

    def left_out(self, party: str, why: str) -> None:
        self.dropped.setdefault(party, why)


class SecureRound:
    """One round's secure-aggregation steps over a transport, in :class:`~crypto_backends.protocol.SecureSum` order.

    :class:`RoundEngine` runs them for every round of a federation; a tool that drives
    the aggregator alone (``securefl.tools.memory``) runs the same steps over its own
    transport, so no second copy of the order exists.
    """

    def __init__(self, aggregator: Aggregator, transport: Transport, *, timeout: float) -> None:
        self.aggregator, self.transport, self.timeout = aggregator, transport, timeout
        self.scheme = aggregator.scheme
        self.protocol = SecureSum(aggregator.scheme, aggregator.key)
        rules = aggregator.statements
        self.proofs = Proofs(rules.sampler if rules is not None else None, transport, timeout=timeout)
        """What each party is shown with an aggregate (its own sampled openings under ``sampled``)."""

    def run(self, rnd: int, parties: Sequence[str], model: GlobalModel) -> tuple[Collected, GlobalModel]:
        """Setup, every party's protected update folded on arrival, the reveal: the round's next global model."""
        roles = _OverTransport(self, rnd, model)
        _, total = self.protocol.run(roles, rnd, parties)
        collected = self._collected(roles)
        return collected, self.aggregator.next_model(collected.combined, total)

    def collect(self, rnd: int, parties: Sequence[str], model: GlobalModel) -> Collected:
        """Setup exchanges (if the scheme offers them), then every party's protected update, folded on arrival."""
        roles = _OverTransport(self, rnd, model)
        self.protocol.collect(roles, rnd, parties)
        return self._collected(roles)

    @staticmethod
    def _collected(roles: _OverTransport) -> Collected:
        assert roles.combined is not None  # the protocol's collect step ran
        return Collected(roles.combined, roles.sizes, roles.dropped)


class RoundEngine:
    """Runs a federation's rounds over ``transport`` (see the module docstring)."""

    def __init__(self, federation: Federation, aggregator: Aggregator, transport: Transport, *,
                 accountant: PrivacyAccountant | None = None, checkpoint: Checkpointer | None = None) -> None:
        self.federation, self.aggregator, self.transport = federation, aggregator, transport
        self.scheme = aggregator.scheme
        self.accountant, self.checkpoint = accountant, checkpoint
        self.timeout = federation.cfg.federation.round_timeout
        self.steps = SecureRound(aggregator, transport, timeout=self.timeout)
        """The secure-aggregation steps of each round, in their one order."""
        self.metric = federation.metric
        """The main metric's name (set from the first report when the trainers define their own)."""

    def run(self, on_round: OnRound = lambda m: None, *, model: GlobalModel | None = None,
            history: Sequence[RoundMetrics] = (), on_stop: OnStop = lambda r: None) -> RunResult:
        """Every remaining round, from ``model`` after the rounds in ``history`` (a resumed run) or from the start.

        A run that stops early (quorum lost, budget exhausted, a refused function key,
        interrupted) raises; before that, ``on_stop`` gets the result of the rounds
        completed so far, its ``stopped`` field saying why (so ``--json`` is written).
        """
        history = list(history)
        contributors: tuple[str, ...] = history[-1].parties if history else ()
        try:
            # inside the stop handling: a run that stops before its first round (no party gives the initial
            # parameters) still reports, with the rounds it resumed from (none for a fresh run)
            if model is None:
                initial = self.federation.initial
                model = GlobalModel.open(initial if initial is not None else self.initial_parameters())
            if self.aggregator.num_parameters is None:
                self.aggregator.num_parameters = model.length
            if self.accountant is not None:
                self.accountant.replay(len(history))  # what a resumed run's earlier rounds spent is spent
            for rnd in range(len(history), self.federation.rounds):
                t0 = time.perf_counter()
                outcome = self.round(rnd, model)
                model, contributors = outcome.model, outcome.combined.contributors
                seconds = time.perf_counter() - t0
                log.info("round %d fused from %d updates in %.3f s%s", rnd, len(contributors), seconds,
                         f"; dropped: {', '.join(outcome.dropped)}" if outcome.dropped else "")
                measured = self.evaluate(rnd, model, outcome.combined)
                spent = self.accountant.spent if self.accountant is not None else (None, None)
                metrics = RoundMetrics.of_round(rnd, outcome.combined, outcome.sizes, outcome.dropped, seconds,
                                                measured.get(self.metric or "", math.nan), spent, measured,
                                                self.steps.proofs.report(outcome.combined.aggregate))
                history.append(metrics)
                if self.checkpoint is not None:
                    self.checkpoint.save(model, history)
                on_round(metrics)
        except SecureFLError as exc:  # budget spent, below the quorum, a function key refused
            log.error("%s", exc)
            on_stop(self._stopped(history, exc))
            self.transport.finish(None, str(exc))
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: record what is done, tell no one, leave at once
            on_stop(self._stopped(history, exc))
            raise
        self.transport.finish(model, "all rounds done", contributors=contributors)
        return self.federation.result(history, self.transport.release(model), self.accountant, self.metric)

    def _stopped(self, history: list[RoundMetrics], exc: BaseException) -> RunResult:
        # the model so far is not released: under a sealed scheme that would need the parties' publication step
        return self.federation.result(list(history), None, self.accountant, self.metric, stopped=exc)

    def round(self, rnd: int, model: GlobalModel) -> Outcome:
        """One round up to the next global model (steps 1-5 of the module docstring)."""
        if self.accountant is not None:
            self.accountant.charge(rnd)  # refuses the round before any party releases anything
        collected, model = self.steps.run(rnd, tuple(self.federation.party_ids), model)
        return Outcome(model, collected.combined, collected.sizes, collected.dropped)

    def initial_parameters(self) -> np.ndarray:
        """The model's starting point, from the first party (by id) that gives one."""
        for party in sorted(self.federation.party_ids):
            replies = self.transport.exchange(Request("init", 0, {party: b""}), lambda s, r: parse_vector(r),
                                              timeout=self.timeout)
            if party in replies.accepted:
                log.info("initial parameters (%d values) from %s", replies.accepted[party].size, party)
                return replies.accepted[party]
            log.warning("no initial parameters from %s: %s", party, replies.dropped.get(party, "no reply"))
        raise QuorumError("no party gave the model's initial parameters (see the warnings above); start the "
                          "parties, or check their trainers' initial_parameters()")

    def evaluate(self, rnd: int, model: GlobalModel, combined: Combined) -> dict[str, float]:
        """Every contributor's metrics of ``model`` as released, averaged (see the module docstring)."""
        weights = combined.weights
        replies = self.transport.exchange(Request("evaluate", rnd, self.steps.proofs.model_payloads(rnd, model,
                                                                                                     list(weights))),
                                          lambda sender, reply: parse_metrics(reply), timeout=self.timeout)
        for party, why in replies.dropped.items():
            log.warning("round %d: %s did not measure the model: %s", rnd, party, why)
        if model.is_sealed:  # fewer than a quorum would open it (they refused it as cheated?): not released,
            # and the next round could not train from it: stop now, with the parties' reasons
            self.aggregator.require_quorum(rnd, len(replies.accepted), replies.dropped, "taker of the sealed model")
        reported = {p: m for p, m in replies.accepted.items() if m}
        if not reported:
            return {}
        if self.metric is None:  # the trainers' own metrics: the first name reported is the main one
            self.metric = next(iter(reported[min(reported)]))
        averaged: dict[str, float] = {}
        for name in sorted({n for m in reported.values() for n in m} - {NUM_EXAMPLES}):
            have = {p: m for p, m in reported.items() if name in m}
            w = {p: m.get(NUM_EXAMPLES, weights[p]) for p, m in have.items()}
            averaged[name] = math.fsum(w[p] * m[name] for p, m in have.items()) / math.fsum(w.values())
        return averaged
