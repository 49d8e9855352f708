"""Bounded header parsing: deep nesting, huge integers and out-of-range numbers give the typed error, nothing else.

Each hostile token is spliced into an otherwise valid header at a place a
field's value goes, so the parser meets it where a real attacker would put it.
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_backends.envelope import Envelope
from crypto_backends.errors import MalformedCiphertextError
from crypto_backends.jsonheader import MAX_DEPTH, load_header, nesting_depth
from securefl.core.messages import parse_metrics
from tests.frames import frame as _frame
from tests.hostile import hostile
from tests.schemes import make_scheme

HEADER = {"scheme": "plain", "version": 1, "key_id": "01" * 16, "round": 3, "kind": "update",
          "parties": ["alice"], "weights": [2.0], "length": 0}



@given(st.sampled_from(sorted(HEADER)), hostile)
@settings(max_examples=300, deadline=None)  # no wall-clock deadline: the machine may be busy
def test_a_hostile_envelope_header_value_is_the_typed_error(field, token):
    text = json.dumps({**HEADER, field: "@"}).replace('"@"', token)
    with pytest.raises(MalformedCiphertextError):
        Envelope.from_bytes(_frame(text))


@given(st.sampled_from(["class", "scheme", "key_id", "owner", "secret", "round", "weights"]), hostile)
@settings(max_examples=150, deadline=None)
def test_a_hostile_key_header_is_the_typed_error(field, token):
    scheme = make_scheme("plain")
    head = {"scheme": "plain", "class": "FunctionKey", "key_id": "00", "owner": None, "secret": False,
            "round": 0, "weights": {"a": 1.0}, field: "@"}
    text = json.dumps(head).replace('"@"', token).encode()
    with pytest.raises(MalformedCiphertextError):
        scheme.load_key(b"SFLK" + struct.pack(">I", len(text)) + text)


def test_a_function_key_header_without_its_round_is_the_typed_error():
    text = json.dumps({"scheme": "plain", "class": "FunctionKey", "key_id": "00", "owner": None,
                       "secret": False}).encode()
    with pytest.raises(MalformedCiphertextError, match="garbled key header"):
        make_scheme("plain").load_key(b"SFLK" + struct.pack(">I", len(text)) + text)


@given(hostile)
@settings(max_examples=150, deadline=None)
def test_a_hostile_metrics_reply_is_the_typed_error(token):
    with pytest.raises(MalformedCiphertextError):
        parse_metrics(('{"accuracy":' + token + "}").encode())


@given(st.recursive(st.none() | st.booleans() | st.integers(-2**62, 2**62) | st.floats(allow_nan=False,
                    allow_infinity=False) | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                    max_leaves=20))
@settings(max_examples=200, deadline=None)
def test_ordinary_json_within_the_depth_bound_parses_as_json_does(value):
    text = json.dumps(value).encode()
    if nesting_depth(text) <= MAX_DEPTH:
        assert load_header(text, "test") == json.loads(text)
    else:
        with pytest.raises(MalformedCiphertextError, match="levels deep"):
            load_header(text, "test")


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert nesting_depth(json.dumps({"a": "[[[[[[[[{{{{{{", "b": ['"]]]\\"[[[']}).encode()) == 2
