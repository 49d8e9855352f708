"""Client stubs: what parties and the aggregator call on the servers, with bounds and back-off.

Every call that finds its server unreachable retries with exponential back-off
for ``transport.connect_timeout`` seconds, then fails with a
:class:`~securefl.errors.TransportError` that says what to check.  Every
payload received is bounded by ``transport.max_message_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from crypto_backends.base import Scheme
from crypto_backends.keys import AggregatorKey, FunctionKey, Key, PartyKey
from crypto_backends.statements import Evidence
from securefl.errors import TransportError
from securefl.transport.grpc import wire
from securefl.transport.grpc.authority_server import SERVICE as AUTHORITY_SERVICE
from securefl.transport.grpc.certs import AGGREGATOR, AUTHORITY
from securefl.transport.grpc.channels import Endpoint, call_with_retry

AGGREGATOR_SERVICE = "securefl.Aggregator"


class _Client:
    role: str
    service: str
    retry_cap: float = 10.0
    """Longest pause between two attempts while the peer is unreachable (see :func:`call_with_retry`)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport = endpoint.transport
        self.channel = endpoint.channel(self.role)
        self.where = f"the {self.role} at {self.transport.address(self.role)}"

    def _stream(self, method: str, request: bytes, kind: str, timeout: float | None) -> tuple[dict[str, Any], bytes]:
        return self._call(method, self.channel.unary_stream(f"/{self.service}/{method}"), lambda: request, kind,
                          timeout)

    def _call(self, method: str, call: Any, request: Callable[[], Any], kind: str,
              timeout: float | None) -> tuple[dict[str, Any], bytes]:
        # ``request()``: the request message, or a fresh frame iterator (a retried stream starts from its header)
        def once() -> tuple[dict[str, Any], bytes]:
            frames = call(request(), timeout=timeout, metadata=self.endpoint.metadata())
            return wire.receive(frames, kind, self.transport.max_message_bytes, f"{method} reply")

        return call_with_retry(f"{method} from {self.where}", once, deadline_s=self.transport.connect_timeout,
                               max_delay=self.retry_cap)

    def close(self) -> None:
        self.channel.close()


class AuthorityClient(_Client):
    """Fetches this role's keys from the key authority."""

    role, service = AUTHORITY, AUTHORITY_SERVICE

    def __init__(self, endpoint: Endpoint, scheme: Scheme) -> None:
        super().__init__(endpoint)
        self.scheme = scheme

    def _key(self, method: str, request: bytes, cls: type[Key]) -> Key:
        _, data = self._stream(method, request, "blob", timeout=self.transport.connect_timeout)
        return self._loaded(data, cls)

    def _loaded(self, data: bytes, cls: type[Key]) -> Key:
        key = self.scheme.load_key(data)
        if not isinstance(key, cls):
            raise TransportError(f"{self.where} sent a {type(key).__name__} where a {cls.__name__} was due")
        return key

    def party_key(self, party_id: str) -> PartyKey:
        """``party_id``'s party key from the authority (the authority knows the caller by its TLS certificate).

        Raises :class:`~securefl.errors.TransportError` when the authority cannot be reached,
        or sends a key of another role or of another party.
        """
        key = self._key("PartyKey", wire.header("key_request"), PartyKey)
        if key.owner != party_id:
            raise TransportError(f"{self.where} sent the key of {key.owner!r} to {party_id!r}")
        return key  # type: ignore[return-value]

    def aggregator_key(self) -> AggregatorKey:
        """The aggregator key from the authority (the authority knows the caller by its TLS certificate).

        Raises :class:`~securefl.errors.TransportError` when the authority cannot be reached,
        or sends a key of another role.
        """
        return self._key("AggregatorKey", wire.header("key_request"), AggregatorKey)  # type: ignore[return-value]

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        """A function key for ``weights`` in ``round`` (what the gRPC transport asks the authority for).

        ``evidence``'s signed statements follow the header as a framed payload (none: 0 bytes): with one
        certificate each, a few dozen parties' outgrow a header.  Its uploads, if any, are not sent: the
        authority checks who contributed, not their bytes.
        """
        data = b"" if evidence is None else Evidence(evidence.signed).to_bytes()
        head = wire.header("function_key", round=round, weights=wire.weights_field(weights), bytes=len(data))
        call = self.channel.stream_stream(f"/{self.service}/FunctionKey")
        _, blob = self._call("FunctionKey", call, lambda: wire.send(head, data, self.transport.chunk_bytes), "blob",
                             self.transport.connect_timeout)
        return self._loaded(blob, FunctionKey)  # type: ignore[return-value]


