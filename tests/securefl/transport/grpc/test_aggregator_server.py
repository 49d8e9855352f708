"""The aggregator's shared request state, without processes."""

from __future__ import annotations

from securefl.transport.grpc.aggregator_server import Board


def test_a_party_gets_work_once_per_request_until_the_end():
    b = Board(state="train", round=2, payloads=dict.fromkeys("abc", b"model"))
    assert b.has_work("a")
    b.replies["a"] = object()
    b.refused["b"] = "garbled"
    assert not b.has_work("a") and not b.has_work("b") and b.has_work("c")
    assert not b.answered()
    b.refused["c"] = "late"
    assert b.answered()
    b.state = "closing"
    assert not b.has_work("c")
    b.state = "done"
    assert all(b.has_work(p) for p in "abcd")


def test_only_the_asked_parties_get_a_step():
    b = Board(state="evaluate", round=3, payloads={"a": b"model"})
    assert b.has_work("a") and not b.has_work("b")
    b.state = "share"
    assert b.has_work("a") and not b.has_work("b")
