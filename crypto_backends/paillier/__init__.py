"""The ``paillier`` scheme: packed Paillier with DJN randomisation (see :mod:`.scheme`)."""

from .params import PaillierParams
from .scheme import ClippingWarning, PaillierScheme

__all__ = ["ClippingWarning", "PaillierParams", "PaillierScheme"]
