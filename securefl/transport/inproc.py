"""All three roles in one process: the embedded default and the reference for every deployment.

:class:`InProcessTransport` carries the round engine's requests to parties on a
thread pool, as the same bytes a networked deployment would send, so upload
sizes are real and every message is parsed and checked.  A party that raises,
or does not answer within the deadline, is dropped for that step; a party
still busy with an earlier step sits the next one out (a thread cannot be
killed) and rejoins when it is free.

:class:`Simulation` builds a federation from a config (authority, parties,
aggregator) and runs it with :class:`~securefl.core.engine.RoundEngine`, over
this transport or, with ``federation.engine = "ray"``, over
:class:`~securefl.transport.ray.RayTransport` (the parties in Ray actors).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import numpy as np

from crypto_backends.base import Scheme
from crypto_backends.keys import FunctionKey
from securefl.config import Config, load
from securefl.core.aggregator import Aggregator
from securefl.core.authority import Authority
from securefl.core.engine import OnRound, OnStop, RoundEngine
from securefl.core.federation import (
    Federation,
    RoundMetrics,
    RunResult,
    SharedDataFederation,
    federation,
    min_contributors,
    policy_state,
)
from securefl.core.messages import GlobalModel
from securefl.core.party import Party
from securefl.errors import ConfigError, UsageError
from securefl.ml.data import FederatedData
from securefl.ml.models import ModelAdapter
from securefl.ml.trainer import Trainer
from securefl.transport.base import Accept, Replies, Request, T, Transport, take_reply

log = logging.getLogger(__name__)

__all__ = ["InProcessTransport", "RoundMetrics", "RunResult", "Simulation", "run", "simulate"]


class InProcessTransport(Transport):
    """Parties on threads of this process, the authority an object (see the module docstring)."""

    def __init__(self, parties: Mapping[str, Party], authority: Authority) -> None:
        self.parties, self.authority = parties, authority
        self._pool = cf.ThreadPoolExecutor(max_workers=max(1, len(parties)), thread_name_prefix="party")
        self._busy: dict[str, cf.Future[list[bytes]]] = {}

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
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

    def function_key(self, round: int, weights: Mapping[str, float]) -> FunctionKey:
        return self.authority.function_key(round, weights)

    def release(self, model: GlobalModel) -> np.ndarray | None:
        """A sealed model opened by a key holder, with the scheme's publication step (every role is here)."""
        if not model.is_sealed:
            return model.vector
        for party in self.parties.values():  # the release the evaluation already made, if any
            if (vector := party.published(model)) is not None:
                return vector
        return self.parties[min(self.parties)].open_model(model, publish=True)

    def close(self) -> None:
        # do not wait for a party that never answered: the run is over without it
        self._pool.shutdown(wait=False, cancel_futures=True)


