"""The aggregator's shared request state, without processes."""

from __future__ import annotations

import time

import pytest

from securefl import config
from securefl.errors import TransportError
from securefl.transport.grpc import wire
from securefl.transport.grpc.aggregator_server import AggregatorService, Board, GrpcTransport
from securefl.transport.grpc.certs import PARTY, Identity
from securefl.transport.grpc.channels import Endpoint


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


def test_a_party_holding_a_task_is_gone_once_its_heartbeats_stop():
    b = Board(state="evaluate", round=0, payloads=dict.fromkeys("ab", b"model"))
    b.handed = {"a", "b"}
    b.seen = {"a": time.monotonic() - 10, "b": time.monotonic()}  # a's last beat 10 s ago, b's just now
    assert b.gone(grace=4) == {"a"} and not b.answered(grace=4)
    b.replies["b"] = object()
    assert b.answered(grace=4)
    b.calls["a"] = 1  # downloading its task: a call open is alive, however long it takes
    assert b.gone(grace=4) == set()


class _Context:
    """What a handler reads of a gRPC call: the declared identity (insecure mode); an abort raises."""

    def __init__(self, metadata):
        self.metadata = metadata

    def invocation_metadata(self):
        return self.metadata

    def abort(self, code, details):
        raise RuntimeError(f"{code.name}: {details}")


def test_only_a_heartbeat_for_the_open_step_from_its_holder_counts():
    cfg = config.loads("[federation]\nparties = 2\n")
    b = Board(state="evaluate", round=1, stage=0, payloads=dict.fromkeys(cfg.federation.ids, b"model"))
    b.handed = {"party-1"}
    b.seen = dict.fromkeys(cfg.federation.ids, 0.0)
    service = AggregatorService(b, cfg, insecure=True)

    def beat(who: str, step: str, rnd: int) -> str:
        md = Endpoint(Identity(PARTY, who), None, cfg.transport).metadata()
        reply = service.heartbeat(wire.header("heartbeat", step=step, round=rnd, stage=0, refused=""), _Context(md))
        return wire.parse_header(reply, "ack")["message"]

    assert beat("party-1", "train", 1).endswith("not open for party-1")  # a closed step: not alive for this one
    assert beat("party-1", "evaluate", 0).endswith("not open for party-1")
    assert beat("party-2", "evaluate", 1).endswith("not open for party-2")  # it never took the task
    assert b.seen == {"party-1": 0.0, "party-2": 0.0}
    assert beat("party-1", "evaluate", 1).endswith("open")
    assert b.seen["party-1"] > 0 and b.gone(grace=4) == {"party-2"}
    with pytest.raises(RuntimeError, match="PERMISSION_DENIED"):
        beat("party-9", "evaluate", 1)
    with pytest.raises(TransportError, match="has fields"):
        service.heartbeat(b'H{"step": "evaluate", "round": 1, "stage": 0, "pad": "x"}', _Context(()))


def test_a_challenge_reply_is_bounded_by_the_indices_a_verifier_draws():
    """Under verify_aggregate = "sampled" a challenge reply is ``verify_samples`` 4-byte indices: a party may not
    make the aggregator read transport.max_message_bytes (2 GiB) for one."""
    cfg = config.loads('[federation]\nparties = 3\n[crypto]\nscheme = "paillier"\nverify_aggregate = "sampled"\n'
                       "verify_samples = 5\n")
    transport = GrpcTransport(cfg, Board(), authority=None)  # type: ignore[arg-type]  # no authority asked
    assert transport.upload_limit("challenge") == 20
    assert transport.upload_limit("share") == cfg.transport.max_message_bytes
