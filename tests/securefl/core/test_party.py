"""A party's own refusals (issue 15 item 3): it decrypts no aggregate short of the noise plan's shares."""

from __future__ import annotations

import numpy as np
import pytest

from crypto_backends.errors import PolicyError
from securefl import config
from securefl.core.messages import GlobalModel
from securefl.simulation import Simulation
from tests.paths import CONFIGS

DISTRIBUTED = ["federation.rounds=1", "crypto.paillier.preset=test", "privacy.mode=distributed",
               "privacy.epsilon=5", "privacy.epsilon_budget=20", "privacy.row_norm=4.0", "privacy.delta=1e-6",
               "privacy.delta_budget=1e-5", "federation.quorum=3",
               # the party's own DP minimum, checked without signed evidence (verify_aggregate has its own tests)
               "crypto.verify_aggregate=off"]


def test_a_party_refuses_to_open_or_publish_an_aggregate_of_fewer_contributors_than_the_noise_needs():
    sim = Simulation(config.load(str(CONFIGS / "paillier.toml"), DISTRIBUTED))
    size = sim.federation.initial.size
    updates = {p: sim.scheme.protect(sim.parties[p].key, np.zeros(size), weight=10.0, round=0)
               for p in ("party-1", "party-2", "party-3")}
    party = sim.parties["party-4"]
    two = GlobalModel.of_aggregate(sim.scheme.combine(sim.aggregator.key, [updates["party-1"], updates["party-2"]],
                                                      round=0))
    for publish in (False, True):
        with pytest.raises(PolicyError, match="sums 2 update"):
            party.open_model(two, publish=publish)
    three = GlobalModel.of_aggregate(sim.scheme.combine(sim.aggregator.key, list(updates.values()), round=0))
    assert party.open_model(three, publish=True).shape == (size,)
