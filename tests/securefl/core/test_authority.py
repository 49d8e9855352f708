"""The authority role's own rules (issue 15 items 1 and 3): the noise plan's minimum, the federation's record."""

from __future__ import annotations

import pytest

from crypto_backends.errors import PolicyError
from securefl import config
from securefl.core.authority import Authority
from securefl.core.federation import make_scheme, min_contributors
from securefl.simulation import Simulation
from tests.paths import CONFIGS

DISTRIBUTED = ["federation.rounds=1", "crypto.fe.dlog_table_bits=14", "privacy.mode=distributed",
               "privacy.epsilon=5", "privacy.epsilon_budget=20", "privacy.row_norm=4.0", "privacy.delta=1e-6",
               "privacy.delta_budget=1e-5", "federation.quorum=4", "crypto.fe.min_parties=4"]


def test_the_authority_refuses_a_function_key_for_fewer_contributors_than_the_noise_plan_needs():
    cfg = config.load(str(CONFIGS / "fe.toml"), DISTRIBUTED)
    assert min_contributors(cfg) == 4
    sim = Simulation(cfg)
    assert sim.authority.min_contributors == 4
    # the networked authority's scheme is the bare one (it adds no noise): the role's own rule still holds
    bare = Authority(make_scheme(cfg), cfg.federation.ids, min_contributors=min_contributors(cfg))
    for authority in (sim.authority, bare):
        three = {"party-1": 50.0, "party-2": 50.0, "party-3": 50.0, "party-4": 0.0}
        with pytest.raises(PolicyError, match="covers 3 contributor"):
            authority.function_key(0, three)
        authority.function_key(0, three | {"party-4": 50.0})
    assert min_contributors(cfg.replace(["privacy.mode=local"])) == 1
