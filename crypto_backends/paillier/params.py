"""Parameters of the ``paillier`` scheme (``[crypto.paillier]`` in a config file).

Key sizes follow NIST SP 800-57 Part 1 (rev. 5), table 2: a 2048-bit modulus gives
about 112-bit security, 3072 bits about 128-bit.  The default is 3072 bits; 2048
is accepted; anything smaller needs ``allow_insecure`` (tests only).

The slot layout.  A party rounds its *weighted* value once, to an integer in units
of ``weight_unit / scale`` (``scale = max_int / clip`` of the fixed-point code):
``t = round(x * scale * weight / weight_unit)``.  Since ``|x| <= clip`` and
``weight <= max_weight``, ``|t| <= max_int * ceil(max_weight / weight_unit)``
(:attr:`PaillierParams.party_bound`), so a slot summing ``max_parties`` shifted
terms needs ``bit_length(2 * party_bound * max_parties)`` bits, about
``bits + log2(parties) + log2(max_weight / weight_unit) + 1``, and
``floor((bits(n) - 1) / slot_bits)`` slots fit below ``n``.

Why not the floor ``bits + log2(parties) + 1``.  That needs each party to scale by
``weight / W`` with ``W`` the aggregate's total weight, which no honest party knows
when it protects (it sees its own weight only; who drops out is decided later), and
no homomorphic step can divide afterwards.  The equivalent a party *can* apply is a
bound the federation states: ``max_weight``.  The precision it costs is explicit:
the fused mean is off by at most ``value_error * contributors * weight_unit /
total_weight`` (:meth:`PaillierParams.mean_error`), no worse than the quantisation
of one value whenever the contributors' average weight is at least ``weight_unit``;
the bytes it costs are the ``log2(max_weight / weight_unit)`` bits of every slot.
Stating ``max_weight`` tight (the largest party's rows) and ``weight_unit`` at
about an eighth of it reaches the floor within 3 bits per slot.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..base import SchemeParams
from ..encoding import FixedPoint
from ..errors import InvalidParameterError

# (modulus bits, classical security bits), NIST SP 800-57 Part 1 rev. 5, table 2.
_NIST_RSA_LEVELS = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))
MAX_SLOT_BITS = 63  # a slot must fit numpy's uint64 for vectorised packing
AUTO_PARTIES = 64
"""Parties assumed by ``max_parties = 0`` when no federation size was given (see ``for_federation``)."""


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
    * ``max_weight``: the largest weight one party may apply (a bound the federation
      states, e.g. its largest party's rows); a larger one is refused at the party.
    * ``weight_unit``: weighted values are rounded in units of ``weight_unit`` weight
      times one quantisation step.  Promised: the fused mean is off by at most
      ``value_error * contributors * weight_unit / total_weight``, so weights of at least
      ``weight_unit`` keep the precision of ``bits``; smaller ones are accepted at
      proportionally coarser precision (:meth:`mean_error` says how much).  Every slot
      pays ``log2(max_weight / weight_unit)`` bits for the range between the two.
    * ``max_parties``: the most contributors one aggregate may hold; it sizes every
      slot (``log2`` of it) and combining more is refused, never wrapped.  ``0`` (the
      default) derives it from the federation when keys are made (:meth:`for_federation`);
      parameters never given a federation size assume :data:`AUTO_PARTIES` parties.
    * ``encrypt_processes``: processes sharing one party's encryption (helper
      processes fed public values over pipes); 0 = one per core, 1 = this process only.
      It changes speed only, never the ciphertexts' format or security.

    The defaults (``max_weight = 65536``, ``weight_unit = 16``) accept sample counts up
    to 65536 and keep the fused mean of weights 1..4 within 1e-3; they cost 12 bits of
    every slot.  A federation that states its weights tightly (``max_weight`` = its
    largest weight, ``weight_unit`` = an eighth of it) pays 3 (see the module docstring).
    """

    key_bits: int = 3072
    clip: float = 8.0
    bits: int = 16
    stochastic_rounding: bool = False
    max_weight: float = 65536.0
    weight_unit: float = 16.0
    max_parties: int = 0
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
        if isinstance(self.max_parties, bool) or not isinstance(self.max_parties, int) \
                or not 0 <= self.max_parties <= 1_000_000:
            raise InvalidParameterError(
                f"max_parties={self.max_parties!r}: use 0 (derived from the federation) or a positive integer "
                "at least the number of parties one aggregate may hold"
            )
        for name in ("max_weight", "weight_unit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 2**52:
                raise InvalidParameterError(
                    f"{name}={value!r}: use a positive number (max_weight: the largest weight a party may "
                    "apply, e.g. its rows; weight_unit: the weight from which values keep their full precision)"
                )
        if self.weight_unit > self.max_weight:
            raise InvalidParameterError(
                f"weight_unit={self.weight_unit} exceeds max_weight={self.max_weight}: no weight the federation "
                "allows would keep its precision; lower weight_unit to at most max_weight"
            )
        if isinstance(self.encrypt_processes, bool) or not isinstance(self.encrypt_processes, int) \
                or not 0 <= self.encrypt_processes <= 1024:
            raise InvalidParameterError(
                f"encrypt_processes={self.encrypt_processes!r}: use 0 (one per core), 1 (no helper "
                "processes) or another small positive integer"
            )
        self.fixed_point()  # checks clip and bits
        self._check_slots()

    def _check_slots(self) -> None:
        # a party's term is computed in float64: past 2**52 its rounding would no longer be to the integer
        if self.party_bound > 2**52 or self.slot_bits > MAX_SLOT_BITS:
            raise InvalidParameterError(
                f"a slot would need {self.slot_bits} bits (bits={self.bits}, max_weight / weight_unit = "
                f"{self.weight_steps}, {self.parties_bound} parties); lower bits or max_weight, or raise "
                f"weight_unit, so that bits + log2(max_weight / weight_unit) + log2(parties) + 1 stays within "
                f"{MAX_SLOT_BITS}"
            )
        if self.slots_per_ciphertext < 1:
            raise InvalidParameterError(f"key_bits={self.key_bits} is too small for {self.slot_bits}-bit slots")

    def for_federation(self, parties: int) -> PaillierParams:
        """``max_parties`` derived as ``parties`` when it is 0 (auto); else unchanged."""
        if self.max_parties:
            return self
        derived = replace(self, max_parties=max(1, int(parties)))
        derived.validate()
        return derived

    @property
    def parties_bound(self) -> int:
        """The ``max_parties`` in force: as set, or :data:`AUTO_PARTIES` when 0 (auto)."""
        return self.max_parties or AUTO_PARTIES

    @property
    def weight_steps(self) -> int:
        """``ceil(max_weight / weight_unit)``: how many weight units the heaviest party's term may span."""
        return math.ceil(float(self.max_weight) / float(self.weight_unit))

    @property
    def party_bound(self) -> int:
        """Largest magnitude of one party's integer term (a value at ``clip`` with weight ``max_weight``)."""
        return self.fixed_point().max_int * self.weight_steps

    def fixed_point(self) -> FixedPoint:
        """The fixed-point encoding of values into plaintext slots these parameters give."""
        return FixedPoint(clip=float(self.clip), bits=self.bits, stochastic=self.stochastic_rounding)

    @property
    def slot_bits(self) -> int:
        """Bits of one packed slot: room for ``max_parties`` terms, each shifted into ``[0, 2 * party_bound]``."""
        return (2 * self.party_bound * self.parties_bound).bit_length()

    @property
    def slots_per_ciphertext(self) -> int:
        """Slots that fit below ``n`` (whose top bit is bit ``key_bits - 1``)."""
        return (self.key_bits - 1) // self.slot_bits

    def layout_tag(self) -> int:
        """32-bit checksum of everything a party and the reveal must agree on to decode."""
        blob = struct.pack(
            ">IdI?Idd", self.key_bits, float(self.clip), self.bits, self.stochastic_rounding,
            self.parties_bound, float(self.max_weight), float(self.weight_unit),
        )
        return zlib.crc32(blob)

    def mean_error(self, weights: Sequence[float]) -> float:
        """Largest rounding error of the fused weighted mean of contributors with ``weights``.

        Each party's term is one rounding (half a unit, or one unit stochastically) of
        ``weight_unit / scale`` in the weighted sum; divided by the total weight.
        """
        total = float(sum(weights))
        if not weights or total <= 0:
            return 0.0
        return self.fixed_point().value_error() * len(weights) * float(self.weight_unit) / total

    def floor_bytes_per_value(self, parties: int) -> float:
        """The floor ``2 |n| / (|n| / (bits + log2(parties) + 1))`` in bytes: slots holding nothing but the sum.

        What packing would cost if every party could scale by ``weight / W`` (it cannot:
        see the module docstring); the bench prints it beside the measured bytes.
        """
        return 2 * (self.bits + math.log2(max(1, parties)) + 1) / 8

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
