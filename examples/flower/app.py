"""A small Flower app: a numpy softmax regression NumPyClient on the bundled digits, with FedAvg.

The app is Flower's own pattern (``client_fn`` -> ``NumPyClient``, ``ServerApp`` with a
``DefaultWorkflow`` and ``FedAvg``).  securefl enters by two lines only, marked ``# securefl``
below: the client mod and the fit workflow.  ``secure=None`` runs plain FedAvg; a securefl
config runs every round through securefl's scheme; ``flower_secaggplus=True`` runs Flower's
own SecAgg+ on the same app (for the side-by-side).

Each node holds a share of the digits (node ``i`` of ``n`` holds ``n + i`` parts, so weights
differ, and no node holds half: fe's inference-prevention policy refuses a function key where one
does) and keeps a quarter of it as its own held-out rows; training is full-batch gradient descent, so a
run is a function of the seed alone.
With ``SECUREFL_FLOWER_RECORD`` set to a directory, each node also writes the arrays
and ``num_examples`` its fit returned (``round-R-node-N.npz``): the test compares the
strategy's arrays with numpy's weighted mean of those.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.client import ClientApp, NumPyClient
from flwr.common import Metrics, ndarrays_to_parameters
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.default_workflows import default_fit_workflow

from securefl.config import Config
from securefl.flower import SecureFLWorkflow, securefl_mod
from securefl.ml.data import load_table

CLASSES, FEATURES = 10, 64
LOCAL_STEPS, LEARNING_RATE, HELD_OUT = 5, 0.5, 0.25
RECORD_ENV = "SECUREFL_FLOWER_RECORD"
BYTES_ENV = "SECUREFL_FLOWER_BYTES"
"""A directory: every node appends the serialised size of each reply it sends (``bytes-node-N.txt``)."""


def node_data(partition: int, partitions: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Node ``partition``'s training and held-out rows (pixels over their public range 16)."""
    X, y, _ = load_table("digits")
    order = np.random.default_rng(seed).permutation(len(y))  # experiment design, not a secret
    parts = [partitions + i for i in range(partitions)]  # unequal, none above half (fe's default max_share)
    bounds = np.cumsum([0] + parts) * len(y) // sum(parts)
    rows = order[bounds[partition]:bounds[partition + 1]]
    cut = int(len(rows) * (1 - HELD_OUT))
    X = X / 16.0
    return X[rows[:cut]], y[rows[:cut]], X[rows[cut:]], y[rows[cut:]]


def initial_arrays() -> list[np.ndarray]:
    """The strategy's starting point: zero weights and biases."""
    return [np.zeros((FEATURES, CLASSES)), np.zeros(CLASSES)]


