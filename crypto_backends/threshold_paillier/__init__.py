"""The ``threshold_paillier`` scheme: packed Paillier with t-of-n threshold decryption (see :mod:`.scheme`)."""

from .params import ThresholdPaillierParams
from .scheme import ThresholdPaillierScheme

__all__ = ["ThresholdPaillierParams", "ThresholdPaillierScheme"]
