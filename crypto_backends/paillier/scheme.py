"""The ``paillier`` scheme: packed additively homomorphic encryption, parties decrypt.

Who does what.  The dealer (key authority, or one party acting as it) runs
:meth:`PaillierScheme.keygen` and hands the key pair to the parties only; the
aggregator receives the public key (``n`` and the DJN base ``h_s``) and nothing
else, so it can add ciphertexts but not open them.  The aggregate goes back to
the parties, who decrypt it (``RevealPlan.at_parties()``).

Encoding.  **Weights are applied by the party**, before encryption (the aggregator
then only multiplies ciphertexts, never exponentiates): each value is clipped to
``[-clip, clip]``, multiplied by ``scale * weight / weight_unit`` and rounded once
(:class:`~crypto_backends.encoding.FixedPoint`), then shifted by ``party_bound`` to
be non-negative.  The weight itself is not rounded: the envelope reports it as given,
and :meth:`PaillierScheme.tolerance` bounds the one rounding of every term
(:meth:`.params.PaillierParams.mean_error`).  A weight above ``max_weight`` is
refused at the party; the trade-off against weighting by ``weight / W`` is in
:mod:`.params`.

Packing.  ``floor((bits(n)-1) / slot_bits)`` slots per plaintext, each sized for
``max_parties`` terms of at most ``party_bound`` (see :mod:`.params`); :mod:`.packing`
does the bit work.  The aggregator refuses to combine more than ``max_parties``
updates or one that declares a weight above ``max_weight``.  On reveal the offset
``contributors * party_bound`` is removed and every slot is checked against the
range that many terms can reach: a wrapped sum raises
:class:`~crypto_backends.errors.DecodingOverflowError` instead of being returned.

Payload bytes: an 8-byte header ``>HHI`` (slot bits, slots per ciphertext, layout
checksum of the encoding parameters) followed by ``ceil(length / slots)``
ciphertexts of ``2 * key_bytes`` bytes each, big-endian, fixed width.
"""

from __future__ import annotations

import dataclasses
import struct
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base import Accumulator, Declarations, Payload, RevealPlan, Scheme, ThreatModel
from ..capabilities import BlockFold
from ..encoding import ClippedValuesWarning
from ..envelope import Envelope, check_party_id
from ..errors import (
    DecodingOverflowError,
    InvalidInputError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
)
from ..keys import AggregatorKey, AuthorityKey, FunctionKey, Key, KeySet, PartyKey, Role
from . import djn, helpers
from .packing import SlotLayout
from .params import PaillierParams

_HEADER = struct.Struct(">HHI")


