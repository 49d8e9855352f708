"""The Trainer API: the user's own program under every scheme by configuration alone."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import securefl
from crypto_backends import InsecureParametersWarning, registry
from securefl import config
from securefl.errors import ConfigError, PartyError, UsageError
from securefl.ml.trainer import checked_fit
from securefl.simulation import Simulation
from tests.paths import CONFIGS
from tests.schemes import fast_params
from tests.userprog import LENGTH, Drift

IDS = [f"party-{i}" for i in range(1, 5)]


def _config(scheme: str, *extra: str) -> config.Config:
    preset = "test" if "test" in registry.params_type(scheme).presets() and scheme != "ckks" else None
    text = f"[federation]\nparties = 4\nrounds = 3\n\n[crypto]\nscheme = \"{scheme}\"\n"
    if preset:
        text += f"\n[crypto.{scheme}]\npreset = \"{preset}\"\n"
    return config.loads(text, list(extra))


@pytest.mark.parametrize("scheme", registry.builtin())
def test_a_users_own_trainer_runs_under_every_scheme_and_gets_the_weighted_mean(scheme):
    trainers = {pid: Drift(pid) for pid in IDS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)  # small test keys, loudly insecure
        result = securefl.simulate(_config(scheme), trainers)
    weights = np.array([trainers[p].rows for p in IDS], dtype=float)
    tolerance = registry.create(scheme, fast_params(scheme)).tolerance(list(weights))
    for rnd in range(2):  # what each party trains from in round r+1 is the fusion of round r
        expected = np.average(np.stack([trainers[p].sent[rnd] for p in IDS]), axis=0, weights=weights)
        for p in IDS:
            got = trainers[p].seen[rnd + 1]
            # plain too: the aggregator adds float64 uploads in arrival order (streaming), within its 1e-9
            assert np.max(np.abs(got - expected)) <= tolerance
    assert [r.parties for r in result.rounds] == [tuple(IDS)] * 3
    assert result.metric == "mse" and result.rounds[-1].metrics == {"mse": result.final_accuracy}
    assert result.final_accuracy < result.rounds[0].accuracy  # it learns
    assert result.final_parameters is not None and result.final_parameters.size == LENGTH


def test_sum_fusion_adds_up_sufficient_statistics():
    class Count:
        def __init__(self, n: int) -> None:
            self.n = n

        def initial_parameters(self) -> np.ndarray:
            return np.zeros(3)

        def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
            return np.array([self.n, 2.0 * self.n, 1.0]), 1.0

        def evaluate(self, parameters: np.ndarray) -> dict[str, float]:
            return {"total": float(parameters[0])}

    result = securefl.simulate(_config("plain", "federation.rounds=1", "model.fusion=sum"),
                               {pid: Count(i) for i, pid in enumerate(IDS, 1)})
    np.testing.assert_array_equal(result.final_parameters, [10.0, 20.0, 4.0])
    assert result.final_accuracy == 10.0


class Bad(Drift):
    def __init__(self, party_id: str, mode: str) -> None:
        super().__init__(party_id)
        self.mode = mode

    def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
        update, weight = super().fit(parameters, round)
        if self.mode == "length":
            return update[:-1], weight
        if self.mode == "nan":
            update[3] = np.nan
            return update, weight
        if self.mode == "weight":
            return update, 0.0
        return update  # type: ignore[return-value]


@pytest.mark.parametrize("mode, needle", [("length", "39"), ("nan", "NaN"), ("weight", "weight"),
                                          ("shape", "(parameters, weight)")])
def test_what_a_trainer_returns_is_checked_and_its_party_named(mode, needle):
    trainers = {pid: Drift(pid) for pid in IDS}
    trainers["party-3"] = Bad("party-3", mode)
    result = securefl.simulate(_config("plain", "federation.quorum=3"), trainers)
    for r in result.rounds:
        assert "party-3" not in r.parties
        why = r.dropped["party-3"]
        assert why.startswith("PartyError: party-3:") and needle in why, why
    with pytest.raises(PartyError, match="party-3"):
        checked_fit("party-3", trainers["party-3"].fit(np.zeros(LENGTH), 0), LENGTH)


def test_trainers_must_match_the_federation():
    with pytest.raises(ConfigError, match="missing party-4"):
        securefl.simulate(_config("plain"), {pid: Drift(pid) for pid in IDS[:3]})
    with pytest.raises(UsageError, match="implement securefl.Trainer"):
        securefl.simulate(_config("plain"), {**{pid: Drift(pid) for pid in IDS[:3]}, "party-4": object()})
    with pytest.raises(ConfigError, match="privacy"):
        securefl.simulate(_config("plain", "privacy.mode=local"), {pid: Drift(pid) for pid in IDS})


def test_a_config_of_federation_and_crypto_alone_is_enough(tmp_path):
    path = tmp_path / "own.toml"
    path.write_text("[federation]\nparties = 4\nrounds = 2\n\n[crypto]\nscheme = \"plain\"\n")
    result = securefl.simulate(str(path), {pid: Drift(pid) for pid in IDS})
    assert len(result.rounds) == 2 and result.as_json()["rounds"][0]["metrics"]["mse"] > 0
    assert isinstance(Drift("x"), securefl.Trainer)


PLUGIN_KIND = """
import numpy as np
from securefl.ml.models import ModelAdapter


class Mean(ModelAdapter):
    '''Predicts the class whose training mean is nearest: a third party's model kind.'''

    @property
    def num_parameters(self):
        return len(self.classes) * self.n_features

    def initial_parameters(self):
        return np.zeros(self.num_parameters)

    def _fit(self, params, X, y):
        return np.concatenate([X[y == c].mean(axis=0) if (y == c).any() else np.zeros(self.n_features)
                               for c in self.classes])

    def predict(self, params, X):
        centres = params.reshape(len(self.classes), self.n_features)
        return self._labels(np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1))
"""


def test_a_third_party_model_kind_registers_in_the_securefl_models_group(tmp_path, monkeypatch):
    (tmp_path / "nearest_mean.py").write_text(PLUGIN_KIND)
    dist = tmp_path / "nearest_mean-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nearest-mean\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[securefl.models]\nnearest_mean = nearest_mean:Mean\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "nearest_mean" in config.model_kinds()
    cfg = config.load(CONFIGS / "plain.toml", ["model.kind=nearest_mean", "federation.rounds=2"])
    result = Simulation(cfg).run()
    assert result.final_accuracy > 0.85
    with pytest.raises(ConfigError, match="model.kind.*nearest_mean"):
        config.load(CONFIGS / "plain.toml", ["model.kind=nearest_meen"])


def test_a_users_trainer_that_diverges_is_told_its_own_fix_not_the_built_in_models_keys():
    """Issue 21 item 11: the hint named model.learning_rate and data.standardize, which never reach a user's trainer."""
    from securefl.errors import PartyError
    from securefl.ml.trainer import checked_fit

    with pytest.raises(PartyError, match=r"party-1: .*1 NaN or infinite value\(s\) of 3.*your trainer's learning rate"):
        checked_fit("party-1", (np.array([0.0, np.nan, 1.0]), 1.0), 3)
