"""The client side: :func:`securefl_mod` answers securefl's steps at a Flower node with a securefl party.

Add it to the ``ClientApp``'s mods (as ``secaggplus_mod`` is); the app's own
``NumPyClient``/``client_fn`` stays as it is.  A message without securefl's record
(evaluation, Flower's own steps) passes through to the app untouched.

At the node, the :data:`~securefl.flower.wire.KEYS` step builds the node's
:class:`~securefl.core.party.Party` from the federation's config, the node's own key
(the scheme's ``dump_key`` bytes), its identity (to sign its uploads: ``crypto.verify_aggregate``)
and the aggregator's public key; every later step is :meth:`Party.respond`.  The
party's trainer is :class:`ClientAppTrainer`: on securefl's ``train`` step it gives the
app a normal Flower fit message (the global arrays and the strategy's fit config), and
the arrays and ``num_examples`` of the app's reply are the update and the weight that
securefl protects.

Where the party lives: in the memory of the process that runs the node's ClientApp,
keyed by run and node id (a Party holds keys and round state that are not records).
Flower's simulation must therefore run every ClientApp call of a node in one process:
one Ray actor (``backend_config={"client_resources": {"num_cpus": N}}`` with N the
cluster's CPUs, see :func:`securefl.flower.simulation_backend`).  A step that reaches a
process without the node's party is refused with a :class:`~securefl.errors.PartyError`
saying so.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

import flwr.compat.common.recorddict_compat as compat
import numpy as np
from flwr.app import ConfigRecord, Context, Message
from flwr.app.message_type import MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitIns, ndarrays_to_parameters, parameters_to_ndarrays

from crypto_backends.keys import AggregatorKey, PartyKey
from securefl.config import from_mapping
from securefl.core.federation import Federation
from securefl.core.messages import GlobalModel, vector_bytes
from securefl.core.party import Party
from securefl.errors import PartyError, TransportError
from securefl.flower import wire
from securefl.identity import load_identity

log = logging.getLogger(__name__)

_PARTIES: dict[tuple[int, int], Party] = {}
_GUARD = threading.Lock()


class ClientAppTrainer:
    """A :class:`~securefl.ml.trainer.Trainer` whose fit is the node's own ClientApp (see the module docstring)."""

    def __init__(self, party_id: str) -> None:
        self.party_id = party_id
        self.call: tuple[Message, Context, ClientAppCallable, wire.Layout] | None = None
        """The train step being answered: its message, context, the app, and the arrays' layout."""

    def initial_parameters(self) -> np.ndarray:
        """Not asked under Flower: the strategy gives the initial arrays."""
        raise PartyError(f"{self.party_id}: under Flower the strategy gives the initial arrays (initial_parameters "
                         "or a node's get_parameters); securefl does not ask the node")

    def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
        """The app's fit from ``parameters``: its returned arrays, flattened, and its ``num_examples``."""
        assert self.call is not None  # set by securefl_mod around the train step
        msg, ctxt, call_next, layout = self.call
        config = msg.content.config_records.get(wire.FIT_CONFIG, ConfigRecord())
        fitins = FitIns(ndarrays_to_parameters(layout.split(parameters)), cast("dict[str, Any]", dict(config)))
        msg.content = compat.fitins_to_recorddict(fitins, keep_input=True)
        out = call_next(msg, ctxt)
        if out.has_error():
            raise PartyError(f"{self.party_id}: the ClientApp's fit failed: {out.error.reason}")
        fitres = compat.recorddict_to_fitres(out.content, keep_input=False)
        if fitres.status.code != Code.OK:
            raise PartyError(f"{self.party_id}: the ClientApp's fit returned status {fitres.status.code.name}: "
                             f"{fitres.status.message}")
        return layout.flat(parameters_to_ndarrays(fitres.parameters)), float(fitres.num_examples)

    def evaluate(self, parameters: np.ndarray) -> Mapping[str, float]:
        """Not asked under Flower: the strategy's evaluate messages reach the app directly."""
        raise PartyError(f"{self.party_id}: under Flower evaluation is the strategy's (evaluate messages pass "
                         "through securefl_mod to the ClientApp)")