def _probabilities(W: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    z = X @ W + b
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


class DigitsClient(NumPyClient):
    """Softmax regression by full-batch gradient descent on this node's rows."""

    def __init__(self, node_id: int, partition: int, partitions: int, seed: int) -> None:
        self.node_id = node_id
        self.X, self.y, self.X_test, self.y_test = node_data(partition, partitions, seed)

    def fit(self, parameters: list[np.ndarray], config: Mapping[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        W, b = (np.array(p, dtype=np.float64) for p in parameters)
        onehot = np.eye(CLASSES)[self.y]
        for _ in range(LOCAL_STEPS):
            grad = _probabilities(W, b, self.X) - onehot
            W -= LEARNING_RATE * self.X.T @ grad / len(self.y)
            b -= LEARNING_RATE * grad.mean(axis=0)
        record = os.environ.get(RECORD_ENV)
        if record:
            np.savez(Path(record) / f"round-{config.get('server_round', 0)}-node-{self.node_id}.npz", W=W, b=b,
                     n=len(self.y))
        return [W, b], len(self.y), {}

    def evaluate(self, parameters: list[np.ndarray], config: Mapping[str, Any]) -> tuple[float, int, dict]:
        W, b = parameters
        p = _probabilities(W, b, self.X_test)
        loss = float(-np.log(p[np.arange(len(self.y_test)), self.y_test] + 1e-12).mean())
        return loss, len(self.y_test), {"accuracy": float((p.argmax(axis=1) == self.y_test).mean())}


def client_app(*, secure: bool = False, flower_secaggplus: bool = False, seed: int = 0) -> ClientApp:
    """The ClientApp; ``secure`` adds securefl's mod (``flower_secaggplus``: Flower's own)."""

    def client_fn(context: Context) -> Any:
        cfg = context.node_config
        return DigitsClient(context.node_id, int(cfg["partition-id"]), int(cfg["num-partitions"]),
                            seed).to_client()

    mods: list[Any] = [reply_bytes_mod] if os.environ.get(BYTES_ENV) else []
    if secure:
        mods.append(securefl_mod)  # securefl
    if flower_secaggplus:
        from flwr.client.mod import secaggplus_mod

        mods.append(secaggplus_mod)
    return ClientApp(client_fn=client_fn, mods=mods)


def reply_bytes_mod(msg: Any, ctxt: Context, call_next: Any) -> Any:
    """Outermost mod of the side-by-side: records the protobuf size of every fit-round reply this node sends."""
    from flwr.common.serde import recorddict_to_proto

    out = call_next(msg, ctxt)
    if out.has_content() and msg.metadata.message_type == "train":  # the fit and its secure steps, not evaluation
        with open(Path(os.environ[BYTES_ENV]) / f"bytes-node-{ctxt.node_id}.txt", "a") as f:
            f.write(f"{msg.metadata.group_id} {recorddict_to_proto(out.content).ByteSize()}\n")
    return out


def _weighted_accuracy(metrics: list[tuple[int, Metrics]]) -> Metrics:
    total = sum(n for n, _ in metrics)
    return {"accuracy": sum(n * float(m["accuracy"]) for n, m in metrics) / total}


def server_app(rounds: int, nodes: int, *, secure: Config | None = None, flower_secaggplus: bool = False,
               out: dict[str, Any] | None = None, roster: Callable[[list[int]], dict[int, str]] | None = None
               ) -> ServerApp:
    """The ServerApp: FedAvg over all ``nodes`` nodes; ``secure``: securefl's workflow with this config.

    ``out`` receives the run's ``history``, each round's fit-workflow wall time (``fit_seconds``), the ``workflow``
    and a
    ``strategy`` that recorded what ``aggregate_fit`` was given each round (or the ``error`` that stopped
    it).  ``roster``: the connected node ids -> securefl's explicit node_ids mapping (default: sorted ids).
    """
    out = {} if out is None else out
    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Context) -> None:
        strategy = RecordingFedAvg(fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=nodes,
                                   min_evaluate_clients=nodes, min_available_clients=nodes,
                                   initial_parameters=ndarrays_to_parameters(initial_arrays()),
                                   on_fit_config_fn=lambda r: {"server_round": r},
                                   evaluate_metrics_aggregation_fn=_weighted_accuracy)
        legacy = LegacyContext(context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        fit: Any = None
        if secure is not None:
            node_ids = None if roster is None else roster(_connected(grid, nodes))
            fit = SecureFLWorkflow(secure, node_ids=node_ids)  # securefl
        elif flower_secaggplus:
            fit = SecAggPlusWorkflow(num_shares=nodes, reconstruction_threshold=nodes // 2 + 1)
        seconds = out.setdefault("fit_seconds", [])

        def timed_fit(grid: Any, context: Context) -> None:
            t0 = time.perf_counter()
            (fit or default_fit_workflow)(grid, context)
            seconds.append(time.perf_counter() - t0)

        try:
            DefaultWorkflow(fit_workflow=timed_fit)(grid, legacy)
        except Exception as exc:  # Flower's simulation logs it and carries on: keep it for the caller
            out["error"] = exc
            raise
        out.update(history=legacy.history, strategy=strategy, workflow=fit)

    return app


def _connected(grid: Any, nodes: int) -> list[int]:
    """The node ids, once all ``nodes`` are connected."""
    while len(ids := sorted(grid.get_node_ids())) < nodes:
        time.sleep(0.1)
    return ids


class RecordingFedAvg(FedAvg):
    """FedAvg that keeps the arrays each round's aggregate_fit produced (what the strategy received)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aggregated: dict[int, list[np.ndarray]] = {}

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        from flwr.common import parameters_to_ndarrays

        parameters, metrics = super().aggregate_fit(server_round, results, failures)
        if parameters is not None:
            self.aggregated[server_round] = parameters_to_ndarrays(parameters)
        return parameters, metrics
