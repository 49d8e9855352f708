"""``secagg``: SecAgg+ masking with dropout recovery (Bell et al., CCS 2020); see :mod:`.scheme`."""

from .params import SecAggParams
from .scheme import SecAggScheme

__all__ = ["SecAggParams", "SecAggScheme"]
