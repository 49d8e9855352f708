"""The aggregator as a network service: the gRPC :class:`~securefl.transport.base.Transport`.

Parties dial out (so they may sit behind NAT); the aggregator only listens.
Service ``securefl.Aggregator``:

* ``Task`` (poll): held open for up to ``transport.poll_seconds`` until there is
  work for the calling party, then answers with the open request's step
  (``train``, ``setup``, ``share``, ``evaluate``: round, stage and payload,
  streamed in chunks), ``done`` (the final model), ``failed`` or ``wait``.
* ``Heartbeat`` (unary): a party sends one every ``transport.poll_seconds``
  while it computes the task it took (step, round and stage in a bounded
  header), so that a party that dies holding a task is dropped after
  ``2 * poll_seconds + 2`` seconds, not waited for until ``round_timeout``.
* ``Upload`` (client stream): the party's reply to the open request.  The
  sender is the subject of its verified certificate, and the reply is checked
  once, on arrival, by the round engine's ``accept`` (for an update: scheme,
  key set, round inside the envelope, sender, length; then it is folded into
  the running aggregate and its bytes dropped).  At most
  :data:`UPLOADS_IN_FLIGHT` uploads are read at once, so memory does not grow
  with the number of parties.  A reply to a request
  that is not open is ``FAILED_PRECONDITION`` (stale or replayed); a second
  reply is ``ALREADY_EXISTS``; an oversized one is refused from its header
  before its bytes are read.

The rounds themselves are the one engine's (:mod:`securefl.core.engine`):
:class:`NetworkedAggregator` fetches its key, resumes from its checkpoint and
runs :class:`~securefl.core.engine.RoundEngine` over :class:`GrpcTransport`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from crypto_backends.keys import AggregatorKey, FunctionKey
from crypto_backends.statements import Evidence
from securefl.config import Config
from securefl.core.aggregator import Aggregator
from securefl.core.engine import OnStop, RoundEngine
from securefl.core.federation import RoundMetrics, RunResult, federation
from securefl.core.messages import MAX_METRICS_BYTES, GlobalModel, max_indices_bytes
from securefl.errors import SecureFLError
from securefl.state.checkpoint import CheckpointWriter, resume
from securefl.transport.base import STEPS, Accept, Replies, Request, T, Transport
from securefl.transport.grpc import wire
from securefl.transport.grpc.certs import AGGREGATOR, PARTY, Identity
from securefl.transport.grpc.channels import Endpoint, answer_errors, require_peer
from securefl.transport.grpc.clients import AGGREGATOR_SERVICE, AuthorityClient
from securefl.transport.grpc.identity import CertificateVerifier

log = logging.getLogger(__name__)

UPLOADS_IN_FLIGHT = 2
"""Uploads the aggregator reads and folds at the same time (each costs its bytes in memory)."""


@dataclass
class Board:
    """The open request and its replies, shared by the engine's thread and the handlers under one condition."""

    state: str = "wait"
    """A step name while a request is open; ``closing`` between requests; ``done`` or ``failed`` at the end."""
    round: int = -1
    stage: int = 0
    payloads: Mapping[str, bytes] = field(default_factory=dict)
    accept: Accept[Any] | None = None
    replies: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    """Parties whose reply to the open request was refused, with the reason (they sit it out)."""
    model: bytes = b""
    message: str = ""
    finished: set[str] = field(default_factory=set)
    cond: threading.Condition = field(default_factory=threading.Condition)
    # liveness: a live party always has a call open (a held poll, an upload, or the download of its task) or, while
    # it works on a task of the open request, sends a heartbeat every poll_seconds; one that does none of these for
    # a while is gone
    seen: dict[str, float] = field(default_factory=dict)
    """When each party last had a call open or sent a heartbeat for the open step (monotonic seconds); parties
    never seen are not in it."""
    calls: dict[str, int] = field(default_factory=dict)
    """Calls each party has open now."""
    handed: set[str] = field(default_factory=set)
    """Parties that took the open request's task and have not replied yet (working on it)."""
    limit: int = 0
    """Most bytes one reply to the open request may have (see :meth:`GrpcTransport.upload_limit`)."""
    uploading: set[str] = field(default_factory=set)
    """Parties with an upload in progress: at most one each, so one certificate cannot pile up buffers."""

    def has_work(self, party_id: str) -> bool:
        """Whether a poll of ``party_id`` gets an answer now: the run is over, or the open step asks it and
        it has neither replied nor been refused.  Call under ``cond``.
        """
        return self.state in ("done", "failed") or (
            self.state in STEPS and party_id in self.payloads and party_id not in self.replies
            and party_id not in self.refused)

    def contact(self, party_id: str, opened: int) -> None:
        """A call of ``party_id`` opened (``+1``) or closed (``-1``); call under ``cond``."""
        self.calls[party_id] = self.calls.get(party_id, 0) + opened
        self.seen[party_id] = time.monotonic()

    def gone(self, grace: float) -> set[str]:
        """Asked parties seen before that have not replied, with no call open and no heartbeat for ``grace`` s.

        A party holding the task (in :attr:`handed`) proves it is alive by its heartbeats;
        one that took the task and went quiet is gone like one that never came back to poll.
        """
        now = time.monotonic()
        return {p for p in self.payloads if p in self.seen and not self.calls.get(p) and p not in self.replies
                and now - self.seen[p] > grace}

    def answered(self, grace: float = math.inf) -> bool:
        """Whether the open request waits for no one: every asked party replied, was refused, or is
        :meth:`gone` after ``grace`` seconds (default: never gone).  Call under ``cond``.
        """
        return set(self.replies) | set(self.refused) | self.gone(grace) >= set(self.payloads)


