"""A party process: fetch its key, then poll the aggregator for work until the federation is done.

The party is the subject of its certificate; ``--id`` only says which
certificate to use (and, in the demo that splits one data set, which shard),
and must agree with the certificate.  With ``--data PATH.csv`` (or a trainer of
its own, :func:`serve_party`) and ``data.dataset = "own"`` it trains on its own
rows only.  A party that restarts fetches its key again and rejoins
at the round that is open; under a scheme whose authority hands each party key
out once and then erases it (``dealer_erases_party_keys``: ``threshold_paillier``)
it keeps its key in ``transport.state_dir`` and, refused by the authority on
restart, uses that one (:class:`~securefl.state.keystore.PartyKeyFile`).  If
asked for the same round and model twice (the aggregator restarted from its
checkpoint), it sends the same update again instead of training twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from securefl.config import OWN_DATA, Config, load
from securefl.core.federation import Federation, PartyDataFederation, federation
from securefl.core.messages import GlobalModel, parse_metrics
from securefl.core.party import Party
from securefl.errors import (
    BudgetExceededError,
    ConfigError,
    KeyErasedError,
    RefusedError,
    ReplayError,
    SecureFLError,
    TransportError,
)
from securefl.ml.trainer import Trainer
from securefl.state.keystore import PartyKeyFile
from securefl.state.partystate import federation_id
from securefl.transport.grpc.certs import PARTY
from securefl.transport.grpc.channels import Endpoint
from securefl.transport.grpc.clients import AggregatorClient, AuthorityClient, Task
from securefl.transport.grpc.identity import CertificateIdentity

if TYPE_CHECKING:
    from crypto_backends.keys import PartyKey

log = logging.getLogger(__name__)


class NetworkedParty:
    """One party's process (see the module docstring)."""

    def __init__(self, cfg: Config, party_id: str, *, insecure: bool = False, data: str | Path | None = None,
                 trainer: Trainer | None = None) -> None:
        """``data``: this party's own CSV file (``data.dataset = "own"``); ``trainer``: its own trainer."""
        if party_id not in cfg.federation.ids:
            raise ConfigError(f"--id {party_id!r} is not a party of this federation; federation.party_ids are "
                              f"{', '.join(cfg.federation.ids)}")
        if (data is not None or trainer is not None) and cfg.data.dataset != OWN_DATA:
            raise ConfigError(f"{party_id} brings its own {'file' if data is not None else 'trainer'}, but "
                              f"data.dataset is {cfg.data.dataset!r}, which every role would split across the "
                              "parties: set data.dataset = 'own' in the config of every role")
        self.cfg, self.party_id = cfg, party_id
        self.federation: Federation = (PartyDataFederation(cfg, data) if data is not None
                                       else Federation(cfg) if trainer is not None else federation(cfg))
        self.endpoint = Endpoint.load(cfg.transport, PARTY, party_id, insecure=insecure)
        key = self._key()
        public = None
        if self.federation.verifies:  # public: the party refolds aggregates with it before it reveals them
            authority = AuthorityClient(self.endpoint, self.federation.scheme)
            try:
                public = authority.aggregator_key()
            finally:
                authority.close()
        log.info("%s: key received (fingerprint %s)", party_id, key.fingerprint)
        # what it sends via the aggregator is signed with its TLS key (none on a plaintext test channel)
        identity = CertificateIdentity(self.endpoint.tls, party_id) if self.endpoint.tls is not None else None
        # the rounds answered and the budget spent survive this process (transport.state_dir)
        self.party: Party = self.federation.party(party_id, key, trainer, state_dir=cfg.transport.state_dir,
                                                  identity=identity, aggregator_key=public)
        self.aggregator = AggregatorClient(self.endpoint)
        self._sent: tuple[int, bytes, bytes] | None = None  # (round, model digest, update)
        self._caught_up = False
        self._sat_out: tuple[str, int, int] | None = None  # the step this party could not answer

    def _key(self) -> PartyKey:
        """This party's key from the authority, or (erased there) the one it keeps in ``transport.state_dir``."""
        scheme, pid = self.federation.scheme, self.party_id

        def fetch() -> PartyKey:
            authority = AuthorityClient(self.endpoint, scheme)
            try:
                return authority.party_key(pid)
            except RefusedError as exc:
                if exc.status == "FAILED_PRECONDITION":  # the authority handed it out before and erased it
                    raise KeyErasedError(str(exc)) from None
                raise
            finally:
                authority.close()

        if not scheme.declarations.threat_model.dealer_erases_party_keys:
            return fetch()  # the authority keeps every party key: a restarted party fetches it again
        fid = federation_id(self.cfg.federation.ids, self.cfg.federation.seed)
        return PartyKeyFile.in_dir(self.cfg.transport.state_dir, fid, scheme, pid).obtain(fetch)

    def _update(self, task: Task) -> bytes:
        accountant = self.party.accountant
        if accountant is not None and not self._caught_up:
            # a (re)started party cannot know which earlier rounds it released: it counts them all as spent
            accountant.replay(task.round)
            self.party.state.charge(accountant.rounds_charged)
        self._caught_up = True
        digest = hashlib.sha256(task.payload).digest()
        if self._sent is not None and self._sent[:2] == (task.round, digest):
            return self._sent[2]
        data = self.party.handle_round(task.round, task.payload)
        self._sent = (task.round, digest, data)
        return data

    def evaluate(self, model: bytes) -> dict[str, float]:
        """This party's metrics of ``model`` as it would be released (the scheme's publication step)."""
        return self.party.evaluate(GlobalModel.from_bytes(model))

    def run(self) -> dict[str, float] | None:
        """Take part until the aggregator says ``done``; returns this party's metrics of the final model."""
        measured: dict[int, dict[str, float]] = {}
        try:
            while True:
                task = self.aggregator.poll()
                if task.state == "failed":
                    raise TransportError(f"the aggregator stopped the federation: {task.message}")
                if task.state == "done":
                    log.info("%s: federation done after round %d", self.party_id, task.round)
                    return measured.get(task.round)
                if task.state == "wait":
                    continue
                step = (task.state, task.round, task.stage)
                if step == self._sat_out:  # the step stays open for us until it closes: ask again later, not at once
                    time.sleep(self.cfg.transport.poll_seconds)
                    continue
                with self._heartbeat(task):  # while it computes (and uploads), the aggregator knows it is alive
                    reply = self._reply(task)
                    if reply is None:
                        self._sat_out = step
                        continue
                    if task.state == "evaluate":
                        measured[task.round] = parse_metrics(reply)
                    self._send(task, reply)
        finally:
            self.aggregator.close()

    @contextmanager
    def _heartbeat(self, task: Task) -> Iterator[None]:
        """Send a heartbeat for ``task`` at once and then every ``transport.poll_seconds`` from a background
        thread, until the block ends: a party that dies while it holds a task is dropped after
        ``2 * poll_seconds + 2`` s of silence instead of being waited for until ``round_timeout``."""
        stop = threading.Event()
        every = self.cfg.transport.poll_seconds

        def beat() -> None:
            while not stop.is_set():
                try:
                    self.aggregator.heartbeat(task.state, task.round, task.stage)
                except TransportError as exc:  # a missed beat is not fatal: the reply or the next poll tells
                    log.debug("%s: heartbeat not delivered: %s", self.party_id, exc)
                stop.wait(every)

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.party_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(every + 1.0)

    def _reply(self, task: Task) -> bytes | None:
        log.info("%s: round %d: %s", self.party_id, task.round, task.state)
        try:
            if task.state == "train":
                return self._update(task)
            return self.party.respond(task.state, task.round, task.stage, task.payload)
        except ReplayError as exc:  # a round it answered before this process started: it sits the round out
            log.warning("%s: %s", self.party_id, exc)
            self._refuse(task, exc)
            return None
        except BudgetExceededError as exc:
            self._refuse(task, exc)
            raise  # this party's budget is spent: it stops rather than sit out every later round
        except SecureFLError as exc:
            # a request this party cannot answer (a malformed model or share request, perhaps crafted by a
            # hostile aggregator, or local training that fails): it sits the step out and keeps serving
            log.warning("%s: round %d: cannot answer the %s request: %s", self.party_id, task.round, task.state, exc)
            self._refuse(task, exc)
            return None

    def _refuse(self, task: Task, why: Exception) -> None:
        """Tell the aggregator at once that this party cannot answer ``task``, so the step does not wait for it."""
        try:
            # typed, as an in-process refusal reads ("ExceptionType: message"): the run's reasons tell a cheated
            # aggregate (AggregateMismatchError) from a local failure
            said = f"{type(why).__name__}: {why}" if str(why) else type(why).__name__
            self.aggregator.heartbeat(task.state, task.round, task.stage, refused=said)
        except TransportError as exc:  # unreachable: the step ends by its deadline or our silence, as before
            log.warning("%s: could not tell the aggregator it refuses round %d's %s: %s", self.party_id, task.round,
                        task.state, exc)

    def _send(self, task: Task, data: bytes) -> None:
        t0 = time.perf_counter()
        try:
            ack = self.aggregator.upload(task.round, data, step=task.state, stage=task.stage)
            log.info("%s: %s (%d bytes sent in %.3f s)", self.party_id, ack, len(data), time.perf_counter() - t0)
        except RefusedError as exc:
            if exc.status not in ("ALREADY_EXISTS", "FAILED_PRECONDITION", "INVALID_ARGUMENT"):
                raise
            # the step closed without us, or our reply was refused: sit it out, the next task follows
            log.warning("%s: round %d: %s", self.party_id, task.round, exc)


def serve_party(config: str | Path | Config, party_id: str, trainer: Trainer, *, insecure: bool = False) -> None:
    """Take part in a networked federation as ``party_id``, running your own ``trainer``, until it is done.

    ``config`` (a TOML path or a :class:`~securefl.config.Config`) is the federation's, with
    ``data.dataset = "own"`` and a ``[transport]`` section (``kind = "grpc"``): this process
    fetches its key from the authority over mutual TLS, with the certificate of ``party_id``,
    and answers the aggregator until the last round.  Raises :class:`~securefl.errors.TransportError`
    when the aggregator stops the federation or cannot be reached.
    """
    cfg = config if isinstance(config, Config) else load(config)
    NetworkedParty(cfg, party_id, insecure=insecure, trainer=trainer).run()
