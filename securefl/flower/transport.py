"""The round engine's requests carried over Flower's ``Grid``, one Flower message per party and step.

Each party's request goes to its node (the :class:`~securefl.flower.roster.Roster`) as a
``train`` message (:mod:`securefl.flower.wire`); replies are pulled as they arrive and
handed to the engine's ``accept`` one by one, so uploads are folded on arrival.  A reply
from a node outside the roster is refused; a node whose ClientApp failed, or that does not
answer before the deadline, is dropped for the step.  The key authority answers function-key
requests in this process (Flower's simulation runs it inside the ServerApp).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping

import numpy as np
from flwr.app import Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp import Grid

from crypto_backends.keys import FunctionKey
from crypto_backends.statements import Evidence
from securefl.core.authority import Authority
from securefl.core.messages import GlobalModel, parse_vector
from securefl.errors import TransportError
from securefl.flower import wire
from securefl.flower.roster import Roster
from securefl.transport.base import Accept, PartyFailed, Replies, Request, T, Transport, take_reply

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
"""Pause between two pulls of replies that have not all arrived."""

Extra = Callable[[str], RecordDict]
"""The records a ``train`` step adds for one party (the strategy's fit config, the arrays' layout)."""


def _payload(msg: Message) -> bytes:
    """A reply's bytes; :class:`PartyFailed` with the node's own words when it failed."""
    if msg.has_error():
        raise PartyFailed(f"Flower error {msg.error.code}: {msg.error.reason}")
    record = msg.content.config_records.get(wire.RECORD)
    if record is None:
        raise TransportError("the node's reply holds no securefl record: add securefl_mod to its ClientApp's mods")
    if "error" in record:
        raise PartyFailed(str(record["error"]))
    return bytes(wire.field(record, "payload", bytes))


class FlowerTransport(Transport):
    """Parties at Flower nodes, reached through ``grid`` (see the module docstring)."""

    def __init__(self, grid: Grid, roster: Roster, authority: Authority) -> None:
        self.grid, self.roster, self.authority = grid, roster, authority
        self.train_extra: Extra = lambda pid: RecordDict()
        """What each party's ``train`` message carries besides securefl's bytes (set by the workflow per round)."""
        self.sent: dict[str, int] = {}
        self.received: dict[str, int] = {}
        """Bytes of securefl payload sent to and received from each party in this run."""

    def send(self, step: str, round: int, stage: int, payloads: Mapping[str, bytes], *, timeout: float,
             extra: Extra | None = None) -> dict[str, Message | None]:
        """One message per party of ``payloads``; each party's reply as it arrived (``None``: none in time)."""
        messages, asked = [], {}
        for pid, payload in payloads.items():
            content = wire.request(step, round, stage, payload)
            if extra is not None:
                for name, record in extra(pid).config_records.items():
                    content.config_records[name] = record
            node = self.roster.node_of[pid]
            messages.append(Message(content, dst_node_id=node, message_type=MessageType.TRAIN, group_id=str(round),
                                    ttl=max(timeout, 1.0)))
            asked[node] = pid
            self.sent[pid] = self.sent.get(pid, 0) + len(payload)
        ids = set(self.grid.push_messages(messages))
        del messages
        got: dict[str, Message | None] = dict.fromkeys(payloads)
        deadline = time.monotonic() + timeout
        while ids and time.monotonic() < deadline:
            for msg in self.grid.pull_messages(ids):
                ids.discard(msg.metadata.reply_to_message_id)
                node = msg.metadata.src_node_id
                if node not in asked:  # not a node this step went to: never one of ours
                    log.warning("a reply from Flower node %d refused: this step was not sent to it (%s)", node,
                                "not in the roster" if self.roster.outside([node]) else "another party's step")
                    continue
                got[asked[node]] = msg
            if ids:
                time.sleep(POLL_SECONDS)
        return got

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        """Each asked party's step as a Flower message to its node; replies accepted one by one as pulled."""
        replies: Replies[T] = Replies()
        extra = self.train_extra if request.step == "train" else None
        got = self.send(request.step, request.round, request.stage, request.payloads, timeout=timeout, extra=extra)
        for pid, msg in got.items():
            if msg is None:
                replies.dropped[pid] = f"no answer within {timeout} s"
                continue
            take_reply(replies, request, pid, functools.partial(self._received, pid, msg), accept, log)
        return replies

    def _received(self, pid: str, msg: Message) -> bytes:
        data = _payload(msg)
        self.received[pid] = self.received.get(pid, 0) + len(data)
        return data

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        """The in-process authority's answer, by a direct call (its refusal propagates)."""
        return self.authority.function_key(round, weights, evidence)

    def release(self, model: GlobalModel, *, timeout: float = 60.0) -> np.ndarray:
        """``model`` in the clear for the strategy: a sealed one opened and published by a contributor.

        The contributors are asked in id order until one answers (each checks the aggregate's
        evidence first and refuses a cheated one).
        """
        if model.vector is not None:
            return model.vector
        assert model.aggregate is not None
        reasons = []
        for pid in sorted(model.aggregate.parties):
            msg = self.send(wire.RELEASE, model.aggregate.round, 0, {pid: model.to_bytes()}, timeout=timeout)[pid]
            try:
                if msg is None:
                    raise TransportError(f"no answer within {timeout} s")
                return parse_vector(self._received(pid, msg))
            except Exception as exc:  # noqa: BLE001 - the next contributor may open it
                reasons.append(f"{pid}: {type(exc).__name__}: {exc}")
                log.warning("the sealed model of round %d was not opened by %s: %s", model.aggregate.round, pid, exc)
        raise TransportError("no contributor opened the sealed model for the strategy: " + "; ".join(reasons))

