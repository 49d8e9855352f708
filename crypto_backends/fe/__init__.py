"""The ``fe`` scheme (HybridAlpha-style functional encryption); see :mod:`.scheme`."""

from .scheme import FEParams, FEScheme

__all__ = ["FEParams", "FEScheme"]
