"""Model adapters: the naive-Bayes statistics, their fusion rule, and the GaussianNB they make."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB

from securefl import config
from securefl.errors import DataError, FusionError, PartyError, UsageError
from securefl.ml.models import LinearAdapter, checked_update, make_adapter
from securefl.simulation import Simulation
from tests.paths import CONFIGS

NB = CONFIGS / "naive_bayes_dp.toml"
PAILLIER_TEST = ["crypto.scheme=paillier", "crypto.paillier.preset=test"]
"""A scheme that really hides updates, with its small (insecure, fast) test keys."""


def _adapter(stat_scale=1, d=3, classes=(0, 1, 2)):
    return make_adapter(config.ModelConfig(kind="naive_bayes"), d, np.array(classes), 0,
                        bounds=(np.full(d, -4.0), np.full(d, 4.0)), stat_scale=stat_scale)


def test_statistics_of_parties_sum_to_the_pooled_gaussian_nb():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (300, 3)) + np.repeat([[0, 0, 0], [2, -1, 0], [0, 1, 1]], 100, axis=0)
    y = np.repeat([0, 1, 2], 100)
    X = np.clip(X, -4, 4)
    ad = _adapter(stat_scale=120)
    parts = np.array_split(rng.permutation(300), 3)
    fused = ad.fuse(sum(ad.fit_local(ad.initial_parameters(), X[p], y[p]) for p in parts), total_weight=3.0)
    est, ref = ad.estimator(fused), GaussianNB(var_smoothing=0).fit(X, y)
    assert np.allclose(est.theta_, ref.theta_) and np.allclose(est.var_, ref.var_)
    assert np.allclose(est.class_prior_, ref.class_prior_)
    assert np.array_equal(est.predict(X), ref.predict(X))
    assert ad.local_weight(57) == 1.0  # fusion is a sum, not a row-weighted mean


def test_statistics_fit_in_unit_range_whatever_the_party_size():
    ad = _adapter(stat_scale=50)
    X = np.random.default_rng(1).normal(0, 10, (50, 3))  # far outside the bounds: clipped
    stats = ad.fit_local(ad.initial_parameters(), X, np.zeros(50, dtype=int))
    assert np.abs(stats).max() <= 1.0 and ad.value_range == 1.0


def test_sensitivity_bounds_the_change_of_one_replaced_record():
    ad = _adapter(stat_scale=10)
    rng = np.random.default_rng(2)
    X, y = rng.uniform(-4, 4, (10, 3)), rng.integers(0, 3, 10)
    base = ad.fit_local(None, X, y)
    blocks = ad.sensitivity(clip_norm=1.0)
    worst = np.zeros((len(blocks), 2))
    for _ in range(200):
        X2, y2 = X.copy(), y.copy()
        X2[0], y2[0] = rng.choice([-4.0, 4.0], 3) * rng.uniform(0, 1, 3), rng.integers(0, 3)
        diff, start = ad.fit_local(None, X2, y2) - base, 0
        for i, b in enumerate(blocks):
            seg = diff[start : start + b.length]
            worst[i] = np.maximum(worst[i], [np.abs(seg).sum(), np.linalg.norm(seg)])
            start += b.length
    for (l1, l2), b in zip(worst, blocks, strict=True):
        assert l1 <= b.l1 + 1e-12 and l2 <= b.l2 + 1e-12
    assert sum(b.budget_share for b in blocks) == 1.0 and sum(b.length for b in blocks) == ad.num_parameters


def test_federated_naive_bayes_without_privacy_matches_scikit_learn():
    sim = Simulation(config.load(NB, ["privacy.mode=off", "crypto.scheme=plain"]))
    result = sim.run()
    X = np.vstack([p.trainer.train.X for p in sim.parties.values()])
    y = np.concatenate([p.trainer.train.y for p in sim.parties.values()])
    ref = GaussianNB().fit(np.clip(X, -3, 3), y)
    assert result.final_accuracy == ref.score(sim.data.X_test, sim.data.y_test)


def test_variances_the_noise_cannot_resolve_are_raised_to_the_noise_level():
    ad = _adapter(stat_scale=10)
    X = np.zeros((10, 3))  # every variance is exactly zero
    stats = ad.fit_local(None, X, np.repeat([0, 1], 5))
    assert np.allclose(ad.estimator(stats).var_[:2], 16 * ad.VAR_FLOOR)  # only the fixed floor, in z units
    ad.set_release_noise((0.0, 0.0, 0.2))  # sums of squares carry noise of deviation 0.2 (statistic units)
    var = ad.estimator(stats).var_
    assert np.allclose(var[:2], 16 * 0.2 * 10 / 5)  # deviation 2 rows-units over 5 rows, back in x units


@pytest.mark.filterwarnings("ignore::crypto_backends.base.InsecureParametersWarning")
def test_release_noise_is_reported_to_the_evaluator():
    sim = Simulation(config.load(NB, PAILLIER_TEST))  # distributed Laplace under encryption
    b = sim.scheme.plan.segments[2].scale
    assert sim.evaluator._sumsq_noise == pytest.approx(b * np.sqrt(2))  # central Laplace deviation


@pytest.mark.parametrize("n_classes", [2, 3])
def test_local_sgd_moves_at_most_its_declared_sensitivity_when_one_record_is_replaced(n_classes):
    cfg = config.ModelConfig(kind="logistic", local_epochs=3, learning_rate=0.05, alpha=1e-3)
    rng = np.random.default_rng(3)
    X, y = rng.normal(0, 2, (60, 5)), rng.integers(0, n_classes, 60)
    classes = np.arange(n_classes)
    bound = make_adapter(cfg, 5, classes, 0, row_norm=2.0).sensitivity(1.0)[0].l2
    start = rng.normal(0, 0.5, make_adapter(cfg, 5, classes, 0).num_parameters)
    base = make_adapter(cfg, 5, classes, 0, row_norm=2.0).fit_local(start, X, y)
    worst = 0.0
    for i in range(40):
        X2, y2 = X.copy(), y.copy()
        j = i % 60
        X2[j], y2[j] = rng.normal(0, 50, 5), (y[j] + 1) % n_classes  # an extreme, relabelled record
        moved = make_adapter(cfg, 5, classes, 0, row_norm=2.0).fit_local(start, X2, y2)
        worst = max(worst, float(np.linalg.norm(moved - base)))
    assert 0 < worst <= bound
    assert not make_adapter(cfg, 5, classes, 0, row_norm=2.0).clips_updates


def test_row_norm_needs_logistic_and_a_non_expansive_step():
    from securefl.errors import ConfigError

    with pytest.raises(ConfigError, match="model.learning_rate"):
        config.loads("[privacy]\nmode = 'local'\nrow_norm = 10.0\n[model]\nlearning_rate = 0.5")
    with pytest.raises(ConfigError, match="privacy.row_norm"):
        config.loads("[privacy]\nmode = 'local'\nrow_norm = 2.0\n[model]\nkind = 'mlp'")
    config.loads("[privacy]\nmode = 'off'\nrow_norm = 2.0\n[model]\nkind = 'mlp'")  # only checked when DP is on


# --- what local training hands on is checked at the adapter -------------------------------
class _Broken(LinearAdapter):
    """A trainer whose local training returns ``self.output`` and whose weight is ``self.weight``."""

    output: object = None
    weight: object = 1.0

    def _fit(self, params, X, y):
        return self.output

    def _weight(self, rows):
        return self.weight  # type: ignore[return-value]


def _broken(output=None, weight=1.0) -> _Broken:
    ad = _Broken(config.ModelConfig(), 4, np.array([0, 1]), 0)
    ad.output, ad.weight = output, weight
    return ad


@pytest.mark.parametrize("output, message", [
    (np.zeros(3), r"shape \(3,\), the model has 5 parameters"),
    (np.zeros((5, 1)), r"shape \(5, 1\)"),
    (np.array([0.0, np.nan, 1.0, np.inf, 0.0]), r"2 NaN or infinite value\(s\).*lower model.learning_rate"),
    ("weights", "not a numeric vector"),
])
def test_unusable_local_training_output_is_a_party_error_saying_the_fix(output, message):
    with pytest.raises(PartyError, match=message):
        _broken(output).fit_local(np.zeros(5), np.zeros((2, 4)), np.array([0, 1]))
    assert issubclass(PartyError, ValueError)


@pytest.mark.parametrize("weight", [0, -3.0, float("nan"), float("inf"), True, "57"])
def test_a_weight_that_is_not_positive_and_finite_is_a_party_error(weight):
    with pytest.raises(PartyError, match="positive finite number"):
        _broken(np.zeros(5), weight).local_weight(10)


def test_valid_output_passes_the_check_unchanged():
    update = _broken(np.arange(5.0)).fit_local(np.zeros(5), np.zeros((2, 4)), np.array([0, 1]))
    assert update.dtype == np.float64 and update.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert checked_update([1, 2], 2).tolist() == [1.0, 2.0]


def test_misuse_and_unsuitable_data_raise_typed_errors():
    with pytest.raises(UsageError, match="bounds=\\(lower, upper\\)"):
        make_adapter(config.ModelConfig(kind="naive_bayes"), 3, np.array([0, 1]), 0)
    for kind in ("logistic", "mlp", "naive_bayes"):  # continuous labels: no classes
        with pytest.raises(DataError, match=f"model.kind = '{kind}' needs a classification data set"):
            make_adapter(config.ModelConfig(kind=kind), 3, None, 0, bounds=(np.zeros(3), np.ones(3)))
    with pytest.raises(FusionError, match="total weight must be positive"):
        make_adapter(config.ModelConfig(), 3, np.array([0, 1]), 0).fuse(np.zeros(4), 0.0)
