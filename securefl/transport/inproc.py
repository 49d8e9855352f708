"""All three roles in one process: the embedded default and the reference for every deployment.

:class:`InProcessTransport` carries the round engine's requests to parties on a
thread pool, as the same bytes a networked deployment would send, so upload
sizes are real and every message is parsed and checked.  A party that raises,
or does not answer within the deadline, is dropped for that step; a party
still busy with an earlier step sits the next one out (a thread cannot be
killed) and rejoins when it is free.

:class:`~securefl.simulation.Simulation` builds a federation from a config and
runs it over this transport (``transport.kind = "threads"``).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Mapping

import numpy as np

from crypto_backends.keys import FunctionKey
from crypto_backends.statements import Evidence
from securefl.core.authority import Authority
from securefl.core.messages import GlobalModel
from securefl.core.party import Party
from securefl.transport.base import Accept, Replies, Request, T, Transport, take_reply

log = logging.getLogger(__name__)

__all__ = ["InProcessTransport"]


class InProcessTransport(Transport):
    """Parties on threads of this process, the authority an object (see the module docstring)."""

    def __init__(self, parties: Mapping[str, Party], authority: Authority) -> None:
        self.parties, self.authority = parties, authority
        self._pool = cf.ThreadPoolExecutor(max_workers=max(1, len(parties)), thread_name_prefix="party")
        self._busy: dict[str, cf.Future[list[bytes]]] = {}

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        """Each asked party answers on a pool thread; a party still busy with an earlier step is dropped from this one.

        A party that misses the deadline is dropped, but its thread runs on (it cannot be
        killed); the party is marked busy until it finishes.
        """
        replies: Replies[T] = Replies()
        futures: dict[cf.Future[list[bytes]], str] = {}
        for pid, payload in request.payloads.items():
            if pid in self._busy and not self._busy[pid].done():
                replies.dropped[pid] = "still busy with an earlier round"
                continue
            fut = self._pool.submit(self._respond, self.parties[pid], request, payload)
            self._busy[pid] = fut
            futures[fut] = pid
        deadline = time.monotonic() + timeout
        try:
            for fut in cf.as_completed(futures, timeout=max(0.0, deadline - time.monotonic())):
                take_reply(replies, request, futures[fut], lambda f=fut: f.result().pop(), accept, log)  # type: ignore[misc]
        except cf.TimeoutError:
            for pid in futures.values():
                if pid not in replies.accepted and pid not in replies.dropped:
                    replies.dropped[pid] = f"no answer within {timeout} s"
        return replies

    @staticmethod
    def _respond(party: Party, request: Request, payload: bytes) -> list[bytes]:
        # the reply in a box that _take empties: a finished future must not keep an upload's bytes alive
        return [party.respond(request.step, request.round, request.stage, payload)]

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        """The in-process authority's answer, by a direct call (its refusal propagates)."""
        return self.authority.function_key(round, weights, evidence)

    def release(self, model: GlobalModel) -> np.ndarray | None:
        """A sealed model opened by a key holder, with the scheme's publication step (every role is here)."""
        if not model.is_sealed:
            return model.vector
        for party in self.parties.values():  # the release the evaluation already made, if any
            if (vector := party.published(model)) is not None:
                return vector
        return self.parties[min(self.parties)].open_model(model, publish=True)

    def close(self) -> None:
        """Shut the party pool down without waiting: queued steps are cancelled, a running one is left to finish."""
        # do not wait for a party that never answered: the run is over without it
        self._pool.shutdown(wait=False, cancel_futures=True)
