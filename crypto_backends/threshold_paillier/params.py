"""Parameters of the ``threshold_paillier`` scheme (``[crypto.threshold_paillier]`` in a config file).

Everything of :class:`~crypto_backends.paillier.PaillierParams` (key size,
fixed-point encoding, packing headroom), plus ``threshold``: how many parties'
decryption shares open an aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidParameterError
from ..paillier.params import PaillierParams


@dataclass(frozen=True)
class ThresholdPaillierParams(PaillierParams):
    """``threshold`` = t of t-of-n decryption; 0 (the default) means a majority, ``n // 2 + 1``.
    ``share_requests``: how many contributors are asked for a share (0: all; see the field).

    The other fields are :class:`~crypto_backends.paillier.PaillierParams`'s (3072-bit
    default, 2048 the smallest accepted without ``allow_insecure``).  Key generation
    draws safe primes: a random search, measured here on an idle core at about 10 s for 2048 bits
    and 10-60 s for 3072 (several times longer on a busy machine).
    """

    threshold: int = 0
    share_requests: int = 0
    """Contributors asked for a decryption share per round: 0 asks all of them (a round then survives every
    wrong or missing share beyond t); a number >= t asks that many (each share costs a party a full
    exponentiation per ciphertext; asking exactly t is cheapest, and one wrong share then stops the round)."""

    def validate(self) -> None:
        """The Paillier checks, then ``share_requests`` and ``threshold`` (0 or at least 1; requests at least t)."""
        super().validate()
        asked = self.share_requests
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 0 or (
                asked and self.threshold and asked < self.threshold):
            raise InvalidParameterError(
                f"crypto.threshold_paillier.share_requests={asked!r}: use 0 (ask every contributor) or a number "
                f"of parties at least the threshold ({self.threshold or 'a majority'})"
            )
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or self.threshold < 0:
            raise InvalidParameterError(
                f"crypto.threshold_paillier.threshold={self.threshold!r}: use a number of parties t with "
                "1 <= t <= parties, or 0 for a majority (parties // 2 + 1)"
            )

    def check_federation(self, parties: int) -> None:
        """Raise unless a key set for ``parties`` parties can have the configured threshold."""
        self.threshold_for(parties)

    def threshold_for(self, parties: int) -> int:
        """The t of a key set for ``parties`` parties; raises unless ``1 <= t <= parties``."""
        t = self.threshold or parties // 2 + 1
        if not 1 <= t <= parties:
            raise InvalidParameterError(
                f"crypto.threshold_paillier.threshold={self.threshold} but the federation has {parties} parties: "
                f"use 1 <= threshold <= {parties}, or 0 for a majority ({parties // 2 + 1})"
            )
        return t

    @classmethod
    def presets(cls) -> Mapping[str, PaillierParams]:
        """The named presets: "default", "fast" (2048-bit keys) and "test" (512-bit, insecure, for unit tests)."""
        return {
            "default": cls(),
            "fast": cls(key_bits=2048),
            # small safe primes so the unit tests run in seconds; loudly insecure
            "test": cls(key_bits=512, allow_insecure=True),
        }
