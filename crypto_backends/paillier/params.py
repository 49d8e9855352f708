"""Parameters of the ``paillier`` scheme (``[crypto.paillier]`` in a config file).

Key sizes follow NIST SP 800-57 Part 1 (rev. 5), table 2: a 2048-bit modulus gives
about 112-bit security, 3072 bits about 128-bit.  The default is 3072 bits; 2048
is accepted; anything smaller needs ``allow_insecure`` (tests only).

The slot layout follows from the encoding parameters: a value is quantised to
``bits`` bits over ``[-clip, clip]`` and shifted to be non-negative; a slot holds
the sum over all parties of ``integer_weight * shifted_value``, so it needs
``bit_length(2 * max_int * max_total_weight)`` bits, and
``floor((bits(n) - 1) / slot_bits)`` slots fit below ``n``.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..base import SchemeParams
from ..encoding import FixedPoint
from ..errors import InvalidParameterError

# (modulus bits, classical security bits), NIST SP 800-57 Part 1 rev. 5, table 2.
_NIST_RSA_LEVELS = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))
MAX_SLOT_BITS = 63  # a slot must fit numpy's uint64 for vectorised packing
AUTO_PARTIES = 64
"""Parties assumed by ``max_total_weight = 0`` when no federation size was given (see ``for_federation``)."""


def modulus_security_bits(key_bits: int) -> int:
    """Classical security level of a ``key_bits`` RSA/Paillier modulus (conservative, stepwise)."""
    for bits, level in _NIST_RSA_LEVELS:
        if key_bits >= bits:
            return level
    # below 1024 bits: the GNFS cost curve, roughly; only ever used for test keys
    return max(1, int(80 * key_bits / 1024) - 20)


@dataclass(frozen=True)
class PaillierParams(SchemeParams):
    """Key size, fixed-point encoding and headroom of the ``paillier`` scheme.

    * ``key_bits``: bit length of the modulus ``n`` (3072 default, 2048 allowed).
    * ``clip``, ``bits``: each value is clipped to ``[-clip, clip]`` and quantised to
      ``bits`` bits (sign included); rounding error at most ``clip / (2**(bits-1) - 1) / 2``.
    * ``stochastic_rounding``: unbiased random rounding (error bound doubles).
    * ``max_weight``: the largest integer weight one party may apply (for example its
      row count); a larger one is refused at the party.
    * ``max_total_weight``: the largest sum of integer weights one aggregate may hold;
      it sizes the headroom of every slot.  Combining more is refused, never wrapped.
      ``0`` (the default) derives it from the federation when keys are made:
      ``parties * max_weight`` (:meth:`for_federation`); parameters never given a
      federation size assume :data:`AUTO_PARTIES` parties.
    * ``weight_scale``: a party's integer weight is ``round(weight * weight_scale)``;
      1.0 suits sample counts, 1000 suits weights given with three decimals.
    * ``encrypt_processes``: processes sharing one party's encryption (helper
      processes fed public values over pipes); 0 = one per core, 1 = this process only.
      It changes speed only, never the ciphertexts' format or security.
    """

    key_bits: int = 3072
    clip: float = 8.0
    bits: int = 16
    stochastic_rounding: bool = False
    max_total_weight: int = 0
    max_weight: int = 65536
    weight_scale: float = 1.0
    encrypt_processes: int = 0

    def security_bits(self) -> int:
        """The classical security level of a ``key_bits`` modulus (see ``modulus_security_bits``)."""
        return modulus_security_bits(self.key_bits)

    def validate(self) -> None:
        """Raise unless every field is in range; keys under 2048 bits need ``allow_insecure``."""
        if not isinstance(self.key_bits, int) or not 256 <= self.key_bits <= 16384 or self.key_bits % 64:
            raise InvalidParameterError(
                f"key_bits={self.key_bits!r}: use a multiple of 64 between 256 and 16384 "
                "(3072 is the default, 2048 the smallest accepted without allow_insecure)"
            )
        if isinstance(self.max_total_weight, bool) or not isinstance(self.max_total_weight, int) \
                or self.max_total_weight < 0:
            raise InvalidParameterError(
                f"max_total_weight={self.max_total_weight!r}: use 0 (derived from the federation: parties * "
                "max_weight) or a positive integer at least the sum of the integer weights in one aggregate"
            )
        if isinstance(self.max_weight, bool) or not isinstance(self.max_weight, int) or self.max_weight < 1:
            raise InvalidParameterError(
                f"max_weight={self.max_weight!r}: use a positive integer at least any party's integer weight "
                "(its row count, with weight_scale = 1)"
            )
        scale = self.weight_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (0 < scale < 2**40):
            raise InvalidParameterError(f"weight_scale={scale!r}: use a positive number such as 1.0 or 1000.0")
        if isinstance(self.encrypt_processes, bool) or not isinstance(self.encrypt_processes, int) \
                or not 0 <= self.encrypt_processes <= 1024:
            raise InvalidParameterError(
                f"encrypt_processes={self.encrypt_processes!r}: use 0 (one per core), 1 (no helper "
                "processes) or another small positive integer"
            )
        self.fixed_point()  # checks clip and bits
        if self.slot_bits > MAX_SLOT_BITS:
            raise InvalidParameterError(
                f"a slot would need {self.slot_bits} bits (bits={self.bits}, total weight up to "
                f"{self.total_weight_bound}); lower bits, max_weight or max_total_weight so that "
                f"bits + log2(total weight) + 1 stays within {MAX_SLOT_BITS}, or give weights in "
                "larger units (weight_scale below 1)"
            )
        if self.slots_per_ciphertext < 1:
            raise InvalidParameterError(f"key_bits={self.key_bits} is too small for {self.slot_bits}-bit slots")

    def for_federation(self, parties: int) -> PaillierParams:
        """``max_total_weight`` derived as ``parties * max_weight`` when it is 0 (auto); else unchanged."""
        if self.max_total_weight:
            return self
        derived = replace(self, max_total_weight=max(1, int(parties)) * self.max_weight)
        derived.validate()
        return derived

    @property
    def total_weight_bound(self) -> int:
        """The ``max_total_weight`` in force: as set, or for :data:`AUTO_PARTIES` parties when 0 (auto)."""
        return self.max_total_weight or AUTO_PARTIES * self.max_weight

    def fixed_point(self) -> FixedPoint:
        """The fixed-point encoding of values into plaintext slots these parameters give."""
        return FixedPoint(clip=float(self.clip), bits=self.bits, stochastic=self.stochastic_rounding)

    @property
    def slot_bits(self) -> int:
        """Bits of one packed slot: room for ``max_total_weight`` shifted values."""
        return (2 * self.fixed_point().max_int * self.total_weight_bound).bit_length()

    @property
    def slots_per_ciphertext(self) -> int:
        """Slots that fit below ``n`` (whose top bit is bit ``key_bits - 1``)."""
        return (self.key_bits - 1) // self.slot_bits

    def layout_tag(self) -> int:
        """32-bit checksum of everything a party and the reveal must agree on to decode."""
        blob = struct.pack(
            ">IdI?Id", self.key_bits, float(self.clip), self.bits, self.stochastic_rounding,
            self.total_weight_bound, float(self.weight_scale),
        )
        return zlib.crc32(blob)

    def integer_weight(self, weight: float) -> int:
        """The integer a party multiplies its shifted values by."""
        return int(round(weight * self.weight_scale))

    def weight_error(self, weights: list[float]) -> float:
        """Largest relative change any weight suffers from rounding to an integer."""
        return max((abs(self.integer_weight(w) - w * self.weight_scale) / (w * self.weight_scale) for w in weights),
                   default=0.0)

    @classmethod
    def presets(cls) -> Mapping[str, PaillierParams]:
        """The named presets: "default", "fast" (2048-bit keys) and the insecure unit-test one."""
        return {
            "default": cls(),
            "fast": cls(key_bits=2048),
            # small keys so the unit tests run in seconds; loudly insecure
            "test": cls(key_bits=768, allow_insecure=True),
        }


def bytes_per_value(params: PaillierParams) -> float:
    """Upload size per value at full packing (ciphertexts only)."""
    return 2 * math.ceil(params.key_bits / 8) / params.slots_per_ciphertext
