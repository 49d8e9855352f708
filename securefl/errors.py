"""Errors of the federated core.  They share :class:`SecureFLError` with crypto_backends.

Everything ``securefl`` raises on purpose is one of these or one of
:mod:`crypto_backends.errors` (re-exported below), so ``except SecureFLError``
catches the whole family.  Each derives from the Python built-in that names its
category too (``ValueError`` for a wrong value, ``TypeError`` for a missing or
wrong argument, ``RuntimeError`` for a run that cannot go on), and each message
says what to do instead.
"""

from __future__ import annotations

from crypto_backends import errors as _crypto_errors
from crypto_backends.errors import (
    CryptoError as CryptoError,
)
from crypto_backends.errors import (
    InsecureParameterError as InsecureParameterError,
)
from crypto_backends.errors import (
    InvalidInputError as InvalidInputError,
)
from crypto_backends.errors import (
    InvalidParameterError as InvalidParameterError,
)
from crypto_backends.errors import (
    SecureFLError as SecureFLError,
)


class ConfigError(SecureFLError, ValueError):
    """A configuration file, ``--set`` override or Python-built config is invalid.  The message names the key."""


class DataError(SecureFLError, ValueError):
    """A data set cannot be loaded or partitioned as configured, or does not suit the configured model."""


class PartyError(SecureFLError, ValueError):
    """A party's local training returned something that cannot be fused.

    Raised by the model adapters' output check (:func:`securefl.ml.models.checked_update`,
    :func:`securefl.ml.models.checked_weight`): a vector of the wrong length or with
    NaN or infinite values, or a weight that is not a positive finite number.  The
    round engine drops that party for the round, with this message as the reason.
    """


class FusionError(SecureFLError, ValueError):
    """A revealed aggregate cannot be turned into a model (e.g. its contributors' total weight is not positive)."""


class UsageError(SecureFLError, TypeError):
    """A securefl function was called without something the configuration needs; the message names it."""


class QuorumError(SecureFLError, RuntimeError):
    """Fewer parties answered a round than the configured quorum."""


class BudgetExceededError(SecureFLError, RuntimeError):
    """A round would spend more differential-privacy budget than ``[privacy]`` allows; it was not run."""


class ReplayError(SecureFLError, RuntimeError):
    """A party was asked for a round it already answered (perhaps under another key set) and refuses.

    A second answer for one round (a second encryption under the same pads, or a
    sum of the same inputs over another contributor set) would let the aggregator
    difference out this party's update.  The party sits the round out.
    """


class StateError(SecureFLError, RuntimeError):
    """A role's durable security state (``transport.state_dir``) is unreadable, foreign or exposed."""


class StateLockedError(StateError):
    """Another live process holds this role's security state: two processes of one party must not both answer."""


class KeyErasedError(SecureFLError, RuntimeError):
    """A party asked the key authority for a key the authority handed out once and then erased.

    Under a scheme that declares ``dealer_erases_party_keys`` (``threshold_paillier``) the
    authority keeps no party key after delivering it, so the party must keep its own (a
    networked party does, in ``transport.state_dir``); a party that lost it needs a new key set.
    """


class TransportError(SecureFLError, RuntimeError):
    """A peer could not be reached in time, or refused a request; the message says which and why."""


class RefusedError(TransportError):
    """A peer answered a request with a refusal; ``status`` is the gRPC status name (e.g. ``ALREADY_EXISTS``)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


def _reexport_crypto_errors() -> list[str]:
    """Bind every public exception class of :mod:`crypto_backends.errors` here; return their names.

    A loop rather than a list of names, so that a class added, renamed or merged there
    (e.g. the ``*MismatchError`` classes) is re-exported without an edit here.  The
    classes imported by name above are the ones securefl itself uses.
    """
    names = []
    for name, value in vars(_crypto_errors).items():
        if not name.startswith("_") and isinstance(value, type) and issubclass(value, BaseException):
            globals()[name] = value
            names.append(name)
    return names


__all__ = sorted({*_reexport_crypto_errors(),
                  "BudgetExceededError", "ConfigError", "DataError", "FusionError", "KeyErasedError", "PartyError",
                  "QuorumError", "RefusedError", "ReplayError", "StateError", "StateLockedError", "TransportError",
                  "UsageError"})