@dataclass(frozen=True)
class Task:
    """The aggregator's answer to a poll: a step of the round engine (with its payload), or wait/done/failed."""

    state: str
    round: int
    stage: int
    payload: bytes
    """The step's payload (the global model for ``train``, ``evaluate`` and ``done``)."""
    message: str


class AggregatorClient(_Client):
    """A party's side of the aggregator service: poll for work, upload replies."""

    role, service = AGGREGATOR, AGGREGATOR_SERVICE

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        # a restarted aggregator counts a party gone after 2 * poll_seconds + 2 s without a call: a party
        # retrying its upload or poll must knock at least every poll_seconds, or it is dropped while alive
        self.retry_cap = self.transport.poll_seconds

    def poll(self) -> Task:
        """The aggregator's next task for this party; the server may hold the poll for up to ``poll_seconds``.

        Raises :class:`~securefl.errors.TransportError` when the aggregator cannot be reached
        (after the back-off) or answers with a state not in the wire protocol.
        """
        # the server holds a poll for at most poll_seconds, then the payload download gets its own time
        head, payload = self._stream("Task", wire.header("poll"), "task",
                                     timeout=self.transport.poll_seconds + self.transport.connect_timeout)
        if head["state"] not in wire.TASK_STATES:
            raise TransportError(f"{self.where} answered with unknown state {head['state']!r}")
        return Task(head["state"], head["round"], head["stage"], payload, head["message"])

    def heartbeat(self, step: str, round: int, stage: int, *, refused: str = "") -> str:
        """Tell the aggregator this party is alive and working on ``step`` of ``round``; one attempt, no retry
        (the next beat follows in ``poll_seconds``).  With ``refused``, tell it instead that this party cannot
        answer the step, and why: the step stops waiting for it.  Returns its acknowledgement; raises
        :class:`~securefl.errors.TransportError` when it cannot be reached."""
        call = self.channel.unary_unary(f"/{self.service}/Heartbeat")
        request = wire.header("heartbeat", step=step, round=round, stage=stage, refused=refused[:4000])

        def once() -> bytes:
            ack: bytes = call(request, timeout=self.transport.poll_seconds, metadata=self.endpoint.metadata())
            return ack

        reply = call_with_retry(f"Heartbeat to {self.where}", once, deadline_s=0)
        message: str = wire.parse_header(reply, "ack")["message"]
        return message

    def upload(self, round: int, data: bytes, *, step: str = "train", stage: int = 0) -> str:
        """Stream a reply to ``step`` of ``round``; returns the aggregator's acknowledgement or raises."""
        call = self.channel.stream_unary(f"/{self.service}/Upload")

        def once() -> bytes:
            # a fresh frame iterator per attempt: a retried stream starts from the header again
            head = wire.header("upload", step=step, round=round, stage=stage, bytes=len(data))
            frames: Iterator[bytes] = wire.send(head, data, self.transport.chunk_bytes)
            ack: bytes = call(frames, timeout=self.transport.connect_timeout, metadata=self.endpoint.metadata())
            return ack

        reply = call_with_retry(f"Upload to {self.where}", once, deadline_s=self.transport.connect_timeout,
                                max_delay=self.retry_cap)
        message: str = wire.parse_header(reply, "ack")["message"]  # the "ack" schema makes it a string
        return message
