"""Fixed-point quantisation shared by the integer schemes (Paillier, FE).

A value ``x`` is clipped to ``[-clip, clip]`` and mapped to the signed integer
``round(x * scale)`` with ``scale = (2**(bits-1) - 1) / clip``, so ``bits`` bits hold
one value including its sign.  Rounding is to nearest by default, or stochastic
(unbiased, with the CSPRNG of :mod:`crypto_backends.randomness`).

What is promised: a single value decodes within ``step/2`` (nearest) or ``step``
(stochastic) of its clipped input, ``step = 1/scale``; a weighted sum of integers
decodes with the error of its terms summed.  What is not: values beyond ``clip``
are clipped (and counted, so the caller can warn); no privacy comes from rounding.

Overflow: :meth:`FixedPoint.check_sum_range` raises
:class:`~crypto_backends.errors.DecodingOverflowError` when an aggregate exceeds
what ``total_weight`` terms of at most ``max_int`` each can reach, which is how a
wrapped-around sum is detected instead of being silently returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import DecodingOverflowError, InvalidInputError, InvalidParameterError
from .randomness import uniform01


class ClippedValuesWarning(RuntimeWarning):
    """Some input values were beyond ``clip`` and were clipped before encryption.

    Shared by every scheme that clips, so one warnings filter covers them all.
    """


@dataclass(frozen=True)
class Quantized:
    """Integers from :meth:`FixedPoint.encode` and how many inputs had to be clipped."""

    values: np.ndarray  # int64
    clipped: int


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed-point code with ``bits`` bits per value over ``[-clip, clip]``."""

    clip: float = 8.0
    bits: int = 16
    stochastic: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.bits, int) and 2 <= self.bits <= 62):
            raise InvalidParameterError(f"bits must be an integer in [2, 62], got {self.bits!r}")
        if not (isinstance(self.clip, (int, float)) and 0 < float(self.clip) < 1e12):
            raise InvalidParameterError(f"clip must be a positive number, got {self.clip!r}")

    @property
    def max_int(self) -> int:
        """Largest magnitude of an encoded value."""
        return (1 << (self.bits - 1)) - 1

    @property
    def scale(self) -> float:
        """Factor from a clipped value to its integer: ``max_int / clip``."""
        return self.max_int / float(self.clip)

    @property
    def step(self) -> float:
        """Distance between two neighbouring representable values."""
        return 1.0 / self.scale

    def value_error(self) -> float:
        """Largest rounding error of one in-range value."""
        return self.step if self.stochastic else self.step / 2

    def encode(self, values: np.ndarray, factor: float = 1.0) -> Quantized:
        """Clip, multiply by ``factor`` and round a finite float vector to int64 (the caller checks finiteness).

        With ``factor`` (a party's weight in units, for example) the product is rounded
        once, so its error is that of one value (``value_error`` in units of
        ``step``), and its magnitude is at most ``ceil(max_int * factor)``.
        """
        x = np.asarray(values, dtype=np.float64)
        clip = float(self.clip)
        clipped = int(np.count_nonzero(np.abs(x) > clip))
        scaled = np.clip(x, -clip, clip) * (self.scale * factor)
        if self.stochastic:
            floor = np.floor(scaled)
            q = floor + (uniform01(scaled.size).reshape(scaled.shape) < (scaled - floor))
        else:
            q = np.rint(scaled)
        bound = self.term_bound(factor)
        q = np.clip(q, -bound, bound)
        return Quantized(q.astype(np.int64), clipped)

    def term_bound(self, factor: float) -> int:
        """Largest magnitude :meth:`encode` gives a value times ``factor``: ``ceil(max_int * factor)``."""
        return math.ceil(self.max_int * factor)

    def decode(self, ints: np.ndarray, divisor: float = 1.0) -> np.ndarray:
        """Map integers (or integer sums) back to floats, dividing by ``divisor`` as well."""
        return np.asarray(ints, dtype=np.float64) / (self.scale * divisor)

    def sum_bound(self, total_weight: int) -> int:
        """Largest magnitude a sum of ``total_weight`` weighted encoded values can reach."""
        return self.max_int * int(total_weight)

    def headroom_bits(self, total_weight: int) -> int:
        """Bits needed for a signed sum of ``total_weight`` weighted values (sign included)."""
        return int(self.sum_bound(total_weight)).bit_length() + 1

    def check_sum_range(self, sums: np.ndarray, total_weight: int) -> None:
        """Raise :class:`DecodingOverflowError` if any sum is beyond :meth:`sum_bound`."""
        bound = self.sum_bound(total_weight)
        arr = np.asarray(sums)
        worst: float
        if arr.size and (arr.dtype == object or arr.dtype.kind in "iu"):
            worst = max(int(arr.max()), -int(arr.min()))
        else:
            worst = float(np.max(np.abs(arr))) if arr.size else 0
        if worst > bound:
            raise DecodingOverflowError(
                f"aggregate magnitude {worst} exceeds {bound}, the most {total_weight} weighted "
                f"{self.bits}-bit values can sum to: the result wrapped around. Lower the total "
                "weight or the bits, or widen the slots"
            )


@dataclass(frozen=True)
class IntegerWeights:
    """Public weights applied as integers ``round(weight * scale)``, for schemes whose sums must not wrap.

    ``table`` names the config table in messages (``crypto.paillier``); ``room`` what a larger
    ``max_total_weight`` costs, ``wraps`` what would wrap around beyond it.
    """

    scale: float
    max_total_weight: int
    table: str
    room: str
    wraps: str

    def of(self, weight: float) -> int:
        """The integer weight of one (checked, positive) ``weight``, or :class:`InvalidInputError`."""
        iw = int(round(weight * self.scale))
        if iw < 1:
            raise InvalidInputError(
                f"weight {weight} rounds to {iw} at weight_scale={self.scale}; "
                f"raise {self.table}.weight_scale so that every weight * weight_scale is at least 1"
            )
        if iw > self.max_total_weight:
            raise InvalidInputError(
                f"integer weight {iw} exceeds max_total_weight={self.max_total_weight}; raise "
                f"{self.table}.max_total_weight (costs {self.room}) or lower weight_scale"
            )
        return iw

    def total(self, weights: list[float] | tuple[float, ...]) -> int:
        """The sum of the integer weights of an aggregate, or :class:`DecodingOverflowError` beyond the maximum."""
        total = sum(int(round(w * self.scale)) for w in weights)
        if total > self.max_total_weight:
            raise DecodingOverflowError(
                f"the aggregate's integer weights sum to {total}, above max_total_weight="
                f"{self.max_total_weight}, so {self.wraps} would wrap around; raise "
                f"{self.table}.max_total_weight or aggregate fewer parties"
            )
        return total
