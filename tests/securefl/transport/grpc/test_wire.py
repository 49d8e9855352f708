from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securefl.errors import TransportError
from securefl.transport.grpc import wire
from tests.hostile import hostile


def test_a_payload_round_trips_in_chunks():
    data = bytes(range(256)) * 1000
    frames = list(wire.send(wire.header("blob", bytes=len(data)), data, 4096))
    assert len(frames) == 1 + -(-len(data) // 4096) and all(len(f) <= 4097 for f in frames[1:])
    head, got = wire.receive(frames, "blob", len(data), "test")
    assert head == {"bytes": len(data)} and got == data


@pytest.mark.parametrize("frame, needle", [
    (b"Hnot json", "not valid JSON"),
    (b'H{"bytes": 1, "extra": 2}', "has fields"),
    (b'H{}', "has fields"),
    (b'H{"bytes": "1"}', "invalid"),
    (b'H{"bytes": true}', "invalid"),
    (b'D{"bytes": 1}', "expected a blob header"),
    (b"H" + b" " * (wire.MAX_HEADER_BYTES + 1), "expected a blob header"),
])
def test_headers_are_strict(frame, needle):
    with pytest.raises(TransportError, match=needle):
        wire.parse_header(frame, "blob")


def test_weights_and_rounds_are_checked():
    assert wire.parse_header(wire.header("function_key", round=3, weights={"a": 1.0}, bytes=0),
                             "function_key")["round"] == 3
    for weights in ({}, {"a": 0.0}, {"a b": 1.0}, {"a": float("inf")}):
        with pytest.raises((TransportError, ValueError)):
            wire.header("function_key", round=0, weights=weights, bytes=0)
    with pytest.raises(TransportError, match="out of range"):
        wire.parse_header(b'H{"step": "train", "round": 4294967296, "stage": 0, "bytes": 1}', "upload")


@pytest.mark.parametrize("frames, size, needle", [
    ([b"D" + b"x" * 10], 5, "longer than"),
    ([b"D" + b"x" * 3], 5, "ended after 3 of 5"),
    ([b"D" + b"x" * 5, b"D" + b"y"], 5, "frames after"),
    ([b'H{"bytes": 1}'], 1, "expected a data frame"),
])
def test_payload_framing_errors(frames, size, needle):
    with pytest.raises(TransportError, match=needle):
        wire.read_payload(iter(frames), size, 100, "test")


def test_a_payload_above_the_limit_is_refused_before_it_is_read():
    def never():
        raise AssertionError("the payload must not be read")
        yield b""  # pragma: no cover

    with pytest.raises(TransportError, match="exceeds the limit of 100 bytes"):
        wire.read_payload(never(), 101, 100, "test")


@given(st.sampled_from(sorted(k for k, schema in wire.SCHEMAS.items() if schema)), st.data())
@settings(max_examples=300, deadline=None)  # no wall-clock deadline: the machine may be busy
def test_a_hostile_header_value_is_the_typed_error(kind, data):
    field = data.draw(st.sampled_from(sorted(wire.SCHEMAS[kind])))
    token = data.draw(hostile)
    fields = {name: {"a": 1.0} if typ == "weights" else "x" if typ == "str" else 1
              for name, typ in wire.SCHEMAS[kind].items()}
    text = json.dumps({**fields, field: "@"}).replace('"@"', token)
    with pytest.raises(TransportError):
        wire.parse_header(wire.HEAD + text.encode(), kind)


@given(hostile)
@settings(max_examples=100, deadline=None)
def test_a_hostile_weight_in_a_function_key_request_is_the_typed_error(token):
    with pytest.raises(TransportError):
        wire.parse_header(wire.HEAD + ('{"round":0,"weights":{"a":' + token + "}}").encode(), "function_key")
