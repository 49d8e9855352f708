"""TLS refusals are logged by securefl with the peer's address: real handshakes against a real authority process."""

from __future__ import annotations

import re

import grpc
import pytest

from securefl.transport.grpc import certs, wire

from .deployment import Deployment, config_text

pytestmark = pytest.mark.slow


def _handshake(d: Deployment, creds: grpc.ChannelCredentials) -> grpc.StatusCode:
    channel = grpc.secure_channel(d.cfg.transport.address("authority"), creds,
                                  options=[("grpc.ssl_target_name_override", certs.server_name("authority"))])
    try:
        list(channel.unary_stream("/securefl.Authority/PartyKey")(wire.header("key_request"), timeout=15))
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        channel.close()
    return grpc.StatusCode.OK


def _refused(d: Deployment, creds: grpc.ChannelCredentials) -> re.Match[str]:
    """A refused handshake and the authority's log line for it.

    On a machine loaded by the rest of the suite a client can give up before the
    server's handshake has failed (the server then traces a shutdown, not a
    refusal), so the handshake is tried up to three times.
    """
    for attempt in range(3):
        assert _handshake(d, creds) is grpc.StatusCode.UNAVAILABLE
        try:
            return d.wait_for("authority", r"TLS handshake from (ipv4:127\.0\.0\.1:\d+) refused: (.*)", timeout=20)
        except AssertionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.mark.parametrize("verbosity", [None, "error"])  # "error": as flwr sets it, inherited from a parent
def test_a_client_certificate_from_another_ca_and_none_at_all_are_logged_with_the_peer_address(tmp_path, monkeypatch,
                                                                                            verbosity):
    if verbosity is not None:
        monkeypatch.setenv("GRPC_VERBOSITY", verbosity)
    d = Deployment(tmp_path, config_text(parties=2, rounds=1))
    try:
        d.start("authority")
        d.wait_for("authority", "authority listening")
        ca = (d.certs / "ca.pem").read_bytes()
        certs.make_certificates(tmp_path / "rogue", ["party-1"])
        rogue = certs.load_tls(tmp_path / "rogue", "party-1", role=certs.PARTY)
        first = _refused(d, grpc.ssl_channel_credentials(ca, rogue.key, rogue.chain))
        assert "CERTIFICATE_VERIFY_FAILED" in first.group(2)
        assert _handshake(d, grpc.ssl_channel_credentials(ca)) is grpc.StatusCode.UNAVAILABLE  # no certificate
        d.wait_for("authority", r"refused: .*(PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED)", timeout=20)
        # a genuine party is served, and its handshake is not reported as refused
        genuine = certs.load_tls(d.certs, "party-1", role=certs.PARTY)
        refusals = len(re.findall("TLS handshake from", d.log("authority")))
        assert _handshake(d, grpc.ssl_channel_credentials(ca, genuine.key, genuine.chain)) is grpc.StatusCode.OK
        d.wait_for("authority", "party key sent to")
        assert len(re.findall("TLS handshake from", d.log("authority"))) == refusals
        assert "handshaker.cc" not in d.log("authority")  # the trace itself is not passed on
    finally:
        d.stop()
