"""[privacy] in a federation: calibration, the budget, refusals, the run report, naive Bayes."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
from diffprivlib.mechanisms import GaussianAnalytic
from diffprivlib.utils import PrivacyLeakWarning

from crypto_backends import registry
from crypto_backends.dp import DPScheme
from securefl import config, privacy
from securefl.cli.main import main
from securefl.core.messages import GlobalModel
from securefl.errors import BudgetExceededError, ConfigError
from securefl.ml.models import Sensitivity
from securefl.privacy import PrivacyAccountant
from securefl.simulation import Simulation
from tests.paths import CONFIGS

PLAIN, NB, LR_DP = CONFIGS / "plain.toml", CONFIGS / "naive_bayes_dp.toml", CONFIGS / "logistic_dp.toml"
PAILLIER_TEST = ["crypto.scheme=paillier", "crypto.paillier.preset=test"]
"""A scheme that really hides every update, with its small (insecure, fast) test keys."""


def test_calibration_is_diffprivlibs():
    block = Sensitivity(10, 4.0, 2.0, 0.5)
    expected = GaussianAnalytic(epsilon=0.5, delta=5e-6, sensitivity=2.0)._scale
    assert privacy.calibrate("gaussian", 1.0, 1e-5, block) == pytest.approx(expected)
    assert privacy.calibrate("laplace", 1.0, 0.0, block) == pytest.approx(4.0 / 0.5)


def test_the_round_that_would_exceed_the_budget_is_refused():
    cfg = config.load(PLAIN, ["federation.rounds=3", "privacy.mode=local", "privacy.epsilon=2",
                              "privacy.epsilon_budget=5", "privacy.clip_norm=5"])
    sim = Simulation(cfg)
    seen = []
    refusal = r"round 2 refused.*epsilon 2 .*epsilon 4 .*privacy.epsilon_budget = 5"
    with pytest.raises(BudgetExceededError, match=refusal):
        sim.run(seen.append)
    assert [m.round for m in seen] == [0, 1]  # two rounds ran; the third released nothing
    assert [m.epsilon_spent for m in seen] == [2.0, 4.0]
    assert sim.accountant.spent[0] == 4.0


def test_a_replay_counts_the_rounds_not_yet_charged_once_and_refuses_past_the_budget():
    cfg = config.load(PLAIN, ["privacy.mode=local", "privacy.epsilon=2", "privacy.epsilon_budget=5",
                              "privacy.clip_norm=5"])
    accountant = PrivacyAccountant(cfg.privacy)
    accountant.replay(2)
    accountant.replay(1)  # already counted: nothing more is spent
    assert (accountant.rounds_charged, accountant.spent[0]) == (2, 4.0)
    with pytest.raises(BudgetExceededError, match="round 2 refused"):
        accountant.replay(3)
    assert (accountant.rounds_charged, accountant.spent[0]) == (2, 4.0)


def test_delta_budget_is_enforced_too():
    acc = privacy.PrivacyAccountant(config.loads("", ["privacy.mode=local", "privacy.delta=1e-5",
                                                      "privacy.delta_budget=2.5e-5"]).privacy)
    acc.charge(0)
    acc.charge(1)
    with pytest.raises(BudgetExceededError, match="delta"):
        acc.charge(2)


def test_distributed_with_a_scheme_that_shows_updates_is_a_config_error():
    with pytest.raises(ConfigError, match="privacy.mode: 'distributed' needs a scheme that hides"):
        config.load(PLAIN, ["privacy.mode=distributed"])


@pytest.mark.parametrize("text, key", [
    ("[privacy]\nmode = 'central'", "privacy.mode"),
    ("[privacy]\nmechanism = 'exponential'", "privacy.mechanism"),
    ("[privacy]\nepsilon = 0", "privacy.epsilon"),
    ("[privacy]\ndelta = 0", "privacy.delta"),
    ("[privacy]\nepsilon = 2\nepsilon_budget = 1", "privacy.epsilon_budget"),
    ("[privacy]\nbounds = [1.0, -1.0]", "privacy.bounds"),
    ("[privacy]\nclip_norm = -1", "privacy.clip_norm"),
])
def test_bad_privacy_keys_name_the_key(text, key):
    with pytest.raises(ConfigError, match=key):
        config.loads(text)


def test_run_json_reports_the_spent_budget(tmp_path):
    path = tmp_path / "run.json"
    assert main(["run", str(PLAIN), "--set", "federation.rounds=2", "--set", "privacy.mode=local",
                 "--set", "privacy.epsilon=1.5", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["privacy"]["epsilon_spent"] == 3.0 and data["privacy"]["delta_spent"] == pytest.approx(2e-5, rel=1e-3)
    assert data["privacy"]["mode"] == "local" and data["privacy"]["epsilon_budget"] == 10.0
    assert [r["epsilon_spent"] for r in data["rounds"]] == [1.5, 3.0]


def test_privacy_off_leaves_the_scheme_unwrapped_and_the_report_unchanged():
    sim = Simulation(config.load(PLAIN, ["federation.rounds=1"]))
    assert not isinstance(sim.scheme, DPScheme) and sim.accountant is None
    assert "privacy" not in sim.run().as_json()


@pytest.mark.filterwarnings("ignore::crypto_backends.base.InsecureParametersWarning")
def test_distributed_federation_runs_under_a_scheme_that_hides_updates():
    # the clip range must hold the clipped update plus its noise share's tail (checked by privacy.wrap)
    cfg = config.load(PLAIN, [*PAILLIER_TEST, "crypto.paillier.clip=64", "privacy.mode=distributed",
                              "federation.rounds=2", "privacy.epsilon=5", "privacy.clip_norm=3"])
    sim = Simulation(cfg)
    assert isinstance(sim.scheme, DPScheme) and sim.scheme.inner.name == "paillier"
    assert sim.scheme.declarations.hides_updates
    assert sim.scheme.plan.min_contributors == 3  # plain.toml's quorum
    weights = [p.trainer.adapter.local_weight(p.trainer.train.n) for p in sim.parties.values()]
    assert sim.scheme.plan.weight_bound == max(weights)
    result = sim.run()
    assert len(result.rounds) == 2 and result.privacy["epsilon_spent"] == 10.0
    assert result.final_parameters is not None and np.isfinite(result.final_parameters).all()


def test_distributed_noise_shares_are_refused_by_the_config_not_later():
    with pytest.raises(ConfigError, match="privacy.mode: 'distributed'.*paillier"):  # names a hiding scheme
        config.load(PLAIN).replace(**{"privacy.mode": "distributed"})
    cfg = config.load(PLAIN, [*PAILLIER_TEST, "privacy.mode=distributed"])
    with pytest.raises(ConfigError, match="privacy.mode"):
        cfg.replace(**{"crypto.scheme": "plain"})  # switching the scheme away is checked too


def test_noisy_values_beyond_the_schemes_clip_range_are_a_config_error(monkeypatch):
    scheme = registry.create("plain")
    declared = type(scheme).declarations
    monkeypatch.setattr(type(scheme), "declarations",
                        property(lambda self: dataclasses.replace(declared.fget(self), value_bound=2.0)))
    with pytest.raises(ConfigError, match="clip range"):
        Simulation(config.load(PLAIN, ["privacy.mode=local", "privacy.epsilon=0.5"]))


def test_naive_bayes_is_one_shot_and_spends_epsilon_once():
    sim = Simulation(config.load(NB, ["federation.rounds=10"]))
    result = sim.run()
    assert len(result.rounds) == 1 and result.privacy["epsilon_spent"] == 1.0
    assert result.privacy["delta_spent"] == 0.0 and result.privacy["mechanism"] == "laplace"


def test_bounds_from_data_needs_opt_in_and_warns():
    with pytest.warns(PrivacyLeakWarning, match="bounds_from_data"):
        sim = Simulation(config.load(NB, ["privacy.bounds_from_data=true"]))
    X = np.vstack([p.trainer.train.X for p in sim.parties.values()])
    assert np.allclose(sim.evaluator.lower, X.min(axis=0)) and np.allclose(sim.evaluator.upper, X.max(axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        Simulation(config.load(NB))  # configured bounds: no warning


def test_dp_logistic_regression_example_runs():
    result = Simulation(config.load(LR_DP)).run()
    assert result.privacy["epsilon_spent"] <= result.privacy["epsilon_budget"]
    assert np.isfinite(result.final_accuracy)


def test_zcdp_composition_is_tighter_than_basic_and_still_refuses():
    overrides = ["privacy.mode=local", "privacy.epsilon=1", "privacy.delta=1e-6", "privacy.epsilon_budget=6",
                 "privacy.delta_budget=1e-5"]
    basic = Simulation(config.load(PLAIN, [*overrides, "federation.rounds=100"]))
    zcdp = Simulation(config.load(PLAIN, [*overrides, "federation.rounds=100", "privacy.composition=zcdp"]))
    counts = {}
    for name, sim in (("basic", basic), ("zcdp", zcdp)):
        rounds = 0
        with pytest.raises(BudgetExceededError):
            while True:
                sim.accountant.charge(rounds)
                rounds += 1
        counts[name] = rounds
    assert counts["basic"] == 6 and counts["zcdp"] > 6
    rho = privacy.round_rho(zcdp.cfg.privacy, zcdp.evaluator.sensitivity(zcdp.cfg.privacy.clip_norm))
    assert zcdp.accountant.spent[0] == pytest.approx(privacy.zcdp_epsilon(counts["zcdp"] * rho, 1e-5))
    assert zcdp.accountant.spent[0] <= 6.0
    with pytest.raises(ConfigError, match="delta_budget"):
        config.loads("[privacy]\ncomposition = 'zcdp'\nmechanism = 'laplace'\ndelta_budget = 0")


def test_naive_bayes_statistics_are_rescaled_to_fit_the_schemes_clip_range():
    sim = Simulation(config.load(NB, ["privacy.epsilon=0.1", "privacy.epsilon_budget=1"]))
    assert sim.scheme.declarations.value_bound is not None and sim.evaluator.rescalable
    rows = max(p.trainer.train.n for p in sim.parties.values())
    assert sim.evaluator.stat_scale > rows  # small epsilon: more noise, so a larger public divisor
    top, _ = privacy.reach(sim.scheme.plan, 1.0, 1.0)
    assert top <= sim.scheme.declarations.value_bound * 1.001
    assert 0 <= sim.run().final_accuracy <= 1


@pytest.mark.filterwarnings("ignore::crypto_backends.base.InsecureParametersWarning")
def test_bench_adds_a_dp_row_per_scheme_and_refuses_distributed_over_plain(tmp_path):
    path = tmp_path / "bench.json"
    main(["bench", "--schemes", "plain,paillier", "--parties", "3", "--params", "2000", "--set",
          "crypto.paillier.preset=test", "--set", "crypto.paillier.clip=64", "--set", "privacy.mode=distributed",
          "--json", str(path)])
    rows = {r["scheme"]: r for r in json.loads(path.read_text())["results"]}
    assert "hides individual updates" in rows["plain+dp(distributed)"]["error"]
    dp = rows["paillier+dp(distributed)"]
    assert dp["error"] is None and dp["extra"]["prepare_s"] > 0
    params = config.loads("", ["crypto.paillier.preset=test", "crypto.paillier.clip=64"]).crypto.params["paillier"]
    tolerance = registry.create("paillier", params).tolerance([1.0, 2.0, 3.0])  # quantisation only
    assert rows["paillier"]["error"] is None and rows["paillier"]["max_abs_error"] <= tolerance
    assert dp["max_abs_error"] > 10 * rows["paillier"]["max_abs_error"]  # clipping and the noise


def test_each_party_refuses_to_release_past_its_own_budget():
    """Whoever drives the rounds (an aggregator asking for more), a party does not release past its budget."""
    sim = Simulation(config.load(PLAIN, ["privacy.mode=local", "privacy.epsilon=2", "privacy.epsilon_budget=4",
                                         "privacy.clip_norm=5"]))
    party = sim.parties["party-1"]
    start = GlobalModel.open(sim.evaluator.initial_parameters()).to_bytes()
    party.handle_round(0, start)
    party.handle_round(1, start)
    with pytest.raises(BudgetExceededError, match="round 2 refused"):
        party.handle_round(2, start)
    assert party.accountant.spent[0] == 4.0


def test_zcdp_accounting_without_the_sensitivities_is_a_usage_error():
    from securefl.errors import UsageError

    cfg = config.loads("[privacy]\nmode = 'local'\ncomposition = 'zcdp'").privacy
    with pytest.raises(UsageError, match="needs blocks"):
        privacy.PrivacyAccountant(cfg)
    assert issubclass(UsageError, TypeError)
