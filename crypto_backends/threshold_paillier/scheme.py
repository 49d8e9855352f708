"""The ``threshold_paillier`` scheme: packed Paillier whose decryption key no one holds.

Who does what.  The dealer (the key authority) runs :meth:`ThresholdPaillierScheme.keygen`:
it draws ``n = pq`` from safe primes, Shamir-shares the decryption exponent t-of-n
among the parties and publishes verification keys, then drops the factors and the
exponent (:func:`~.shoup.deal`; construction of Damgård–Jurik, PKC 2001, with
``s = 1``, after Shoup, EUROCRYPT 2000).  Its own key keeps public material only,
and it declares ``dealer_erases_party_keys``: the key authority hands each share
out once and then forgets it.  Each party holds its one share; the aggregator the public key and the
verification keys.

A round.  Parties encrypt exactly as under ``paillier`` (same fixed-point
encoding, weights applied by the party, packing, DJN randomisation: this class
inherits all of it), the aggregator multiplies the ciphertexts, then asks every
contributor for a decryption share of the aggregate (:meth:`share_request`,
``needed = t``).  A share is ``c^(2 Delta s_i)`` for each ciphertext plus one
proof of correct decryption (:func:`~.shoup.prove`: Chaum–Pedersen equality of
discrete logs, Fiat–Shamir over SHA-256, batched over the ciphertexts), bound to
the aggregate's bytes (round, contributors, weights, ciphertexts): a share of
another aggregate or round, or a wrong one, fails :meth:`check_share` with a
:class:`~crypto_backends.errors.ShareError` naming its sender.  Any ``t`` checked
shares are combined by Lagrange interpolation in the exponent
(:meth:`reveal_shares`, at the aggregator: ``RevealPlan.from_shares()``).

Share bytes: ``>HI`` (party index, number of ciphertexts), the partial
decryptions at ``2 * key_bytes`` bytes each, the 32-byte challenge ``e``, then
``>I`` and the bytes of the response ``z``.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gmpy2 import mpz

from ..base import RevealPlan, ThreatModel
from ..capabilities import ShareRequest, ShareReveal
from ..envelope import Envelope, check_party_id
from ..errors import KeyRoleError, MalformedCiphertextError, MismatchError, ShareError
from ..keys import AggregatorKey, AuthorityKey, FunctionKey, Key, KeySet, PartyKey, Role, require_role
from ..paillier import djn
from ..paillier.scheme import PaillierScheme
from . import shoup
from .params import ThresholdPaillierParams

_SHARE_HEAD = struct.Struct(">HI")
_LEN = struct.Struct(">I")
_CHALLENGE_BYTES = 32
_CHECKED_CACHE = 4096  # checked shares remembered, so reveal_shares need not verify them again


@dataclass(frozen=True)
class PublicKeyMaterial:
    """The aggregator's (and the dealer's, after dealing): the dealt public key and who holds which share."""

    dealt: shoup.Dealt
    parties: tuple[str, ...]  # party parties[i] holds share i + 1
    key_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.parties) != self.dealt.parties:
            raise MalformedCiphertextError("threshold paillier key material names another number of parties")
        h = hashlib.sha256(self.dealt.key_id())
        h.update(json.dumps(list(self.parties)).encode())
        object.__setattr__(self, "key_id", h.digest()[:16])

    def index(self, party: str) -> int:
        """The 1-based share index of ``party``."""
        try:
            return self.parties.index(party) + 1
        except ValueError:
            raise ShareError(f"{party!r} holds no share of this key set (its parties: {', '.join(self.parties)})") \
                from None


@dataclass(frozen=True)
class ShareMaterial:
    """One party's: the public material, its index and its share ``s_i`` of the decryption exponent."""

    public: PublicKeyMaterial
    index: int
    share: mpz = field(repr=False)


