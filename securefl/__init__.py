"""securefl: privacy-preserving secure aggregation for federated learning.

The recipe layer: a TOML configuration picks the scheme (and, for the demos,
the data and a built-in model); your own model is a :class:`Trainer`, run with
:func:`simulate` (every party in this process) or :func:`serve_party` (one
networked party).  The schemes themselves live in :mod:`crypto_backends` (the
hazmat layer).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from crypto_backends.errors import SecureFLError
from securefl.config import Config
from securefl.config import load as load_config
from securefl.core.federation import RoundMetrics, RunResult
from securefl.ml.trainer import Trainer
from securefl.simulation import simulate

if TYPE_CHECKING:
    from securefl.transport.grpc.party_client import serve_party

try:
    __version__ = version("securefl")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0+source"


def __getattr__(name: str) -> Any:
    # the networked party needs grpc: imported when it is used, not with securefl
    if name == "serve_party":
        from securefl.transport.grpc.party_client import serve_party

        return serve_party
    raise AttributeError(f"module 'securefl' has no attribute {name!r}")


__all__ = ["Config", "RoundMetrics", "RunResult", "SecureFLError", "Trainer", "__version__", "load_config",
           "serve_party", "simulate"]
