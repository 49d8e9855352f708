"""The aggregator as a network service, and its round loop.

Parties dial out (so they may sit behind NAT); the aggregator only listens.
Service ``securefl.Aggregator``:

* ``Task`` (poll): held open for up to ``transport.poll_seconds`` until there is
  work for the calling party, then answers ``train`` (round id + the global
  model, streamed in chunks), ``done`` (the final model), ``failed`` or
  ``wait``.  A task may also ask the party to evaluate the previous global
  model and report the metric (the aggregator of a sealed scheme cannot).
* ``Upload`` (client stream): one update for the open round.  The sender is
  the subject of its verified certificate and is passed to
  :meth:`~securefl.core.aggregator.Aggregator.check_upload`, which refuses an
  envelope claiming another party.  An upload for a round that is not open is
  ``FAILED_PRECONDITION`` (stale or replayed); a second upload in one round is
  ``ALREADY_EXISTS``; an oversized one is refused from its header before its
  bytes are read.
* ``Report``: the metric of a global model, from the party asked for it only.

The round loop is the simulation's: open a round, collect uploads until every
party has sent one or ``federation.round_timeout`` passes, fuse with
:meth:`~securefl.core.aggregator.Aggregator.fuse` (which drops bad uploads and
enforces the quorum), and write an atomic checkpoint before the next round.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import grpc

from crypto_backends.keys import AggregatorKey

from securefl.core.aggregator import Aggregator
from securefl.config import Config
from securefl.errors import SecureFLError, TransportError
from securefl.core.federation import Federation, RoundMetrics, RunResult
from securefl.core.messages import GlobalModel
from securefl.transport.grpc import wire
from securefl.transport.grpc.certs import AGGREGATOR, PARTY, Identity
from securefl.transport.grpc.channels import Endpoint, answer_errors, require_peer
from securefl.transport.grpc.checkpoint import Checkpoint
from securefl.transport.grpc.clients import AGGREGATOR_SERVICE, AuthorityClient

log = logging.getLogger("securefl.core.aggregator")


@dataclass
class Board:
    """What the round loop and the request handlers share, under one condition variable."""

    state: str = "wait"
    round: int = -1
    model: bytes = b""
    message: str = ""
    uploads: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    """Parties whose update for the open round was refused, with the reason (they sit the round out)."""
    reporters: dict[int, str] = field(default_factory=dict)
    reports: dict[int, float] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def has_work(self, party_id: str) -> bool:
        return self.state in ("done", "failed") or (
            self.state == "train" and party_id not in self.uploads and party_id not in self.refused)

    def evaluation_for(self, party_id: str) -> int | None:
        """The round whose model ``party_id`` is asked to evaluate in the task it is handed now."""
        pending = self.round - 1 if self.state == "train" else self.round
        if self.reporters.get(pending) == party_id and pending not in self.reports:
            return pending
        return None


class AggregatorService:
    """Request handlers over a :class:`Board`."""

    def __init__(self, board: Board, cfg: Config, aggregator: Aggregator, *, insecure: bool) -> None:
        self.board, self.cfg, self.aggregator, self.insecure = board, cfg, aggregator, insecure
        self.party_ids = frozenset(cfg.federation.ids)

    def _party(self, context: grpc.ServicerContext, action: str) -> Identity:
        return require_peer(context, lambda who: who.role == PARTY and who.name in self.party_ids, action,
                            insecure=self.insecure)

    def task(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        wire.parse_header(request, "poll")
        pid = self._party(context, "take part in this federation").name
        b = self.board
        with b.cond:
            b.cond.wait_for(lambda: b.has_work(pid), timeout=self.cfg.transport.poll_seconds)
            state = b.state if b.has_work(pid) else "wait"
            model = b.model if state in ("train", "done") else b""
            evaluate = b.evaluation_for(pid) if state in ("train", "done") else None
            head = wire.header("task", state=state, round=max(b.round, 0), evaluate=evaluate, bytes=len(model),
                               message=b.message)
            if state in ("done", "failed"):
                b.finished.add(pid)
                b.cond.notify_all()
        return wire.send(head, model, self.cfg.transport.chunk_bytes)

    def upload(self, request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        pid = self._party(context, "upload an update").name
        frames = iter(request_iterator)
        head = wire.parse_header(next(frames, b""), "upload")
        rnd = head["round"]
        self._check_open(context, pid, rnd)
        data = wire.read_payload(frames, head["bytes"], self.cfg.transport.max_message_bytes, f"update of {pid}")
        try:
            self.aggregator.check_upload(pid, data, rnd)  # scheme, key set, round inside the envelope, sender, length
        except SecureFLError as exc:
            with self.board.cond:
                if self.board.round == rnd:
                    self.board.refused[pid] = f"{type(exc).__name__}: {exc}"
                    self.board.cond.notify_all()
            raise
        with self.board.cond:
            self._check_open(context, pid, rnd)
            self.board.uploads[pid] = data
            self.board.cond.notify_all()
        log.info("round %d: update of %s received (%d bytes)", rnd, pid, len(data))
        return wire.header("ack", message=f"round {rnd}: update of {pid} accepted")

    def _check_open(self, context: grpc.ServicerContext, pid: str, rnd: int) -> None:
        b = self.board
        with b.cond:
            if b.state != "train" or rnd != b.round:
                log.warning("refused an update of %s for round %d (round %d is %s)", pid, rnd, b.round,
                            "open" if b.state == "train" else "closed")
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"round {rnd} is not open for uploads (the aggregator is at round {b.round}, "
                              f"state {b.state}): a stale or replayed update")
            if pid in b.refused:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"the update of {pid} for round {rnd} was refused ({b.refused[pid]}); wait for the next round")
            if pid in b.uploads:
                log.warning("refused a second update of %s for round %d", pid, rnd)
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{pid} already sent its update for round {rnd}")

    def report(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        head = wire.parse_header(request, "report")
        pid = self._party(context, "report a metric").name
        b = self.board
        with b.cond:
            if b.reporters.get(head["round"]) != pid or head["round"] in b.reports:
                context.abort(grpc.StatusCode.PERMISSION_DENIED,
                              f"{pid} was not asked to evaluate the model of round {head['round']}")
            b.reports[head["round"]] = float("nan") if head["metric"] is None else float(head["metric"])
            b.cond.notify_all()
        return wire.header("ack", message="metric recorded")

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(AGGREGATOR_SERVICE, {
            "Task": grpc.unary_stream_rpc_method_handler(answer_errors(self.task)),
            "Upload": grpc.stream_unary_rpc_method_handler(answer_errors(self.upload)),
            "Report": grpc.unary_unary_rpc_method_handler(answer_errors(self.report)),
        })


class NetworkedAggregator:
    """The aggregator process: fetches its key, serves parties, runs every round, checkpoints."""

    def __init__(self, cfg: Config, *, insecure: bool = False) -> None:
        self.cfg = cfg
        self.federation = Federation(cfg)
        self.endpoint = Endpoint.load(cfg.transport, AGGREGATOR, AGGREGATOR, insecure=insecure)
        self.authority = AuthorityClient(self.endpoint, self.federation.scheme)
        self.key: AggregatorKey = self.authority.aggregator_key()
        log.info("aggregator key received (fingerprint %s)", self.key.fingerprint)
        self.aggregator = self.federation.aggregator(self.key, self.authority.function_key)
        # differential privacy: the engine refuses a round past the budget before asking anyone for it
        self.accountant = self.federation.accountant()
        self.board = Board()
        self.service = AggregatorService(self.board, cfg, self.aggregator, insecure=insecure)
        self.server: grpc.Server | None = None

    def _resume(self) -> tuple[bytes, list[RoundMetrics]]:
        path = self.cfg.transport.checkpoint
        ckpt = Checkpoint.load(path) if path else None
        if ckpt is None:
            return GlobalModel.open(self.federation.adapter().initial_parameters()).to_bytes(), []
        if ckpt.scheme != self.federation.scheme.name or ckpt.key_id != self.key.key_id.hex():
            raise TransportError(
                f"checkpoint {path} was made under {ckpt.scheme} key set {ckpt.key_id[:16]}, but the authority now "
                f"serves {self.federation.scheme.name} key set {self.key.fingerprint}: the old global model cannot "
                "be used with new keys. Delete the checkpoint to start over, or restart the original authority")
        if ckpt.next_round >= self.federation.rounds:
            log.warning("checkpoint %s already holds all %d rounds; serving the final model", path, ckpt.next_round)
        log.info("resumed from checkpoint %s at round %d", path, ckpt.next_round)
        rounds = list(ckpt.rounds)
        for past in range(len(rounds)):  # the budget those rounds spent is spent
            if self.accountant is not None:
                self.accountant.charge(past)
        if rounds and math.isnan(rounds[-1].accuracy) and rounds[-1].parties:
            self.board.reporters[len(rounds) - 1] = min(rounds[-1].parties)
        return ckpt.model, rounds

    def _save(self, model: bytes, history: list[RoundMetrics]) -> None:
        if self.cfg.transport.checkpoint:
            Checkpoint(self.federation.scheme.name, self.key.key_id.hex(), len(history), tuple(history),
                       model).save(self.cfg.transport.checkpoint)
            log.info("checkpoint written after round %d", len(history) - 1)

    def _with_reports(self, history: list[RoundMetrics]) -> list[RoundMetrics]:
        reports = self.board.reports
        return [replace(m, accuracy=reports[m.round]) if m.round in reports else m for m in history]

    def _collect(self, rnd: int, model: bytes) -> tuple[dict[str, bytes], dict[str, str]]:
        b, fed = self.board, self.cfg.federation
        everyone = set(fed.ids)
        with b.cond:
            b.state, b.round, b.model, b.uploads, b.refused = "train", rnd, model, {}, {}
            b.cond.notify_all()
            log.info("round %d open", rnd)
            pending = rnd - 1 if rnd - 1 in b.reporters else None
            b.cond.wait_for(lambda: set(b.uploads) | set(b.refused) >= everyone
                            and (pending is None or pending in b.reports), timeout=fed.round_timeout)
            b.state = "closing"
            uploads, refused = dict(b.uploads), dict(b.refused)
        dropped = {pid: refused.get(pid, f"no update within {fed.round_timeout} s")
                   for pid in sorted(everyone - set(uploads))}
        return uploads, dropped

    def _finish(self, model: bytes, message: str, state: str, wait_for: set[str], pending: int | None,
                linger: float) -> None:
        """Serve the final state until ``wait_for`` parties fetched it and round ``pending`` is reported."""
        b = self.board
        with b.cond:
            b.state, b.model, b.message = state, model, message[:4000]  # a header field holds at most 4096
            b.cond.notify_all()
            b.cond.wait_for(lambda: b.finished >= wait_for and (pending is None or pending in b.reports),
                            timeout=linger)

    def run(self) -> RunResult:
        """Serve until every round is fused; returns the run's result (the ``securefl run --json`` form)."""
        fed = self.cfg.federation
        model, history = self._resume()
        self.server = self.endpoint.server([self.service.handler()], self.cfg.transport.aggregator_port,
                                           workers=min(256, 2 * len(fed.ids) + 8))
        log.info("aggregator listening on %s:%d", self.cfg.transport.bind_host, self.cfg.transport.aggregator_port)
        try:
            ran = len(history) < self.federation.rounds
            for rnd in range(len(history), self.federation.rounds):
                t0 = time.perf_counter()
                try:
                    if self.accountant is not None:
                        self.accountant.charge(rnd)
                    uploads, dropped = self._collect(rnd, model)
                    collected = time.perf_counter() - t0
                    outcome = self.aggregator.fuse(rnd, uploads)
                except SecureFLError as exc:  # budget spent, below the quorum, or a function key refused
                    log.error("%s", exc)
                    # tell every party, but do not wait long for ones that are gone
                    self._finish(b"", str(exc), "failed", set(fed.ids), None,
                                 min(fed.round_timeout, 2 * self.cfg.transport.poll_seconds + 5))
                    raise
                seconds = time.perf_counter() - t0
                model = outcome.model.to_bytes()
                history = self._with_reports(history)
                spent = self.accountant.spent if self.accountant is not None else (None, None)
                history.append(RoundMetrics.of_round(rnd, outcome, uploads, dropped, seconds, float("nan"), spent))
                with self.board.cond:
                    self.board.reporters[rnd] = min(outcome.contributors)
                self._save(model, history)
                log.info("round %d fused from %d updates in %.3f s (collecting %.3f s)%s", rnd,
                         len(outcome.contributors), seconds, collected,
                         f"; dropped: {', '.join(history[-1].dropped)}" if history[-1].dropped else "")
            last = history[-1]
            pending = last.round if last.round in self.board.reporters else None
            # resumed from a checkpoint of a finished run: serve the final model briefly, nobody may be left
            linger = fed.round_timeout if ran else self.cfg.transport.poll_seconds
            self._finish(model, "all rounds done", "done", set(last.parties), pending, linger)
            history = self._with_reports(history)
            self._save(model, history)
        finally:
            self.server.stop(grace=2.0)
            self.authority.close()
        final = GlobalModel.from_bytes(model)
        return self.federation.result(history, None if final.is_sealed else final.vector, self.accountant)
