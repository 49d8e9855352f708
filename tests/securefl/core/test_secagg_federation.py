"""The secagg scheme inside the round engine: plain's model, dropouts after the key exchange, forgers named."""

from __future__ import annotations

import json
import os

import numpy as np

from securefl import config
from securefl.core.party import Party
from securefl.simulation import Simulation
from tests.federation import FAST, GarbageShare
from tests.federation import replace as _replace
from tests.federation import sim as _sim
from tests.paths import CONFIGS


class GoneAfterKeyExchange(Party):
    """Takes part in round 1's setup (its keys and shares are out), then crashes instead of uploading."""

    def handle_round(self, round: int, model: bytes) -> bytes:
        if round == 1:
            raise RuntimeError("power cut")
        return super().handle_round(round, model)


class ForgedBox(Party):
    """Corrupts one of its encrypted share boxes in round 1's setup."""

    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        reply = super().respond(step, round, stage, payload)
        if step == "setup" and stage == 1 and round == 1:
            obj = json.loads(reply)
            to = sorted(obj["boxes"])[0]
            obj["boxes"][to] = os.urandom(len(obj["boxes"][to]) // 2).hex()
            reply = json.dumps(obj).encode()
        return reply


class ForgedUnmaskingShare(GarbageShare):
    share_bytes = 64


def test_secagg_trains_plains_model():
    secagg = _sim("crypto.scheme=secagg").run()
    plain = _sim().run()
    assert abs(secagg.final_accuracy - plain.final_accuracy) <= 0.01
    assert np.max(np.abs(secagg.final_parameters - plain.final_parameters)) < 1e-3


def test_a_party_dropped_after_the_key_exchange_is_recovered_from_its_neighbours_shares():
    sim = _sim("crypto.scheme=secagg")
    _replace(sim, "party-2", GoneAfterKeyExchange)
    result = sim.run()
    assert "party-2" in result.rounds[1].dropped and "party-2" not in result.rounds[1].parties
    assert len(result.rounds[1].parties) == 4 and result.final_accuracy > 0.9


def test_the_sender_of_a_forged_share_box_is_named_in_dropped():
    sim = _sim("crypto.scheme=secagg")
    _replace(sim, "party-3", ForgedBox)
    result = sim.run()
    assert "party-3" in result.rounds[1].dropped and "party-3" not in result.rounds[1].parties
    assert "party-3" in result.rounds[2].parties  # one bad round costs one round
    assert result.final_accuracy > 0.9


def test_a_forged_unmasking_share_is_named_and_the_round_completes_from_the_others():
    sim = _sim("crypto.scheme=secagg")
    _replace(sim, "party-4", ForgedUnmaskingShare)
    result = sim.run()
    assert all("share refused" in r.dropped["party-4"] for r in result.rounds)
    assert result.final_accuracy > 0.9


def test_distributed_noise_still_adds_up_when_a_party_drops_after_the_key_exchange():
    # each share is sized for min_contributors = federation.quorum parties; the aggregator refuses a round
    # with fewer updates, so the survivors' shares alone always carry at least the central noise
    cfg = config.load(CONFIGS / "logistic_dp.toml", [*FAST, "crypto.scheme=secagg", "privacy.mode=distributed"])
    sim = Simulation(cfg)
    assert sim.scheme.plan.min_contributors == cfg.federation.quorum
    _replace(sim, "party-2", GoneAfterKeyExchange)
    result = sim.run()
    assert "party-2" in result.rounds[1].dropped and len(result.rounds[1].parties) == 4
    assert result.rounds[-1].epsilon_spent == 3 * cfg.privacy.epsilon
    assert result.final_accuracy > 0.6


class GarbledAdvert(Party):
    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        reply = super().respond(step, round, stage, payload)
        return b'{"advert": "not one"}' if step == "setup" and stage == 0 and round == 0 else reply


def test_a_garbled_advertisement_costs_its_sender_the_round_and_is_named():
    sim = _sim("crypto.scheme=secagg")
    _replace(sim, "party-5", GarbledAdvert)
    result = sim.run()
    assert "setup stage 1" in result.rounds[0].dropped["party-5"] and len(result.rounds[0].parties) == 4
    assert "party-5" in result.rounds[1].parties
