"""crypto_backends: the secure-aggregation schemes of securefl, as a hazmat layer.

Vectors in, vectors out.  This package knows party ids, weights and keys, and
nothing of rounds' orchestration, models or networks.  Start with
:mod:`crypto_backends.base` (the interface) and :mod:`crypto_backends.registry`.
"""

from . import registry
from .base import (
    SECRET_ACCESS,
    AggregatorKey,
    AuthorityKey,
    FunctionKey,
    InsecureParametersWarning,
    Key,
    KeySet,
    PartyKey,
    RevealSite,
    Role,
    Scheme,
    SchemeParams,
    ThreatModel,
    weighted_mean,
)
from .envelope import Envelope
from .errors import SecureFLError

__all__ = [
    "SECRET_ACCESS",
    "AggregatorKey",
    "AuthorityKey",
    "Envelope",
    "FunctionKey",
    "InsecureParametersWarning",
    "Key",
    "KeySet",
    "PartyKey",
    "RevealSite",
    "Role",
    "Scheme",
    "SchemeParams",
    "SecureFLError",
    "ThreatModel",
    "registry",
    "weighted_mean",
]
