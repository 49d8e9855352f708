"""Explicit framing of everything the roles send over gRPC (never pickle).

Every gRPC message is one *frame*: a tag byte, then the body.

* ``H`` + a UTF-8 JSON object: a control header.  Each kind of header has a
  fixed set of fields with fixed types (:data:`SCHEMAS`); anything else is
  refused.  Headers are at most :data:`MAX_HEADER_BYTES`.
* ``D`` + raw bytes: one chunk of a payload (a model, an update, a key).

A payload travels as one ``H`` frame announcing its size in ``bytes``, then
``D`` frames, each at most ``chunk_bytes``, which together hold exactly that
many bytes.  So gRPC's per-message limit never bounds a model's size, and a
receiver knows before reading the payload whether it will accept its size.
The payload itself carries its own framing (an :class:`~crypto_backends.envelope.Envelope`,
a :class:`~securefl.core.messages.GlobalModel`, or a scheme's key dump).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from crypto_backends.envelope import MAX_ROUND, PARTY_ID_RE
from crypto_backends.errors import MalformedCiphertextError
from crypto_backends.jsonheader import load_header
from securefl.errors import TransportError
from securefl.transport.base import STEPS

HEAD, DATA = b"H", b"D"
MAX_HEADER_BYTES = 64 * 1024
FRAME_OVERHEAD = 1 + MAX_HEADER_BYTES  # a gRPC message never exceeds chunk_bytes + this

_INT, _NUM, _STR = "int", "number", "str"
_WEIGHTS = "weights"

SCHEMAS: dict[str, dict[str, str]] = {
    # party -> aggregator: "give me work" (the party is its certificate; nothing else to say)
    "poll": {},
    # aggregator -> party: what to do now (a step of the round engine, or wait/done/failed), then its payload
    "task": {"state": _STR, "round": _INT, "stage": _INT, "bytes": _INT, "message": _STR},
    # party -> aggregator, every poll_seconds while it computes a task: "alive, working on this step"; with
    # `refused` non-empty, once: "I cannot answer this step, and this is why" (the step does not wait for it)
    "heartbeat": {"step": _STR, "round": _INT, "stage": _INT, "refused": _STR},
    # party -> aggregator: the reply to the open step of `round` (an update for `train`) follows
    "upload": {"step": _STR, "round": _INT, "stage": _INT, "bytes": _INT},
    # aggregator -> authority: a function key for these weights in `round`; the contributors' signed statements
    # (an Evidence message, `bytes` long; 0: none) follow as a payload: they outgrow a header past ~60 parties
    "function_key": {"round": _INT, "weights": _WEIGHTS, "bytes": _INT},
    # any role -> any role: a payload of `bytes` follows (keys), or a plain acknowledgement
    "blob": {"bytes": _INT},
    "ack": {"message": _STR},
    "key_request": {},
}
TASK_STATES = (*STEPS, "wait", "done", "failed")


def _valid(kind: str, value: Any) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and -1 <= value <= 2**62
    if kind == _NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == _STR:
        return isinstance(value, str) and len(value) <= 4096
    if kind == _WEIGHTS:
        return (isinstance(value, dict) and 0 < len(value) <= 10_000
                and all(isinstance(k, str) and PARTY_ID_RE.fullmatch(k) for k in value)
                and all(_valid(_NUM, w) and w > 0 for w in value.values()))
    return False


def header(kind: str, **fields: Any) -> bytes:
    """Build an ``H`` frame of ``kind`` (checked against its schema, like a received one)."""
    frame = HEAD + json.dumps(fields, separators=(",", ":"), allow_nan=False).encode()
    parse_header(frame, kind)
    return frame


def parse_header(frame: bytes, kind: str) -> dict[str, Any]:
    """Parse and check an ``H`` frame of ``kind``; :class:`TransportError` on anything unexpected."""
    schema = SCHEMAS[kind]
    if not isinstance(frame, bytes) or frame[:1] != HEAD or len(frame) > 1 + MAX_HEADER_BYTES:
        raise TransportError(f"expected a {kind} header frame")
    try:
        fields = load_header(frame[1:], f"{kind} header")
    except MalformedCiphertextError as exc:
        raise TransportError(str(exc)) from None
    if not isinstance(fields, dict) or set(fields) != set(schema):
        got = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
        raise TransportError(f"{kind} header has fields {got}, expected {sorted(schema)}")
    for name, typ in schema.items():
        if not _valid(typ, fields[name]):
            raise TransportError(f"{kind} header field {name!r} is invalid: {fields[name]!r}")
    if "round" in fields and fields["round"] > MAX_ROUND:
        raise TransportError(f"round {fields['round']} is out of range")
    return fields


def payload_frames(data: bytes | memoryview, chunk_bytes: int) -> Iterator[bytes]:
    """``D`` frames holding ``data`` in pieces of at most ``chunk_bytes``."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), chunk_bytes):
        yield DATA + bytes(view[start : start + chunk_bytes])


def send(head: bytes, data: bytes | memoryview, chunk_bytes: int) -> Iterator[bytes]:
    """A header frame followed by ``data``'s frames."""
    yield head
    yield from payload_frames(data, chunk_bytes)


def read_payload(frames: Iterator[bytes], size: int, limit: int, what: str) -> bytes:
    """Read exactly ``size`` bytes of ``D`` frames (``size`` announced by a header, at most ``limit``)."""
    if not 0 <= size <= limit:
        raise TransportError(f"{what} of {size} bytes exceeds the limit of {limit} bytes (what an honest one "
                             "takes, with a margin, at most transport.max_message_bytes)")
    # grow with what actually arrives: an announced size alone must not make the receiver allocate it
    buf = bytearray()
    for frame in frames:
        if frame[:1] != DATA:
            raise TransportError(f"{what}: expected a data frame")
        if len(buf) + len(frame) - 1 > size:
            raise TransportError(f"{what} is longer than the {size} bytes its header announced")
        buf += memoryview(frame)[1:]
        if len(buf) == size:
            break
    pos = len(buf)
    if pos != size:
        raise TransportError(f"{what} ended after {pos} of {size} bytes")
    for _extra in frames:
        raise TransportError(f"{what}: frames after the announced {size} bytes")
    return bytes(buf)


def receive(frames: Iterable[bytes], kind: str, limit: int, what: str) -> tuple[dict[str, Any], bytes]:
    """A header of ``kind`` and the payload it announces (``bytes`` field)."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise TransportError(f"{what}: the stream was empty")
    head = parse_header(first, kind)
    return head, read_payload(it, head["bytes"], limit, what)


def grpc_options(chunk_bytes: int) -> list[tuple[str, int]]:
    """Channel/server options: no gRPC message is larger than one chunk plus a header.

    No keep-alive pings: polls are held open for seconds only, and a client that
    pings an idle connection more often than the server allows gets it closed.
    """
    limit = chunk_bytes + FRAME_OVERHEAD
    return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]


EVIDENCE_BYTES_PER_PARTY = 8 * 1024
"""Most bytes one contributor's signed statement may take in a function-key request's evidence: an honest one
is about 1 KB (the statement ~250 bytes, an ECDSA signature ~72, its DER certificate ~700)."""


def evidence_limit(parties: int) -> int:
    """Most bytes a function-key request's evidence may take in a federation of ``parties``: one signed statement
    each (:data:`EVIDENCE_BYTES_PER_PARTY`) and the message's own framing."""
    return 64 + parties * EVIDENCE_BYTES_PER_PARTY


def weights_field(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` as the JSON field of a message: string keys, float values."""
    return {str(k): float(v) for k, v in weights.items()}
