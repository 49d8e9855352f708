from __future__ import annotations

import threading

import numpy as np
import pytest

from securefl import config
from securefl.core.party import Party
from securefl.errors import QuorumError
from securefl.simulation import Simulation
from tests.federation import Crashing
from tests.federation import replace as _replace
from tests.federation import sim as _sim
from tests.paths import CONFIGS

PLAIN = str(CONFIGS / "plain.toml")


def test_plain_federation_learns_breast_cancer():
    result = Simulation(config.load(PLAIN)).run()
    assert len(result.rounds) == 10
    assert result.final_accuracy >= 0.93
    assert all(r.bytes_up > 31 * 8 for r in result.rounds)


def test_same_seed_same_model():
    a, b = _sim().run(), _sim().run()
    assert np.array_equal(a.final_parameters, b.final_parameters)


class Hanging(Party):
    """Hangs in round 0 until released (by the test, once round 2 has begun), then behaves.

    No sleeps: the party is blocked for certain while the round's deadline passes, whatever the machine's load.
    """

    released = threading.Event()

    def handle_round(self, round: int, model: bytes) -> bytes:
        if round == 0:
            assert self.released.wait(60), "never released"
        return super().handle_round(round, model)


class Releasing(Party):
    """An honest party that releases :class:`Hanging` when round 2 begins."""

    def handle_round(self, round: int, model: bytes) -> bytes:
        if round >= 2:
            Hanging.released.set()
        return super().handle_round(round, model)


class Forger(Party):
    """Sends a well-formed upload that claims to come from another party."""

    def handle_round(self, round: int, model: bytes) -> bytes:
        real = self.key.owner
        self.key.owner = "party-1"
        try:
            return super().handle_round(round, model)
        finally:
            self.key.owner = real


class Garbler(Party):
    def handle_round(self, round: int, model: bytes) -> bytes:
        data = bytearray(super().handle_round(round, model))
        return bytes(data[:-5])


def test_party_that_raises_mid_round_is_dropped_and_the_round_goes_on():
    sim = _sim()
    _replace(sim, "party-3", Crashing)
    result = sim.run()
    assert "party-3" in result.rounds[1].dropped and "disk full" in result.rounds[1].dropped["party-3"]
    assert "party-3" not in result.rounds[1].parties
    assert "party-3" in result.rounds[2].parties  # it rejoins in the next round
    assert result.final_accuracy > 0.9


def test_party_that_times_out_is_dropped_and_rejoins_when_free():
    sim = _sim("federation.round_timeout=1.0", "federation.rounds=8")
    Hanging.released.clear()
    for pid in sim.parties:
        _replace(sim, pid, Hanging if pid == "party-5" else Releasing)
    result = sim.run()
    assert "no answer within 1.0 s" in result.rounds[0].dropped["party-5"]
    assert result.rounds[1].dropped.get("party-5") == "still busy with an earlier round"
    assert "party-5" in result.rounds[-1].parties  # back once it is free
    assert all(len(r.parties) >= 4 for r in result.rounds)


@pytest.mark.parametrize("cls", [Forger, Garbler])
def test_bad_uploads_cost_only_their_sender(cls):
    sim = _sim()
    _replace(sim, "party-2", cls)
    result = sim.run()
    for r in result.rounds:
        assert "party-2" in r.dropped and "party-2" not in r.parties
        assert len(r.parties) == 4


def test_round_stops_with_a_clear_error_below_quorum():
    sim = _sim("federation.quorum=5")
    _replace(sim, "party-4", Crashing)
    with pytest.raises(QuorumError, match="round 1: only 4 usable update.*quorum is 5"):
        sim.run()


def test_every_model_kind_trains():
    for kind, extra in [("linear_svm", []), ("mlp", ["model.learning_rate=0.01"]),
                        ("linear_regression", ["data.dataset=wine"])]:
        result = _sim(f"model.kind={kind}", *extra).run()
        assert np.isfinite(result.final_accuracy)
        if kind != "linear_regression":
            assert result.final_accuracy > 0.85, kind


def test_dirichlet_partition_and_multiclass():
    result = _sim("data.dataset=digits", "data.partition=dirichlet", "data.alpha=0.3").run()
    assert result.final_accuracy > 0.8
