"""TorchTrainer (the torch extra): the flat vector, the Trainer contract, federated runs, the digits example."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from securefl import config
from securefl.errors import DataError
from securefl.simulation import simulate
from tests.paths import CONFIGS, EXAMPLES, REPO

torch = pytest.importorskip("torch")
nn = torch.nn
from securefl.ml.torch_trainer import TorchTrainer  # noqa: E402 - needs torch, skipped above without it


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the parties run on threads already; tiny models gain nothing from more
    yield
    torch.set_num_threads(before)


def _mlp(seed: int, batch_norm: bool = False) -> Any:
    torch.manual_seed(seed)
    layers = [nn.Linear(64, 24)] + ([nn.BatchNorm1d(24)] if batch_norm else []) + [nn.ReLU(), nn.Linear(24, 10)]
    return nn.Sequential(*layers)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def _trainer(module: Any, rows: slice = slice(0, 300), held_out: slice = slice(1500, 1797),
             **kw: object) -> TorchTrainer:
    X, y = _digits()
    opts: dict = {"local_epochs": 1, "batch_size": 32, "seed": 3, **kw}
    return TorchTrainer(module, nn.CrossEntropyLoss(), lambda p: torch.optim.Adam(p, lr=1e-2),
                        X_train=X[rows], y_train=y[rows], X_test=X[held_out], y_test=y[held_out], **opts)


def _state(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


# --- the flat vector ------------------------------------------------------------------------
def test_parameters_to_vector_and_back_restore_the_module_exactly():
    a, b = _mlp(1), _mlp(2)
    vec = nn.utils.parameters_to_vector(a.parameters()).detach().double()  # float64, as it travels
    nn.utils.vector_to_parameters(vec.float(), b.parameters())
    assert all(np.array_equal(x, y) for x, y in zip(_state(a).values(), _state(b).values(), strict=True))


def test_the_flat_vector_carries_parameters_and_floating_buffers_bit_for_bit():
    source = _mlp(1, batch_norm=True)
    with torch.no_grad():  # running statistics that differ from the fresh module's
        source[1].running_mean.uniform_(-1, 1)
        source[1].running_var.uniform_(0.5, 2)
    a, b = _trainer(source), _trainer(_mlp(2, batch_norm=True))
    vec = a.initial_parameters()
    n_params = sum(p.numel() for p in source.parameters())
    assert vec.dtype == np.float64 and vec.shape == (a.num_parameters,) == (n_params + 2 * 24,)
    b.evaluate(vec)  # loads the vector into b's module
    assert np.array_equal(b.initial_parameters(), vec)
    want, got = _state(source), _state(b.module)
    del want["1.num_batches_tracked"], got["1.num_batches_tracked"]  # integer buffers stay local
    assert all(np.array_equal(want[k], got[k]) for k in want)


def test_a_vector_of_the_wrong_length_is_refused():
    trainer = _trainer(_mlp(1))
    with pytest.raises(ValueError, match=f"{trainer.num_parameters} values"):
        trainer.fit(np.zeros(trainer.num_parameters + 1), 0)


# --- the Trainer contract ---------------------------------------------------------------------
def test_fit_returns_a_vector_of_the_same_length_and_the_training_row_count():
    trainer = _trainer(_mlp(1))
    start = trainer.initial_parameters()
    kept = start.copy()
    update, weight = trainer.fit(start, 0)
    assert update.shape == start.shape and update.dtype == np.float64 and np.isfinite(update).all()
    assert weight == 300.0 and not np.array_equal(update, start)
    assert np.array_equal(start, kept)  # the caller's vector is not written to


def test_fit_depends_only_on_the_global_parameters_and_the_round():
    trainer = _trainer(_mlp(1))
    start = trainer.initial_parameters()
    first, _ = trainer.fit(start, 4)
    trainer.fit(start, 1)  # another round in between changes nothing: the optimiser is rebuilt
    assert np.array_equal(trainer.fit(start, 4)[0], first)
    assert not np.array_equal(trainer.fit(start, 5)[0], first)  # another round shuffles differently


@pytest.mark.parametrize("keep", [False, True])
def test_the_optimiser_is_rebuilt_each_round_unless_kept(keep):
    built = []

    def factory(params):
        built.append(1)
        return torch.optim.SGD(params, lr=0.1, momentum=0.9)

    X, y = _digits()
    trainer = TorchTrainer(_mlp(1), nn.CrossEntropyLoss(), factory, X_train=X[:64], y_train=y[:64],
                           X_test=X[64:96], y_test=y[64:96], keep_optimizer_state=keep)
    params = trainer.initial_parameters()
    for r in range(3):
        params, _ = trainer.fit(params, r)
    assert len(built) == (1 if keep else 3)


def test_evaluate_reports_accuracy_loss_and_the_held_out_row_count():
    trainer = _trainer(_mlp(1))
    metrics = trainer.evaluate(trainer.initial_parameters())
    assert list(metrics) == ["accuracy", "loss", "num_examples"]  # accuracy first: the run's main metric
    assert 0 <= metrics["accuracy"] <= 1 and metrics["loss"] > 0 and metrics["num_examples"] == 297


def test_regression_targets_report_the_loss_without_an_accuracy():
    X = np.random.default_rng(0).normal(size=(40, 3))
    trainer = TorchTrainer(nn.Linear(3, 1), nn.MSELoss(), lambda p: torch.optim.SGD(p, lr=0.1),
                           X_train=X[:30], y_train=X[:30, :1], X_test=X[30:], y_test=X[30:, :1])
    assert set(trainer.evaluate(trainer.initial_parameters())) == {"loss", "num_examples"}


def test_rows_without_one_target_each_are_refused():
    X, y = _digits()
    with pytest.raises(DataError, match="one target per row"):
        TorchTrainer(_mlp(1), nn.CrossEntropyLoss(), lambda p: torch.optim.Adam(p),
                     X_train=X[:10], y_train=y[:9], X_test=X[10:20], y_test=y[10:20])


def test_importing_securefl_does_not_import_torch():
    code = ("import sys, securefl, securefl.ml.trainer, securefl.simulation, securefl.cli.main\n"
            "assert securefl.Trainer and securefl.simulate\n"
            "sys.exit('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr or "import securefl imported torch"


# --- federated runs ---------------------------------------------------------------------------------------
FEDERATION = "[federation]\nparties = 3\nrounds = 3\nquorum = 3\nseed = 5\n"


def _federation() -> dict[str, TorchTrainer]:
    # three parties of 400 training rows each; the held-out rows (1200..1797) are split in three as well
    return {f"party-{i + 1}": _trainer(_mlp(5), rows=slice(400 * i, 400 * (i + 1)),
                                       held_out=slice(1200 + 199 * i, 1200 + 199 * (i + 1)), seed=i)
            for i in range(3)}


@pytest.mark.filterwarnings("ignore::crypto_backends.base.InsecureParametersWarning")  # the test preset, on purpose
def test_a_federated_run_learns_and_paillier_matches_plain():
    plain = simulate(config.loads(FEDERATION), _federation())
    paillier = simulate(config.loads(FEDERATION + '[crypto]\nscheme = "paillier"\n[crypto.paillier]\n'
                                     'preset = "test"\n'), _federation())
    assert plain.scheme == "plain" and paillier.scheme == "paillier" and len(paillier.rounds) == 3
    assert plain.final_accuracy > 0.8  # chance is 0.1
    assert abs(paillier.final_accuracy - plain.final_accuracy) <= 0.01
    assert paillier.final_parameters is not None and plain.final_parameters is not None
    # 16-bit fixed point moves each fused value by ~1e-4; three rounds of Adam carry that on, a little amplified
    assert np.max(np.abs(paillier.final_parameters - plain.final_parameters)) < 0.05


# --- the example ------------------------------------------------------------------------------
def _example(tmp_path, *overrides: str) -> dict:
    out = tmp_path / "result.json"
    args = [a for o in overrides for a in ("--set", o)]
    proc = subprocess.run([sys.executable, str(EXAMPLES / "torch_digits.py"), str(CONFIGS / "torch_digits.toml"),
                           *args, "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "final accuracy:" in proc.stdout
    result: dict = json.loads(out.read_text())
    printed = [int(line.split(":")[0].split()[1]) for line in proc.stdout.splitlines() if line.startswith("round ")]
    assert printed == [r["round"] for r in result["rounds"]]  # numbered from 0, as the JSON and the logs
    return result


def test_the_digits_example_runs_end_to_end_and_writes_the_run_json(tmp_path):
    result = _example(tmp_path, "federation.rounds=2")
    assert result["scheme"] == "plain" and result["parties"] == 5 and result["metric"] == "accuracy"
    assert len(result["rounds"]) == 2 and result["rounds"][-1]["parties"] == [f"party-{i}" for i in range(1, 6)]
    assert result["final_accuracy"] > 0.8 and set(result["rounds"][-1]["metrics"]) >= {"accuracy", "loss"}


@pytest.mark.slow
def test_the_digits_example_reaches_the_target_and_ckks_stays_within_a_point(tmp_path):
    plain = _example(tmp_path)
    ckks = _example(tmp_path, "crypto.scheme=ckks")
    assert plain["final_accuracy"] >= 0.95 and len(plain["rounds"]) == 10
    assert ckks["scheme"] == "ckks" and abs(ckks["final_accuracy"] - plain["final_accuracy"]) <= 0.01