def securefl_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Answer a securefl step with this node's party; pass any other message to the app."""
    if msg.metadata.message_type != MessageType.TRAIN or wire.RECORD not in msg.content.config_records:
        return call_next(msg, ctxt)
    record = msg.content.config_records[wire.RECORD]
    try:
        return Message(wire.reply(payload=_answer(msg, ctxt, call_next, record)), reply_to=msg)
    except Exception as exc:  # noqa: BLE001 - the server drops this party with the text; nothing is pickled
        log.warning("node %d: securefl step refused: %s: %s", ctxt.node_id, type(exc).__name__, exc)
        return Message(wire.reply(error=f"{type(exc).__name__}: {exc}"), reply_to=msg)


def _answer(msg: Message, ctxt: Context, call_next: ClientAppCallable, record: ConfigRecord) -> bytes:
    step = wire.field(record, "step", str)
    rnd, stage = wire.field(record, "round", int), wire.field(record, "stage", int)
    payload = bytes(wire.field(record, "payload", bytes))
    extra = msg.content.config_records.get(wire.EXTRA, ConfigRecord())
    if step == wire.KEYS:
        return _setup(ctxt, extra, payload)
    party = _party(ctxt)
    if step == wire.RELEASE:
        model = GlobalModel.from_bytes(payload)
        vector = party.published(model)
        return vector_bytes(vector if vector is not None else party.open_model(model, publish=True))
    if step != "train":
        return party.respond(step, rnd, stage, payload)
    trainer = party.trainer
    assert isinstance(trainer, ClientAppTrainer)
    trainer.call = (msg, ctxt, call_next, wire.Layout.from_text(wire.field(extra, "layout", str)))
    try:
        return bytes(party.respond(step, rnd, stage, payload))
    finally:
        trainer.call = None


def _party(ctxt: Context) -> Party:
    with _GUARD:
        party = _PARTIES.get((ctxt.run_id, ctxt.node_id))
    if party is None:
        raise PartyError(f"Flower node {ctxt.node_id} holds no securefl party for run {ctxt.run_id} in this "
                         "process: either it is not in the federation's roster, or its ClientApp calls run in "
                         "several processes (Flower's simulation: run one Ray actor, "
                         "securefl.flower.simulation_backend())")
    return party


def _setup(ctxt: Context, record: ConfigRecord, key_bytes: bytes) -> bytes:
    """Build this node's party from the KEYS step (once per run and node)."""
    pid: str = wire.field(record, "party", str)
    doc: dict[str, Any] = json.loads(wire.field(record, "config", str))
    federation = Federation(from_mapping(doc["config"], source=str(doc["source"])))
    scheme = federation.scheme
    key = scheme.load_key(key_bytes)
    if not isinstance(key, PartyKey) or key.owner != pid:
        raise TransportError(f"the key sent to node {ctxt.node_id} for {pid} is a {type(key).__name__} of "
                             f"{getattr(key, 'owner', None)!r}: each party takes its own party key only")
    public = scheme.load_key(bytes(wire.field(record, "aggregator", bytes)))
    if not isinstance(public, AggregatorKey) or public.holds_secret:
        raise TransportError("the aggregator key sent to a node must be the aggregator's public key")
    identity = load_identity(bytes(wire.field(record, "identity", bytes)), pid)
    with _GUARD:
        held = _PARTIES.get((ctxt.run_id, ctxt.node_id))
        if held is not None and held.party_id != pid:
            raise PartyError(f"Flower node {ctxt.node_id} is {held.party_id} in run {ctxt.run_id}; it refuses to "
                             f"become {pid} as well")
        _PARTIES[(ctxt.run_id, ctxt.node_id)] = federation.party(pid, key, ClientAppTrainer(pid), identity=identity,
                                                                 aggregator_key=public)
    log.info("node %d is securefl party %s (%s)", ctxt.node_id, pid, scheme.name)
    return pid.encode()

