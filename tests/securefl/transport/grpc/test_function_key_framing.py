"""Issue 22 item 2 over gRPC: a function-key request carries its signed statements as framed payload.

One signed statement with its certificate is about 1 KB, so a federation of 100+ parties' evidence outgrows
the 64 KB header: the client streams it after the header in ``D`` frames, the authority reads at most
:func:`~securefl.transport.grpc.wire.evidence_limit` of the roster's size.  The client and the service
are the shipped ones; only the channel between them is a direct call (no network).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from crypto_backends import InsecureParametersWarning
from crypto_backends.statements import Evidence, Signed, Statement, digest
from securefl import config
from securefl.core.authority import Authority
from securefl.core.federation import make_scheme, statement_verifier
from securefl.errors import RefusedError, TransportError
from securefl.identity import InProcessCA
from securefl.transport.grpc import wire
from securefl.transport.grpc.authority_server import AuthorityService
from securefl.transport.grpc.certs import AGGREGATOR, Identity
from securefl.transport.grpc.channels import Endpoint, answer_errors
from securefl.transport.grpc.clients import AuthorityClient

PARTIES = 120


class _Context:
    """A call's declared identity (insecure mode); an abort raises as gRPC's would end the call."""

    def __init__(self, metadata: Any) -> None:
        self.metadata = metadata

    def invocation_metadata(self) -> Any:
        return self.metadata

    def abort(self, code: Any, details: str) -> None:
        raise RefusedError(details, code.name)


class _Channel:
    """The client's channel straight into the service's handler (its errors answered as gRPC statuses)."""

    def __init__(self, service: AuthorityService) -> None:
        self.handler = answer_errors(service.function_key)
        self.frames: list[bytes] = []

    def stream_stream(self, path: str) -> Any:
        assert path == "/securefl.Authority/FunctionKey"

        def call(frames: Iterator[bytes], timeout: float, metadata: Any) -> Iterator[bytes]:
            sent = list(frames)
            self.frames = sent
            return self.handler(iter(sent), _Context(metadata))

        return call


@pytest.fixture(scope="module")
def federation() -> tuple[Any, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        cfg = config.loads(f"[federation]\nparties = {PARTIES}\n\n[crypto]\nscheme = \"fe\"\n\n[crypto.fe]\n"
                           "preset = \"test\"\n\n[transport]\nchunk_bytes = 16384\n")
        scheme = make_scheme(cfg)
        authority = Authority(scheme, cfg.federation.ids)
    ca = InProcessCA(cfg.federation.ids)
    authority.verifier = statement_verifier(cfg, scheme, authority.aggregator_key(), ca.verifier())
    service = AuthorityService(authority, cfg, insecure=True)
    client = AuthorityClient.__new__(AuthorityClient)  # the shipped client, over the direct channel
    client.endpoint = Endpoint(Identity(AGGREGATOR, AGGREGATOR), None, cfg.transport)
    client.transport, client.scheme, client.where = cfg.transport, scheme, "the authority"
    client.channel = _Channel(service)  # type: ignore[assignment]
    return cfg, authority, ca, service, client


def _evidence(authority: Authority, ca: InProcessCA, ids: tuple[str, ...], rnd: int) -> Evidence:
    assert authority.verifier is not None
    key_id = authority.aggregator_key().key_id
    return Evidence(tuple(Signed.sign(Statement(authority.verifier.context, key_id, rnd, pid, 1.0,
                                                digest(b"model"), digest(pid.encode())), ca.identity(pid))
                          for pid in ids))


def test_a_hundred_and_twenty_parties_statements_pass_the_framing_and_the_key_is_granted(federation):
    cfg, authority, ca, _, client = federation
    ids = cfg.federation.ids
    evidence = _evidence(authority, ca, ids, 0)
    size = len(evidence.to_bytes())
    assert size > wire.MAX_HEADER_BYTES  # it would not fit a header
    assert size < wire.evidence_limit(PARTIES)
    key = client.function_key(0, dict.fromkeys(ids, 1.0), Evidence(evidence.signed, (b"an upload",) * PARTIES))
    assert key.weights == dict.fromkeys(ids, 1.0)
    frames = client.channel.frames
    head = wire.parse_header(frames[0], "function_key")
    assert head["bytes"] == size  # the uploads are not sent: the authority checks the statements only
    assert len(frames) - 1 == -(-size // cfg.transport.chunk_bytes) and all(f[:1] == wire.DATA for f in frames[1:])


def test_a_forged_statement_among_them_is_refused_as_permission_denied(federation):
    cfg, authority, ca, _, client = federation
    ids = cfg.federation.ids
    evidence = _evidence(authority, ca, ids, 1)
    rogue = InProcessCA([ids[57]]).identity(ids[57])  # another CA's certificate for the same id
    forged = Evidence(tuple(Signed.sign(s.statement, rogue) if s.statement.party == ids[57] else s
                            for s in evidence.signed))
    with pytest.raises(RefusedError, match=f"statement of {ids[57]} does not verify") as err:
        client.function_key(1, dict.fromkeys(ids, 1.0), forged)
    assert err.value.status == "PERMISSION_DENIED"
    with pytest.raises(RefusedError, match="without its contributors' signed statements"):
        client.function_key(1, dict.fromkeys(ids, 1.0), None)


def test_evidence_above_the_rosters_bound_is_refused_before_it_is_read(federation):
    cfg, _, _, service, client = federation
    limit = wire.evidence_limit(PARTIES)
    head = wire.header("function_key", round=2, weights=dict.fromkeys(cfg.federation.ids, 1.0), bytes=limit + 1)

    def frames() -> Iterator[bytes]:
        yield head
        raise AssertionError("the payload was read")

    with pytest.raises(TransportError, match=f"exceeds the {limit} bytes that {PARTIES} parties' signed statements"):
        service.function_key(frames(), _Context(client.endpoint.metadata()))
