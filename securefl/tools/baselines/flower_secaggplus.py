"""Flower 1.42's own SecAgg+ (``flwr``): its client mod and its server workflow, on the bench's vectors.

What runs is Flower's code, not a re-implementation: every party is
``flwr.client.mod.secaggplus_mod`` (ECDH on SECP384R1 keys from
``flwr.supercore.primitives.asymmetric``, Shamir shares of its mask seed and key
through ``flwr.common.secure_aggregation.crypto.shamir``, shares sent under Fernet,
quantisation and masking with ``flwr.common.secure_aggregation``), and the server
is ``flwr.server.SecAggPlusWorkflow``'s four stages (``setup_stage``,
``share_keys_stage``, ``collect_masked_vectors_stage``, ``unmask_stage``) called
one after the other as its ``__call__`` does.  The only code of ours is the
delivery in between (:class:`_WireGrid`): each message's content goes through
Flower's own protobuf serialisation (``recorddict_to_proto`` and back), as it
would on the wire, and a strategy (:class:`_Passthrough`) that samples every
party and takes the workflow's unmasked aggregate as the result (FedAvg would
average n copies of that one vector, which is not secure-aggregation work).

Parameters, as SecAgg+ in securefl would use them for n parties:

* ``neighbours`` (``securefl bench --neighbours K``; default :func:`default_neighbours`: ``2 * ceil(log2 n)``, the
  full graph when that reaches ``n - 1``, the O(log n) degree of Bell et al.
  2020): Flower's ``num_shares`` is ``neighbours + 1`` (a party keeps one share
  itself; Flower makes ``num_shares`` odd when it is below n, so an even
  ``neighbours`` is what Flower runs);
* ``threshold`` (default: a majority of ``num_shares``);
* Flower's defaults for the rest: clipping range 8, quantisation range 2^22,
  modulus 2^32; ``max_weight`` is the largest weight (bench weights are 1..N,
  whole numbers, passed as ``num_examples``).
* ``dropout`` (default 0): that fraction of the parties (rounded down) replies to
  the key exchange and then never sends its masked vector, so the unmasking
  reconstructs their pairwise masks from their neighbours' shares.

Columns (a round with fresh keys per repetition, as Flower runs one per round):

* ``encrypt_s``: the median over parties of all of one party's work in the
  round: parsing its four requests, its ``secaggplus_mod`` calls (key
  generation, Shamir sharing and encrypting its shares, decrypting the shares it
  receives, quantising and masking, answering the unmask request) and
  serialising its four replies;
* ``aggregate_s``: the server's work in the first three stages, outside the
  parties: building and serialising the requests, parsing the replies, routing
  public keys and encrypted shares, summing the masked vectors;
* ``decrypt_s``: the server's ``unmask_stage`` outside the parties: combining the
  Shamir shares, regenerating self masks (and dropped parties' pairwise masks),
  dequantising;
* ``bytes_per_party``: the median serialised size of everything one party sends
  in the round (public keys, encrypted shares, masked vector, unmask shares);
* ``max_abs_error``: against numpy's weighted mean of the survivors' vectors;
* ``security_bits``: 32.  Flower's ``pseudo_rand_gen`` folds the 32-byte seed to
  32 bits for numpy's ``RandomState`` (Mersenne Twister), so each mask has at most
  2^32 possible values whatever the key size; the note says so.

Not promised: the times include the in-process delivery (no network); the
server and the parties share this one process and run one after the other.
Flower's Shamir helpers start a ``ThreadPoolExecutor`` for every secret they
split or combine; on a busy machine much of the unmasking is thread start-up and
waiting.  That is Flower's code as shipped, and it is what is measured.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitIns, FitRes, Parameters, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.compat.common import recorddict_compat as compat
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict
from flwr.server import LegacyContext
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp.grid import Grid
from flwr.supercore.task_identity import TaskIdentity

MASK_BITS = 32
"""What Flower's mask generator is seeded with, whatever the key agreement's strength."""


def default_neighbours(parties: int) -> int:
    """SecAgg+'s O(log n) degree, ``2 * ceil(log2 n)``; every other party when that reaches ``n - 1``."""
    return min(parties - 1, 2 * math.ceil(math.log2(max(parties, 2))))


