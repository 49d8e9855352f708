"""Parties as Ray actors: one federation beyond one process, beneath the one round engine.

``[transport] kind = "ray"`` makes ``securefl run`` (and :class:`~securefl.simulation.Simulation`)
carry the round engine's requests with :class:`RayTransport` instead of threads.  The engine, the
aggregator and the key authority stay in the driver (this process); the parties run in a pool of
:class:`PartyHost` actors, one per CPU of the Ray cluster (as Flower's actor pool), many parties per
actor.  Each actor rebuilds the federation from the config (data set, partition, scheme, model
adapters: all derived from the config and its seed, so every actor gets the same shards as the
threads engine would) and builds only the parties assigned to it.

What crosses between the driver and an actor, and how:

* the config, as JSON text (:func:`securefl.config.to_mapping`), read back with the same validation;
* each party's key, as the scheme's :meth:`~crypto_backends.base.Scheme.dump_key` bytes, sent to the
  one actor that runs that party and to no other (the driver's authority made the key set, as it does
  for threads; key handles refuse to be pickled, so no key object can travel by accident);
* requests and replies, as the very bytes a gRPC deployment sends (a model sent to many parties is put
  in Ray's object store once); a reply is framed with a status byte, so a party's error comes back as
  text, never as a pickled exception.

Ray serialises these ``bytes``/``str`` arguments itself (its pickle-5 framing of plain bytes); no object
of securefl's or of a scheme's is pickled.  Ray's object store holds the models, uploads and key bytes
while they are in flight: see SECURITY.md ("The Ray engine") for what that means.  This is a simulation
on infrastructure one trusts, not a deployment between organisations that do not trust each other
(that is :mod:`securefl.transport.grpc`, with mutual TLS).

Same config and seed, same rounds as the threads engine: the engine, the checks and the combine are
the same code, the aggregator combines uploads in party-id order, and each party's training depends on
its shard and the seed alone.  What no seed fixes is what the schemes draw from the OS CSPRNG on purpose
(CKKS encryption and flooding noise, differential privacy's noise): those differ run to run, on either
engine.

An actor answers for its parties in turn, in at most :data:`CALLS_PER_ACTOR` batches per exchange (one
party per call in a small federation), so that a thousand parties cost a few dozen Ray calls.  A batch's
replies arrive together: a party still training when the deadline passes makes the rest of its batch late
too (they are dropped with it, as on threads a late party is).  A party still busy with an earlier step
sits the next one out (as on threads); a party that raises is dropped for the step with its message.
``ray`` is imported only when this module is used.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from crypto_backends.keys import SECRET_ACCESS, AggregatorKey, FunctionKey, PartyKey
from crypto_backends.statements import Evidence
from securefl.config import Config, from_mapping, to_mapping
from securefl.core.authority import Authority
from securefl.core.federation import federation
from securefl.core.messages import GlobalModel, parse_vector, vector_bytes
from securefl.core.party import Party
from securefl.errors import ConfigError, TransportError
from securefl.identity import InProcessCA, load_identity
from securefl.transport.base import Accept, PartyFailed, Replies, Request, T, Transport, take_reply

log = logging.getLogger(__name__)

_OK, _FAILED = b"\x00", b"\x01"
POLL_SECONDS = 0.05
"""Longest the driver waits for one more reply before handing those that arrived to the engine."""
CALLS_PER_ACTOR = 32
"""Calls one exchange makes of an actor at most: its parties go in this many batches (one party per call for
small federations), so that a thousand parties cost a few dozen Ray calls, not a thousand (about 1 ms each)."""

ADDRESS_KEY = "transport.ray_address"
"""The config key that names the Ray cluster to join (named in the errors below)."""
PROBE_SECONDS = 5.0
"""Longest :func:`connect` waits for a TCP connection to the cluster's address before calling it unreachable
(Ray's own client retries a closed port for about 30 s before it says so)."""
_HOST_PORT = re.compile(r"^(?:ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?):"
                        r"(?P<port>[0-9]{1,5})$")
_ADDRESS_FIX = (f"set {ADDRESS_KEY} to ray://HOST:PORT (the head node's Ray Client port, 10001 by default), "
                "HOST:PORT (its GCS port, 6379 by default, from a machine of the cluster), 'auto' (the cluster "
                "this machine belongs to), or leave it empty to start a local Ray runtime")

__all__ = ["ADDRESS_KEY", "PartyHost", "RayTransport", "check_ray_address", "config_text", "connect", "import_ray",
           "read_config_text"]


def check_ray_address(address: str) -> tuple[str, int] | None:
    """The host and port ``address`` names, ``None`` for ``auto``/``local``; :class:`ConfigError` for another form.

    Accepted: ``ray://HOST:PORT`` (Ray Client), ``HOST:PORT`` (a cluster's GCS), ``auto`` and ``local``
    (``ray.init``'s own words); the empty address (start a local runtime) is not an address and is not
    passed here.
    """
    if address in ("auto", "local"):
        return None
    match = _HOST_PORT.match(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"{ADDRESS_KEY} = {address!r} is not a Ray address; {_ADDRESS_FIX}")
    return match["host"].strip("[]"), int(match["port"])


def connect(ray: Any, address: str, *, probe_seconds: float = PROBE_SECONDS) -> None:
    """``ray.init`` joining ``address`` (empty: a local runtime), or a typed error naming the address and the fix.

    The address's form is checked first (:func:`check_ray_address`, a :class:`ConfigError`); a host:port that
    refuses or does not answer a TCP connection within ``probe_seconds`` is a :class:`TransportError` at once
    (rather than after Ray's own retries), and so is any connection failure of ``ray.init`` itself.
    """
    target = check_ray_address(address) if address else None
    if target is not None:
        try:
            socket.create_connection(target, timeout=probe_seconds).close()
        except OSError as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise TransportError(f"cannot reach the Ray cluster at {ADDRESS_KEY} = {address!r} ({reason} on "
                                 f"{target[0]}:{target[1]}): start it there (ray start --head), check the host, "
                                 f"port and firewall, or {_ADDRESS_FIX}") from None
    try:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, ValueError) as exc:
        where = f"join the Ray cluster at {ADDRESS_KEY} = {address!r}" if address else "start a local Ray runtime"
        raise TransportError(f"cannot {where} ({type(exc).__name__}: {exc}); check that the cluster is up "
                             f"(`ray status` on its head node) and runs this Ray version ({ray.__version__}), "
                             f"or {_ADDRESS_FIX}") from None


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"transport.kind = 'ray' needs Ray, which cannot be imported here ({exc}). Install "
                          "the extra with pip install -e \".[ray]\" (or pip install \"securefl[ray]\"), or set "
                          "transport.kind = 'threads'") from None
    return ray