class ThresholdPaillierScheme(PaillierScheme, ShareReveal):
    """Packed Paillier with t-of-n threshold decryption (see the module docstring)."""

    name = "threshold_paillier"
    params_type = ThresholdPaillierParams
    reveal_plan = RevealPlan.from_shares()
    threat_model = ThreatModel(
        key_holders={
            "party": "one Shamir share s_i of the decryption exponent (t of them decrypt) and the public key",
            "aggregator": "the public key and every party's verification key v_i; no share, so it cannot decrypt",
            "authority": (
                "the dealer: generated n = pq and every share, then erased p, q and the exponent; hands each "
                "party its share once and then erases it (never written to its key store), keeping the public "
                "key only"
            ),
        },
        aggregator_learns=(
            "the fused weighted sum of the contributors (decrypted from t parties' checked shares), their "
            "weights, vector length and timing; no individual update"
        ),
        party_learns="the fused model it receives; nothing of another party's update beyond that sum",
        collusion=(
            "fewer than t colluding parties, even with the aggregator, learn nothing of any update; t parties "
            "together (or a dishonest dealer, which saw the key) can decrypt any ciphertext, including one "
            "party's upload"
        ),
        dropouts=(
            "any number may drop before uploading; the aggregate opens while at least t contributors send "
            "valid shares (a wrong share is detected by its proof and its sender dropped)"
        ),
        not_protected=(
            "integrity of the sum (ciphertexts are malleable: a malicious aggregator can drop uploads down to "
            "the quorum, and with crypto.verify_aggregate = \"off\" also alter the aggregate or ask the "
            "parties to decrypt another ciphertext), the weights and vector length (public), and values beyond "
            "clip (clipped)"
        ),
        malicious_aggregator=(
            "only the weighted sum of the signed updates of at least the quorum of parties (federation.quorum; the "
            "DP minimum if larger), all trained from one global model: "
            "a party gives its decryption share only for an aggregate that comes with the contributors' signed "
            "statements and that it has refolded from their signed uploads itself, so a single upload or a "
            "zero-padded aggregate put up for decryption gets no share (AggregateMismatchError)"
        ),
        malicious_aggregator_unverified=(
            "any one party's update: t parties give decryption shares for whatever ciphertext they are asked to "
            "decrypt, so a single upload put up as the aggregate is opened"
        ),
        # each party's key is a distinct share: the dealer holding all n of them after setup could decrypt
        # alone, so it hands each out once and keeps none (the party keeps its own; see securefl.core.authority)
        dealer_erases_party_keys=True,
    )

    params: ThresholdPaillierParams

    def __init__(self, params: ThresholdPaillierParams | None = None) -> None:
        super().__init__(params)
        self._checked: dict[tuple[bytes, int], bytes] = {}  # (aggregate context, index) -> digest of a valid share
        self._lock = threading.Lock()

    # --- keys --------------------------------------------------------------------------------
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """Deal a fresh key: one share per party, the verification keys; the dealer keeps no secret."""
        ids = tuple(sorted(check_party_id(p) for p in party_ids))
        if len(set(ids)) != len(ids) or not ids:
            raise MalformedCiphertextError(f"keygen needs distinct party ids, got {list(party_ids)}")
        t = self.params.threshold_for(len(ids))
        dealt, shares = shoup.deal(self.params.key_bits, len(ids), t)
        public = PublicKeyMaterial(dealt, ids)
        key_id = public.key_id
        parties = {
            pid: PartyKey(self.name, key_id, ShareMaterial(public, i + 1, s), holds_secret=True, owner=pid)
            for i, (pid, s) in enumerate(zip(ids, shares, strict=True))
        }
        del shares
        return KeySet(
            aggregator=AggregatorKey(self.name, key_id, public, holds_secret=False),
            parties=parties,
            authority=AuthorityKey(self.name, key_id, public, holds_secret=False),
            key_id=key_id,
        )

    def threshold(self, key: Key) -> int:
        """The key set's t: how many valid shares open an aggregate."""
        return self._material(key).dealt.threshold

    def _material(self, key: Key) -> PublicKeyMaterial:
        material = key.unwrap(self.name)
        public = material.public if isinstance(material, ShareMaterial) else material
        if not isinstance(public, PublicKeyMaterial):
            raise MismatchError("key", f"{key!r} carries no threshold paillier key material")
        if public.key_id != key.key_id:
            raise MismatchError(
                "key", f"{key!r} names fingerprint {key.fingerprint} but holds the key {public.key_id.hex()[:16]}: "
                "the key file was altered or assembled from two key sets; export it again"
            )
        return public

    def _public(self, key: Key) -> djn.PublicMaterial:
        public = self._material(key).dealt.public
        if public.n.bit_length() != self.params.key_bits:
            raise MismatchError(
                "key", f"{key!r} has a {public.n.bit_length()}-bit modulus but key_bits={self.params.key_bits}: "
                "every role must use the same [crypto.threshold_paillier] parameters as the key set"
            )
        return public

    def _material_to_bytes(self, key: Key) -> bytes:
        material = key.unwrap(self.name)
        if isinstance(key, PartyKey) != isinstance(material, ShareMaterial):
            raise KeyRoleError("a threshold paillier party key holds exactly its share; other roles hold none")
        public = material.public if isinstance(material, ShareMaterial) else material
        dealt = public.dealt
        width = dealt.public.ciphertext_bytes
        head = json.dumps({"parties": list(public.parties), "threshold": dealt.threshold}).encode()
        parts = [dealt.public.to_bytes(), head,
                 b"".join(int(v).to_bytes(width, "big") for v in (dealt.v, *dealt.verification))]
        if isinstance(material, ShareMaterial):
            parts += [material.index.to_bytes(2, "big"), int(material.share).to_bytes(width, "big")]
        return b"".join(_LEN.pack(len(p)) + p for p in parts)

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        if cls is FunctionKey:
            raise MalformedCiphertextError("the threshold_paillier scheme has no function keys")
        parts = _unframe(bytes(data), 5 if role is Role.PARTY else 3)
        try:
            head = json.loads(parts[1])
            ids, threshold = tuple(check_party_id(p) for p in head["parties"]), int(head["threshold"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedCiphertextError(f"garbled threshold paillier key header: {exc}") from None
        paillier = djn.material_from_bytes(parts[0], private=False)
        assert isinstance(paillier, djn.PublicMaterial)
        width, n2 = paillier.ciphertext_bytes, paillier.nsquare
        values = _ints(parts[2], width, len(ids) + 1)
        if not 1 <= threshold <= len(ids) or not all(0 < v < n2 for v in values):
            raise MalformedCiphertextError("threshold paillier key material is out of range")
        public = PublicKeyMaterial(shoup.Dealt(paillier, threshold, values[0], tuple(values[1:])), ids)
        if role is not Role.PARTY:
            return public
        index = int.from_bytes(parts[3], "big")
        if len(parts[3]) != 2 or not 1 <= index <= len(ids):
            raise MalformedCiphertextError("threshold paillier share index is out of range")
        return ShareMaterial(public, index, _ints(parts[4], width, 1)[0])

    # --- the round: protect and combine are paillier's; revealing needs t shares ----------------
    def _check_key(self, key: Key) -> None:
        self._public(key)

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        raise KeyRoleError(
            "no single key opens a threshold_paillier aggregate: the aggregator combines t parties' decryption "
            "shares (share_request, decryption_share, check_share, reveal_shares; the round engine does this)"
        )

    def share_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        """Every contributor is asked (so that ``t`` valid shares arrive even if some are wrong or late), or
        ``share_requests`` of them, taken in turn from round to round so that no party does every round's work."""
        t = self.threshold(key)
        parties = aggregate.parties
        asked = max(self.params.share_requests, t)
        if self.params.share_requests and asked < len(parties):
            start = aggregate.round % len(parties)
            parties = tuple(sorted((parties[start:] + parties[:start])[:asked]))
        return ShareRequest(parties=parties, needed=t)

    def decryption_share(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        """This party's partial decryptions of ``aggregate`` and their proof (see the module docstring)."""
        require_role(key, PartyKey, action="make a decryption share")
        self._check_envelope(aggregate, key, kind="aggregate")
        material = key.unwrap(self.name)
        if not isinstance(material, ShareMaterial):
            raise KeyRoleError(f"{key!r} holds no share of the decryption key")
        if key.owner is not None and material.public.parties[material.index - 1] != key.owner:
            raise MismatchError("key", f"{key!r} holds the share of {material.public.parties[material.index - 1]!r}")
        dealt = material.public.dealt
        cts = self._ciphertexts(self._public(key), aggregate)
        partials = shoup.partial(dealt, material.share, cts)
        e, z = shoup.prove(dealt, material.share, material.index, _context(aggregate), cts, partials)
        z_bytes = int(z).to_bytes((int(z).bit_length() + 7) // 8 or 1, "big")
        return b"".join([
            _SHARE_HEAD.pack(material.index, len(cts)),
            dealt.public.ciphertexts_to_bytes(partials),
            int(e).to_bytes(_CHALLENGE_BYTES, "big"),
            _LEN.pack(len(z_bytes)), z_bytes,
        ])

    def check_share(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> None:
        """Raise unless ``share`` is ``party``'s valid decryption share of ``aggregate`` (its proof checked)."""
        require_role(key, AggregatorKey, action="check a decryption share")
        self._check_envelope(aggregate, key, kind="aggregate")
        self._verified(key, aggregate, party, share)

    def reveal_shares(self, key: AggregatorKey, aggregate: Envelope, shares: Mapping[str, bytes]) -> np.ndarray:
        """The weighted sum from at least ``t`` parties' shares (each checked; a wrong one is a ShareError)."""
        require_role(key, AggregatorKey, action="reveal the aggregate from decryption shares")
        self._check_envelope(aggregate, key, kind="aggregate")
        t = self.threshold(key)
        if len(shares) < t:
            raise ShareError(
                f"{len(shares)} decryption share(s) cannot open a threshold_paillier aggregate: the key set needs "
                f"{t}; fewer than t shares reveal nothing of it"
            )
        verified = {}
        for party in sorted(shares):
            index, partials = self._verified(key, aggregate, party, shares[party])
            verified[index] = partials
        chosen = {i: verified[i] for i in sorted(verified)[:t]}
        return self._decode(shoup.combine(self._material(key).dealt, chosen), aggregate)

    def share_floor_s(self, key: AggregatorKey, aggregate: Envelope) -> float:
        """One core's CPU seconds for gmpy2's powmod to raise every ciphertext of ``aggregate`` to an exponent of
        a share's size mod ``n^2`` (:func:`~.shoup.floor_seconds`), measured now: a share's arithmetic floor."""
        require_role(key, AggregatorKey, action="measure the share floor")
        self._check_envelope(aggregate, key, kind="aggregate")
        dealt = self._material(key).dealt
        return shoup.floor_seconds(dealt, self._ciphertexts(dealt.public, aggregate))

    def _verified(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> tuple[int, list[mpz]]:
        """Party ``party``'s share parsed and checked (once per aggregate: later calls hit a cache)."""
        public = self._material(key)
        index = public.index(party)
        paillier = public.dealt.public
        cts = self._ciphertexts(paillier, aggregate)
        partials, proof = _parse_share(bytes(share), index, len(cts), paillier, party)
        context = _context(aggregate)
        digest = hashlib.sha256(share).digest()
        with self._lock:
            known = self._checked.get((context, index)) == digest
        if not known:
            if not shoup.verify(public.dealt, index, context, cts, partials, proof):
                raise ShareError(
                    f"the decryption share of {party!r} fails its proof of correct decryption for this aggregate "
                    f"(round {aggregate.round}): it is forged, corrupted, or made for another aggregate or round"
                )
            with self._lock:
                if len(self._checked) >= _CHECKED_CACHE:
                    self._checked.clear()
                self._checked[(context, index)] = digest
        return index, partials


def _context(aggregate: Envelope) -> bytes:
    """What a share is bound to: the aggregate's bytes (key set, round, contributors, weights, ciphertexts)."""
    return hashlib.sha256(b"securefl/threshold_paillier/aggregate" + aggregate.to_bytes()).digest()


def _parse_share(data: bytes, index: int, count: int, public: djn.PublicMaterial,
                 party: str) -> tuple[list[mpz], tuple[mpz, mpz]]:
    width = public.ciphertext_bytes
    fixed = _SHARE_HEAD.size + count * width + _CHALLENGE_BYTES + _LEN.size
    if len(data) < fixed:
        raise ShareError(f"the decryption share of {party!r} is truncated ({len(data)} bytes)")
    got_index, got_count = _SHARE_HEAD.unpack_from(data)
    if (got_index, got_count) != (index, count):
        raise ShareError(
            f"the decryption share of {party!r} is for share index {got_index} and {got_count} ciphertexts; "
            f"expected index {index} and {count}: it was made for another party or aggregate"
        )
    body = memoryview(data)[_SHARE_HEAD.size:]
    partials = [mpz(int.from_bytes(body[k * width:(k + 1) * width], "big")) for k in range(count)]
    rest = body[count * width:]
    e = mpz(int.from_bytes(rest[:_CHALLENGE_BYTES], "big"))
    (zlen,) = _LEN.unpack_from(rest, _CHALLENGE_BYTES)
    z_bytes = rest[_CHALLENGE_BYTES + _LEN.size:]
    if len(z_bytes) != zlen:
        raise ShareError(f"the decryption share of {party!r} has {len(z_bytes)} response bytes, its header says {zlen}")
    return partials, (e, mpz(int.from_bytes(z_bytes, "big")))


def _unframe(data: bytes, parts: int) -> list[bytes]:
    out, pos = [], 0
    for _ in range(parts):
        if pos + _LEN.size > len(data):
            raise MalformedCiphertextError("threshold paillier key material is truncated or of another role")
        (size,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if pos + size > len(data):
            raise MalformedCiphertextError("threshold paillier key material is truncated")
        out.append(data[pos:pos + size])
        pos += size
    if pos != len(data):
        raise MalformedCiphertextError("threshold paillier key material has trailing bytes, or is of another role")
    return out


def _ints(data: bytes, width: int, count: int) -> list[mpz]:
    if len(data) != width * count:
        raise MalformedCiphertextError(f"threshold paillier key material holds {len(data)} bytes, expected "
                                       f"{width * count}")
    return [mpz(int.from_bytes(data[k * width:(k + 1) * width], "big")) for k in range(count)]
