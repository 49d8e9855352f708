"""Parameters of the ``secagg`` scheme (``[crypto.secagg]`` in a config file).

The ring.  Each value is clipped to ``[-clip, clip]``, quantised to ``bits`` bits
(sign included) with the CSPRNG stochastic rounding of
:class:`~crypto_backends.encoding.FixedPoint`, and multiplied by the party's
integer weight ``round(weight * weight_scale)``.  Masked values live in
``Z_(2**k)`` with ``k = bit_length(max_int * max_total_weight) + 1``: the signed sum
of ``max_total_weight`` weighted values fits without wrapping, so the unmasked sum
is exact.  ``k`` above 64 is refused when the parameters are built (config time).
Words are stored as ``uint32`` when ``k <= 32``, else ``uint64``.

The neighbour graph.  ``neighbours = 0`` picks ``2 * ceil(log2 n)`` (rounded up to
even) neighbours per party (SecAgg+, O(log n)); when that is at least ``n - 1`` the
graph is complete (classic SecAgg).  ``threshold = 0`` picks a majority of the
neighbourhood, ``degree // 2 + 1``; an explicit value must stay above half the
degree (so two disjoint sets of shareholders can never both open one party) and
at most the degree: checked at each round's setup, when ``n`` is known.

The released sum.  The shares keep a party's masks closed to the aggregator with
fewer than ``t`` of its neighbours, but the *sum* is released: when the survivors
are the victim and ``t - 1`` colluders (real dropouts, or an aggregator that
declares the others dropped), the sum minus the colluders' inputs is the victim's
update.  So an aggregate is unmasked only when it sums at least
``min_contributors`` updates: checked by the aggregator (share request and
reveal) and, since the aggregator cannot be trusted to check, by every party
before it lets out an unmasking share.  ``min_contributors = 0`` (the default)
picks ``t + 1``: isolating one party's update from a released sum then needs at
least ``t`` colluders, as many as opening its masks from the shares does, so the
sum leaks nothing the shares did not already (and ``t + 1`` still lets
``k - t - 1`` of a party's neighbours drop: 1 of 4 with five parties).  A
federation of ``n`` resolves it once, from ``n`` (:meth:`SecAggParams.for_federation`),
so a party's floor does not follow the roster the aggregator sends.  An explicit
value must be at least 2 and at most ``n``; below ``t + 1`` it tolerates more
dropouts and weakens the promise to "fewer than ``min_contributors - 1``
colluders".

The consistency round (the malicious model).  The aggregator's word on who
survived is not trusted: before any unmasking share leaves, every survivor signs
the survivor set, and a party lets out shares only after seeing at least
``signatures`` valid signatures over the set it signed itself, from distinct
survivors (Bonawitz et al., CCS 2017, section 4).  An honest party signs one set
per round.  Two sets each vouched for by ``q`` signers out of ``n`` share at
least ``2q - n`` signers, so when ``2q - n`` exceeds the corrupted parties ``c``
some honest party would have signed both, which it never does: an aggregator
cannot show two parties two survivor sets (split views, or a victim named
survivor to some and dropped to others).  With ``q = floor(2n/3) + 1`` (the
paper's active-adversary setting likewise takes its threshold above ``2n/3``),
that holds for every ``c < n/3`` corrupted parties.  ``signatures = 0``
(the default) picks ``max(floor(2n/3) + 1, t, min_contributors)``; an explicit
value below ``floor(2n/3) + 1`` is refused
(:meth:`SecAggParams.check_federation`), and the honest-but-curious bound
(``t``) is not offered: the examples run with the default.  The price: a round
completes only while more than two thirds of the parties survive through the
share exchange.
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

MAX_RING_BITS = 64


@dataclass(frozen=True)
class SecAggParams(SchemeParams):
    """Encoding, ring size and neighbour graph of ``secagg`` (see the module docstring)."""

    clip: float = 8.0
    bits: int = 16
    max_total_weight: int = 1 << 20
    weight_scale: float = 1.0
    neighbours: int = 0
    threshold: int = 0
    min_contributors: int = 0
    """Fewest updates an unmasked sum may hold; 0: the share threshold plus one (see the module docstring)."""
    signatures: int = 0
    """Survivors' signatures over one survivor set a party must see before it lets out shares; 0: at least
    ``floor(2n/3) + 1`` (see the module docstring)."""

    def security_bits(self) -> int:
        """128: X25519 key agreement bounds it; the symmetric primitives and seeds use 256-bit keys."""
        # X25519 (about 128-bit), HKDF-SHA256, ChaCha20 and ChaCha20-Poly1305 with 256-bit keys, seeds of 256 bits
        return 128

    def validate(self) -> None:
        """Raise :class:`InvalidParameterError` for a bad weight bound, weight scale, graph setting, clip or
        bits, or for a ring of more than :data:`MAX_RING_BITS` bits.

        ``neighbours`` and ``threshold`` are only range-checked here: whether they fit a
        federation is known at each round's setup (:meth:`share_threshold`).
        """
        if isinstance(self.max_total_weight, bool) or not isinstance(self.max_total_weight, int) \
                or self.max_total_weight < 1:
            raise InvalidParameterError(
                f"max_total_weight={self.max_total_weight!r}: use a positive integer at least the sum of "
                "every party's integer weight in one aggregate")
        scale = self.weight_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < 2**40:
            raise InvalidParameterError(f"weight_scale={scale!r}: use a positive number such as 1.0 or 1000.0")
        for name in ("neighbours", "threshold", "min_contributors", "signatures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
                raise InvalidParameterError(f"{name}={value!r}: use 0 (automatic) or a positive integer")
        if self.min_contributors == 1:
            raise InvalidParameterError("min_contributors=1: the sum of one update is that update; use at least 2, "
                                        "or 0 for the share threshold plus one")
        self.fixed_point()  # checks clip and bits
        if self.ring_bits > MAX_RING_BITS:
            raise InvalidParameterError(
                f"the masked sum would need a {self.ring_bits}-bit ring (bits={self.bits}, max_total_weight="
                f"{self.max_total_weight}); lower either so that bits + log2(max_total_weight) + 1 stays "
                f"within {MAX_RING_BITS}")

    def fixed_point(self) -> FixedPoint:
        """The encoding of each value: clipped to ``clip``, ``bits`` bits with sign, CSPRNG stochastic rounding."""
        return FixedPoint(clip=float(self.clip), bits=self.bits, stochastic=True)

    @property
    def ring_bits(self) -> int:
        """``k``: masked values and their sums live in ``Z_(2**k)``."""
        return (self.fixed_point().max_int * self.max_total_weight).bit_length() + 1

    def integer_weight(self, weight: float) -> int:
        """The ring weight of ``weight``: ``round(weight * weight_scale)`` (0 for a small weight: not checked here)."""
        return int(round(weight * self.weight_scale))

    def weight_error(self, weights: list[float]) -> float:
        """Largest relative change any weight suffers from rounding to an integer."""
        return max((abs(self.integer_weight(w) - w * self.weight_scale) / (w * self.weight_scale) for w in weights),
                   default=0.0)

    def degree(self, n: int) -> int:
        """Neighbours per party in a federation of ``n`` (``n - 1``: the complete graph)."""
        if n <= 1:
            return 0
        k = self.neighbours or 2 * math.ceil(math.log2(n))
        k += k % 2  # the Harary graph H(k, n) below n - 1 needs an even degree
        return min(k, n - 1)

    def share_threshold(self, n: int) -> int:
        """Shares (of a party's neighbourhood) that rebuild its secrets, in a federation of ``n``."""
        k = self.degree(n)
        if k == 0:
            return 1
        t = self.threshold or k // 2 + 1
        if not k // 2 < t <= k:
            raise InvalidParameterError(
                f"crypto.secagg.threshold={self.threshold} does not fit {k} neighbours (federation of {n}): use a "
                f"value in [{k // 2 + 1}, {k}] (above half the neighbours), or 0 for the majority")
        return t

    def contributors_needed(self, n: int) -> int:
        """Fewest updates an unmasked sum may hold in a federation of ``n`` (``min_contributors``, or ``t + 1``)."""
        return self.min_contributors or self.share_threshold(n) + 1

    @staticmethod
    def malicious_floor(n: int) -> int:
        """``floor(2n/3) + 1``: fewest signatures over one survivor set that keep two sets apart (module docstring)."""
        return 2 * n // 3 + 1

    def signatures_needed(self, n: int) -> int:
        """Valid survivors' signatures over one set a party needs to see, in a federation of ``n``.

        ``signatures`` (or :meth:`malicious_floor`), and never fewer than the share
        threshold or ``min_contributors``: the signers are survivors.
        """
        return max(self.signatures or self.malicious_floor(n), self.share_threshold(n), self.contributors_needed(n))

    def fewest_contributors(self, parties: int) -> int | None:
        """The unmasking floor of a federation of ``parties``: :meth:`contributors_needed`."""
        return self.contributors_needed(parties)

    def check_federation(self, parties: int) -> None:
        """Refuse a federation whose floor (or share threshold) exceeds its parties, naming the setting to lower."""
        need = self.contributors_needed(parties)  # also checks the threshold against the neighbourhood
        if need > parties:
            raise InvalidParameterError(
                f"crypto.secagg.min_contributors: no sum of the {parties} parties could be unmasked, since each must "
                f"hold at least {need} updates; add parties, or lower crypto.secagg.min_contributors to at most "
                f"{parties} (0: the share threshold plus one)")
        floor = self.malicious_floor(parties)
        if self.signatures and self.signatures < floor:
            raise InvalidParameterError(
                f"crypto.secagg.signatures={self.signatures}: in a federation of {parties}, fewer than {floor} "
                "(floor(2n/3) + 1) survivors' signatures over the survivor set let an aggregator show two groups of "
                f"parties two survivor sets and unmask one party; use 0 (automatic) or a value from {floor} to "
                f"{parties}")
        if self.signatures_needed(parties) > parties:
            raise InvalidParameterError(
                f"crypto.secagg.signatures={self.signatures}: a federation of {parties} cannot give "
                f"{self.signatures_needed(parties)} signatures; use 0 (automatic) or at most {parties}")

    def for_federation(self, parties: int) -> SecAggParams:
        """``min_contributors = 0`` and ``signatures = 0`` resolved for ``parties`` parties (fixed then, whatever
        roster a round names)."""
        resolved = self if self.min_contributors else replace(self, min_contributors=self.contributors_needed(parties))
        return resolved if resolved.signatures else replace(resolved, signatures=resolved.signatures_needed(parties))

    def layout_tag(self) -> int:
        """32-bit checksum of everything a party and the aggregator must agree on."""
        blob = struct.pack(">dIId", float(self.clip), self.bits, self.max_total_weight, float(self.weight_scale))
        return zlib.crc32(blob)

    @classmethod
    def presets(cls) -> Mapping[str, SecAggParams]:
        """Only ``default`` (the field defaults); ``secagg`` has no other reviewed parameter sets."""
        return {"default": cls()}
