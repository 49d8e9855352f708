"""The ``paillier`` example trains as well as ``plain`` on the same data and seed."""

from __future__ import annotations

import numpy as np

from securefl import config
from securefl.simulation import Simulation
from tests.paths import CONFIGS


def test_paillier_example_matches_plain_accuracy():
    plain = Simulation(config.load(str(CONFIGS / "plain.toml"))).run()
    # the example's own 3072-bit keys: the model is small, so this stays fast
    paillier = Simulation(config.load(str(CONFIGS / "paillier.toml"))).run()
    assert abs(paillier.final_accuracy - plain.final_accuracy) <= 0.01
    # 16-bit quantisation moves the parameters by far less than training does
    assert np.max(np.abs(paillier.final_parameters - plain.final_parameters)) < 0.01
