"""The ``paillier`` scheme: packed Paillier with DJN randomisation (see :mod:`.scheme`)."""

from .params import PaillierParams
from ..encoding import ClippedValuesWarning
from .scheme import PaillierScheme

__all__ = ["ClippedValuesWarning", "PaillierParams", "PaillierScheme"]
