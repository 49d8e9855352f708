"""Real servers on 127.0.0.1, driven by clients in this process: who is refused, replays, large messages."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
import time
from dataclasses import replace

import grpc
import numpy as np
import pytest

from crypto_backends.keys import SECRET_ACCESS
from securefl.core.federation import make_scheme
from securefl.core.messages import GlobalModel, metrics_bytes
from securefl.errors import PartyError, RefusedError, TransportError
from securefl.state.partystate import federation_id
from securefl.transport.grpc import certs, wire
from securefl.transport.grpc.certs import Identity
from securefl.transport.grpc.channels import Endpoint
from securefl.transport.grpc.clients import AggregatorClient, AuthorityClient
from securefl.transport.grpc.party_client import NetworkedParty

from .deployment import Deployment, config_text

pytestmark = pytest.mark.slow


@pytest.fixture
def servers(tmp_path):
    made: list[Deployment] = []

    def make(text: str, transport: str = "") -> Deployment:
        d = Deployment(tmp_path, text, connect_timeout=5, transport=transport)
        made.append(d)
        d.start("authority")
        d.start("aggregator", "--json", str(d.json))
        d.wait_for("aggregator", "aggregator listening")
        return d

    yield make
    for d in made:
        d.stop()


def _endpoint(d: Deployment, tls: certs.TLSFiles | None, name: str = "party-1", role: str = certs.PARTY,
              **transport) -> Endpoint:
    # a refused TLS handshake looks like an unreachable server: retry for one second only
    return Endpoint(Identity(role, name), tls, replace(d.cfg.transport, connect_timeout=1, **transport))


def _poll_status(endpoint: Endpoint) -> str:
    client = AggregatorClient(endpoint)
    try:
        client.poll()
    except RefusedError as exc:
        return exc.status
    except TransportError as exc:
        return "unreachable: " + str(exc)
    finally:
        client.close()
    return "OK"


def test_clients_without_a_valid_certificate_or_role_are_refused(servers, tmp_path):
    d = servers(config_text(parties=3, quorum=2, rounds=1))
    ca = (d.certs / "ca.pem").read_bytes()
    # no client certificate: the TLS handshake fails at both servers
    for role, method in (("aggregator", "/securefl.Aggregator/Task"), ("authority", "/securefl.Authority/PartyKey")):
        channel = grpc.secure_channel(d.cfg.transport.address(role), grpc.ssl_channel_credentials(ca),
                                      options=[("grpc.ssl_target_name_override", certs.server_name(role))])
        with pytest.raises(grpc.RpcError) as err:
            list(channel.unary_stream(method)(wire.header("poll" if role == "aggregator" else "key_request"),
                                              timeout=5))
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        channel.close()
    # a certificate naming party-1, signed by another CA
    certs.make_certificates(tmp_path / "rogue", ["party-1"])
    rogue = certs.load_tls(tmp_path / "rogue", "party-1", role=certs.PARTY)
    assert _poll_status(_endpoint(d, certs.TLSFiles(ca, rogue.chain, rogue.key))).startswith("unreachable")
    # plaintext to a TLS server
    assert _poll_status(_endpoint(d, None)).startswith("unreachable")
    # a genuine party certificate: accepted by the aggregator ...
    party3 = _endpoint(d, certs.load_tls(d.certs, "party-3", role=certs.PARTY), "party-3")
    assert _poll_status(party3) == "OK"
    # ... it gets the aggregator's key only because it holds no secret (parties refold aggregates with it),
    # it cannot fetch function keys, and it gets only its own key
    scheme = make_scheme(d.cfg)
    authority = AuthorityClient(party3, scheme)
    assert not authority.aggregator_key().holds_secret
    with pytest.raises(RefusedError, match="party 'party-3' may not") as err:
        authority.function_key(0, {"party-1": 1.0, "party-2": 1.0}, None)
    assert err.value.status == "PERMISSION_DENIED"
    with pytest.raises(TransportError, match="sent the key of 'party-3' to 'party-1'"):
        authority.party_key("party-1")
    authority.close()
    # the aggregator's certificate cannot pose as the authority (server identity is bound to the role)
    agg_tls = certs.load_tls(d.certs, "aggregator", role=certs.AGGREGATOR)
    fake = _endpoint(d, agg_tls, "aggregator", certs.AGGREGATOR, authority_port=d.ports["aggregator"],
                     aggregator_port=d.ports["authority"])
    with pytest.raises(TransportError, match="unreachable"):
        AuthorityClient(fake, scheme).aggregator_key()


def test_a_party_posing_as_another_and_replayed_or_stale_rounds_are_refused(servers):
    d = servers(config_text(parties=2, quorum=2, rounds=2))
    p1, p2 = (NetworkedParty(d.cfg, pid) for pid in ("party-1", "party-2"))
    task = p1.aggregator.poll()
    assert (task.state, task.round) == ("train", 0)
    update0 = p1._update(task)
    assert p1.aggregator.upload(0, update0) == "round 0: update of party-1 accepted"
    with pytest.raises(RefusedError, match="already sent") as err:
        p1.aggregator.upload(0, update0)  # replayed within its round
    assert err.value.status == "ALREADY_EXISTS"
    # party-2's certificate with an update that names party-1
    with pytest.raises(RefusedError, match="claims to be from 'party-1'") as err:
        p2.aggregator.upload(0, update0)
    assert err.value.status == "INVALID_ARGUMENT"
    # party-2 was refused for round 0, so the round closes with party-1 alone: below the quorum of 2
    d.wait_for("aggregator", r"only 1 usable update")
    assert p2.aggregator.poll().state == "failed" and p1.aggregator.poll().state == "failed"
    assert d.wait_exit("aggregator", 30) == 2
    assert "quorum is 2" in d.log("aggregator")


def test_an_old_rounds_update_is_refused_in_a_later_round_and_an_oversized_one_at_once(servers):
    d = servers(config_text(parties=2, quorum=1, rounds=3), "chunk_bytes = 16384\nmax_message_bytes = 100000\n")
    p1, p2 = (NetworkedParty(d.cfg, pid) for pid in ("party-1", "party-2"))
    # the limit follows the model (31 float64 values, x 1.25, plus 64 KiB of envelope slack), below the cap
    with pytest.raises(RefusedError, match="update of party-1 of 100001 bytes exceeds the limit of 65846 ") as err:
        p1.aggregator.upload(0, b"x" * 100_001)
    assert err.value.status == "INVALID_ARGUMENT"
    for p in (p1, p2):
        task = p.aggregator.poll()
        p.aggregator.upload(0, p._update(task))
    task = p1.aggregator.poll()
    assert (task.state, task.round) == ("evaluate", 0)  # each contributor measures round 0's model
    with pytest.raises(RefusedError, match="not open for train replies"):
        p1.aggregator.upload(0, p1._sent[2])  # an update is no answer to an evaluate request
    p1.aggregator.upload(0, metrics_bytes(p1.evaluate(task.payload)), step="evaluate")
    assert p1.aggregator.poll().state == "wait"  # its reply is in; the step waits for party-2's
    task2 = p2.aggregator.poll()
    assert (task2.state, task2.round) == ("evaluate", 0)
    p2.aggregator.upload(0, metrics_bytes(p2.evaluate(task2.payload)), step="evaluate")
    task = p1.aggregator.poll()
    assert (task.state, task.round) == ("train", 1)
    with pytest.raises(RefusedError, match="round 0 is not open") as err:
        p1.aggregator.upload(0, p1._sent[2])  # stale: announced for a closed round
    assert err.value.status == "FAILED_PRECONDITION"
    with pytest.raises(RefusedError, match="belongs to round 0, expected round 1") as err:
        p1.aggregator.upload(1, p1._sent[2])  # replayed: round 0's envelope announced as round 1
    assert err.value.status == "INVALID_ARGUMENT"
    task = p2.aggregator.poll()
    p2._send(task, p2._reply(task))
    assert d.wait_for("aggregator", r"round 1 fused from 1 updates.*dropped: party-1")


def test_a_restarted_party_process_sits_out_the_round_it_already_answered(servers, caplog):
    """Issue 15 item 4 over the network: the state dir, not the process, remembers the rounds answered."""
    d = servers(config_text("fe", parties=3, quorum=1, rounds=2))  # 3: fe hides updates
    p1 = NetworkedParty(d.cfg, "party-1")
    task = p1.aggregator.poll()
    assert (task.state, task.round) == ("train", 0)
    p1._update(task)  # encrypted and recorded in transport.state_dir; the process dies before its upload
    p1.aggregator.close()
    again = NetworkedParty(d.cfg, "party-1")  # a new process: its key fetched again, its state read from disk
    task = again.aggregator.poll()
    assert (task.state, task.round) == ("train", 0)
    assert again._reply(task) is None  # a second encryption under round 0's pads would give x - x'
    assert "already answered round 0 of this federation" in caplog.text
    again.aggregator.close()


@pytest.mark.parametrize("scheme, hidden", [("plain", 100_000), ("ckks", 25_000)])
def test_models_and_updates_far_above_grpcs_4_mb_limit_stream_in_chunks(servers, scheme, hidden):
    # digits (64 inputs, 10 classes) through one wide hidden layer: 7.5M parameters as float64 (plain),
    # 1.9M under ckks at 32 bytes per value; either way about 60 MB per update
    # ckks hides updates, so it refuses a federation of fewer than three: only party-1 answers (quorum 1), and
    # the round closes when the other two miss round_timeout
    parties = 1 if scheme == "plain" else 3
    d = servers(config_text(scheme, parties=parties, quorum=1, rounds=1, round_timeout=20, dataset="digits",
                            model=f'kind = "mlp"\nhidden_layers = [{hidden}]'))
    party = NetworkedParty(d.cfg, "party-1")
    task = party.aggregator.poll()
    size = party.party.trainer.adapter.num_parameters
    assert GlobalModel.from_bytes(task.payload).vector.size == size
    values = np.linspace(-1, 1, size)
    envelope = party.party.scheme.protect(party.party.key, values, weight=2.0, round=0)
    update = party.party.signed_upload(0, GlobalModel.from_bytes(task.payload).digest, envelope)
    assert len(update) > 50e6
    assert party.aggregator.upload(0, update) == "round 0: update of party-1 accepted"
    evaluate = party.aggregator.poll()
    deadline = time.monotonic() + 120
    while evaluate.state == "wait" and time.monotonic() < deadline:  # for the round_timeout of the silent two
        evaluate = party.aggregator.poll()
    assert evaluate.state == "evaluate" and len(evaluate.payload) > 50e6
    fused = party.party.open_model(GlobalModel.from_bytes(evaluate.payload))
    np.testing.assert_allclose(fused, values, atol=1e-4)
    party.aggregator.upload(0, metrics_bytes({"accuracy": 0.5}), step="evaluate")
    done = party.aggregator.poll()
    while done.state == "wait" and time.monotonic() < deadline:
        done = party.aggregator.poll()
    assert done.state == "done" and len(done.payload) > 50e6
    assert d.wait_exit("aggregator", 60) == 0


def test_a_party_that_is_gone_is_not_waited_for_by_the_evaluate_step_nor_the_next_round(servers):
    d = servers(config_text(parties=2, quorum=1, rounds=2, round_timeout=60))
    p1, p2 = (NetworkedParty(d.cfg, pid) for pid in ("party-1", "party-2"))
    for p in (p1, p2):
        task = p.aggregator.poll()
        p._send(task, p._reply(task))
    p2.aggregator.close()  # party-2 dies after its update: it will never measure round 0's model
    t0 = time.monotonic()
    assert p1.run() is not None  # party-1 serves every remaining step to the end
    assert d.wait_exit("aggregator", 30) == 0
    elapsed = time.monotonic() - t0
    result = json.loads(d.json.read_text())
    assert result["rounds"][1]["parties"] == ["party-1"] and "gone" in result["rounds"][1]["dropped"]["party-2"]
    assert "party-2 did not measure the model: gone" in d.log("aggregator")
    assert elapsed < 30, f"{elapsed:.1f} s: the aggregator waited for a party that was gone (round_timeout 60 s)"


def test_a_live_party_that_cannot_answer_says_so_and_the_round_does_not_wait_for_it(servers):
    """Issue 21 item 5: a failing local training was only logged at the party; the round waited round_timeout."""
    d = servers(config_text(parties=2, quorum=1, rounds=1, round_timeout=120))
    p1, p2 = (NetworkedParty(d.cfg, pid) for pid in ("party-1", "party-2"))

    def broken(task):
        raise PartyError("local training returned shape (14,), the model has 31 parameters")

    p2._update = broken  # type: ignore[method-assign]  # a site whose data cannot train this model
    stays = threading.Thread(target=p2.run, daemon=True)  # live: it keeps polling after it refused
    t0 = time.monotonic()
    stays.start()
    assert p1.run() is not None
    assert d.wait_exit("aggregator", 60) == 0
    elapsed = time.monotonic() - t0
    result = json.loads(d.json.read_text())
    why = result["rounds"][0]["dropped"]["party-2"]
    # typed as in process: the reasons tell a local failure from a refused aggregate (AggregateMismatchError)
    assert why.startswith("refused by the party: PartyError: ") and "returned shape (14,)" in why, why
    assert "party-2 cannot answer the train step of round 0" in d.log("aggregator")
    assert elapsed < 40, f"{elapsed:.1f} s: the round waited for a party that had said it cannot answer"
    stays.join(30)
    assert not stays.is_alive()  # the refusing party is told the federation is done, like the others


def test_a_party_retrying_an_unreachable_aggregator_knocks_at_least_every_poll_seconds(tmp_path, caplog):
    """A restarted aggregator counts a party gone after 2 * poll_seconds + 2 s without a call; a party whose
    upload back-off grew to 10 s between attempts was dropped while alive (and the round lost its quorum)."""
    d = Deployment(tmp_path, config_text(), connect_timeout=6, poll_seconds=1)  # no aggregator started
    client = AggregatorClient(Endpoint(Identity(certs.PARTY, "party-1"), None,
                                       replace(d.cfg.transport, connect_timeout=6)))
    with caplog.at_level("WARNING"), pytest.raises(TransportError, match="unreachable"):
        client.upload(0, b"\x00" * 64)
    pauses = [float(m) for m in re.findall(r"retrying in ([\d.]+) s", caplog.text)]
    assert len(pauses) >= 4 and max(pauses) <= d.cfg.transport.poll_seconds, pauses


def test_a_threshold_party_keeps_its_share_and_restarted_uses_it_while_the_authority_keeps_none(servers, caplog):
    """Issue 22 item 5: the authority hands each share out once; the party keeps it in transport.state_dir."""
    caplog.set_level(logging.INFO)
    d = servers(config_text("threshold_paillier", parties=3, rounds=2))
    scheme = make_scheme(d.cfg)
    p1 = NetworkedParty(d.cfg, "party-1")
    p1.aggregator.close()
    kept = p1.party.key
    share = int(kept.unwrap(scheme.name).share).to_bytes(scheme.params.key_bits // 4, "big").lstrip(b"\0")
    path = d.state_dir / f"party-party-1-{federation_id(d.cfg.federation.ids, d.cfg.federation.seed)}.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes() == scheme.dump_key(kept, secret_access=SECRET_ACCESS)
    d.wait_for("authority", r"key of party-1 delivered and erased here \(2 party key")
    assert share not in d.keystore.read_bytes()  # the authority's store: public material only
    # a second request with the party's own certificate is refused, naming the fix
    client = AuthorityClient(p1.endpoint, scheme)
    with pytest.raises(RefusedError, match="hands each party's share out once.*transport.state_dir") as refused:
        client.party_key("party-1")
    client.close()
    assert refused.value.status == "FAILED_PRECONDITION"
    # the authority restarted from its key store holds no share; the restarted party uses the one it kept
    d.kill("authority")
    d.start("authority:again")
    d.wait_for("authority:again", "keys loaded for 3 parties")
    again = NetworkedParty(d.cfg, "party-1")
    again.aggregator.close()
    restored = again.party.key
    assert restored.key_id == kept.key_id and restored.unwrap(scheme.name).share == kept.unwrap(scheme.name).share
    assert f"using the key kept in {path}" in caplog.text
    assert "refused: the key of 'party-1' is not held here" in d.log("authority:again")
