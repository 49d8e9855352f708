"""The key authority as a network service: each role fetches its own key, and only its own.

Service ``securefl.Authority`` (a header frame in, a framed payload out; ``FunctionKey``: a framed payload in too):

* ``PartyKey``: the calling party's :class:`~crypto_backends.keys.PartyKey`.  The
  party is the subject of its verified certificate; the request names no one,
  so a party cannot ask for another's key.  Under a scheme that declares
  ``dealer_erases_party_keys`` the key is erased once its last chunk was handed
  to gRPC (a stream broken before that keeps it), and a second request ends with
  ``FAILED_PRECONDITION`` (:class:`~securefl.errors.KeyErasedError`'s message).
* ``AggregatorKey``: the aggregator's key, to the aggregator's certificate only
  (public material only for schemes that decrypt at the parties).
* ``FunctionKey``: a function key for one round and weight vector, to the
  aggregator only, if the scheme's inference-prevention policy allows it.  The
  header is followed by the contributors' signed statements (an
  :class:`~crypto_backends.statements.Evidence` message, framed as a payload, at most
  :func:`~securefl.transport.grpc.wire.evidence_limit` of the roster's size); under
  ``crypto.verify_aggregate`` the authority derives the key only if they sign exactly
  the requested contributors and weights (checked against the federation's CA), else
  ``PERMISSION_DENIED``.

Keys travel as the scheme's ``dump_key`` bytes, never pickled, over mutual TLS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc

from crypto_backends.keys import SECRET_ACCESS, Key, PartyKey
from crypto_backends.statements import Evidence
from securefl.config import Config
from securefl.core.authority import Authority, PersistentAuthority
from securefl.core.federation import make_scheme, min_contributors, policy_state, statement_verifier, verifies
from securefl.errors import ConfigError, KeyErasedError, TransportError
from securefl.state.keystore import KeyStore
from securefl.transport.grpc import wire
from securefl.transport.grpc.certs import AGGREGATOR, AUTHORITY, PARTY, Identity
from securefl.transport.grpc.channels import Endpoint, answer_errors, require_peer
from securefl.transport.grpc.identity import CertificateVerifier

log = logging.getLogger(__name__)
SERVICE = "securefl.Authority"


class AuthorityService:
    """Answers key requests for one :class:`~securefl.core.authority.Authority`."""

    def __init__(self, authority: Authority, cfg: Config, *, insecure: bool) -> None:
        self.authority, self.cfg, self.insecure = authority, cfg, insecure
        self.party_ids = frozenset(cfg.federation.ids)

    def _blob(self, key: Key) -> Iterator[bytes]:
        data = self.authority.scheme.dump_key(key, secret_access=SECRET_ACCESS if key.holds_secret else None)
        return wire.send(wire.header("blob", bytes=len(data)), data, self.cfg.transport.chunk_bytes)

    def _is_party(self, who: Identity) -> bool:
        return who.role == PARTY and who.name in self.party_ids

    @staticmethod
    def _is_aggregator(who: Identity) -> bool:
        return who == Identity(AGGREGATOR, AGGREGATOR)

    def party_key(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """``PartyKey``: the key of the party named by the caller's certificate (a party of this federation only).

        Any other caller ends with ``PERMISSION_DENIED``; the request names no one, so a
        party can fetch only its own key.
        """
        wire.parse_header(request, "key_request")
        who = require_peer(context, self._is_party, "fetch a party key", insecure=self.insecure)
        try:
            key = self.authority.undelivered_key(who.name)
        except KeyErasedError as exc:
            log.warning("refused: %s", exc)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise  # not reached: abort raises
        log.info("party key sent to %s", who)
        return self._delivery(who.name, key)

    def _delivery(self, party_id: str, key: PartyKey) -> Iterator[bytes]:
        yield from self._blob(key)
        # gRPC asked past the last chunk: only now is the key forgotten (a stream broken before keeps it)
        self.authority.erase_party_key(party_id)

    def aggregator_key(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """``AggregatorKey``: the aggregator key, to the aggregator, and to parties when it holds no secret (they
        refold aggregates with it before revealing: ``crypto.verify_aggregate``); anyone else:
        ``PERMISSION_DENIED``."""
        wire.parse_header(request, "key_request")
        key = self.authority.aggregator_key()
        allowed = (lambda who: self._is_aggregator(who) or self._is_party(who)) if not key.holds_secret \
            else self._is_aggregator
        who = require_peer(context, allowed, "fetch the aggregator key", insecure=self.insecure)
        log.info("aggregator key sent to %s", who)
        return self._blob(key)

    def function_key(self, request: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """``FunctionKey``: a function key for the requested round and weights, to the aggregator only.

        A round outside the run, a weight for a party not in the federation, or evidence larger than
        :func:`~securefl.transport.grpc.wire.evidence_limit` allows ends with ``INVALID_ARGUMENT``; a
        refusal by the signed statements' check or the policy with ``PERMISSION_DENIED`` (through
        :func:`~securefl.transport.grpc.channels.answer_errors`).
        """
        frames = iter(request)
        head = wire.parse_header(next(frames, b""), "function_key")
        # the caller is checked before its payload is read: only the aggregator's evidence is worth reading
        require_peer(context, self._is_aggregator, "request a function key", insecure=self.insecure)
        rnd, weights = head["round"], head["weights"]
        evidence = self._evidence(frames, head["bytes"])
        unknown = sorted(set(weights) - self.party_ids)
        if not 0 <= rnd < self.cfg.federation.rounds or unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"function key request for round {rnd} names unknown parties {unknown}" if unknown
                          else f"round {rnd} is outside 0..{self.cfg.federation.rounds - 1}")
        return self._blob(self.authority.function_key(rnd, weights, evidence))

    def _evidence(self, frames: Iterator[bytes], size: int) -> Evidence | None:
        """The request's signed statements (``None`` for 0 bytes), refused beyond one statement per party."""
        limit = min(wire.evidence_limit(len(self.party_ids)), self.cfg.transport.max_message_bytes)
        if size > limit:
            raise TransportError(f"the function-key request's evidence of {size} bytes exceeds the {limit} bytes "
                                 f"that {len(self.party_ids)} parties' signed statements take at most "
                                 f"({wire.EVIDENCE_BYTES_PER_PARTY} bytes each): refused")
        data = wire.read_payload(frames, size, limit, "function-key evidence")
        return Evidence.from_bytes(data) if data else None

    def handler(self) -> grpc.GenericRpcHandler:
        """The ``securefl.Authority`` service's three methods, securefl errors answered as gRPC statuses."""
        methods = {"PartyKey": self.party_key, "AggregatorKey": self.aggregator_key}
        handlers = {name: grpc.unary_stream_rpc_method_handler(answer_errors(fn)) for name, fn in methods.items()}
        # a function-key request streams in: its header, then the signed statements' frames
        handlers["FunctionKey"] = grpc.stream_stream_rpc_method_handler(answer_errors(self.function_key))
        return grpc.method_handlers_generic_handler(SERVICE, handlers)


