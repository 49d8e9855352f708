"""The fe scheme inside the round engine: same model as plain, dropouts handled by the function key."""

from __future__ import annotations

import numpy as np

from securefl import config
from securefl.core.party import Party
from securefl.transport.inproc import Simulation
from tests.paths import CONFIGS

FAST = ["federation.rounds=3", "crypto.fe.dlog_table_bits=14"]


class Crashing(Party):
    def handle_round(self, round: int, model: bytes) -> bytes:
        if round == 1:
            raise RuntimeError("disk full")
        return super().handle_round(round, model)


def test_fe_trains_the_same_model_as_plain():
    fe = Simulation(config.load(str(CONFIGS / "fe.toml"), FAST)).run()
    plain = Simulation(config.load(str(CONFIGS / "plain.toml"), FAST[:1])).run()
    assert abs(fe.final_accuracy - plain.final_accuracy) <= 0.01
    assert np.max(np.abs(fe.final_parameters - plain.final_parameters)) < 1e-3


def test_a_dropped_party_is_left_out_of_the_function_key():
    sim = Simulation(config.load(str(CONFIGS / "fe.toml"), FAST))
    p = sim.parties["party-2"]
    sim.parties["party-2"] = Crashing(p.party_id, p.trainer, p.scheme, p.key, p.accountant, fuse=p.fuse)
    result = sim.run()
    assert "party-2" in result.rounds[1].dropped and "party-2" not in result.rounds[1].parties
    assert result.final_accuracy > 0.9