class Simulation:
    """A federation in one process, built from a :class:`~securefl.config.Config`.

    Without ``trainers`` every party trains the configured built-in kind on its
    share of the configured data set; with ``trainers`` (one per party id) the
    parties run them, and ``[data]`` and ``[model]`` are not used (but for
    ``[model] fusion``).  With ``federation.engine = "ray"`` the parties are built
    in Ray actors when :meth:`run` starts them, and :attr:`parties` is empty here.
    """

    def __init__(self, cfg: Config, trainers: Mapping[str, Trainer] | None = None, *,
                 state_dir: str | Path | None = None) -> None:
        """``state_dir``: where the parties and the authority keep their durable security state (as the
        networked roles do in ``transport.state_dir``); ``None`` keeps it in memory, for one run."""
        self.cfg = cfg
        if trainers is None:
            self.federation: Federation = federation(cfg)
        else:
            self.federation = Federation(cfg)
            _check_trainers(cfg, trainers)
        self.scheme: Scheme = self.federation.scheme
        # the engine refuses a round past the budget up front; each party also enforces its own
        self.accountant = self.federation.accountant()
        self.authority = Authority(self.scheme, cfg.federation.ids, policy=policy_state(cfg, state_dir),
                                   min_contributors=min_contributors(cfg))
        if cfg.federation.engine == "ray" and trainers is not None:
            raise UsageError("federation.engine = 'ray' builds each party's trainer in its Ray actor from the config "
                             "(a built-in model kind); your own trainer objects would have to be pickled to get "
                             "there, which securefl never does. Run them with federation.engine = 'threads'")
        if cfg.federation.engine == "ray" and state_dir is not None:
            raise UsageError("federation.engine = 'ray' keeps each party's security state in its actor's memory; a "
                             "state_dir is kept by the threads engine and by networked parties (transport.state_dir)")
        self.parties: MutableMapping[str, Party] = {} if cfg.federation.engine == "ray" else {
            pid: self.federation.party(pid, self.authority.party_key(pid), None if trainers is None else trainers[pid],
                                       state_dir=state_dir)
            for pid in cfg.federation.ids
        }
        self.aggregator: Aggregator = self.federation.aggregator(self.authority.aggregator_key())

    @property
    def rounds(self) -> int:
        """Rounds this run performs: as configured, or fewer when the model is complete sooner (naive Bayes: 1)."""
        return self.federation.rounds

    @property
    def evaluator(self) -> ModelAdapter:
        """The built-in kind's adapter at the aggregator (a run of a built-in kind only)."""
        return self._shared().evaluator

    @property
    def data(self) -> FederatedData:
        """The data set split across the parties (a run of a built-in kind only)."""
        return self._shared().data

    def _shared(self) -> SharedDataFederation:
        if not isinstance(self.federation, SharedDataFederation):
            raise UsageError("this simulation runs the parties' own trainers: it has no built-in model or data set")
        return self.federation

    def transport(self) -> Transport:
        """The transport to the parties ``federation.engine`` names (Ray actors start here)."""
        if self.cfg.federation.engine == "ray":
            from securefl.transport.ray import RayTransport  # the only import of ray, and only for this engine

            return RayTransport(self.cfg, self.authority)
        return InProcessTransport(self.parties, self.authority)

    def run(self, on_round: OnRound = lambda m: None, *, on_stop: OnStop = lambda r: None) -> RunResult:
        """Every round; a run that stops early raises, after ``on_stop`` got its rounds so far (``stopped`` set)."""
        transport = self.transport()
        try:
            engine = RoundEngine(self.federation, self.aggregator, transport, accountant=self.accountant)
            return engine.run(on_round, on_stop=on_stop)
        finally:
            transport.close()


def _check_trainers(cfg: Config, trainers: Mapping[str, Trainer]) -> None:
    ids = set(cfg.federation.ids)
    if set(trainers) != ids:
        missing, extra = sorted(ids - set(trainers)), sorted(set(trainers) - ids)
        raise ConfigError("trainers must be given for exactly the federation's parties "
                          f"({', '.join(sorted(ids))}): " + "; ".join(
                              ([f"missing {', '.join(missing)}"] if missing else [])
                              + ([f"not in federation.party_ids: {', '.join(extra)}"] if extra else []))
                          + ". Set federation.parties / federation.party_ids to match, or pass one trainer each")
    for pid, trainer in trainers.items():
        if not isinstance(trainer, Trainer):
            raise UsageError(f"the trainer of {pid} is a {type(trainer).__name__}, which lacks initial_parameters, "
                             "fit or evaluate: implement securefl.Trainer")


def run(cfg: Config, on_round: OnRound = lambda m: None) -> RunResult:
    """Build a :class:`Simulation` from ``cfg`` and run every round."""
    return Simulation(cfg).run(on_round)


def simulate(config: str | Path | Config, trainers: Mapping[str, Trainer],
             on_round: OnRound | None = None) -> RunResult:
    """Run a federation of your own ``trainers`` (party id -> :class:`~securefl.Trainer`) in this process.

    ``config`` is a TOML path or a :class:`~securefl.config.Config`; its ``[crypto]``
    (and ``[federation]``) choose the protection: the trainers stay the same under
    every scheme.  Returns the run's :class:`~securefl.core.federation.RunResult`
    (``final_parameters``: the released model).  Raises :class:`~securefl.errors.ConfigError`
    when the trainers do not match ``federation.party_ids``, and
    :class:`~securefl.errors.QuorumError` when too few parties deliver.
    """
    cfg = config if isinstance(config, Config) else load(config)
    return Simulation(cfg, trainers).run(on_round or (lambda m: None))
