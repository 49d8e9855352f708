"""The federation-running entry point: :class:`Simulation`, :func:`run` and :func:`simulate`.

:class:`Simulation` builds a federation from a config (authority, parties,
aggregator) and runs it with :class:`~securefl.core.engine.RoundEngine` over the
transport ``transport.kind`` names: :class:`~securefl.transport.inproc.InProcessTransport`
(``threads``) or :class:`~securefl.transport.ray.RayTransport` (``ray``, imported
only then).  It lives above ``core`` because it picks a transport implementation,
which the core never imports.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path

from crypto_backends.base import Scheme
from crypto_backends.keys import AggregatorKey
from securefl.config import Config, load
from securefl.core.aggregator import Aggregator
from securefl.core.authority import Authority, PersistentAuthority
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
from securefl.core.party import Party
from securefl.errors import ConfigError, SecureFLError, UsageError
from securefl.identity import InProcessCA
from securefl.ml.data import FederatedData
from securefl.ml.models import ModelAdapter
from securefl.ml.trainer import Trainer
from securefl.state.checkpoint import CheckpointWriter, resume
from securefl.state.keystore import KeyStore
from securefl.transport.base import Transport
from securefl.transport.inproc import InProcessTransport

__all__ = ["RoundMetrics", "RunResult", "Simulation", "run", "simulate"]


class Simulation:
    """A federation in one process, built from a :class:`~securefl.config.Config`.

    Without ``trainers`` every party trains the configured built-in kind on its
    share of the configured data set; with ``trainers`` (one per party id) the
    parties run them, and ``[data]`` and ``[model]`` are not used (but for
    ``[model] fusion``).  With ``transport.kind = "ray"`` the parties are built
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
        policy, least = policy_state(cfg, state_dir), min_contributors(cfg)
        # with transport.authority_keys the key set outlives the run, so that a rerun may resume a sealed model;
        # not where the authority erases each party key once delivered: its store holds no party key, these
        # parties keep theirs in memory only, and such a scheme's model is open (any key set takes it on)
        keep = bool(cfg.transport.authority_keys) and not self.scheme.declarations.threat_model.dealer_erases_party_keys
        self.authority = (PersistentAuthority(self.scheme, cfg.federation.ids,
                                              KeyStore(cfg.transport.authority_keys, self.scheme), policy=policy,
                                              min_contributors=least)
                          if keep else
                          Authority(self.scheme, cfg.federation.ids, policy=policy, min_contributors=least))
        ray = cfg.transport.kind == "ray"
        if ray and trainers is not None:
            raise UsageError("transport.kind = 'ray' builds each party's trainer in its Ray actor from the config "
                             "(a built-in model kind); your own trainer objects would have to be pickled to get "
                             "there, which securefl never does. Run them with transport.kind = 'threads'")
        if ray and state_dir is not None:
            raise UsageError("transport.kind = 'ray' keeps each party's security state in its actor's "
                             "memory; a state_dir is kept by transport.kind = 'threads' and by networked parties "
                             "(transport.state_dir)")
        # every party signs what the aggregator relays for it, as in a deployment (its key stays with its party)
        # a deployment's certificates where the config names them (its checkpoint's signatures check), else a CA
        # of this run's own, kept beside a key store that outlives the run (a resumed model's signatures check)
        keys, certs = cfg.transport.authority_keys, Path(cfg.transport.cert_dir)
        self.ca = (InProcessCA.from_cert_dir(certs, cfg.federation.ids) if (certs / "ca.pem").is_file() else
                   InProcessCA(cfg.federation.ids, f"{keys}.identities" if keys else None))
        aggregator_key = self.authority.aggregator_key()
        # the parties' copy, as a deployment's parties fetch it: the aggregator's round state stays its own
        public = self.scheme.load_key(self.scheme.dump_key(aggregator_key))
        assert isinstance(public, AggregatorKey)
        self.parties: MutableMapping[str, Party] = {} if ray else {
            pid: self.federation.party(pid, self.authority.party_key(pid), None if trainers is None else trainers[pid],
                                       state_dir=state_dir, identity=self.ca.identity(pid),
                                       aggregator_key=public)
            for pid in cfg.federation.ids
        }
        self.aggregator: Aggregator = self.federation.aggregator(aggregator_key, self.ca.verifier())
        if self.scheme.declarations.reveal.function_key and self.federation.verifies:
            # a function key only for contributors whose signed statements come with the request
            self.authority.verifier = self.federation.verifier(aggregator_key, self.ca.verifier())

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
        """The transport to the parties ``transport.kind`` names (Ray actors start here).

        A ``grpc`` config runs on threads here too: every role in this process, the reference a deployment's
        rounds are compared with.
        """
        if self.cfg.transport.kind == "ray":
            from securefl.transport.ray import RayTransport  # the only import of ray, and only for this kind

            return RayTransport(self.cfg, self.authority, identities=self.ca)
        return InProcessTransport(self.parties, self.authority)

    def run(self, on_round: OnRound = lambda m: None, *, on_stop: OnStop = lambda r: None) -> RunResult:
        """Every round; a run that stops early raises, after ``on_stop`` got its rounds so far (``stopped`` set).

        With a ``transport.checkpoint`` file the run resumes from it (the rounds it holds are not run again,
        the privacy budget they spent stays spent) and writes it after every round.  Its model must be open,
        or sealed under this run's key set (``transport.authority_keys`` keeps the key set across runs).
        """
        path, key = self.cfg.transport.checkpoint_file, self.authority.aggregator_key()
        try:
            model, history = resume(path, self.scheme.name, key.key_id, self.rounds, open_model_takes_new_keys=True,
                                    new_keys_hint="set transport.authority_keys so that reruns keep one key set")
        except SecureFLError as exc:  # a run that stops before its first round still reports, with no rounds
            on_stop(self.federation.result([], None, self.accountant, stopped=exc))
            raise
        writer = CheckpointWriter(path, self.scheme.name, key.key_id.hex()) if path else None
        transport = self.transport()
        try:
            engine = RoundEngine(self.federation, self.aggregator, transport, accountant=self.accountant,
                                 checkpoint=writer)
            return engine.run(on_round, model=model, history=history, on_stop=on_stop)
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
