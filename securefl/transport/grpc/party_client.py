"""A party process: fetch its key, then poll the aggregator for work until the federation is done.

The party is the subject of its certificate; ``--id`` only says which
certificate and which shard of the configured partition to use, and must agree
with the certificate.  A party that restarts fetches its key again and rejoins
at the round that is open.  If asked for the same round and model twice (the
aggregator restarted from its checkpoint), it sends the same update again
instead of training twice.
"""

from __future__ import annotations

import hashlib
import logging
import time

from securefl.config import Config
from securefl.core.federation import Federation
from securefl.core.messages import GlobalModel, parse_metric
from securefl.core.party import Party
from securefl.errors import ConfigError, RefusedError, SecureFLError, TransportError
from securefl.transport.grpc.certs import PARTY
from securefl.transport.grpc.channels import Endpoint
from securefl.transport.grpc.clients import AggregatorClient, AuthorityClient, Task

log = logging.getLogger("securefl.party")


class NetworkedParty:
    """One party's process (see the module docstring)."""

    def __init__(self, cfg: Config, party_id: str, *, insecure: bool = False) -> None:
        if party_id not in cfg.federation.ids:
            raise ConfigError(f"--id {party_id!r} is not a party of this federation; federation.party_ids are "
                              f"{', '.join(cfg.federation.ids)}")
        self.cfg, self.party_id = cfg, party_id
        self.federation = Federation(cfg)
        self.endpoint = Endpoint.load(cfg.transport, PARTY, party_id, insecure=insecure)
        authority = AuthorityClient(self.endpoint, self.federation.scheme)
        try:
            key = authority.party_key(party_id)
        finally:
            authority.close()
        log.info("%s: key received (fingerprint %s)", party_id, key.fingerprint)
        self.party: Party = self.federation.party(party_id, key)
        self.aggregator = AggregatorClient(self.endpoint)
        self._sent: tuple[int, bytes, bytes] | None = None  # (round, model digest, update)
        self._caught_up = False

    def _update(self, task: Task) -> bytes:
        accountant = self.party.accountant
        if accountant is not None and not self._caught_up:
            # a (re)started party cannot know which earlier rounds it released: it counts them all as spent
            for past in range(accountant.rounds_charged, task.round):
                accountant.charge(past)
        self._caught_up = True
        digest = hashlib.sha256(task.payload).digest()
        if self._sent is not None and self._sent[:2] == (task.round, digest):
            return self._sent[2]
        data = self.party.handle_round(task.round, task.payload)
        self._sent = (task.round, digest, data)
        return data

    def evaluate(self, model: bytes) -> float:
        """The configured metric of ``model`` as it would be released (the scheme's publication step)."""
        return self.party.evaluate(GlobalModel.from_bytes(model))

    def run(self) -> float | None:
        """Take part until the aggregator says ``done``; returns the final model's metric if this party measured it."""
        measured: dict[int, float] = {}
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
                reply = self._reply(task)
                if reply is None:
                    continue
                if task.state == "evaluate":
                    measured[task.round] = parse_metric(reply)
                self._send(task, reply)
        finally:
            self.aggregator.close()

    def _reply(self, task: Task) -> bytes | None:
        log.info("%s: round %d: %s", self.party_id, task.round, task.state)
        if task.state == "train":
            return self._update(task)
        try:
            return self.party.respond(task.state, task.round, task.stage, task.payload)
        except SecureFLError as exc:
            # a request this party cannot answer (e.g. a malformed share request): it sits the step out
            log.warning("%s: round %d: cannot answer the %s request: %s", self.party_id, task.round, task.state, exc)
            return None

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
