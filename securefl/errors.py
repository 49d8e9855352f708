"""Errors of the federated core.  They share :class:`SecureFLError` with crypto_backends."""

from __future__ import annotations

from crypto_backends.errors import SecureFLError


class ConfigError(SecureFLError, ValueError):
    """A configuration file or ``--set`` override is invalid.  The message names the key."""


class DataError(SecureFLError, ValueError):
    """A data set cannot be loaded or partitioned as configured."""


class QuorumError(SecureFLError, RuntimeError):
    """Fewer parties answered a round than the configured quorum."""


class PartyError(SecureFLError, RuntimeError):
    """A party failed while training or protecting its update."""


class BudgetExceededError(SecureFLError, RuntimeError):
    """A round would spend more differential-privacy budget than ``[privacy]`` allows; it was not run."""


__all__ = ["BudgetExceededError", "ConfigError", "DataError", "PartyError", "QuorumError", "SecureFLError"]
