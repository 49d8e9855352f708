"""threshold_paillier inside the round engine: plain's model, forged shares named and dropped, n - t dropouts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from crypto_backends import InsecureParametersWarning
from securefl import config
from securefl.core.party import Party
from securefl.errors import QuorumError
from securefl.simulation import Simulation
from tests.federation import AlwaysCrashing, assert_share_refused_every_round
from tests.federation import replace as _replace
from tests.federation import sim as federation_sim
from tests.paths import CONFIGS

FAST = ["federation.rounds=3", "crypto.scheme=threshold_paillier", "crypto.threshold_paillier.preset=test"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        yield


def _sim(*overrides: str, path: str = "plain.toml") -> Simulation:
    return federation_sim(*overrides, path=path, fast=FAST)


class ForgedShare(Party):
    """Trains honestly, then sends a real share of the aggregate with one partial decryption altered."""

    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        reply = super().respond(step, round, stage, payload)
        if step != "share":
            return reply
        forged = bytearray(reply)
        forged[6 + 20] ^= 0x04  # inside the first partial decryption; the proof is left as it was
        return bytes(forged)


class ReplayedShare(Party):
    """Answers every share request after the first with its share of round 0's aggregate."""

    first: bytes | None = None

    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        reply = super().respond(step, round, stage, payload)
        if step == "share":
            if self.first is None:
                self.first = reply
            return self.first
        return reply


def test_threshold_paillier_trains_the_same_model_as_plain():
    plain = Simulation(config.load(str(CONFIGS / "plain.toml"), FAST[:1])).run()
    result = _sim().run()
    assert abs(result.final_accuracy - plain.final_accuracy) <= 0.01
    assert np.max(np.abs(result.final_parameters - plain.final_parameters)) < 0.01
    assert all(not r.dropped and len(r.parties) == 5 for r in result.rounds)


def test_a_forged_share_is_named_in_dropped_and_the_round_completes():
    sim = _sim()
    _replace(sim, "party-2", ForgedShare)
    assert_share_refused_every_round(sim.run(), "party-2", "proof of correct decryption")


def test_a_share_replayed_from_an_earlier_round_is_refused():
    sim = _sim()
    _replace(sim, "party-4", ReplayedShare)
    result = sim.run()
    assert "party-4" not in result.rounds[0].dropped
    for r in result.rounds[1:]:
        assert "another aggregate or round" in r.dropped["party-4"]


def test_a_round_with_n_minus_t_parties_dropped_completes():
    sim = _sim()
    for pid in ("party-1", "party-5"):  # n - t = 5 - 3
        _replace(sim, pid, AlwaysCrashing)
    result = sim.run()
    for r in result.rounds:
        assert r.parties == ("party-2", "party-3", "party-4")
        assert "disk full" in r.dropped["party-1"] and "disk full" in r.dropped["party-5"]
    assert result.final_accuracy > 0.9


def test_fewer_than_t_valid_shares_stop_the_round_with_the_reason():
    sim = _sim("crypto.threshold_paillier.threshold=5")
    _replace(sim, "party-3", ForgedShare)
    with pytest.raises(QuorumError, match=r"round 0: only 4 usable share\(s\), the quorum is 5.*party-3"):
        sim.run()


def test_distributed_noise_passes_through_the_share_exchange():
    cfg = config.load(str(CONFIGS / "logistic_dp.toml"), [*FAST, "privacy.mode=distributed"])
    sim = Simulation(cfg)
    result = sim.run()
    assert type(sim.scheme).__name__ == "DPScheme"
    assert all(not r.dropped and len(r.parties) == 5 for r in result.rounds)
    assert result.rounds[-1].epsilon_spent == 3 * cfg.privacy.epsilon
    assert result.final_accuracy > 0.6
