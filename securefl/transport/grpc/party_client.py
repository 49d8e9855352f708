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
from securefl.errors import ConfigError, RefusedError, SecureFLError, TransportError
from securefl.core.federation import Federation
from securefl.core.messages import GlobalModel
from securefl.core.party import Party
from securefl.transport.grpc.certs import PARTY
from securefl.transport.grpc.channels import Endpoint
from securefl.transport.grpc.clients import AggregatorClient, AuthorityClient, Task

log = logging.getLogger("securefl.core.party")


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
        digest = hashlib.sha256(task.model).digest()
        if self._sent is not None and self._sent[:2] == (task.round, digest):
            return self._sent[2]
        data = self.party.handle_round(task.round, task.model)
        self._sent = (task.round, digest, data)
        return data

    def evaluate(self, model: bytes) -> float:
        """The configured metric of ``model`` as it would be released (the scheme's publication step)."""
        return self.federation.metric(self.party.open_model(GlobalModel.from_bytes(model), publish=True))

    def run(self) -> float | None:
        """Take part until the aggregator says ``done``; returns the final metric if this party measured it."""
        final = None
        try:
            while True:
                task = self.aggregator.poll()
                if task.state == "failed":
                    raise TransportError(f"the aggregator stopped the federation: {task.message}")
                if task.state == "train":
                    self._train(task)
                if task.evaluate is not None:
                    metric = self._measure(task)
                    try:
                        self.aggregator.report(task.evaluate, metric)
                    except RefusedError as exc:
                        log.warning("%s: metric not recorded: %s", self.party_id, exc)
                    final = metric if task.state == "done" else final
                if task.state == "done":
                    log.info("%s: federation done after round %d", self.party_id, task.round)
                    return final
        finally:
            self.aggregator.close()

    def _measure(self, task: Task) -> float | None:
        try:
            return self.evaluate(task.model)
        except SecureFLError as exc:
            # e.g. a scheme's publication budget is spent: say so instead of leaving the aggregator waiting
            log.warning("%s: cannot measure the model of round %s: %s", self.party_id, task.evaluate, exc)
            return None

    def _train(self, task: Task) -> None:
        log.info("%s: round %d: training", self.party_id, task.round)
        t0 = time.perf_counter()
        data = self._update(task)
        t1 = time.perf_counter()
        try:
            ack = self.aggregator.upload(task.round, data)
            log.info("%s: %s (update made in %.3f s, %d bytes sent in %.3f s)", self.party_id, ack, t1 - t0,
                     len(data), time.perf_counter() - t1)
        except RefusedError as exc:
            if exc.status not in ("ALREADY_EXISTS", "FAILED_PRECONDITION", "INVALID_ARGUMENT"):
                raise
            # the round closed without us, or our update was refused: sit it out, the next task follows
            log.warning("%s: round %d: %s", self.party_id, task.round, exc)
