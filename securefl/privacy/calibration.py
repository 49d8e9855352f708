"""Differential privacy for a federation: calibration, the budget accountant, and wrapping the scheme.

The mechanics (clip, noise, snap) live in :mod:`crypto_backends.dp`; this module
decides *how much* noise from ``[privacy]`` and the model's declared
sensitivities, and keeps count of what has been spent.

Calibration is diffprivlib's: :class:`diffprivlib.mechanisms.GaussianAnalytic`
(Balle and Wang 2018, any epsilon) for the Gaussian mechanism on the L2
sensitivity, :class:`diffprivlib.mechanisms.Laplace` on the L1 sensitivity.  A
vector made of several blocks (naive Bayes: counts, sums, sums of squares) gives
each block its ``budget_share`` of the round's epsilon and delta; the round
spends their sum (basic composition).

Neighbouring data sets differ in one record of one party (replaced; party sizes
are public, they are the FedAvg weights).  The guarantee therefore protects each
record of each party, against the aggregator and against the other parties.

Accounting: :class:`PrivacyAccountant` refuses, with :class:`BudgetExceededError`
and before any party releases anything, the round that would exceed
``privacy.epsilon_budget`` or ``privacy.delta_budget``.  Two composition rules:

``basic``
    diffprivlib's :class:`~diffprivlib.BudgetAccountant` without slack: epsilons
    add up, deltas compose as ``1 - prod(1 - delta_r)``.
``zcdp``
    zero-concentrated DP (Bun and Steinke, TCC 2016): a Gaussian block of L2
    sensitivity ``D`` and scale ``sigma`` is ``D**2 / (2 sigma**2)``-zCDP, a pure
    ``eps``-DP (Laplace) block ``eps**2 / 2``-zCDP; rho adds up over blocks and
    rounds, and the total is reported as ``(rho + 2 sqrt(rho ln(1/delta_budget)),
    delta_budget)``-DP.  Tighter than ``basic`` over many Gaussian rounds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from diffprivlib.mechanisms import GaussianAnalytic, Laplace
from diffprivlib.utils import PrivacyLeakWarning

from crypto_backends.base import Scheme
from crypto_backends.dp import DPScheme, NoisePlan, NoiseSegment
from crypto_backends.noise import share_std
from securefl.config import PrivacyConfig
from securefl.errors import ConfigError
from securefl.ml.models import ModelAdapter, Sensitivity

__all__ = ["PrivacyLeakWarning", "calibrate", "feature_bounds", "noise_plan", "release_noise",
           "required_rescale", "round_rho", "wrap", "zcdp_epsilon"]

TAIL_STDS = 6.0
"""Values handed to a scheme with a clip range must fit within data bound + this many Gaussian deviations..."""
LAPLACE_TAIL = 14.0
"""... or this many Laplace scales (P(|Laplace| > 14 b) < 1e-6)."""


def calibrate(mechanism: str, epsilon: float, delta: float, block: Sensitivity) -> float:
    """Noise scale (sigma, or Laplace b) for one block at ``epsilon``/``delta`` of the round (before its share)."""
    eps, dlt = epsilon * block.budget_share, delta * block.budget_share
    if mechanism == "gaussian":
        return float(GaussianAnalytic(epsilon=eps, delta=dlt, sensitivity=block.l2)._scale)
    mech = Laplace(epsilon=eps, delta=0.0, sensitivity=block.l1)
    return math.sqrt(mech.variance(0.0) / 2.0)


def noise_plan(cfg: PrivacyConfig, blocks: Sequence[Sensitivity], *, clip: bool, min_contributors: int,
               weight_bound: float) -> NoisePlan:
    """The plan every party of the federation uses (public: it depends only on config and public sizes).

    ``blocks`` are the vector's sensitivities (a model adapter's :meth:`~securefl.ml.models.ModelAdapter.sensitivity`);
    ``clip`` says whether the wrapper clips vectors to ``privacy.clip_norm`` (their L2 bound).
    """
    segments = tuple(NoiseSegment(b.length, calibrate(cfg.mechanism, cfg.epsilon, cfg.delta, b)) for b in blocks)
    return NoisePlan(
        mechanism=cfg.mechanism,  # type: ignore[arg-type]
        segments=segments,
        mode=cfg.mode,  # type: ignore[arg-type]
        clip_norm=cfg.clip_norm if clip else None,
        min_contributors=min_contributors,
        weight_bound=weight_bound,
    )


def _federation_plan(cfg: PrivacyConfig, adapter: ModelAdapter, min_contributors: int,
                     weights: Mapping[str, float]) -> NoisePlan:
    return noise_plan(cfg, adapter.sensitivity(cfg.clip_norm), clip=adapter.clips_updates,
                      min_contributors=min_contributors, weight_bound=max(weights.values()))


def wrap(scheme: Scheme, cfg: PrivacyConfig, adapter: ModelAdapter, *, min_contributors: int,
         weights: Mapping[str, float]) -> Scheme:
    """``scheme`` itself when privacy is off, else the DP wrapper around it (checked against its clip range)."""
    if not cfg.enabled:
        return scheme
    plan = _federation_plan(cfg, adapter, min_contributors, weights)
    data_bound = cfg.clip_norm if adapter.clips_updates else adapter.value_range
    check_value_bound(scheme, plan, data_bound, min(weights.values()))
    # "distributed needs a scheme that hides updates" is a config rule (securefl.config.check_consistency);
    # DPScheme's own refusal is the hazmat layer's, for callers without a config
    return DPScheme(scheme, plan)


def reach(plan: NoisePlan, data_bound: float, min_weight: float) -> tuple[float, float]:
    """(largest value handed to the inner scheme, bar a ~1e-6 tail; the noise's part of it).

    The tail is ``TAIL_STDS`` deviations for Gaussian noise and ``LAPLACE_TAIL`` times
    the scale b for Laplace noise and its Gamma-difference shares, whose tails decay
    like ``exp(-x / b)`` whatever the number of shares.
    """
    scale = max(s.scale for s in plan.segments)
    if plan.mechanism == "gaussian":
        tail = TAIL_STDS * scale / math.sqrt(plan.shares)
    else:
        tail = LAPLACE_TAIL * scale
    if plan.mode == "distributed":
        tail *= plan.weight_bound / min_weight
    return data_bound + tail, tail


def required_rescale(scheme: Scheme, cfg: PrivacyConfig, adapter: ModelAdapter, *, min_contributors: int,
                     weights: Mapping[str, float]) -> float:
    """Factor (>= 1) by which a :attr:`~securefl.ml.models.ModelAdapter.rescalable` model's public scale must grow
    so that its noisy values fit ``scheme``'s clip range; 1 when they fit or the model cannot be rescaled."""
    if not (cfg.enabled and adapter.rescalable and scheme.declarations.value_bound is not None):
        return 1.0
    plan = _federation_plan(cfg, adapter, min_contributors, weights)
    # the values stay within value_range while sensitivities, and so the noise, shrink with the scale
    _, tail = reach(plan, adapter.value_range, min(weights.values()))
    room = scheme.declarations.value_bound - adapter.value_range
    return max(1.0, 1.001 * tail / room) if room > 0 else 1.0


def release_noise(plan: NoisePlan, parties: int) -> tuple[float, ...]:
    """Standard deviation of the noise in the fused sum, per segment, with at least ``plan.shares`` contributors
    (local mode: the parties' independent noises add up; distributed: the central noise)."""
    factor = plan.weight_bound if plan.mode == "distributed" else math.sqrt(parties)
    return tuple(share_std(plan.mechanism, s.scale, 1) * factor for s in plan.segments)


def check_value_bound(scheme: Scheme, plan: NoisePlan, data_bound: float, min_weight: float) -> None:
    """Refuse a plan whose noisy values would routinely exceed the scheme's clip range (biasing the model)."""
    bound = scheme.declarations.value_bound
    if bound is None:
        return
    if not math.isfinite(data_bound):
        data_bound = 0.0  # the model's own values: the scheme's clip range concerns them with or without DP
    top, tail = reach(plan, data_bound, min_weight)
    if top > bound * (1 + 1e-9):
        raise ConfigError(
            f"privacy: noisy values reach about {top:.3g} (data up to {data_bound:.3g} plus a noise tail of "
            f"{tail:.3g}), beyond the {scheme.name} scheme's clip range +-{bound:.3g}; values "
            f"beyond it would be clipped and bias the model. Widen the scheme's clip range in [crypto.{scheme.name}], "
            "raise privacy.epsilon, or lower privacy.clip_norm"
        )


def feature_bounds(cfg: PrivacyConfig, features: list[np.ndarray], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Public per-feature bounds: ``privacy.bounds`` for every feature, or (opt-in, leaking) the data's min/max."""
    if cfg.bounds_from_data:
        warnings.warn(
            "privacy.bounds_from_data = true: feature bounds are read from the parties' data, which leaks "
            "information the differential-privacy guarantee does not cover. Set privacy.bounds from domain "
            "knowledge instead", PrivacyLeakWarning, stacklevel=2,
        )
        stacked = np.vstack(features)
        lower, upper = stacked.min(axis=0), stacked.max(axis=0)
        upper = np.where(upper > lower, upper, lower + 1.0)
        return lower, upper
    return np.full(n_features, cfg.bounds[0]), np.full(n_features, cfg.bounds[1])


def round_rho(cfg: PrivacyConfig, blocks: Sequence[Sensitivity]) -> float:
    """zCDP parameter rho one round spends with the noise :func:`calibrate` gives ``blocks``."""
    rho = 0.0
    for b in blocks:
        if cfg.mechanism == "gaussian":
            rho += (b.l2 / calibrate(cfg.mechanism, cfg.epsilon, cfg.delta, b)) ** 2 / 2
        else:
            rho += (cfg.epsilon * b.budget_share) ** 2 / 2
    return rho


def zcdp_epsilon(rho: float, delta: float) -> float:
    """Epsilon of the (epsilon, delta)-DP that rho-zCDP implies (Bun and Steinke, Prop. 1.3)."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)) if rho > 0 else 0.0
