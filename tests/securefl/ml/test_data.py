"""The synthetic data set: real rows for thousands of parties, drawn from the config and its seed."""

from __future__ import annotations

import numpy as np
import pytest

from securefl import config
from securefl.errors import ConfigError
from securefl.ml.data import held_out_parts, load_federated

SCALE = "[federation]\nparties = 1000\nseed = 7\n[data]\ndataset = \"synthetic\"\nsamples = 134000\n"


def _data(text: str, *overrides: str):
    cfg = config.loads(text, list(overrides))
    return cfg, load_federated(cfg.data, cfg.federation.ids, cfg.federation.seed)


def test_a_thousand_parties_each_hold_about_a_hundred_rows_and_the_held_out_split_is_kept_apart():
    cfg, data = _data(SCALE)
    sizes = [shard.n for shard in data.shards.values()]
    assert len(sizes) == 1000 and min(sizes) >= 100 and max(sizes) <= 101 and sum(sizes) == 100_500
    assert data.X_test.shape == (33_500, 20) and data.n_features == 20
    assert list(data.classes) == [0, 1]
    # stratified: both classes in the held-out rows as in the whole
    assert abs(np.mean(data.y_test) - 0.5) < 0.01
    parts = held_out_parts(data, cfg.federation.ids, cfg.federation.seed)
    assert sum(p.n for p in parts.values()) == 33_500 and min(p.n for p in parts.values()) == 33


def test_the_same_seed_draws_the_same_rows_and_another_seed_other_rows():
    small = "[federation]\nparties = 3\n[data]\ndataset = \"synthetic\"\nsamples = 300\nfeatures = 8\nclasses = 4\n"
    _, a = _data(small, "federation.seed=1")
    _, b = _data(small, "federation.seed=1")
    _, c = _data(small, "federation.seed=2")
    np.testing.assert_array_equal(a.shards["party-2"].X, b.shards["party-2"].X)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_test, c.X_test)
    assert a.X_test.shape[1] == 8 and list(a.classes) == [0, 1, 2, 3]


def test_the_synthetic_keys_are_checked():
    with pytest.raises(ConfigError, match="data.classes: 5 classes need at least 6 features"):
        config.loads("[data]\ndataset = \"synthetic\"\nfeatures = 4\nclasses = 5\n")
    with pytest.raises(ConfigError, match="data.samples"):
        config.loads("[data]\nsamples = 5\n")
    with pytest.raises(ConfigError, match="data.features"):
        config.loads("[data]\nfeatures = 1\n")
    with pytest.raises(ConfigError, match="data.dataset"):
        config.loads("[data]\ndataset = \"synthetc\"\n")
