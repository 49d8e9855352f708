"""The ``ckks`` scheme: CKKS on TenSEAL, parties hold the key, the aggregator only adds.

Modules: :mod:`.params` (parameter sets and the security table), :mod:`.codec`
(chunk framing, TenSEAL errors as typed errors), :mod:`.flooding` (noise
flooding against Li-Micciancio key recovery), :mod:`.scheme` (the roles).
"""

from .params import CKKSParams
from .scheme import CKKSScheme, ClippedValuesWarning

__all__ = ["CKKSParams", "CKKSScheme", "ClippedValuesWarning"]
