"""The server side: :class:`SecureFLWorkflow`, a Flower fit workflow that runs securefl's round steps.

It goes where Flower's ``SecAggPlusWorkflow`` goes::

    workflow = DefaultWorkflow(fit_workflow=SecureFLWorkflow("securefl.toml"))

Each Flower round: the strategy's ``configure_fit`` samples the nodes and gives their fit
config; the sampled nodes of the :class:`~securefl.flower.roster.Roster` run one secure round
(:class:`~securefl.core.engine.SecureRound`, securefl's one order of setup exchanges,
protected uploads folded on arrival, and the reveal the scheme's plan names: a function key,
a share exchange, or a sealed aggregate a party opens); the fused arrays go to the strategy's
``aggregate_fit`` as one result whose ``num_examples`` is the total securefl weight, so the
strategy's global arrays are the weighted mean and its evaluation and metrics work as usual.
The workflow never asks which scheme it runs.

Keys: at the first round the key authority (:class:`~securefl.core.authority.Authority`)
makes the federation's keys **in this process**, inside the ServerApp, with a CA of its own
(:class:`~securefl.identity.InProcessCA`), and each node gets its own key and identity in one
Flower message (:data:`~securefl.flower.wire.KEYS`).  That is a simulation's arrangement:
the ServerApp (the aggregator) holds every key and could decrypt any upload.  It is what
Flower's simulation allows, and it is stated here rather than hidden; a deployment between
organisations that do not trust the aggregator needs the authority as its own process (securefl's
gRPC deployment), which this first version does not wire into Flower.

What the aggregator learns: the fused arrays (the strategy needs them, as with Flower's
SecAgg+) and the public weights; not a single node's update.  With
``crypto.verify_aggregate`` (default ``"full"``) every node signs its upload and no node
reveals (gives a share, opens a sealed aggregate) or the authority derives a function key for
an aggregate that is not the fold of the signed uploads.  Not supported: ``[privacy]``
(differential privacy needs the model's sensitivity and the weights before the first round,
which a Flower app's own trainer does not declare: the config is refused), and per-node fit
metrics (a node's fit metrics are not forwarded: they would leave the node unprotected).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import flwr.compat.common.recorddict_compat as compat
import numpy as np
from flwr.app import ConfigRecord, Context, RecordDict
from flwr.common import Code, FitIns, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext
from flwr.server.client_proxy import ClientProxy
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid

from crypto_backends.keys import SECRET_ACCESS
from securefl.config import Config, from_mapping, load, to_mapping
from securefl.core.aggregator import Aggregator
from securefl.core.authority import Authority
from securefl.core.engine import SecureRound
from securefl.core.federation import Federation, min_contributors
from securefl.core.messages import GlobalModel
from securefl.errors import TransportError, UsageError
from securefl.flower import wire
from securefl.flower.roster import Roster, RosterError
from securefl.flower.transport import FlowerTransport
from securefl.identity import InProcessCA

log = logging.getLogger(__name__)

__all__ = ["RoundReport", "SecureFLWorkflow", "simulation_backend"]


def simulation_backend() -> dict[str, Any]:
    """``run_simulation``'s ``backend_config`` for securefl: one Ray actor runs every node's ClientApp.

    A node's securefl party lives in the memory of the process that answers for it
    (:mod:`securefl.flower.mod`); one actor keeps every node's calls in one process.
    """
    return {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": 1}}


@dataclass
class RoundReport:
    """One Flower round under securefl: who contributed, who dropped (why), time and bytes per party."""

    round: int
    contributors: tuple[str, ...]
    dropped: dict[str, str]
    seconds: float
    sent: dict[str, int] = field(default_factory=dict)
    """securefl payload bytes the server sent each party this round."""
    received: dict[str, int] = field(default_factory=dict)
    """securefl payload bytes each party sent the server this round (its upload and any shares)."""


@dataclass
class _Run:
    roster: Roster
    authority: Authority
    aggregator: Aggregator
    transport: FlowerTransport
    steps: SecureRound


def _config(config: str | Path | Mapping[str, Any] | Config) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return from_mapping(config, source="<SecureFLWorkflow config>")
    return load(config)


class SecureFLWorkflow:
    """A Flower fit workflow running securefl's secure rounds (see the module docstring).

    ``config``: a securefl config (TOML path, mapping or :class:`~securefl.config.Config`) whose
    ``[crypto]`` chooses the scheme and whose ``federation.parties`` (or ``party_ids``) is the roster;
    ``node_ids``: an explicit Flower node id -> party id mapping (default: sorted party ids on the sorted
    node ids, which must then be exactly as many); ``timeout``: seconds per step (default
    ``federation.round_timeout``).
    """

    def __init__(self, config: str | Path | Mapping[str, Any] | Config, *, node_ids: Mapping[int, str] | None = None,
                 timeout: float | None = None) -> None:
        self.cfg = _config(config)
        self.federation = Federation(self.cfg)  # refuses [privacy] with the reason
        self.node_ids = dict(node_ids) if node_ids is not None else None
        self.timeout = self.cfg.federation.round_timeout if timeout is None else timeout
        self.reports: list[RoundReport] = []
        """One per round run, in order."""
        self._run: _Run | None = None

    def __call__(self, grid: Grid, context: Context) -> None:
        """One Flower round: configure_fit's nodes run a securefl round; the fused arrays go to aggregate_fit."""
        if not isinstance(context, LegacyContext):
            raise UsageError(f"SecureFLWorkflow needs Flower's LegacyContext (run it as DefaultWorkflow's "
                             f"fit_workflow), got {type(context).__name__}")
        current_round = int(cast(int, context.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND]))
        parameters = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD],
                                                      keep_input=True)
        instructions = context.strategy.configure_fit(server_round=current_round, parameters=parameters,
                                                      client_manager=context.client_manager)
        if not instructions:
            log.info("configure_fit: no clients selected, round %d cancelled", current_round)
            return
        run = self._run if self._run is not None else self._start(grid)
        proxies: dict[str, ClientProxy] = {}
        fitins: dict[str, FitIns] = {}
        failures: list[tuple[ClientProxy, FitRes] | BaseException] = []
        for proxy, ins in instructions:
            try:
                pid = run.roster.party(proxy.node_id)
            except RosterError as exc:  # sampled by the strategy, but never one of the federation's parties
                log.warning("%s", exc)
                failures.append(exc)
                continue
            proxies[pid], fitins[pid] = proxy, ins
        arrays = parameters_to_ndarrays(parameters)
        layout = wire.Layout.of(arrays)
        flat = layout.flat(arrays)
        extra = ConfigRecord({"layout": layout.to_text()})
        run.transport.train_extra = lambda pid: RecordDict(
            {wire.FIT_CONFIG: ConfigRecord(dict(fitins[pid].config)), wire.EXTRA: extra})
        if run.aggregator.num_parameters is None:
            run.aggregator.num_parameters = int(flat.size)
        sent, received = dict(run.transport.sent), dict(run.transport.received)
        t0 = time.perf_counter()
        collected, model = run.steps.run(current_round, sorted(proxies), GlobalModel.open(flat))
        fused = layout.split(run.transport.release(model))
        seconds = time.perf_counter() - t0
        combined = collected.combined
        self.reports.append(RoundReport(
            current_round, combined.contributors, collected.dropped, seconds,
            {p: n - sent.get(p, 0) for p, n in run.transport.sent.items()},
            {p: n - received.get(p, 0) for p, n in run.transport.received.items()}))
        log.info("round %d: securefl (%s) fused %d updates in %.3f s%s", current_round, self.federation.scheme.name,
                 len(combined.contributors), seconds,
                 f"; dropped: {', '.join(collected.dropped)}" if collected.dropped else "")
        self._aggregate(context, current_round, proxies[min(combined.contributors)], fused,
                        sum(combined.weights.values()), failures)

    @staticmethod
    def _aggregate(context: LegacyContext, current_round: int, proxy: ClientProxy, fused: list[np.ndarray],
                   total_weight: float,
                   failures: list[tuple[ClientProxy, FitRes] | BaseException]) -> None:
        """The fused arrays to the strategy as one result of the round's total weight (as SecAggPlusWorkflow)."""
        fitres = FitRes(Status(Code.OK, "securefl"), ndarrays_to_parameters(fused), max(1, round(total_weight)), {})
        aggregated, metrics = context.strategy.aggregate_fit(current_round, [(proxy, fitres)], failures)
        if aggregated:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(aggregated, True)
            context.history.add_metrics_distributed_fit(server_round=current_round, metrics=metrics)

    def _start(self, grid: Grid) -> _Run:
        """The roster, the keys (made here: see the module docstring) and each node's party, before round one."""
        cfg, scheme = self.cfg, self.federation.scheme
        roster = Roster.bind(cfg.federation.ids, grid.get_node_ids(), self.node_ids)
        outside = roster.outside(grid.get_node_ids())
        if outside:
            log.warning("Flower nodes %s are not in the securefl roster: they get no key and take no part", outside)
        authority = Authority(scheme, cfg.federation.ids, min_contributors=min_contributors(cfg))
        ca = InProcessCA(cfg.federation.ids)
        key = authority.aggregator_key()
        aggregator = self.federation.aggregator(key, ca.verifier())
        if scheme.declarations.reveal.function_key and self.federation.verifies:
            authority.verifier = self.federation.verifier(key, ca.verifier())
        transport = FlowerTransport(grid, roster, authority)
        self._deliver_keys(transport, authority, ca)
        self._run = _Run(roster, authority, aggregator, transport, SecureRound(aggregator, transport,
                                                                               timeout=self.timeout))
        log.info("securefl %s federation of %d parties on Flower nodes %s", scheme.name, len(roster.node_of),
                 sorted(roster.party_of))
        return self._run

    def _deliver_keys(self, transport: FlowerTransport, authority: Authority, ca: InProcessCA) -> None:
        scheme = authority.scheme
        text = json.dumps({"source": self.cfg.source, "config": to_mapping(self.cfg)})
        public = scheme.dump_key(authority.aggregator_key())
        keys = {}
        for pid in transport.roster.node_of:
            key = authority.undelivered_key(pid)
            keys[pid] = scheme.dump_key(key, secret_access=SECRET_ACCESS if key.holds_secret else None)

        def fields(pid: str) -> RecordDict:
            return RecordDict({wire.EXTRA: ConfigRecord({"party": pid, "config": text, "aggregator": public,
                                                         "identity": ca.export(pid)})})

        got = transport.send(wire.KEYS, 0, 0, keys, timeout=self.timeout, extra=fields)
        del keys
        failed = {}
        for pid, msg in got.items():
            record = None if msg is None or msg.has_error() else msg.content.config_records.get(wire.RECORD)
            if record is not None and record.get("payload") == pid.encode():
                authority.erase_party_key(pid)  # delivered: an erasing scheme's dealer forgets it now
            else:
                failed[pid] = ("no answer" if msg is None else msg.error.reason if msg.has_error() else
                               str(record.get("error") if record is not None else "no securefl record"))
        if failed:
            raise TransportError("securefl could not set up the parties at their Flower nodes: " + "; ".join(
                f"{p}: {why}" for p, why in sorted(failed.items())) + ". Add securefl_mod to the ClientApp's mods "
                "and run one Ray actor in simulation (securefl.flower.simulation_backend())")
