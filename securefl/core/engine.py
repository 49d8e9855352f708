"""The one round engine: every run of securefl, in one process or across machines, is driven here.

A round, as the scheme declares it (the engine never asks for a scheme's name):

1. account: the privacy accountant refuses the round before anyone releases anything;
2. setup: the scheme's setup exchanges, if it declares any for this round
   (:meth:`~crypto_backends.base.Scheme.setup_steps`);
3. train: every party gets the global model and returns its protected update;
   each upload is parsed and checked once, on arrival;
4. combine the valid uploads (bad ones cost only their sender; the quorum holds or the run stops);
5. reveal: a function key from the authority (``needs_function_key``), or a
   share exchange with at least ``needed`` parties (``share_request``), or
   nothing (the aggregate goes back sealed for the parties to open);
6. evaluate: the party with the smallest id among the contributors measures
   the model as it would be released;
7. checkpoint, report :class:`~securefl.core.federation.RoundMetrics`.

Everything that differs between in-process threads and gRPC processes sits
beneath, in a :class:`~securefl.transport.base.Transport`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from crypto_backends.envelope import Envelope
from securefl.core.aggregator import Aggregator, Combined
from securefl.core.federation import Federation, RoundMetrics, RunResult
from securefl.core.messages import GlobalModel, parse_metric, share_request_bytes
from securefl.errors import SecureFLError
from securefl.privacy import PrivacyAccountant
from securefl.transport.base import Replies, Request, Transport

log = logging.getLogger("securefl.engine")

OnRound = Callable[[RoundMetrics], None]


class Checkpointer(Protocol):
    """Where a run records each finished round, so that a restarted aggregator resumes from it."""

    def save(self, model: GlobalModel, history: Sequence[RoundMetrics]) -> None: ...


@dataclass
class Outcome:
    """One fused round."""

    model: GlobalModel
    combined: Combined
    sizes: dict[str, int]
    dropped: dict[str, str]


class RoundEngine:
    """Runs a federation's rounds over ``transport`` (see the module docstring)."""

    def __init__(self, federation: Federation, aggregator: Aggregator, transport: Transport, *,
                 accountant: PrivacyAccountant | None = None, checkpoint: Checkpointer | None = None) -> None:
        self.federation, self.aggregator, self.transport = federation, aggregator, transport
        self.scheme = aggregator.scheme
        self.accountant, self.checkpoint = accountant, checkpoint
        self.timeout = federation.cfg.federation.round_timeout

    def run(self, on_round: OnRound = lambda m: None, *, model: GlobalModel | None = None,
            history: Sequence[RoundMetrics] = ()) -> RunResult:
        """Every remaining round, from ``model`` after the rounds in ``history`` (a resumed run) or from the start."""
        history = list(history)
        if model is None:
            model = GlobalModel.open(self.federation.evaluator.initial_parameters())
        if self.accountant is not None:
            for past in range(len(history)):  # what a resumed run's earlier rounds spent is spent
                self.accountant.charge(past)
        contributors: tuple[str, ...] = history[-1].parties if history else ()
        try:
            for rnd in range(len(history), self.federation.rounds):
                t0 = time.perf_counter()
                outcome = self.round(rnd, model)
                model, contributors = outcome.model, outcome.combined.contributors
                seconds = time.perf_counter() - t0
                log.info("round %d fused from %d updates in %.3f s%s", rnd, len(contributors), seconds,
                         f"; dropped: {', '.join(outcome.dropped)}" if outcome.dropped else "")
                metric = self.evaluate(rnd, model, contributors)
                spent = self.accountant.spent if self.accountant is not None else (None, None)
                metrics = RoundMetrics.of_round(rnd, outcome.combined, outcome.sizes, outcome.dropped, seconds,
                                                metric, spent)
                history.append(metrics)
                if self.checkpoint is not None:
                    self.checkpoint.save(model, history)
                on_round(metrics)
        except SecureFLError as exc:  # budget spent, below the quorum, a function key refused
            log.error("%s", exc)
            self.transport.finish(None, str(exc))
            raise
        self.transport.finish(model, "all rounds done", contributors=contributors)
        return self.federation.result(history, self.transport.release(model), self.accountant)

    def round(self, rnd: int, model: GlobalModel) -> Outcome:
        """One round up to the next global model (steps 1-5 of the module docstring)."""
        if self.accountant is not None:
            self.accountant.charge(rnd)  # refuses the round before any party releases anything
        parties = tuple(self.federation.party_ids)
        dropped: dict[str, str] = {}
        steps = self.scheme.setup_steps(rnd)
        replies: dict[str, bytes] = {}
        for stage in range(steps):
            replies = self._setup(rnd, stage, parties, replies, dropped)
            parties = tuple(sorted(replies))
        if steps:
            parties = tuple(self.scheme.setup_done(self.aggregator.key, round=rnd, replies=replies))
            dropped.update(dict.fromkeys(set(replies) - set(parties), "its setup was refused by the scheme"))
        data = model.to_bytes()
        uploads: Replies[Envelope] = self.transport.exchange(
            Request("train", rnd, dict.fromkeys(parties, data)),
            lambda sender, reply: self.aggregator.check_upload(sender, reply, rnd), timeout=self.timeout)
        dropped.update(uploads.dropped)
        combined = self.aggregator.combine(rnd, uploads.accepted)
        dropped.update(combined.rejected)
        return Outcome(self._reveal(rnd, combined, dropped), combined, uploads.sizes, dropped)

    def _setup(self, rnd: int, stage: int, parties: tuple[str, ...], previous: dict[str, bytes],
               dropped: dict[str, str]) -> dict[str, bytes]:
        """One setup exchange: the scheme's messages out (to parties still in the round), the replies back."""
        messages = self.scheme.setup_messages(self.aggregator.key, round=rnd, step=stage, parties=parties,
                                              replies=previous)
        asked = {p: bytes(m) for p, m in messages.items() if p in parties}
        replies = self.transport.exchange(Request("setup", rnd, asked, stage=stage), lambda s, r: r,
                                          timeout=self.timeout)
        dropped.update(replies.dropped)
        self.aggregator.require_quorum(rnd, len(replies.accepted), dropped, f"setup reply (stage {stage})")
        return replies.accepted

    def _reveal(self, rnd: int, combined: Combined, dropped: dict[str, str]) -> GlobalModel:
        request = self.aggregator.share_request(combined)
        if request is not None:
            body = share_request_bytes(request.message, combined.aggregate)
            shares = self.transport.exchange(
                Request("share", rnd, dict.fromkeys(request.parties, body)),
                lambda sender, share: self.aggregator.check_share(combined, sender, share), timeout=self.timeout)
            dropped.update({p: f"share refused or missing: {why}" for p, why in shares.dropped.items()})
            self.aggregator.require_quorum(rnd, len(shares.accepted), shares.dropped, "share", request.needed)
            return self.aggregator.next_model(combined, shares=shares.accepted)
        fkey = (self.transport.function_key(rnd, combined.weights) if self.scheme.needs_function_key else None)
        return self.aggregator.next_model(combined, function_key=fkey)

    def evaluate(self, rnd: int, model: GlobalModel, contributors: Sequence[str]) -> float:
        """The metric of ``model`` as released, measured by the contributor with the smallest id (NaN if none)."""
        if not contributors:
            return math.nan
        reporter = min(contributors)
        replies = self.transport.exchange(Request("evaluate", rnd, {reporter: model.to_bytes()}),
                                          lambda sender, reply: parse_metric(reply), timeout=self.timeout)
        if reporter not in replies.accepted:
            log.warning("round %d: the model was not measured: %s", rnd, replies.dropped.get(reporter, "no reply"))
            return math.nan
        return replies.accepted[reporter]
