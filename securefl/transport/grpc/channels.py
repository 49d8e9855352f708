"""gRPC servers and channels with mutual TLS, peer identities, and retry with back-off.

Every connection is mutual TLS against the federation's private CA: a server
requires and verifies a client certificate, a client verifies the server's
certificate against the *role* it expects (``securefl-aggregator`` /
``securefl-authority``).  A server learns who is calling from the verified
certificate only (:func:`peer_identity`).

``insecure=True`` (the ``--insecure`` flag) drops TLS entirely: traffic and keys
travel in the clear and callers *declare* their identity in request metadata.
It exists for debugging on one machine and prints a warning every time.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from crypto_backends.errors import AggregateMismatchError, PolicyError, SecureFLError
from securefl.config import TransportConfig
from securefl.errors import RefusedError, TransportError
from securefl.transport.grpc import certs
from securefl.transport.grpc.certs import Identity
from securefl.transport.grpc.wire import grpc_options

log = logging.getLogger(__name__)
T = TypeVar("T")

INSECURE_WARNING = (
    "WARNING: --insecure: no TLS. Updates, models and KEYS travel in the clear and every peer's identity is "
    "whatever it claims. Use this only for debugging on one machine, never with real data."
)
_ROLE_MD, _NAME_MD = "x-securefl-insecure-role", "x-securefl-insecure-name"


@dataclass(frozen=True)
class Endpoint:
    """How one role connects: its own identity, its TLS files (``None`` when insecure), the config."""

    me: Identity
    tls: certs.TLSFiles | None
    transport: TransportConfig

    @classmethod
    def load(cls, transport: TransportConfig, role: str, name: str, *, insecure: bool) -> Endpoint:
        """The endpoint of ``role`` ``name``: TLS from ``transport.cert_dir``, or none, warned, if ``insecure``."""
        if insecure:
            log.warning(INSECURE_WARNING)
            return cls(Identity(role, name), None, transport)
        return cls(Identity(role, name), certs.load_tls(transport.cert_dir, name, role=role), transport)

    def server(self, handlers: list[grpc.GenericRpcHandler], port: int, workers: int) -> grpc.Server:
        """A started server on ``transport.bind_host:port`` requiring client certificates."""
        # SO_REUSEPORT (gRPC's default on Linux) would let a second aggregator or authority share the port
        # silently and take half the connections: the federation would split in two
        server = grpc.server(cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self.me.role),
                             handlers=handlers, options=[*grpc_options(self.transport.chunk_bytes),
                                                         ("grpc.so_reuseport", 0)],
                             maximum_concurrent_rpcs=workers * 4)
        host = self.transport.bind_host
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if self.tls is None:
                bound = server.add_insecure_port(address)
            else:
                creds = grpc.ssl_server_credentials([(self.tls.key, self.tls.chain)],
                                                    root_certificates=self.tls.ca, require_client_auth=True)
                bound = server.add_secure_port(address, creds)
        except RuntimeError:  # newer gRPC raises where older returned 0
            bound = 0
        if not bound or (port and bound != port):
            server.stop(grace=None)
            raise TransportError(f"cannot listen on {address}: port {port} is already in use (another {self.me.role} "
                                 f"running?) or the address is not local; stop the other process, or change "
                                 f"transport.{self.me.role}_port or transport.bind_host")
        server.start()
        return server

    def channel(self, role: str) -> grpc.Channel:
        """A channel to the server of ``role``, which must present that role's certificate."""
        address = self.transport.address(role)
        options = grpc_options(self.transport.chunk_bytes)
        if self.tls is None:
            return grpc.insecure_channel(address, options=options)
        creds = grpc.ssl_channel_credentials(self.tls.ca, self.tls.key, self.tls.chain)
        return grpc.secure_channel(address, creds, options=[*options,
                                                           ("grpc.ssl_target_name_override", certs.server_name(role))])

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: empty with TLS (the certificate speaks); the declared identity when insecure."""
        return () if self.tls is not None else ((_ROLE_MD, self.me.role), (_NAME_MD, self.me.name))


def peer_identity(context: grpc.ServicerContext, *, insecure: bool) -> Identity:
    """Who is calling: the subject of the verified client certificate (or the declared one when insecure)."""
    if insecure:
        md = dict(context.invocation_metadata())
        return Identity(md.get(_ROLE_MD, ""), md.get(_NAME_MD, ""))
    pem = context.auth_context().get("x509_pem_cert")
    if not pem:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
    return certs.identity_of(pem[0])


def call_with_retry(what: str, fn: Callable[[], T], *, deadline_s: float, first_delay: float = 0.5,
                    max_delay: float = 10.0) -> T:
    """Run ``fn``; while the peer is unreachable, retry with exponential back-off for ``deadline_s`` seconds.

    Only ``UNAVAILABLE`` (cannot connect, peer restarting) is retried; any other
    gRPC status is the peer's answer and becomes a :class:`TransportError` at once.
    """
    give_up = time.monotonic() + deadline_s
    delay = first_delay
    while True:
        try:
            return fn()
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            if code is not grpc.StatusCode.UNAVAILABLE:
                status = code.name if code else "UNKNOWN"
                raise RefusedError(f"{what}: refused ({status}): {detail}", status) from None
            left = give_up - time.monotonic()
            if left <= 0:
                raise TransportError(
                    f"{what}: unreachable for {deadline_s:.0f} s ({detail}). Check that it is running, that "
                    "transport.*_host/_port point at it, and that both sides use certificates from the same "
                    "`securefl certs` directory; transport.connect_timeout sets how long to keep trying") from None
            wait = min(delay, left)
            log.warning("%s: unreachable (%s); retrying in %.1f s", what, detail.splitlines()[0][:200], wait)
            time.sleep(wait)
            delay = min(delay * 2, max_delay)


def answer_errors(handler: Callable[..., T]) -> Callable[..., T]:
    """Turn securefl's typed errors inside a handler into gRPC statuses with the error's message.

    A refused policy, or a request whose signed statements do not prove it
    (:class:`~crypto_backends.errors.AggregateMismatchError`), is ``PERMISSION_DENIED``; any
    other securefl error (a malformed or out-of-bounds request) is ``INVALID_ARGUMENT``.  Unexpected exceptions stay
    gRPC's ``UNKNOWN`` without details, so internals do not leak to peers.
    """
    # grpc ships no type stubs, so mypy cannot know that context.abort() always raises (never returns None)
    @functools.wraps(handler)
    def wrapped(request: Any, context: grpc.ServicerContext) -> T:  # type: ignore[return]
        try:
            return handler(request, context)
        except (PolicyError, AggregateMismatchError) as exc:
            log.warning("refused: %s", exc)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except SecureFLError as exc:
            log.warning("bad request: %s", exc)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return wrapped


def require_peer(context: grpc.ServicerContext, allowed: Callable[[Identity], bool], action: str, *,
                 insecure: bool) -> Identity:
    """The caller's identity if ``allowed``; otherwise the call ends with ``PERMISSION_DENIED``."""
    who = peer_identity(context, insecure=insecure)
    if not allowed(who):
        log.warning("refused %s to %s", action, who)
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{who} may not {action}")
    return who