class AggregatorService:
    """Request handlers over a :class:`Board`."""

    def __init__(self, board: Board, cfg: Config, *, insecure: bool) -> None:
        self.board, self.cfg, self.insecure = board, cfg, insecure
        self.party_ids = frozenset(cfg.federation.ids)
        # uploads read and folded at once: the others wait in gRPC's flow control, not in this process's memory
        self._folding = threading.BoundedSemaphore(UPLOADS_IN_FLIGHT)

    def _party(self, context: grpc.ServicerContext, action: str) -> Identity:
        return require_peer(context, lambda who: who.role == PARTY and who.name in self.party_ids, action,
                            insecure=self.insecure)

    def task(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """``Task``: the calling party's work, held for up to ``poll_seconds`` until there is some, else ``wait``.

        The answer is a header (state, round, stage, message) and the payload in chunks: the
        step's payload, the final model for ``done``, nothing otherwise.  A caller that is
        not a party of this federation ends with ``PERMISSION_DENIED``.
        """
        wire.parse_header(request, "poll")
        pid = self._party(context, "take part in this federation").name
        b = self.board
        with b.cond:
            b.contact(pid, +1)
            try:
                b.cond.wait_for(lambda: b.has_work(pid), timeout=self.cfg.transport.poll_seconds)
                state = b.state if b.has_work(pid) else "wait"
                payload = b.payloads[pid] if state in STEPS else b.model if state == "done" else b""
                head = wire.header("task", state=state, round=max(b.round, 0), stage=b.stage, bytes=len(payload),
                                   message=b.message)
                if state in STEPS:
                    b.handed.add(pid)
                if state in ("done", "failed"):
                    b.finished.add(pid)
                    b.cond.notify_all()
            finally:
                b.contact(pid, -1)
        frames = wire.send(head, payload, self.cfg.transport.chunk_bytes)
        return self._downloading(pid, frames) if state in STEPS else frames

    def _downloading(self, pid: str, frames: Iterator[bytes]) -> Iterator[bytes]:
        # the task's download is a call open: a large model taking longer than the grace is not a dead party
        b = self.board
        with b.cond:
            b.contact(pid, +1)
        try:
            yield from frames
        finally:
            with b.cond:
                b.contact(pid, -1)

    def heartbeat(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """A party working on a task says it is alive; only a beat for the open step, from a party that took it,
        counts (a party still computing a closed step is not waited for by the next one)."""
        head = wire.parse_header(request, "heartbeat")
        pid = self._party(context, "report progress").name
        b = self.board
        with b.cond:
            working = self._is_open(head["step"], head["round"], head["stage"]) and pid in b.handed
            if working:
                b.seen[pid] = time.monotonic()
            if working and head["refused"]:  # it cannot answer: the step stops waiting for it at once
                b.refused[pid] = f"refused by the party: {head['refused']}"
                b.handed.discard(pid)
                b.cond.notify_all()
        what = f"{head['step']} step of round {head['round']} (stage {head['stage']})"
        if working and head["refused"]:
            log.warning("%s cannot answer the %s: %s", pid, what, head["refused"])
            return wire.header("ack", message=f"{what}: refusal noted")
        log.debug("heartbeat of %s for the %s%s", pid, what, "" if working else " (not counted)")
        return wire.header("ack", message=f"{what} {'open' if working else 'not open for ' + pid}")

    def upload(self, request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        """``Upload``: the calling party's reply to the open request, checked and accepted once; returns the ack.

        A second upload while one of the same party is in progress is ``RESOURCE_EXHAUSTED``;
        a reply to a request that is not open, or after a refusal, is ``FAILED_PRECONDITION``;
        a second reply ``ALREADY_EXISTS``; one larger than the board's limit is ``INVALID_ARGUMENT``
        before its bytes are read.  A reply ``accept`` refuses is ``INVALID_ARGUMENT``
        (``PERMISSION_DENIED`` for a policy's refusal), and the party sits the request out.
        """
        pid = self._party(context, "upload a reply")
        b = self.board
        with b.cond:
            if pid.name in b.uploading:
                log.warning("refused a second concurrent upload of %s", pid.name)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{pid.name} already has an upload in progress: one at a time per party")
            b.uploading.add(pid.name)
            b.contact(pid.name, +1)
        log.info("upload of %s in progress", pid.name)
        try:
            return self._upload(pid, request_iterator, context)
        finally:
            with b.cond:
                b.uploading.discard(pid.name)
                b.contact(pid.name, -1)

    def _upload(self, pid: Identity, request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        frames = iter(request_iterator)
        head = wire.parse_header(next(frames, b""), "upload")
        step, rnd, stage = head["step"], head["round"], head["stage"]
        accept = self._check_open(context, pid.name, step, rnd, stage)
        what = "update" if step == "train" else f"{step} reply"
        with self._folding:  # a few uploads in memory at once, whatever the number of parties
            data = wire.read_payload(frames, head["bytes"], self.board.limit, f"{what} of {pid.name}")
            size = len(data)
            try:
                value = accept(pid.name, data)  # parsed, checked (and an update folded) here, once
            except SecureFLError as exc:
                with self.board.cond:
                    if self._is_open(step, rnd, stage):
                        self.board.refused[pid.name] = f"{type(exc).__name__}: {exc}"
                        self.board.cond.notify_all()
                raise
            del data  # the engine keeps what accept returned, never the upload's bytes
        with self.board.cond:
            self._check_open(context, pid.name, step, rnd, stage)
            self.board.replies[pid.name] = value
            self.board.sizes[pid.name] = size
            self.board.cond.notify_all()
        log.info("round %d: %s of %s received (%d bytes)", rnd, what, pid.name, size)
        return wire.header("ack", message=f"round {rnd}: {what} of {pid.name} accepted")

    def _is_open(self, step: str, rnd: int, stage: int) -> bool:
        b = self.board
        return b.state == step and b.round == rnd and b.stage == stage

    def _check_open(self, context: grpc.ServicerContext, pid: str, step: str, rnd: int, stage: int) -> Accept[Any]:
        b = self.board
        with b.cond:
            if not self._is_open(step, rnd, stage) or pid not in b.payloads or b.accept is None:
                log.warning("refused a %s reply of %s for round %d (the aggregator is at round %d, %s)", step, pid,
                            rnd, b.round, b.state)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"round {rnd} is not open for {step} replies from {pid} (the aggregator is at round "
                              f"{b.round}, state {b.state}): a stale or replayed reply")
            if pid in b.refused:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"the {step} reply of {pid} for round {rnd} was refused ({b.refused[pid]}); "
                              "wait for the next request")
            if pid in b.replies:
                log.warning("refused a second %s reply of %s for round %d", step, pid, rnd)
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{pid} already sent its {step} reply for round {rnd}")
            assert b.accept is not None
            return b.accept

    def handler(self) -> grpc.GenericRpcHandler:
        """The ``securefl.Aggregator`` service's three methods, securefl errors answered as gRPC statuses."""
        return grpc.method_handlers_generic_handler(AGGREGATOR_SERVICE, {
            "Task": grpc.unary_stream_rpc_method_handler(answer_errors(self.task)),
            "Upload": grpc.stream_unary_rpc_method_handler(answer_errors(self.upload)),
            "Heartbeat": grpc.unary_unary_rpc_method_handler(answer_errors(self.heartbeat)),
        })


class GrpcTransport(Transport):
    """The engine's requests posted on a :class:`Board` that parties poll; the authority over gRPC."""

    UPLOAD_MARGIN = 1.25
    """An update may be this much larger than the scheme's bound for an honest one (plus :data:`ENVELOPE_SLACK`)."""
    ENVELOPE_SLACK = 64 * 1024

    def __init__(self, cfg: Config, board: Board, authority: AuthorityClient,
                 aggregator: Aggregator | None = None) -> None:
        self.cfg, self.board, self.authority, self.aggregator = cfg, board, authority, aggregator
        self.ran = False
        self.gone_after = 2 * cfg.transport.poll_seconds + 2.0
        """A party seen before with no call open and no heartbeat for this long is gone: not waited for.

        A live party between tasks always holds a poll (re-opened at once when one
        ends after ``poll_seconds``), and one computing a task sends a heartbeat every
        ``poll_seconds``, so twice that plus a margin is no false alarm."""

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        """Post ``request`` on the board and wait for its replies until every asked party answered or is gone,
        or ``timeout`` seconds passed; then close it (later replies are ``FAILED_PRECONDITION``).

        A party that went quiet for :attr:`gone_after` seconds is dropped as gone, without waiting for the timeout.
        """
        self.ran = True
        b = self.board
        with b.cond:
            b.state, b.round, b.stage, b.payloads, b.accept = (request.step, request.round, request.stage,
                                                               dict(request.payloads), accept)
            b.replies, b.sizes, b.refused, b.handed = {}, {}, {}, set()
            b.limit = self.upload_limit(request.step)
            b.cond.notify_all()
            log.info("round %d open: %s request to %s", request.round, request.step, ", ".join(request.parties))
            grace = self.gone_after
            end = time.monotonic() + timeout
            # wake now and then: a party going quiet changes nothing the handlers would notify about
            while not b.answered(grace) and (left := end - time.monotonic()) > 0:
                b.cond.wait(min(left, 0.5))
            gone = b.gone(grace)
            silent = gone & b.handed  # they took the task, then their heartbeats stopped
            b.state, b.accept = "closing", None
            replies: Replies[T] = Replies(dict(b.replies), dict(b.sizes))
            refused = dict(b.refused)
        what = "update" if request.step == "train" else f"{request.step} reply"
        for pid in sorted(gone - set(refused)):
            refused[pid] = (f"gone (no heartbeat for more than {grace:g} s while it held the {request.step} task: "
                            "its process stopped or its connection broke); not waited for" if pid in silent else
                            f"gone: no call for more than {grace:g} s (its process stopped or its connection "
                            "broke); not waited for")
            log.warning("round %d: %s is gone%s; the %s request does not wait for it", request.round, pid,
                        " (no heartbeat while it held its task)" if pid in silent else "", request.step)
        replies.dropped = {pid: refused.get(pid, f"no {what} within {timeout} s")
                           for pid in request.parties if pid not in replies.accepted}
        return replies

    def upload_limit(self, step: str) -> int:
        """Most bytes a reply to ``step`` may have: for an update, what the scheme says an honest one of the
        model's length takes, with a margin; for a metrics reply, its own bound; for a challenge reply, the
        ``crypto.verify_samples`` indices a verifier draws; else (and while the model's length is unknown)
        ``transport.max_message_bytes``, which caps every limit."""
        cap = self.cfg.transport.max_message_bytes
        if step == "evaluate":
            return min(cap, MAX_METRICS_BYTES)
        if step == "challenge":
            return min(cap, max_indices_bytes(self.cfg.crypto.verify_samples))
        agg = self.aggregator
        if step != "train" or agg is None or agg.num_parameters is None:
            return cap
        bound = agg.scheme.declarations.max_payload_bytes(agg.num_parameters)
        return cap if bound is None else min(cap, math.ceil(self.UPLOAD_MARGIN * bound) + self.ENVELOPE_SLACK)

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        """The authority's answer over gRPC (:meth:`AuthorityClient.function_key`).

        A refusal raises :class:`~securefl.errors.RefusedError` (with the gRPC status), an
        unreachable authority :class:`~securefl.errors.TransportError`: not PolicyError.
        """
        return self.authority.function_key(round, weights, evidence)

    def finish(self, model: GlobalModel | None, message: str, *, contributors: tuple[str, ...] = ()) -> None:
        """Serve the final state until the parties fetched it (or a while passed: some may be gone)."""
        fed, poll = self.cfg.federation, self.cfg.transport.poll_seconds
        if model is None:  # tell every party, but do not wait long for ones that are gone
            state, wait_for, linger = "failed", set(fed.ids), min(fed.round_timeout, 2 * poll + 5)
        else:  # resumed from the checkpoint of a finished run: nobody may be left to fetch it
            state, wait_for, linger = "done", set(contributors), fed.round_timeout if self.ran else poll
        b = self.board
        with b.cond:
            # a header field holds at most 4096 characters
            b.state, b.model, b.message = state, model.to_bytes() if model else b"", message[:4000]
            b.cond.notify_all()
            b.cond.wait_for(lambda: b.finished >= wait_for, timeout=linger)


class NetworkedAggregator:
    """The aggregator process: fetches its key, serves parties, runs the round engine, checkpoints."""

    def __init__(self, cfg: Config, *, insecure: bool = False) -> None:
        self.cfg = cfg
        self.federation = federation(cfg)  # the parties' own data: it reads none
        self.endpoint = Endpoint.load(cfg.transport, AGGREGATOR, AGGREGATOR, insecure=insecure)
        self.authority = AuthorityClient(self.endpoint, self.federation.scheme)
        self.key: AggregatorKey | None = None
        """Fetched from the authority when :meth:`run` starts."""
        self.board = Board()
        self.service = AggregatorService(self.board, cfg, insecure=insecure)
        self.server: grpc.Server | None = None

    def _connect(self) -> tuple[AggregatorKey, Aggregator]:
        key = self.key = self.authority.aggregator_key()
        log.info("aggregator key received (fingerprint %s)", key.fingerprint)
        # the parties' signed uploads are checked against the federation's CA (none on a plaintext test channel)
        tls = self.endpoint.tls
        return key, self.federation.aggregator(key, CertificateVerifier(tls.ca) if tls is not None else None)

    def _resume(self, key: AggregatorKey) -> tuple[GlobalModel | None, list[RoundMetrics]]:
        return resume(self.cfg.transport.checkpoint_file, self.federation.scheme.name, key.key_id,
                      self.federation.rounds, new_keys_hint="restart the original authority (transport.authority_keys "
                      "keeps its key set across restarts)")

    def run(self, on_stop: OnStop = lambda r: None) -> RunResult:
        """Serve until every round is fused; returns the run's result (the ``securefl run --json`` form).

        A run that stops early raises, after ``on_stop`` got its rounds so far (``stopped`` set): also one
        that stops before its first round (the authority unreachable, a checkpoint of other keys), with none.
        """
        fed, tcfg = self.cfg.federation, self.cfg.transport
        try:
            key, aggregator = self._connect()
            model, history = self._resume(key)
        except (SecureFLError, KeyboardInterrupt) as exc:
            if not isinstance(exc, KeyboardInterrupt):
                log.error("%s", exc)
            on_stop(self.federation.result([], None, self.federation.accountant(), stopped=exc))
            self.authority.close()
            raise
        if history:
            # a resumed run: every party was alive before the crash and polls again within poll_seconds if it
            # still is; one that died meanwhile is gone after the grace, as if seen at this restart, instead of
            # being waited for until round_timeout in every later round
            restarted = time.monotonic()
            self.board.seen = dict.fromkeys(fed.ids, restarted)
        writer = (CheckpointWriter(tcfg.checkpoint_file, self.federation.scheme.name, key.key_id.hex())
                  if tcfg.checkpoint_file else None)
        self.server = self.endpoint.server([self.service.handler()], tcfg.aggregator_port,
                                           workers=min(256, 2 * len(fed.ids) + 8))
        log.info("aggregator listening on %s:%d", tcfg.bind_host, tcfg.aggregator_port)
        transport = GrpcTransport(self.cfg, self.board, self.authority, aggregator)
        try:
            engine = RoundEngine(self.federation, aggregator, transport,
                                 accountant=self.federation.accountant(), checkpoint=writer)
            return engine.run(model=model, history=history, on_stop=on_stop)
        finally:
            self.server.stop(grace=2.0)
            self.authority.close()
