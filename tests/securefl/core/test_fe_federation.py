"""The fe scheme inside the round engine: same model as plain, dropouts handled by the function key."""

from __future__ import annotations

import numpy as np
import pytest

from crypto_backends.errors import PolicyError
from securefl import config
from securefl.simulation import Simulation
from tests.federation import Crashing, replace
from tests.paths import CONFIGS

FAST = ["federation.rounds=3", "crypto.fe.dlog_table_bits=14"]


def test_fe_trains_the_same_model_as_plain():
    fe = Simulation(config.load(str(CONFIGS / "fe.toml"), FAST)).run()
    plain = Simulation(config.load(str(CONFIGS / "plain.toml"), FAST[:1])).run()
    assert abs(fe.final_accuracy - plain.final_accuracy) <= 0.01
    assert np.max(np.abs(fe.final_parameters - plain.final_parameters)) < 1e-3


def test_a_dropped_party_is_left_out_of_the_function_key():
    # min_parties_changed = 1: the consecutive-round check off (with it on, see the next test)
    sim = Simulation(config.load(str(CONFIGS / "fe.toml"), [*FAST, "crypto.fe.min_parties_changed=1"]))
    replace(sim, "party-2", Crashing)
    result = sim.run()
    assert "party-2" in result.rounds[1].dropped and "party-2" not in result.rounds[1].parties
    assert result.final_accuracy > 0.9


def test_a_party_dropping_out_for_one_round_stops_the_run_unless_differential_privacy_is_on():
    """Issue 15 item 2: round r over S and round r+1 over S - {p} would give p's update by subtraction."""
    cfg = config.load(str(CONFIGS / "fe.toml"), FAST)
    sim = Simulation(cfg)
    replace(sim, "party-2", Crashing)
    refused = r"round 1 refused: with the function keys of round 0, .* the update of party-2 alone"
    with pytest.raises(PolicyError, match=refused):
        sim.run()
    dp = Simulation(cfg.replace(["privacy.mode=distributed", "privacy.epsilon=5", "privacy.epsilon_budget=20",
                                  "privacy.row_norm=4.0", "privacy.delta=1e-6", "privacy.delta_budget=1e-5"]))
    assert dp.scheme.inner.params.min_parties_changed == 0  # type: ignore[attr-defined]
    replace(dp, "party-2", Crashing)
    result = dp.run()
    assert "party-2" in result.rounds[1].dropped and len(result.rounds) == 3
