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


class TransportError(SecureFLError, RuntimeError):
    """A peer could not be reached in time, or refused a request; the message says which and why."""


class RefusedError(TransportError):
    """A peer answered a request with a refusal; ``status`` is the gRPC status name (e.g. ``ALREADY_EXISTS``)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


__all__ = ["BudgetExceededError", "ConfigError", "DataError", "PartyError", "QuorumError", "RefusedError", "SecureFLError",
           "TransportError"]