def _wire(content: RecordDict) -> bytes:
    return bytes(recorddict_to_proto(content).SerializeToString())


def _unwire(data: bytes) -> RecordDict:
    return recorddict_from_proto(ProtoRecordDict.FromString(data))


@dataclass
class _Party:
    """One Flower client: its node id, its update, its weight, its Context (the mod's state lives there)."""

    node_id: int
    vector: np.ndarray
    weight: int
    context: Context = field(init=False)
    seconds: float = 0.0
    sent: int = 0

    def __post_init__(self) -> None:
        self.context = Context(run_id=1, node_id=self.node_id, node_config={}, state=RecordDict(), run_config={})

    def train(self, msg: Message, ctxt: Context) -> Message:
        """The ``ClientApp``'s fit: the party's update and weight, as Flower's FitRes."""
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([self.vector]), self.weight, {})
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    def handle(self, msg: Message, data: bytes) -> bytes:
        """Receive ``data`` (the request's content) as this party would, answer with the reply's bytes."""
        t0 = time.perf_counter()
        request = Message(_unwire(data), dst_node_id=self.node_id, message_type=msg.metadata.message_type,
                          group_id=msg.metadata.group_id)
        reply = _wire(secaggplus_mod(request, self.context, self.train).content)
        self.seconds += time.perf_counter() - t0
        self.sent += len(reply)
        return reply


class _WireGrid(Grid):
    """Delivers the workflow's messages to the parties in this process, through Flower's serialisation.

    Only ``send_and_receive`` is used by the workflow's stages; parties in ``dropped``
    stop answering at the masked-vector stage (after the key exchange).
    """

    def __init__(self, parties: dict[int, _Party], dropped: set[int]) -> None:
        self.parties = parties
        self.dropped = dropped

    def set_run(self, run: Any) -> None:
        raise NotImplementedError

    @property
    def run(self) -> Any:
        raise NotImplementedError

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.parties)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            nid = msg.metadata.dst_node_id
            stage = msg.content.config_records[RECORD_KEY_CONFIGS][Key.STAGE]
            if nid in self.dropped and stage in (Stage.COLLECT_MASKED_VECTORS, Stage.UNMASK):
                continue
            reply = self.parties[nid].handle(msg, _wire(msg.content))
            replies.append(Message(_unwire(reply), reply_to=msg))
        return replies


class _Passthrough(FedAvg):
    """Every party sampled; the workflow's unmasked aggregate kept as the result, unaveraged."""

    def __init__(self, proxies: list[ClientProxy]) -> None:
        super().__init__()
        self.proxies = proxies
        self.result: Parameters | None = None

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        return [(proxy, FitIns(parameters, {})) for proxy in self.proxies]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: Any) -> tuple[Parameters | None, dict[str, Any]]:
        self.result = results[0][1].parameters if results else None
        return self.result, {}


