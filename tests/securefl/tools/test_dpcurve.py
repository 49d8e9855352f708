from __future__ import annotations

import json

import pytest

from securefl import config
from securefl.cli.main import main
from securefl.errors import ConfigError
from securefl.tools import dpcurve
from tests.paths import CONFIGS

NB = CONFIGS / "naive_bayes_dp.toml"
PAILLIER_TEST = ["crypto.scheme=paillier", "crypto.paillier.preset=test"]
"""A scheme that really hides every update, with its small (insecure, fast) test keys."""

pytestmark = pytest.mark.filterwarnings("ignore::crypto_backends.base.InsecureParametersWarning")


def test_curve_has_every_method_under_a_scheme_that_hides_updates():
    cfg = config.load(NB, PAILLIER_TEST)
    curve = dpcurve.run_curve(cfg, epsilons=(0.5, 10.0), seeds=2)
    assert curve["distributed_scheme"] == "paillier"
    assert set(curve["methods"]) == set(dpcurve.METHODS)
    for row in curve["methods"].values():
        assert len(row["mean"]) == 2 and all(0 <= a <= 1 for a in row["mean"])
    np_acc = curve["methods"]["non_private"]["mean"]
    assert np_acc[0] == np_acc[1] > 0.85  # independent of epsilon


class _Run:
    final_accuracy = 0.5


def test_every_federated_variant_is_made_by_replace_and_validated(monkeypatch):
    made: list[dict] = []
    real = config.Config.replace

    def spy(self, overrides=(), /, **changes):
        made.append(changes)
        return real(self, overrides, **changes)

    trained: list[config.Config] = []

    class FakeSimulation:  # the variants are what matters here, not the training
        def __init__(self, cfg: config.Config) -> None:
            trained.append(cfg)

        def run(self) -> _Run:
            return _Run()

    monkeypatch.setattr(config.Config, "replace", spy)
    monkeypatch.setattr(dpcurve, "Simulation", FakeSimulation)
    cfg = config.load(NB, ["crypto.scheme=plain", "privacy.mode=local", "crypto.paillier.preset=test"])
    dpcurve.run_curve(cfg, epsilons=(2.0,), seeds=1)
    assert len(made) == len(trained) == 3  # local, one curator, distributed
    local, one, dist = trained
    assert (local.privacy.mode, local.privacy.epsilon, local.crypto.scheme) == ("local", 2.0, "plain")
    assert one.federation.parties == 1 and one.federation.ids == ("party-1",)
    # the one curator runs unprotected (a scheme that hides updates refuses a federation of one)
    assert config.load(NB, PAILLIER_TEST).replace(**{"federation.parties": 5}).crypto.scheme == "paillier"
    assert dpcurve.variant(config.load(NB, PAILLIER_TEST), mode="local", epsilon=1.0, seed=0,
                           single_party=True).crypto.scheme == "plain"
    # plain shows every update, so the distributed point runs under the first scheme that hides them
    assert (dist.privacy.mode, dist.crypto.scheme) == ("distributed", "paillier")
    assert dist.crypto.scheme_params().allow_insecure  # its [crypto.paillier] table came along
    with pytest.raises(ConfigError, match="privacy.mode: 'distributed' needs a scheme that hides"):
        dpcurve.variant(cfg, mode="distributed", epsilon=1.0, seed=0)  # plain: refused by the config rule


def test_dp_curve_command_writes_png_and_json(tmp_path):
    out = tmp_path / "curve"
    assert main(["dp-curve", "--config", str(NB), "--seeds", "1", "--out", str(out)]) == 0
    data = json.loads((out / "dp_curve.json").read_text())
    assert data["epsilons"] == list(dpcurve.EPSILONS)
    assert {"local", "central_securefl", "central", "non_private"} <= set(data["methods"])
    assert (out / "dp_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dp_curve_needs_naive_bayes():
    with pytest.raises(ConfigError, match="naive_bayes"):
        dpcurve.run_curve(config.load(CONFIGS / "plain.toml"), seeds=1)


@pytest.mark.slow
def test_distributed_naive_bayes_matches_central_noise_and_beats_local():
    """The issue's bar at epsilon 1 on breast_cancer with 5 parties, averaged over 300 data splits
    (accuracy varies by about 0.1 from split to split, so fewer would not resolve 0.03)."""
    cfg = config.load(NB, [*PAILLIER_TEST, "federation.seed=5000"])
    curve = dpcurve.run_curve(cfg, epsilons=(1.0,), seeds=300)
    acc = {m: row["mean"][0] for m, row in curve["methods"].items()}
    assert acc["distributed"] >= acc["central"] - 0.03  # diffprivlib's centralised GaussianNB
    assert abs(acc["distributed"] - acc["central_securefl"]) <= 0.04  # same noise as one curator's
    assert acc["distributed"] > acc["local"]
