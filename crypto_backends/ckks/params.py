"""CKKS parameters: lean sets for an aggregation that only adds, precise after flooding.

Parties multiply by their weight *before* encrypting, so the aggregator only adds
ciphertexts: no multiplication, no rescaling, no relinearisation or Galois keys.
The data primes only hold the weighted sum (headroom) at the scale (precision);
TenSEAL needs one more ("special") prime to build a context, which only serves
key switching, never happens here, and is not part of a ciphertext.

Bytes.  A party's fresh symmetric ciphertext is sent seeded (see :mod:`.codec`):
one polynomial of ``N`` coefficients per data prime plus a 64-byte seed for the
uniform half, so ``N * primes * 8 / (N/2) = 16`` bytes per value per data prime
before SEAL's zstd compression (which removes the unused high bits of primes
below 64 bits).  The default's two 46-bit data primes measure about 27 bytes per
value up; the aggregate, a sum with no seed, travels in full (about 54).

Security follows Table 1 of the HomomorphicEncryption.org standard
(Albrecht et al., "Homomorphic Encryption Security Standard", 2018; ternary
secret, error sigma 3.2, classical attacks): the *total* coefficient modulus,
special prime included, must stay within the bound for ``N``.  SEAL (so
TenSEAL) enforces the 128-bit column itself and refuses anything larger.  The
default, N = 4096 with primes [46, 46, 17], is 109 bits: exactly the 128-bit
bound of that table for N = 4096.

Why N = 4096 and a scale of 2^52.  Noise flooding (:mod:`.flooding`) releases a
chunk's value with noise of width proportional to the chunk error's *norm* over
its N/2 slots times the square root of the chunks published, so per value the
released error grows as ``sqrt(length * N/2) / scale``: the smallest ring that
holds a useful modulus is the most precise, and a larger scale pays off until
float64 rounding in SEAL's encoder (relative 2^-52 of the values) is as large as
the RLWE error, which at 2^52 it is.  Two data primes leave ``92 - 3 - 52 = 37``
bits of headroom for ``clip * total weight``: with clip 16, total weights up to
2^33 keep the full scale.

Precision.  A value ``v`` is encoded as ``round(v * 2**scale_bits)`` in the
coefficients of a polynomial mod ``q`` (the data primes' product), so the weighted
sum of all parties must satisfy ``|sum| * 2**scale_bits < q / 2``, which is what
``clip * max_total_weight`` guarantees.  Fresh symmetric encryption adds an error
of standard deviation about 3.24 per coefficient (SEAL's centred binomial
sampler) plus 1/12 of variance for rounding; a slot of an aggregate of ``k``
ciphertexts is then off by a Gaussian of standard deviation
``sqrt(N/2 * k * ERROR_VARIANCE) / 2**scale_bits`` (measured here: 3.24-3.27 per
coefficient for N = 2048..8192), plus float64 rounding of SEAL's encoder and
decoder: measured 1.05 * 2^-52 of the magnitude per slot (RMS) for one encoding
and decoding at full magnitude; an aggregate of total weight ``W`` has ``k``
encodings of at most ``clip * w_i`` and one decoding of at most ``clip * W``,
hence at most ``2.1 * 2^-52 * clip * W``, bounded here by
``FLOAT_ROUNDING * clip * W`` with ``FLOAT_ROUNDING = 2^-50`` (about 2x margin).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..base import SchemeParams
from ..errors import InsecureParameterError, InvalidParameterError

# Largest total coefficient-modulus bit count per ring degree N for 128/192/256-bit
# classical security (HE standard, Table 1, uniform ternary secret).
HE_STANDARD_MAX_BITS: Mapping[int, Mapping[int, int]] = {
    1024: {128: 27, 192: 19, 256: 14},
    2048: {128: 54, 192: 37, 256: 29},
    4096: {128: 109, 192: 75, 256: 58},
    8192: {128: 218, 192: 152, 256: 118},
    16384: {128: 438, 192: 305, 256: 237},
    32768: {128: 881, 192: 611, 256: 476},
}

SEAL_MAX_PRIME_BITS = 60
# Variance of one coefficient of a fresh symmetric encryption's error: SEAL's
# centred binomial sampler (42 coin flips, variance 42/4) plus rounding the
# encoding to integers (uniform on [-1/2, 1/2], variance 1/12).
ERROR_VARIANCE = 42 / 4 + 1 / 12
# Margin between the true sum and half the data modulus (bits): one for the sign
# convention of the centred representative, one for the error and rounding, and one
# per data prime beyond the first (SEAL's b-bit primes lie between 2**(b-1) and 2**b).
HEADROOM_MARGIN_BITS = 2
# RMS of one slot's float64 rounding (SEAL's encoder and decoder) per unit of the
# largest magnitude encoded, with about 2x margin (module docstring).
FLOAT_ROUNDING = 2.0**-50
AUTO_PARTIES = 64
"""Parties assumed by ``max_total_weight = 0`` when no federation size was given (see ``for_federation``)."""
MIN_AUTO_SCALE_BITS = 20
MIN_AUTO_TOTAL_WEIGHT = 16384.0
"""The derived headroom never goes below this (the fixed default before it was derived)."""


@dataclass(frozen=True)
class CKKSParams(SchemeParams):
    """Parameters of the ``ckks`` scheme.

    * ``poly_modulus_degree`` (N): ring degree; one ciphertext holds N/2 values.
    * ``coeff_mod_bit_sizes``: prime sizes; all but the last are the data primes
      that travel, the last is TenSEAL's special prime (never in a ciphertext).
    * ``scale_bits``: values are encoded with scale ``2**scale_bits``.
    * ``clip``: every input value is clipped to ``[-clip, clip]`` (counted, warned).
    * ``max_total_weight``: the largest sum of the weights of one aggregate.
      ``clip * max_total_weight * 2**scale_bits`` must fit the data primes.  ``0``
      (the default) derives it from the federation when keys are made, as
      ``max(16384, parties * max_weight)``, and lowers ``scale_bits`` as far as needed to fit
      (:meth:`for_federation`; :data:`AUTO_PARTIES` parties when none is given).
      The error is absolute on the weighted *sum*, so the fused mean loses nothing
      it needs: its error is the sum's divided by the total weight.
    * ``max_weight``: a party's typical largest weight (e.g. its rows), which sizes the
      derived headroom beyond 16 parties (one weight may exceed it while the total fits).
    * ``n_threads``: TenSEAL's thread pool size for a context (used by TenSEAL's
      own parallel operations).  Chunks are encrypted one after the other:
      TenSEAL holds the GIL, and a Python thread pool measured slower here.
    * ``flooding_bits``: statistical security ``s`` of the noise flooding applied
      by ``release()`` (against Li-Micciancio key recovery), see ``flooding``.
    * ``flooding_queries``: how many aggregates may be published under one key set
      (each of their ciphertext chunks counts as one decryption).
    """

    poly_modulus_degree: int = 4096
    coeff_mod_bit_sizes: tuple[int, ...] = (46, 46, 17)
    scale_bits: int = 52
    clip: float = 16.0
    max_total_weight: float = 0.0
    max_weight: float = 1024.0
    n_threads: int = 2
    flooding_bits: int = 30
    flooding_queries: int = 64

    # --- derived -----------------------------------------------------------------
    @property
    def slots(self) -> int:
        """Values per ciphertext (chunk)."""
        return self.poly_modulus_degree // 2

    @property
    def data_bits(self) -> int:
        """Bits of the modulus a ciphertext lives under (every prime but the special one)."""
        return sum(self.coeff_mod_bit_sizes[:-1])

    @property
    def total_bits(self) -> int:
        """Bits of the whole coefficient modulus (data primes and the special prime)."""
        return sum(self.coeff_mod_bit_sizes)

    @property
    def scale(self) -> float:
        """The CKKS scale ``2**scale_bits`` values are multiplied by before encoding."""
        return 2.0**self.scale_bits

    @property
    def margin_bits(self) -> int:
        """Bits kept between the largest |weighted sum| at scale and the data modulus (see the constant)."""
        return HEADROOM_MARGIN_BITS + len(self.coeff_mod_bit_sizes) - 2

    @property
    def headroom_bits(self) -> int:
        """log2 of the largest |weighted sum| the data primes can hold."""
        return self.data_bits - self.margin_bits - self.scale_bits

    @property
    def max_abs_sum(self) -> float:
        """The largest |weighted sum| the parameters promise to represent: clip * max_total_weight."""
        return float(self.clip) * float(self.max_total_weight)

    def rlwe_slot_sd(self, contributors: int) -> float:
        """Standard deviation of one slot's encryption error in an aggregate of ``contributors`` ciphertexts."""
        return math.sqrt(self.slots * contributors * ERROR_VARIANCE) / self.scale

    def slot_error_sd(self, contributors: int, total_weight: float) -> float:
        """Bound on the RMS of one slot's error in an aggregate of ``contributors`` ciphertexts of total weight
        ``total_weight``: the encryption error plus float64 rounding (both terms in the module docstring)."""
        return self.rlwe_slot_sd(contributors) + FLOAT_ROUNDING * float(self.clip) * float(total_weight)

    # --- the SchemeParams interface --------------------------------------------------
    def security_bits(self) -> int:
        """Classical security from the HE standard's table: 256, 192 or 128 bits.

        Parameters beyond the 128-bit column are refused by :meth:`validate`
        (SEAL refuses them too); were they reached, the estimate scales the
        bound linearly (LWE hardness grows about as N / log q), a rough figure.
        """
        table = HE_STANDARD_MAX_BITS[self.poly_modulus_degree]
        for level in (256, 192, 128):
            if self.total_bits <= table[level]:
                return level
        return min(127, int(128 * table[128] / self.total_bits))

    def validate(self) -> None:
        """Raise ``InvalidParameterError`` (``InsecureParameterError`` below 128-bit security) unless every
        parameter is in range and sums of up to ``max_total_weight`` clipped updates fit the headroom."""
        self._validate_ring()
        if not (isinstance(self.scale_bits, int) and 8 <= self.scale_bits <= SEAL_MAX_PRIME_BITS):
            raise InvalidParameterError(f"scale_bits must be an integer in [8, 60], got {self.scale_bits!r}")
        if not self.max_total_weight:
            self.for_federation(AUTO_PARTIES).validate()
            return
        self._validate_headroom()
        self._validate_noise()

    def _validate_ring(self) -> None:
        """The ring degree and the prime sizes: a standard degree, at most the 128-bit bound in total."""
        n, bits = self.poly_modulus_degree, self.coeff_mod_bit_sizes
        if n not in HE_STANDARD_MAX_BITS:
            raise InvalidParameterError(
                f"poly_modulus_degree {n!r} is not one of {sorted(HE_STANDARD_MAX_BITS)}; 4096 is the default "
                "(2048 values per ciphertext), 8192 the 256-bit option"
            )
        if not isinstance(bits, tuple) or len(bits) < 2 or not all(isinstance(b, int) for b in bits):
            raise InvalidParameterError(
                f"coeff_mod_bit_sizes must list at least two prime sizes (data primes, then TenSEAL's special "
                f"prime), got {bits!r}; e.g. [46, 46, 17] for N=4096"
            )
        bound = HE_STANDARD_MAX_BITS[n][128]
        if sum(bits) > bound:
            raise InsecureParameterError(
                f"coeff_mod_bit_sizes {list(bits)} total {sum(bits)} bits, above the {bound}-bit bound the HE "
                f"security standard sets for 128-bit security at N={n} (SEAL refuses it even with "
                f"allow_insecure). Use at most {bound} bits in total, or a larger poly_modulus_degree"
            )
        low = n.bit_length() + 1  # a prime = 1 mod 2N needs more bits than 2N
        for b in bits:
            if not low <= b <= SEAL_MAX_PRIME_BITS:
                raise InvalidParameterError(
                    f"prime size {b} in coeff_mod_bit_sizes is outside [{low}, {SEAL_MAX_PRIME_BITS}] for N={n}: "
                    "SEAL primes are at most 60 bits and must be = 1 mod 2N"
                )

    def _validate_headroom(self) -> None:
        """The weights are positive numbers and their clipped sum fits below the data modulus."""
        for name in ("clip", "max_total_weight", "max_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e15:
                raise InvalidParameterError(f"{name} must be a positive number, got {value!r}")
        need = math.ceil(math.log2(self.max_abs_sum))
        if need > self.headroom_bits:
            fit = self.data_bits - self.margin_bits - need
            raise InvalidParameterError(
                f"scale 2^{self.scale_bits} is too large for a {self.data_bits}-bit data modulus: "
                f"clip * max_total_weight = {self.max_abs_sum:g} needs {need} bits of headroom but only "
                f"{self.headroom_bits} remain, so sums could wrap around. Lower scale_bits to {fit} or less "
                "(less precision), lower clip or max_total_weight, or add a data prime"
            )

    def _validate_noise(self) -> None:
        """The thread count and the flooding-noise parameters of ``release()`` are in range."""
        if not (isinstance(self.n_threads, int) and 1 <= self.n_threads <= 256):
            raise InvalidParameterError(f"n_threads must be an integer in [1, 256], got {self.n_threads!r}")
        if not (isinstance(self.flooding_bits, int) and 16 <= self.flooding_bits <= 128):
            raise InvalidParameterError(
                f"flooding_bits (statistical security of release()) must be an integer in [16, 128], got "
                f"{self.flooding_bits!r}; 30 is the default (OpenFHE's default for noise flooding)"
            )
        if not (isinstance(self.flooding_queries, int) and 1 <= self.flooding_queries <= 2**30):
            raise InvalidParameterError(
                f"flooding_queries must be a positive integer, got {self.flooding_queries!r}"
            )

    def for_federation(self, parties: int) -> CKKSParams:
        """When it is 0 (auto): ``max_total_weight = max(16384, parties * max_weight)``, ``scale_bits`` fitted."""
        if self.max_total_weight:
            return self
        total = max(MIN_AUTO_TOTAL_WEIGHT, max(1, int(parties)) * float(self.max_weight))
        need = math.ceil(math.log2(float(self.clip) * total))
        fit = self.data_bits - self.margin_bits - need
        if fit < MIN_AUTO_SCALE_BITS:
            raise InvalidParameterError(
                f"{parties} parties of weight up to {self.max_weight:g} (clip {self.clip:g}) need {need} bits of "
                f"headroom, which leaves a scale of 2^{fit} in a {self.data_bits}-bit data modulus (at least "
                f"2^{MIN_AUTO_SCALE_BITS} is needed): lower [crypto.ckks] max_weight (weights in larger units) "
                "or clip, or use a data modulus with more bits"
            )
        return replace(self, max_total_weight=total, scale_bits=min(self.scale_bits, fit))

    @classmethod
    def presets(cls) -> Mapping[str, CKKSParams]:
        """Reviewed parameter sets.

        * ``default``: N=4096, primes [46, 46, 17] (109 bits, the 128-bit bound of
          the HE standard's Table 1), scale 2^52, about 27 B/value up.
        * ``n8192``: N=8192, primes [50, 50, 18] (118 bits, within the 256-bit bound),
          scale 2^52, 4096 values per ciphertext; released values about 1.4x noisier
          (flooding grows with the square root of N, see the module docstring).
        * ``test``: N=2048, primes [36, 18] (54 bits, 128-bit bound), 1024 values per
          ciphertext and about 1e-4 precision; for fast unit tests of chunking.
        """
        return {
            "default": cls(),
            "n8192": cls(poly_modulus_degree=8192, coeff_mod_bit_sizes=(50, 50, 18)),
            "test": cls(
                poly_modulus_degree=2048, coeff_mod_bit_sizes=(36, 18), scale_bits=20, clip=8.0,
                max_total_weight=1024.0, flooding_queries=1, allow_insecure=True,
            ),
        }
