"""What the aggregator checks of a party's input: its declared weight, and its size where it sees it.

A hostile party here runs the real scheme with its real key; it only lies about
its weight, or scales its update, or skips the clipping of local differential privacy.
"""

from __future__ import annotations

import numpy as np
import pytest

from securefl.core.messages import GlobalModel
from securefl.core.party import Party
from securefl.errors import ConfigError, QuorumError
from securefl.simulation import Simulation
from tests.federation import sim


def _sim(name: str, *overrides: str) -> Simulation:
    return sim(*overrides, path=name, fast=["federation.rounds=2"])


def _hostile(sim: Simulation, pid: str, *, weight: float | None = None, scale: float = 1.0,
             skip_clip: bool = False) -> None:
    honest = sim.parties[pid]

    class Hostile(Party):
        def handle_round(self, round: int, model: bytes) -> bytes:
            if weight is None and scale == 1.0 and not skip_clip:
                return super().handle_round(round, model)
            params = self.open_model(GlobalModel.from_bytes(model))
            update, w = self.trainer.fit(params.copy(), round)
            scheme = self.scheme.inner if skip_clip else self.scheme  # type: ignore[attr-defined]  # local DP: protect without clipping
            return scheme.protect(self.key, np.asarray(update) * scale, weight=weight or w, round=round).to_bytes()

    sim.parties[pid] = Hostile(honest.party_id, honest.trainer, honest.scheme, honest.key, honest.accountant,
                               fuse=honest.fuse)


def test_a_declared_weight_above_the_configured_maximum_is_refused():
    sim = _sim("plain.toml")
    _hostile(sim, "party-2", weight=1e9)
    result = sim.run()
    for r in result.rounds:
        assert "party-2" not in r.parties and "above federation.max_weight 1e+06" in r.dropped["party-2"]
    assert result.final_accuracy > 0.9


def test_the_maximum_weight_is_configurable_and_checked(caplog):
    sim = _sim("plain.toml", "federation.max_weight=10")  # the honest row counts are larger: all refused
    with pytest.raises(QuorumError, match="only 0 usable"):
        sim.run()
    assert "declares weight 86, above federation.max_weight 10" in caplog.text
    with pytest.raises(ConfigError, match="federation.max_weight"):
        _sim("plain.toml", "federation.max_weight=0")


def test_under_plain_an_update_beyond_the_configured_norm_is_refused_and_honest_ones_pass():
    sim = _sim("plain.toml", "federation.max_update_norm=1000")
    _hostile(sim, "party-3", scale=1e6)
    result = sim.run()
    for r in result.rounds:
        assert r.parties == ("party-1", "party-2", "party-4", "party-5")
        assert "above the bound 1000" in r.dropped["party-3"]
    assert result.final_accuracy > 0.9


def test_under_local_dp_an_update_that_skipped_the_clip_is_refused():
    sim = _sim("logistic_dp.toml", "privacy.row_norm=0")  # updates clipped to privacy.clip_norm
    assert sim.aggregator.norm_bound is not None
    _hostile(sim, "party-1", scale=1e3, skip_clip=True)
    result = sim.run()
    for r in result.rounds:
        assert "party-1" not in r.parties and "L2 norm" in r.dropped["party-1"]
        assert len(r.parties) == 4  # every honest, clipped and noised update is within the bound
