"""The aggregator's shared round state, without processes."""

from __future__ import annotations

from securefl.transport.grpc.aggregator_server import Board


def test_a_party_gets_work_once_per_round_until_the_end():
    b = Board(state="train", round=2)
    assert b.has_work("a")
    b.uploads["a"] = b"..."
    b.refused["b"] = "garbled"
    assert not b.has_work("a") and not b.has_work("b") and b.has_work("c")
    b.state = "closing"
    assert not b.has_work("c")
    b.state = "done"
    assert all(b.has_work(p) for p in "abc")


def test_only_the_reporter_of_the_previous_round_is_asked_to_measure_it_once():
    b = Board(state="train", round=3, reporters={2: "a", 1: "b"})
    assert b.evaluation_for("a") == 2 and b.evaluation_for("b") is None
    b.reports[2] = 0.9
    assert b.evaluation_for("a") is None
    b.state, b.reporters[3] = "done", "b"
    assert b.evaluation_for("b") == 3 and b.evaluation_for("a") is None
