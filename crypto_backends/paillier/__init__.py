"""The ``paillier`` scheme: packed Paillier with DJN randomisation (see :mod:`.scheme`)."""

from ..encoding import ClippedValuesWarning
from .params import PaillierParams
from .scheme import PaillierScheme

__all__ = ["ClippedValuesWarning", "PaillierParams", "PaillierScheme"]
