"""securefl's schemes inside a Flower app, under Flower's own run_simulation (the flower and ray extras)."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from crypto_backends import InsecureParametersWarning, registry  # noqa: E402
from tests.paths import EXAMPLES  # noqa: E402
from tests.schemes import fast_params  # noqa: E402

sys.path.insert(0, str(EXAMPLES / "flower"))
app = importlib.import_module("app")  # examples/flower/app.py: the example is what is tested
run = importlib.import_module("run")

NODES, ROUNDS = 3, 2
ACCURACY_TOLERANCE = 0.01


def _record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # the nodes run in a Ray actor started by run_simulation: it inherits this environment
    monkeypatch.setenv(app.RECORD_ENV, str(tmp_path))
    return tmp_path


def _config(scheme: str):
    cfg = run.scheme_config(scheme, NODES, ROUNDS, test_keys=scheme != "ckks")  # ckks' test preset is too coarse
    return cfg


def _published(scheme: str, weights: list[float]) -> float:
    """What the strategy gets is the model as published: under ckks, flooded (8 of its sigmas per fused value)."""
    if scheme != "ckks":
        return 0.0
    from crypto_backends.ckks.codec import chunk_count
    from crypto_backends.ckks.flooding import flooding_sigma

    params: Any = registry.params_type(scheme).presets()["default"]
    length = app.FEATURES * app.CLASSES + app.CLASSES
    return 8 * flooding_sigma(params, len(weights), chunk_count(length, params.slots), sum(weights)) / sum(weights)


@pytest.fixture(scope="module")
def plain():
    return run.simulate(ROUNDS, NODES)


@pytest.mark.parametrize("scheme", registry.builtin())
def test_every_scheme_gives_the_strategy_the_weighted_mean_and_fedavgs_accuracy(scheme, plain, tmp_path,
                                                                              monkeypatch):
    record = _record(tmp_path, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        out = run.simulate(ROUNDS, NODES, secure=_config(scheme))
    workflow = out["workflow"]
    assert [r.round for r in workflow.reports] == list(range(1, ROUNDS + 1))
    for rnd in range(1, ROUNDS + 1):
        sent = [np.load(f) for f in sorted(record.glob(f"round-{rnd}-node-*.npz"))]
        assert len(sent) == NODES  # every node trained, once, through its own NumPyClient
        weights = [float(s["n"]) for s in sent]
        # as tests/securefl/ml/test_trainer.py: the test preset's promise (for ckks, the looser of its two presets)
        tolerance = registry.create(scheme, fast_params(scheme)).tolerance(weights) + _published(scheme, weights)
        got = out["strategy"].aggregated[rnd]
        for name, arr in zip(("W", "b"), got, strict=True):
            expected = np.average(np.stack([s[name] for s in sent]), axis=0, weights=weights)
            assert np.max(np.abs(arr - expected)) <= tolerance, (scheme, rnd, name)
        assert set(workflow.reports[rnd - 1].contributors) == {f"party-{i}" for i in range(1, NODES + 1)}
    assert abs(run.accuracy(out) - run.accuracy(plain)) <= ACCURACY_TOLERANCE
    assert run.accuracy(plain) > 0.8  # the app learns: the comparison is not of two failures


def test_more_nodes_than_parties_is_refused_with_the_default_roster():
    from securefl.flower import RosterError

    with pytest.raises(RosterError, match="4 Flower nodes are connected but the securefl federation has 3"):
        run.simulate(1, NODES + 1, secure=_config("plain"))


def test_a_node_outside_an_explicit_roster_is_refused_and_adds_nothing(tmp_path, monkeypatch):
    record = _record(tmp_path, monkeypatch)
    mapped: list[int] = []

    def roster(ids):  # the three smallest node ids are the parties; the fourth node is not in the federation
        mapped.extend(ids[:NODES])
        return {node: f"party-{i + 1}" for i, node in enumerate(ids[:NODES])}

    out = run.simulate(1, NODES + 1, secure=_config("paillier"), roster=roster)
    sent = {int(f.stem.split("-")[-1]): np.load(f) for f in record.glob("round-1-node-*.npz")}
    assert set(sent) == set(mapped)  # FedAvg sampled all four; the outsider was never asked to train
    weights = [float(sent[n]["n"]) for n in mapped]
    expected = np.average(np.stack([sent[n]["W"] for n in mapped]), axis=0, weights=weights)
    tolerance = registry.create("paillier", fast_params("paillier")).tolerance(weights)
    assert np.max(np.abs(out["strategy"].aggregated[1][0] - expected)) <= tolerance