def config_text(cfg: Config) -> str:
    """``cfg`` as JSON text, the form in which it travels to the actors (read by :func:`read_config_text`)."""
    return json.dumps({"source": cfg.source, "config": to_mapping(cfg)})


def read_config_text(text: str) -> Config:
    """Inverse of :func:`config_text`, validated like a loaded file."""
    doc = json.loads(text)
    return from_mapping(doc["config"], source=str(doc["source"]))


def _framed(call: Callable[..., bytes], *args: Any) -> bytes:
    """``call(*args)``'s bytes behind an OK byte, or its error as text behind a FAILED byte."""
    try:
        return _OK + bytes(call(*args))
    except Exception as exc:  # noqa: BLE001 - the driver drops the party with this text; nothing is pickled
        return _FAILED + f"{type(exc).__name__}: {exc}".encode()


def _unframed(data: bytes) -> bytes:
    """The bytes of an OK reply; :class:`PartyFailed` with the party's own words otherwise."""
    if data[:1] == _OK:
        return data[1:]
    if data[:1] == _FAILED:
        raise PartyFailed(data[1:].decode(errors="replace"))
    raise TransportError(f"malformed reply from a Ray actor (status byte {data[:1]!r})")


class PartyHost:
    """One Ray actor's parties: built from the config and their own keys' bytes; bytes in, bytes out.

    A plain class: :class:`RayTransport` makes it a Ray actor class (``ray.remote``) when it is used, so that
    this module imports without Ray.
    """

    def __init__(self) -> None:
        self.parties: dict[str, Party] = {}

    def setup(self, config: str, party_ids: list[str], keys: list[bytes], identities: list[bytes],
              aggregator_key: bytes) -> bytes:
        """Build ``party_ids`` (their trainers and shards from ``config``, their keys from ``keys``, their
        identities from ``identities``: :meth:`~securefl.identity.InProcessCA.export`; the aggregator's public
        key, to refold aggregates, from ``aggregator_key``)."""
        return _framed(self._setup, config, party_ids, keys, identities, aggregator_key)

    def _setup(self, config: str, party_ids: list[str], keys: list[bytes], identities: list[bytes],
               aggregator_key: bytes) -> bytes:
        fed = federation(read_config_text(config))
        public = fed.scheme.load_key(aggregator_key)
        if not isinstance(public, AggregatorKey) or public.holds_secret:
            raise TransportError(f"the aggregator key sent to the actor is a {type(public).__name__}; only the "
                                 "aggregator's public key is sent to parties")
        for pid, data, identity in zip(party_ids, keys, identities, strict=True):
            key = fed.scheme.load_key(data)
            if not isinstance(key, PartyKey) or key.owner != pid:
                raise TransportError(f"the key sent for {pid} is a {type(key).__name__} of "
                                     f"{getattr(key, 'owner', None)!r}; each party takes its own party key only")
            self.parties[pid] = fed.party(pid, key, identity=load_identity(identity, pid), aggregator_key=public)
        return f"{os.getpid()}".encode()

    def held(self) -> str:
        """The ids of the parties this actor runs, hence whose keys it holds (JSON text)."""
        return json.dumps(sorted(self.parties))

    def respond(self, party_ids: list[str], step: str, round: int, stage: int, shared: bytes | None,
                each: list[bytes] | None) -> list[bytes]:
        """:meth:`~securefl.core.party.Party.respond` of some of this actor's parties, in turn, each reply framed.

        Every party gets ``shared`` (one model for all), or its own item of ``each``.
        """
        payloads = each if each is not None else [shared or b""] * len(party_ids)
        return [_framed(self.parties[pid].respond, step, round, stage, payload)
                for pid, payload in zip(party_ids, payloads, strict=True)]

    def release(self, party_id: str, model: bytes) -> bytes:
        """A sealed model as ``party_id`` published it (or publishes it now), as float64 bytes, framed."""
        return _framed(self._release, party_id, model)

    def _release(self, party_id: str, model: bytes) -> bytes:
        party, gm = self.parties[party_id], GlobalModel.from_bytes(model)
        vector = party.published(gm)
        return vector_bytes(vector if vector is not None else party.open_model(gm, publish=True))