class PaillierScheme(Scheme, BlockFold):
    """Packed Paillier with DJN randomisation (see the module docstring)."""

    name = "paillier"
    params_type = PaillierParams
    reveal_plan = RevealPlan.at_parties()
    threat_model = ThreatModel(
        key_holders={
            "party": "the shared Paillier key pair (decrypts the aggregate)",
            "aggregator": "the public key only (n and the DJN base h_s): adds ciphertexts, cannot decrypt",
            "authority": "the dealer that generated the key pair; holds a copy until it destroys it",
        },
        aggregator_learns="ciphertexts only, plus each party's weight, vector length and timing",
        party_learns=(
            "the fused weighted sum of the parties that answered and their weights; nothing about another "
            "party's update beyond what that sum implies"
        ),
        collusion=(
            "any one party (or the dealer) colluding with the aggregator decrypts every party's update; "
            "parties must therefore trust each other not to collude with the aggregator"
        ),
        dropouts="any number of parties may drop; the aggregate is over those that answered",
        not_protected=(
            "integrity (ciphertexts are malleable: a malicious aggregator can drop uploads down to "
            "the quorum, and with crypto.verify_aggregate = \"off\" also alter them), "
            "the weights and vector length (public), and values beyond clip (clipped)"
        ),
        malicious_aggregator=(
            "only the weighted sum of the signed updates of at least the quorum of parties (federation.quorum; the "
            "DP minimum if larger), all trained from one global model: "
            "every party decrypts an aggregate only with the contributors' signed statements and after refolding "
            "their signed uploads itself, so a single upload or a zero-padded aggregate sent back as the aggregate "
            "is refused by every party (AggregateMismatchError)"
        ),
        malicious_aggregator_unverified=(
            "any one party's update: every party holds the decryption key and decrypts whatever ciphertext it is "
            "sent as the aggregate, so a single upload sent back as the aggregate is opened"
        ),
    )

    params: PaillierParams

    def __init__(self, params: PaillierParams | None = None) -> None:
        super().__init__(params)
        self._fp = self.params.fixed_point()
        self._layout = SlotLayout(self.params.slot_bits, self.params.slots_per_ciphertext)

    @property
    def declarations(self) -> Declarations:
        """The base declarations with this key size's value bound and payload size."""
        return dataclasses.replace(super().declarations,
                                   value_bound=self._value_bound, payload_bytes=self._payload_bytes)

    @property
    def _value_bound(self) -> float:
        return float(self.params.clip)

    def _payload_bytes(self, length: int) -> int:
        """The header, then ``ceil(length / slots)`` ciphertexts of ``2 * ceil(key_bits / 8)`` bytes."""
        return _HEADER.size + self._layout.count(length) * 2 * ((self.params.key_bits + 7) // 8)

    def tolerance(self, weights: Sequence[float]) -> float:
        """Every contributor's one rounding of its weighted term, over the total weight (``mean_error``).

        At most the quantisation error of one value while the contributors' average
        weight is at least ``weight_unit``; proportionally more below.
        """
        return self.params.mean_error([float(w) for w in weights]) + 1e-12 * float(self.params.clip)

    # --- keys --------------------------------------------------------------------
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """A fresh key pair: the aggregator gets the public key only; every party and the authority the pair."""
        pair = djn.generate(self.params.key_bits)
        key_id = pair.public.key_id
        parties = {
            pid: PartyKey(self.name, key_id, pair, holds_secret=True, owner=check_party_id(pid))
            for pid in party_ids
        }
        return KeySet(
            aggregator=AggregatorKey(self.name, key_id, pair.public, holds_secret=False),
            parties=parties,
            authority=AuthorityKey(self.name, key_id, pair, holds_secret=True),
            key_id=key_id,
        )

    def _public(self, key: Key) -> djn.PublicMaterial:
        material = key.unwrap(self.name)
        public = material.public if isinstance(material, djn.PrivateMaterial) else material
        if not isinstance(public, djn.PublicMaterial):
            raise MismatchError("key", f"{key!r} carries no paillier key material")
        if public.key_id != key.key_id:
            raise MismatchError(
                "key", f"{key!r} names fingerprint {key.fingerprint} but holds the key {public.key_id.hex()[:16]}: "
                "the key file was altered or assembled from two key sets; export it again"
            )
        if public.n.bit_length() != self.params.key_bits:
            raise MismatchError(
                "key", f"{key!r} has a {public.n.bit_length()}-bit modulus but key_bits={self.params.key_bits}: "
                f"every role must use the same [crypto.{self.name}] parameters as the key set"
            )
        return public

    def _material_to_bytes(self, key: Key) -> bytes:
        material = key.unwrap(self.name)
        if isinstance(key, AggregatorKey) and not isinstance(material, djn.PublicMaterial):
            raise KeyRoleError("an aggregator key must hold the public key only")
        data: bytes = material.to_bytes()
        return data

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        if cls is FunctionKey:
            raise MalformedCiphertextError("the paillier scheme has no function keys")
        # the role decides what is parsed: an aggregator key is never given private material
        return djn.material_from_bytes(bytes(data), private=role is not Role.AGGREGATOR)

    # --- the round (the checks are Scheme's template methods) ----------------------
    def _check_key(self, key: Key) -> None:
        self._public(key)

    def _applied_weight(self, weight: float) -> float:
        """The weight as given (it is not rounded); one above ``max_weight`` would overflow the slots: refused."""
        if weight > self.params.max_weight:
            raise InvalidInputError(
                f"weight {weight} exceeds crypto.{self.name}.max_weight={self.params.max_weight:g}, which sizes the "
                f"slots; raise max_weight (costs log2(max_weight / weight_unit) bits per slot) or give weights in "
                "larger units"
            )
        return weight

    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        """Quantise, weight, pack and encrypt one update (at the party).

        Values beyond ``clip`` are clipped, with a :class:`ClippedValuesWarning` counting them.
        """
        public = self._public(key)
        q = self._fp.encode(x, weight / float(self.params.weight_unit))
        if q.clipped:
            warnings.warn(
                f"{q.clipped} of {x.size} values were outside [-{self.params.clip}, {self.params.clip}] and "
                f"were clipped; raise crypto.{self.name}.clip if this happens often",
                ClippedValuesWarning,
                stacklevel=3,  # the caller of Scheme.protect
            )
        # |q| <= ceil(max_int * weight / weight_unit) <= party_bound: the shifted term is in [0, 2 * party_bound]
        shifted = (q.values + self._party_bound).astype(np.uint64)
        processes = self.params.encrypt_processes or helpers.default_processes()
        cts = public.encrypt(self._layout.pack(shifted), processes)
        return self._header() + public.ciphertexts_to_bytes(cts)

    def _combine(
        self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int, weights: Sequence[float]
    ) -> Payload:
        """Multiply the ciphertexts slot-wise (at the aggregator, with the public key only)."""
        public = self._public(key)
        self._contributors(weights)  # refuse before doing the work
        columns = [self._ciphertexts(public, env) for env in updates]
        return self._header() + public.ciphertexts_to_bytes(public.add(columns))

    def accumulator(self, key: AggregatorKey, *, round: int) -> Accumulator:
        """A running encrypted weighted sum of round ``round``'s updates under ``key``."""
        return _PaillierAccumulator(self, key, round=round)

    # --- BlockFold: one block per ciphertext (crypto.verify_aggregate = "sampled") -----
    def block_count(self, length: int) -> int:
        """One block per ciphertext: the packed plaintexts ``length`` values need."""
        return self._layout.count(length)

    def blocks(self, key: AggregatorKey, envelope: Envelope) -> list[memoryview]:
        """Each ciphertext's fixed-width bytes, the payload checked as :meth:`combine` checks it."""
        public = self._public(key)
        self._ciphertexts(public, envelope)
        body, width = memoryview(envelope.payload).cast("B")[_HEADER.size:], public.ciphertext_bytes
        return [body[i * width:(i + 1) * width] for i in range(len(body) // width)]

    def fold_blocks(self, key: AggregatorKey, index: int, blocks: Sequence[bytes | memoryview]) -> bytes:
        """The product mod ``n^2`` of ciphertexts ``blocks``, as the accumulator multiplies them."""
        public = self._public(key)
        cts = [public.parse_ciphertexts(memoryview(b).cast("B"), 1)[0] for b in blocks]
        product = cts[0]
        for c in cts[1:]:
            product = product * c % public.nsquare
        return public.ciphertexts_to_bytes([product])

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        """Decrypt and decode the weighted sum (at a party: the aggregator's key cannot decrypt)."""
        pair = key.unwrap(self.name)
        if not isinstance(pair, djn.PrivateMaterial):
            raise KeyRoleError(f"{key!r} holds no private key and cannot decrypt")
        return self._decode(pair.decrypt(self._ciphertexts(self._public(key), aggregate)), aggregate)

    def _decode(self, plaintexts: list[Any], aggregate: Envelope) -> np.ndarray:
        """The weighted sum held in ``aggregate``'s decrypted ``plaintexts``, range-checked."""
        count = self._contributors(aggregate.weights)
        slots = self._layout.unpack(plaintexts, aggregate.length)
        # the offset is below 2**slot_bits <= 2**63, so int64 is exact
        centred = slots.astype(np.int64) - np.int64(count * self._party_bound)
        # the most the declared weights' terms can reach: an aggregate beyond it wrapped or was forged
        unit = float(self.params.weight_unit)
        reach = sum(self._fp.term_bound(w / unit) for w in aggregate.weights)
        worst = max(int(centred.max()), -int(centred.min())) if centred.size else 0
        if worst > reach:
            raise DecodingOverflowError(
                f"aggregate magnitude {worst} exceeds {reach}, the most {count} updates of weights "
                f"{list(aggregate.weights)} can sum to: the result wrapped around or the aggregate misstates its "
                "weights"
            )
        return self._fp.decode(centred, divisor=1.0 / float(self.params.weight_unit))

    # --- helpers --------------------------------------------------------------------
    @property
    def _party_bound(self) -> int:
        return self.params.party_bound

    def _contributors(self, weights: Sequence[float]) -> int:
        """How many terms an aggregate of ``weights`` sums, or :class:`DecodingOverflowError` past its slots' room."""
        if len(weights) > self.params.parties_bound:
            raise DecodingOverflowError(
                f"the aggregate would hold {len(weights)} updates, above max_parties={self.params.parties_bound}, so "
                f"its slots could wrap around; leave crypto.{self.name}.max_parties at 0 (derived from the "
                "federation's size) or raise it"
            )
        heaviest = max(weights, default=0.0)
        if heaviest > self.params.max_weight:
            raise DecodingOverflowError(
                f"an update declares weight {heaviest}, above max_weight={self.params.max_weight:g}: it was not "
                f"made under these [crypto.{self.name}] parameters and its terms could wrap the slots"
            )
        return len(weights)

    def _header(self) -> bytes:
        return _HEADER.pack(self._layout.slot_bits, self._layout.slots, self.params.layout_tag())

    def _ciphertexts(self, public: djn.PublicMaterial, env: Envelope) -> list[Any]:
        """Parse and check an envelope's payload against this scheme's layout."""
        view = memoryview(env.payload).cast("B")
        if len(view) < _HEADER.size:
            raise MalformedCiphertextError("paillier payload is truncated inside its header")
        slot_bits, slots, tag = _HEADER.unpack(view[: _HEADER.size])
        if (slot_bits, slots) != (self._layout.slot_bits, self._layout.slots):
            raise MismatchError(
                "length", f"payload packs {slots} slots of {slot_bits} bits per ciphertext, this scheme expects "
                f"{self._layout.slots} of {self._layout.slot_bits}: the sender uses other [crypto.{self.name}] "
                "parameters"
            )
        if tag != self.params.layout_tag():
            raise MismatchError(
                "scheme", "payload was encoded with other clip, bits, max_weight, weight_unit or max_parties values: "
                f"every role must use the same [crypto.{self.name}] parameters"
            )
        body = view[_HEADER.size:]
        width = public.ciphertext_bytes
        if len(body) % width:
            raise MalformedCiphertextError(
                f"paillier payload body is {len(body)} bytes, not a whole number of {width}-byte ciphertexts: truncated"
            )
        expected = self._layout.count(env.length)
        if len(body) // width != expected:
            raise MismatchError(
                "length", f"payload holds {len(body) // width} ciphertexts, expected {expected} for {env.length} values"
            )
        return public.parse_ciphertexts(body, expected)


class _PaillierAccumulator(Accumulator):
    """The running product of the ciphertexts, multiplied in place mod ``n^2`` (public key only)."""

    scheme: PaillierScheme
    _product: list[Any] | None = None

    def _fold(self, update: Envelope, weights: Sequence[float]) -> None:
        public = self.scheme._public(self.key)
        self.scheme._contributors(weights)  # refuse an update that would wrap the slots
        cts = self.scheme._ciphertexts(public, update)  # checked before anything changes
        if self._product is None:
            self._product = cts
            return
        n2, product = public.nsquare, self._product
        for i, c in enumerate(cts):
            product[i] = product[i] * c % n2

    def _payload(self) -> Payload:
        assert self._product is not None
        return self.scheme._header() + self.scheme._public(self.key).ciphertexts_to_bytes(self._product)