def _one_round(vectors: Sequence[np.ndarray], weights: Sequence[int], neighbours: int, threshold: int,
               dropped: set[int]) -> tuple[list[_Party], float, float, np.ndarray]:
    """One SecAgg+ round; (the parties, server seconds before unmasking, server seconds unmasking, fused mean)."""
    # Flower stamps new messages with the process's task identity (set by its runtimes): here, the server's
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, SUPERLINK_NODE_ID, 1
    parties = {i + 1000: _Party(i + 1000, vec, w) for i, (vec, w) in enumerate(zip(vectors, weights, strict=True))}
    grid = _WireGrid(parties, {1000 + i for i in dropped})
    strategy = _Passthrough([GridClientProxy(nid, grid, run_id=1) for nid in parties])
    context = LegacyContext(Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                            strategy=strategy)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: 1})
    start = ndarrays_to_parameters([np.zeros_like(vectors[0])])
    context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(start, keep_input=True)
    workflow = SecAggPlusWorkflow(num_shares=neighbours + 1, reconstruction_threshold=threshold,
                                  max_weight=float(max(weights)))
    state = WorkflowState()
    server = [0.0, 0.0]
    stages = (workflow.setup_stage, workflow.share_keys_stage, workflow.collect_masked_vectors_stage,
              workflow.unmask_stage)
    for i, stage in enumerate(stages):
        before = sum(p.seconds for p in parties.values())
        t0 = time.perf_counter()
        if not stage(grid, context, state):
            raise RuntimeError(f"Flower's SecAgg+ workflow halted in {stage.__name__} (see flwr's log)")
        server[i == len(stages) - 1] += time.perf_counter() - t0 - (sum(p.seconds for p in parties.values()) - before)
    if strategy.result is None:
        raise RuntimeError("Flower's SecAgg+ workflow returned no aggregate")
    fused = parameters_to_ndarrays(strategy.result)[0]
    return list(parties.values()), server[0], server[1], fused


def measure(
    vectors: Sequence[np.ndarray],
    weights: Sequence[float],
    repeat: int,
    *,
    neighbours: int | None = None,
    threshold: int | None = None,
    dropout: float = 0.0,
) -> dict[str, Any]:
    """Time Flower's SecAgg+ workflow on the bench's vectors; returns the bench's row fields for it."""
    n = len(vectors)
    if n < 3:
        raise ValueError("Flower's SecAgg+ needs at least 3 parties (num_shares must exceed 2)")
    k = default_neighbours(n) if neighbours is None else neighbours
    if not 2 <= k <= n - 1:
        raise ValueError(f"Flower's SecAgg+ needs 2 to {n - 1} neighbours for {n} parties, not {k}")
    shares = k + 1
    t = shares // 2 + 1 if threshold is None else threshold
    ints = [round(w) for w in weights]  # Flower's num_examples is an integer
    gone = set(range(n - int(dropout * n), n))  # the last parties: weights are 1..N, so the heaviest drop
    alive = [i for i in range(n) if i not in gone]
    expected = np.average(np.stack([vectors[i] for i in alive]), axis=0, weights=[ints[i] for i in alive])
    logging.getLogger("flwr").setLevel(logging.WARNING)  # its per-stage INFO lines would flood the bench
    enc: list[float] = []
    agg: list[float] = []
    dec: list[float] = []
    sizes: list[int] = []
    errors: list[float] = []
    for _ in range(max(1, repeat)):
        parties, before, unmask, fused = _one_round(vectors, ints, k, t, gone)
        enc.extend(p.seconds for i, p in enumerate(parties) if i not in gone)
        sizes.extend(p.sent for i, p in enumerate(parties) if i not in gone)
        agg.append(before)
        dec.append(unmask)
        errors.append(float(np.max(np.abs(fused - expected))))
    drop = f"; {len(gone)} of {n} parties dropped after the key exchange (recovered)" if gone else ""
    return {
        "encrypt_s": statistics.median(enc),
        "aggregate_s": statistics.median(agg),
        "decrypt_s": statistics.median(dec),
        "bytes_per_party": statistics.median(sizes),
        "max_abs_error": max(errors),
        "security_bits": MASK_BITS,
        "note": (
            f"flwr {_flwr_version()} secaggplus_mod + SecAggPlusWorkflow, {k} neighbours (num_shares {shares}), "
            f"threshold {t}{drop}; masks from numpy RandomState seeded with 32 bits folded from a 32-byte seed"
        ),
    }


def measure_dropout(vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int,
                    *, neighbours: int | None = None) -> dict[str, Any]:
    """The same with 10% of the parties dropped after the key exchange, so the unmasking recovers them."""
    return measure(vectors, weights, repeat, neighbours=neighbours, dropout=0.1)


def _flwr_version() -> str:
    from importlib.metadata import version

    return version("flwr")
