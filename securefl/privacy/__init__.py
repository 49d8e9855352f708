"""Differential privacy for a federation: calibration, noise plans, and the budget accountant.

The mechanics (clip, noise, snap) live in :mod:`crypto_backends.dp`; this package
decides how much noise from ``[privacy]`` (:mod:`.calibration`) and keeps count of
what has been spent (:mod:`.accountant`).
"""

from securefl.privacy.accountant import PrivacyAccountant
from securefl.privacy.calibration import (
    PrivacyLeakWarning,
    calibrate,
    check_value_bound,
    feature_bounds,
    noise_plan,
    reach,
    release_noise,
    required_rescale,
    round_rho,
    wrap,
    zcdp_epsilon,
)

__all__ = ["PrivacyAccountant", "PrivacyLeakWarning", "calibrate", "check_value_bound", "feature_bounds",
           "noise_plan", "reach", "release_noise", "required_rescale", "round_rho", "wrap", "zcdp_epsilon"]