def serve(cfg: Config, *, insecure: bool = False) -> grpc.Server:
    """Make the federation's keys and start serving them; returns the running server."""
    endpoint = Endpoint.load(cfg.transport, AUTHORITY, AUTHORITY, insecure=insecure)
    scheme = make_scheme(cfg)
    checks = None
    # a function key only for contributors whose signed statements come with the request (crypto.verify_aggregate)
    if scheme.declarations.reveal.function_key and verifies(cfg, scheme):
        if endpoint.tls is None:
            raise ConfigError(f"crypto.verify_aggregate = {cfg.crypto.verify_aggregate!r}: the authority checks the "
                              "parties' signed statements against the federation's CA, and --insecure has none. "
                              "Use TLS certificates (`securefl certs`), or set crypto.verify_aggregate = 'off'")
        checks = CertificateVerifier(endpoint.tls.ca)
    # the federation's record of granted function keys outlives any one key set (and the key store)
    policy, least = policy_state(cfg, cfg.transport.state_dir), min_contributors(cfg)
    if cfg.transport.authority_keys:
        authority: Authority = PersistentAuthority(scheme, cfg.federation.ids,
                                                   KeyStore(cfg.transport.authority_keys, scheme), policy=policy,
                                                   min_contributors=least)
    else:
        authority = Authority(scheme, cfg.federation.ids, policy=policy, min_contributors=least)
    if checks is not None:
        authority.verifier = statement_verifier(cfg, scheme, authority.aggregator_key(), checks)
    service = AuthorityService(authority, cfg, insecure=insecure)
    server = endpoint.server([service.handler()], cfg.transport.authority_port,
                             workers=min(64, 2 * len(cfg.federation.ids) + 4))
    log.info("authority listening on %s:%d (%s, %d parties)", cfg.transport.bind_host, cfg.transport.authority_port,
             scheme.name, len(cfg.federation.ids))
    return server
