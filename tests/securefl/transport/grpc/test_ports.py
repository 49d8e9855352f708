"""A second aggregator or authority on a port already in use refuses to start (gRPC would share it silently)."""

from __future__ import annotations

import grpc
import pytest

from securefl.errors import StateLockedError, TransportError
from securefl.transport.grpc import authority_server
from securefl.transport.grpc.certs import AGGREGATOR
from securefl.transport.grpc.channels import Endpoint

from .deployment import Deployment, config_text

pytestmark = pytest.mark.slow


def test_a_second_authority_on_a_used_port_refuses_to_start(tmp_path):
    d = Deployment(tmp_path, config_text(parties=2, rounds=1))
    try:
        d.start("authority")  # the first one: its own process
        d.wait_for("authority", "authority listening")
        port = d.ports["authority"]
        # on the first one's state directory it is refused before it gets to the port: two live authorities of
        # one federation must not both grant function keys
        with pytest.raises(StateLockedError, match=rf"another process \(pid {d.procs['authority'].pid}\) holds"):
            authority_server.serve(d.cfg)
        own_state = d.cfg.replace([f'transport.state_dir="{tmp_path / "second-state"}"'])
        with pytest.raises(TransportError, match=f"port {port} is already in use"):
            authority_server.serve(own_state)
        assert d.procs["authority"].poll() is None  # the first one is unharmed
    finally:
        d.stop()


def test_a_second_aggregator_on_a_used_port_refuses_to_start(tmp_path):
    d = Deployment(tmp_path, config_text(parties=2, rounds=1))
    endpoint = Endpoint.load(d.cfg.transport, AGGREGATOR, AGGREGATOR, insecure=False)
    handler = grpc.method_handlers_generic_handler("securefl.Test", {})
    first = endpoint.server([handler], d.ports["aggregator"], workers=2)
    try:
        with pytest.raises(TransportError, match=rf"port {d.ports['aggregator']} is already in use.*aggregator_port"):
            endpoint.server([handler], d.ports["aggregator"], workers=2)
        with pytest.raises(TransportError, match="already in use"):  # without TLS just the same
            Endpoint.load(d.cfg.transport, AGGREGATOR, AGGREGATOR, insecure=True).server(
                [handler], d.ports["aggregator"], workers=2)
    finally:
        first.stop(grace=None)
