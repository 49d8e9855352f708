"""A hostile aggregator (a real TLS server with the aggregator's certificate) cannot crash a real party.

The party fetches its key from a real authority process, then polls a server
that answers with crafted model messages: it refuses each with the typed error,
logs it, sits the step out, and keeps serving until the federation is done.
"""

from __future__ import annotations

import json
import logging
import struct
import threading

import grpc
import numpy as np
import pytest

from crypto_backends.envelope import MAGIC
from securefl.core.messages import GlobalModel
from securefl.transport.grpc import wire
from securefl.transport.grpc.certs import AGGREGATOR
from securefl.transport.grpc.channels import Endpoint
from securefl.transport.grpc.clients import AGGREGATOR_SERVICE
from securefl.transport.grpc.party_client import NetworkedParty

from .deployment import Deployment, config_text

pytestmark = pytest.mark.slow


def _sealed(header_text: str) -> bytes:
    head = header_text.encode()
    return b"S" + MAGIC + struct.pack(">I", len(head)) + head + struct.pack(">Q", 0)


HEADER = {"scheme": "plain", "version": 1, "key_id": "00", "round": 0, "kind": "aggregate",
          "parties": ["party-1"], "weights": [1.0], "length": 3}
CRAFTED = [
    ("train", _sealed(json.dumps(HEADER).replace('"length": 3', '"length": ' + "[" * 50_000 + "]" * 50_000))),
    ("train", _sealed(json.dumps(HEADER).replace('"round": 0', '"round": 1' + "0" * 5000))),
    ("evaluate", _sealed(json.dumps(HEADER).replace("[1.0]", "[1" + "0" * 400 + "]"))),
    ("evaluate", b"O" + np.full(3, np.inf).tobytes()),
]


class HostileAggregator:
    """Serves the crafted tasks in turn, then ``done``; records what the party uploads."""

    def __init__(self) -> None:
        self.tasks = list(CRAFTED)
        self.served = 0
        self.uploads: list[bytes] = []
        self.lock = threading.Lock()

    def task(self, request: bytes, context: grpc.ServicerContext):
        with self.lock:
            step, payload = self.tasks.pop(0) if self.tasks else ("done", GlobalModel.open(np.zeros(3)).to_bytes())
            rnd, self.served = self.served, self.served + 1
        # each crafted task in a round of its own: a party does not ask again at once for a step it sat out
        head = wire.header("task", state=step, round=rnd, stage=0, bytes=len(payload), message="")
        return wire.send(head, payload, 1 << 16)

    def upload(self, frames, context: grpc.ServicerContext) -> bytes:
        self.uploads.append(b"".join(frames))
        return wire.header("ack", message="ok")

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(AGGREGATOR_SERVICE, {
            "Task": grpc.unary_stream_rpc_method_handler(self.task),
            "Upload": grpc.stream_unary_rpc_method_handler(self.upload),
        })


def test_crafted_model_messages_are_refused_and_the_party_keeps_serving(tmp_path, caplog):
    d = Deployment(tmp_path, config_text(parties=2, rounds=1), connect_timeout=10, poll_seconds=0.5)
    hostile = HostileAggregator()
    server = Endpoint.load(d.cfg.transport, AGGREGATOR, AGGREGATOR, insecure=False).server(
        [hostile.handler()], d.ports["aggregator"], workers=4)
    try:
        d.start("authority")
        d.wait_for("authority", "authority listening")
        with caplog.at_level(logging.WARNING, logger="securefl.transport.grpc.party_client"):
            assert NetworkedParty(d.cfg, "party-1").run() is None  # "done" reached: it never crashed
    finally:
        server.stop(grace=None)
        d.stop()
    refusals = [r.getMessage() for r in caplog.records if "cannot answer" in r.getMessage()]
    assert len(refusals) == len(CRAFTED), refusals
    assert all("not valid" in m or "nests" in m or "digits" in m or "non-finite" in m for m in refusals), refusals
    assert hostile.uploads == []  # nothing was released in answer to a crafted model
