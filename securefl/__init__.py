"""securefl: privacy-preserving secure aggregation for federated learning.

The recipe layer: a TOML configuration picks the data, the model and the
scheme; :func:`securefl.transport.inproc.run` runs the federation.  The schemes
themselves live in :mod:`crypto_backends` (the hazmat layer).
"""

from importlib.metadata import PackageNotFoundError, version

from crypto_backends.errors import SecureFLError

try:
    __version__ = version("securefl")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0+source"

__all__ = ["SecureFLError", "__version__"]
