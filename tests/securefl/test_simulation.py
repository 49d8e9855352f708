"""An in-process run checkpoints after every round and a rerun resumes from it: same model, budget still spent."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from crypto_backends import InsecureParametersWarning
from securefl import config
from securefl.errors import BudgetExceededError, TransportError
from securefl.simulation import Simulation
from tests.paths import CONFIGS


def _sim(path: str, *overrides: str) -> Simulation:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return Simulation(config.load(CONFIGS / path, list(overrides)))


def _ckpt(tmp_path) -> str:
    return f'transport.checkpoint="{tmp_path / "run.ckpt"}"'


def test_a_rerun_resumes_where_the_checkpoint_is_and_ends_with_the_uninterrupted_model(tmp_path):
    whole = _sim("plain.toml", "federation.rounds=4").run()
    first = _sim("plain.toml", "federation.rounds=2", _ckpt(tmp_path)).run()
    assert [r.round for r in first.rounds] == [0, 1] and (tmp_path / "run.ckpt").exists()
    ran: list[int] = []
    rest = _sim("plain.toml", "federation.rounds=4", _ckpt(tmp_path)).run(lambda m: ran.append(m.round))
    assert ran == [2, 3]  # the checkpointed rounds are not run again
    assert [r.round for r in rest.rounds] == [0, 1, 2, 3]
    assert rest.rounds[:2] == first.rounds
    assert np.array_equal(rest.final_parameters, whole.final_parameters)  # plain under one seed: bit for bit


def test_a_run_interrupted_mid_way_resumes_after_its_last_finished_round(tmp_path):
    def stop_after_round_1(m) -> None:
        if m.round == 1:
            raise KeyboardInterrupt

    stopped = []
    with pytest.raises(KeyboardInterrupt):
        _sim("plain.toml", "federation.rounds=4", _ckpt(tmp_path)).run(stop_after_round_1, on_stop=stopped.append)
    assert [r.round for r in stopped[0].rounds] == [0, 1]
    ran: list[int] = []
    _sim("plain.toml", "federation.rounds=4", _ckpt(tmp_path)).run(lambda m: ran.append(m.round))
    assert ran == [2, 3]


def test_the_privacy_budget_the_checkpointed_rounds_spent_stays_spent(tmp_path):
    # ten rounds of epsilon 1 fit the budget of 10: a run of 8, then a rerun asking for 11, may do 2 more only
    _sim("logistic_dp.toml", "federation.rounds=8", _ckpt(tmp_path)).run()
    ran: list[int] = []
    stopped = []
    with pytest.raises(BudgetExceededError):
        _sim("logistic_dp.toml", "federation.rounds=11", _ckpt(tmp_path)).run(lambda m: ran.append(m.round),
                                                                               on_stop=stopped.append)
    assert ran == [8, 9]
    assert stopped[0].privacy is not None and stopped[0].privacy["epsilon_spent"] == pytest.approx(10.0)


def test_a_sealed_model_resumes_only_under_the_key_set_it_was_sealed_with(tmp_path):
    fast = ['crypto.scheme="paillier"', 'crypto.paillier.preset="test"', _ckpt(tmp_path)]
    _sim("plain.toml", "federation.rounds=1", *fast).run()
    stopped = []
    with pytest.raises(TransportError, match="sealed global model.*transport.authority_keys"):
        _sim("plain.toml", "federation.rounds=2", *fast).run(on_stop=stopped.append)
    assert stopped[0].rounds == [] and stopped[0].stopped == "error"  # the refusal is reported, with no rounds
    (tmp_path / "run.ckpt").unlink()
    keys = f'transport.authority_keys="{tmp_path / "keys.bin"}"'
    _sim("plain.toml", "federation.rounds=1", *fast, keys).run()
    ran: list[int] = []
    result = _sim("plain.toml", "federation.rounds=2", *fast, keys).run(lambda m: ran.append(m.round))
    assert ran == [1] and [r.round for r in result.rounds] == [0, 1]


def test_auto_means_a_checkpoint_for_a_deployment_and_none_in_one_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.load(CONFIGS / "plain.toml").transport.checkpoint_file == ""
    grpc = config.load(CONFIGS / "plain.toml", ['transport.kind="grpc"'])
    assert grpc.transport.checkpoint_file == "securefl-aggregator.ckpt"
    _sim("plain.toml", "federation.rounds=1").run()
    assert list(tmp_path.iterdir()) == []  # nothing written where the run was started
