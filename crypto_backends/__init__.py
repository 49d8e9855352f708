"""crypto_backends: the secure-aggregation schemes of securefl, as a hazmat layer.

Vectors in, vectors out.  This package knows party ids, weights and keys, and
nothing of rounds' orchestration, models or networks.  Start with
:mod:`crypto_backends.base` (the interface), :mod:`crypto_backends.registry` and
:mod:`crypto_backends.roundtrip` (one weighted mean end to end).
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
from .wrapper import SchemeWrapper

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
    "SchemeWrapper",
    "SecureFLError",
    "ThreatModel",
    "registry",
    "weighted_mean",
]