class RayTransport(Transport):
    """The round engine's requests carried to parties in Ray actors (see the module docstring).

    Joins ``transport.ray_address`` or, when it is empty, starts a local Ray runtime (stopped by
    :meth:`close`); a Ray runtime already started in this process (``ray.init``) is used as it is.
    """

    def __init__(self, cfg: Config, authority: Authority, *, identities: InProcessCA, actors: int = 0) -> None:
        """Start the actor pool: ``actors`` actors (0: one per CPU Ray offers, at most one per party).

        ``identities``: the simulation's CA; each party's identity goes to its actor only.
        """
        self.ray = ray = import_ray()
        self.authority = authority
        self._started = False
        t0 = time.perf_counter()
        if not ray.is_initialized():
            connect(ray, cfg.transport.ray_address)
            self._started = True
        ids = sorted(cfg.federation.ids)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(len(ids), actors or cpus))
        host_class = ray.remote(num_cpus=1)(PartyHost)  # one CPU each: Ray spreads the pool over the nodes
        self._hosts = [host_class.remote() for _ in range(count)]
        self._host_of: dict[str, Any] = {}
        text, scheme = config_text(cfg), authority.scheme
        public = scheme.dump_key(authority.aggregator_key())
        setups = []
        for i, host in enumerate(self._hosts):
            mine = ids[i::count]
            self._host_of.update(dict.fromkeys(mine, host))
            # each party's key goes to the one actor that runs that party
            keys = [scheme.dump_key(key, secret_access=SECRET_ACCESS if key.holds_secret else None)
                    for key in map(authority.party_key, mine)]
            setups.append(host.setup.remote(text, mine, keys, [identities.export(pid) for pid in mine], public))
        wait = cfg.federation.round_timeout
        try:
            ready, _ = ray.wait(setups, num_returns=len(setups), timeout=wait)
            if len(ready) < len(setups):
                raise TransportError(f"{len(setups) - len(ready)} of {count} Ray actors were not ready within "
                                     f"federation.round_timeout = {wait:g} s: the cluster may lack free CPUs (each "
                                     "actor takes one; see `ray status`), or its nodes cannot import securefl")
            for reply in ray.get(setups):
                _unframed(reply)
        except Exception:
            self.close()
            raise
        log.info("%d parties on %d Ray actors, ready in %.1f s", len(ids), count, time.perf_counter() - t0)
        self._busy: dict[str, Any] = {}

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        """Each asked party answers in its actor, in batches of up to :data:`CALLS_PER_ACTOR` calls per actor.

        A party still busy with an earlier step is dropped from this one; a batch that misses
        the deadline drops all its parties, and a lost actor drops the parties of its batch.
        """
        ray = self.ray
        replies: Replies[T] = Replies()
        earlier = list({id(r): r for p in request.payloads if (r := self._busy.get(p)) is not None}.values())
        done = set(ray.wait(earlier, num_returns=len(earlier), timeout=0)[0]) if earlier else set()
        by_host: dict[int, list[str]] = {}
        for pid in request.payloads:
            if pid in self._busy and self._busy[pid] not in done:
                replies.dropped[pid] = "still busy with an earlier round"
            else:
                by_host.setdefault(id(self._host_of[pid]), []).append(pid)
        payloads = list(request.payloads.values())
        shared = payloads[0] if payloads and all(p is payloads[0] for p in payloads) else None
        # the same model for all: one copy in the object store, whatever the number of parties
        shared_ref = ray.put(shared) if shared is not None else None
        asked: dict[Any, list[str]] = {}
        for pids in by_host.values():
            host, size = self._host_of[pids[0]], -(-len(pids) // CALLS_PER_ACTOR)
            for chunk in (pids[i:i + size] for i in range(0, len(pids), size)):
                each = None if shared is not None else [request.payloads[p] for p in chunk]
                ref = host.respond.remote(chunk, request.step, request.round, request.stage, shared_ref, each)
                self._busy.update(dict.fromkeys(chunk, ref))
                asked[ref] = chunk
        deadline = time.monotonic() + timeout
        pending = list(asked)
        while pending and (left := deadline - time.monotonic()) > 0:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=min(left, POLL_SECONDS))
            for ref in ready:
                self._take(asked[ref], ref, accept, replies, request)
        for ref in pending:
            replies.dropped.update(dict.fromkeys(asked[ref], f"no answer within {timeout} s"))
        return replies

    def _take(self, chunk: list[str], ref: Any, accept: Accept[T], replies: Replies[T], request: Request) -> None:
        try:
            framed = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a lost actor drops its parties, not the run
            framed = [_FAILED + f"{type(exc).__name__}: {exc}".encode()] * len(chunk)
        for pid, reply in zip(chunk, framed, strict=True):
            take_reply(replies, request, pid, functools.partial(_unframed, reply), accept, log)

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        """The driver's authority's answer, by a direct call (its refusal propagates); no actor is involved."""
        return self.authority.function_key(round, weights, evidence)

    def release(self, model: GlobalModel) -> np.ndarray | None:
        """A sealed model as the party with the smallest id publishes it (as the threads engine releases it)."""
        if not model.is_sealed:
            return model.vector
        pid = min(self._host_of)
        return parse_vector(_unframed(self.ray.get(self._host_of[pid].release.remote(pid, model.to_bytes()))))

    def close(self) -> None:
        """Kill the actors, and shut Ray down in this process if this transport's ``ray.init`` started it.

        A runtime the caller had started is left running; a joined cluster keeps running
        either way.  Safe to call more than once.
        """
        for host in getattr(self, "_hosts", []):
            self.ray.kill(host)
        self._hosts = []
        if self._started:
            self.ray.shutdown()
            self._started = False
