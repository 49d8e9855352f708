"""The ``secagg`` scheme: SecAgg+ pairwise and self masking with dropout recovery.

Construction: Bell, Bonawitz, Gascón, Lepoint, Raykova, "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020 (SecAgg+), itself the
protocol of Bonawitz et al., CCS 2017 on a sparse random graph, in its
semi-honest form with signed key advertisements.  No party holds a key that
opens another's update, and no key authority is needed: ``keygen`` only names the
key set; every round's keys are made fresh by the parties in the setup exchange.

A round (the four setup steps are :meth:`SecAggScheme.setup_steps`; the engine and
:func:`crypto_backends.roundtrip.run_round` run them):

0. The aggregator sends every party the roster and a fresh public 32-byte graph
   seed; each party derives its neighbours (:func:`.masking.neighbours`), makes two
   fresh X25519 key pairs (``c`` to encrypt shares, ``s`` to agree masks) and
   advertises their public halves, signed with its TLS key when the transport
   bound an identity (:meth:`SecAggScheme.bind_identity`).
1. Each party receives its neighbours' advertisements, checks them (round, seed,
   key set, sender, and the certificate signature when identities are bound:
   a substituted key is refused), draws a 32-byte self-mask seed ``b`` and
   Shamir-shares ``b`` and its ``s`` private key ``t``-of-``k`` among its ``k``
   neighbours (:mod:`.shamir`); each neighbour's pair of shares travels through the
   aggregator in a ChaCha20-Poly1305 box keyed by HKDF over the ``c`` agreement,
   bound to the key set, the round and both ids.  With it go salted SHA-256
   commitments to every share, which the aggregator keeps to check shares later.
2. Each party receives the boxes addressed to it and opens them; a box that
   fails its AEAD check is reported, and its sender is excluded from the round.
3. The aggregator fixes the round's set ``L``: every party that shared with all
   its advertised neighbours and had every box accepted, keeping only parties
   with at least ``t`` neighbours in ``L``.  Every party masks with its
   neighbours in ``L``.

Then each party uploads ``y = w * q(x) + PRG(b) + sum_j +-PRG(s_ij) mod 2**k``
(``+`` when its id sorts before ``j``'s), with ``q`` the CSPRNG stochastic
rounding, ``s_ij`` the HKDF of the X25519 agreement, PRG the ChaCha20 keystream
(:mod:`.masking`), and erases ``b`` and its private keys.  The aggregator sums
uploads mod ``2**k`` (associative: partial sums combine), then asks the survivors
for shares naming the dropped parties: each returns ``b``-shares of surviving
neighbours and ``s``-key shares of dropped ones, never both kinds for one peer
(it refuses a request that would make it).  The aggregator checks each share
against its commitment, rebuilds from ``t`` shares each survivor's ``b`` and each
dropped party's ``s`` key, removes the self masks and the dropped parties'
pairwise masks, and reads the signed sum: exact in ``Z_(2**k)``.

What is promised (semi-honest aggregator and parties, identities bound): the
aggregator and fewer than ``t`` of a party's neighbours learn nothing about its
update beyond the sum of the survivors, and that sum is unmasked only when it
holds at least ``min_contributors`` updates (default ``t + 1``, see
:mod:`.params`): the aggregator checks it in :meth:`SecAggScheme.share_request`
and :meth:`SecAggScheme.reveal_shares`, and each party in
:meth:`SecAggScheme.decryption_share` before it lets out a share, since a sum of
the victim and ``t - 1`` colluders minus their inputs is the victim's update
(:class:`~crypto_backends.errors.PolicyError`); forged or replayed setup messages and
shares are refused with :class:`~crypto_backends.errors.ShareError`.

Against an aggregator that lies about who survived, the consistency round of
Bonawitz et al., CCS 2017, section 4 runs between the upload and the shares
(:class:`~crypto_backends.capabilities.ConsistencyCheck`): each survivor signs,
with its bound identity, the key set, round, graph seed, the digest of the global
model it trained from (:meth:`SecAggScheme.bind_round`, also bound into its
pairwise masks) and the sorted survivor set, and signs one set per round; a party
lets out shares only for the set it signed and after seeing at least
:meth:`SecAggParams.signatures_needed` (``floor(2n/3) + 1``) valid signatures over
it from distinct survivors, else
:class:`~crypto_backends.errors.AggregateMismatchError` (false dropouts, split
views, forged or replayed signatures, two models); with no identity bound it
refuses (:class:`~crypto_backends.errors.KeyRoleError`).  What is not protected:
integrity of the sum, and the graph seed is the aggregator's choice (see SECURITY.md).  A round's secrets live only
in memory; a restarted party rejoins at the next round's setup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import struct
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..base import Declarations, Payload, RevealPlan, Scheme, ThreatModel
from ..capabilities import BindsRound, ConsistencyCheck, InteractiveSetup, ShareRequest, ShareReveal
from ..encoding import ClippedValuesWarning, IntegerWeights
from ..envelope import Envelope, check_party_id
from ..errors import (
    AggregateMismatchError,
    CryptoError,
    KeyReuseError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
    PolicyError,
    ShareError,
)
from ..keys import AggregatorKey, AuthorityKey, FunctionKey, Key, KeySet, PartyIdentity, PartyKey, Role
from ..randomness import random_bytes
from . import shamir
from .masking import Expander, agree, derive, graph, neighbours
from .params import SecAggParams

log = logging.getLogger("crypto_backends.secagg")
_HEADER = struct.Struct(">BI8s")  # ring bits, layout checksum, the key exchange it was masked under
_STEPS = 4
_KEEP_ROUNDS = 2  # a round's state is dropped once two newer rounds have started
_SALT = 16


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _advert_bytes(key_id: bytes, round: int, seed: bytes, party: str, c_pk: bytes, s_pk: bytes) -> bytes:
    """What a party signs: its two public keys, bound to the key set, the round, the graph seed and its id."""
    return b"|".join((b"securefl-secagg-advert", key_id, struct.pack(">Q", round), seed, party.encode(), c_pk, s_pk))


def _confirm_bytes(key_id: bytes, round: int, seed: bytes, survivors: Sequence[str], context: bytes) -> bytes:
    """What a survivor signs in the consistency round: the key set, round, graph seed, its bound context (the
    global model's digest) and the sorted survivor ids (ids hold no ``,``)."""
    return b"|".join((b"securefl-secagg-confirm", key_id, struct.pack(">Q", round), seed,
                      struct.pack(">H", len(context)) + context, ",".join(sorted(survivors)).encode()))


def _commit(kind: str, key_id: bytes, round: int, owner: str, holder: str, salt: bytes, share: int) -> bytes:
    data = b"|".join((b"securefl-secagg-commit", kind.encode(), key_id, struct.pack(">Q", round), owner.encode(),
                      holder.encode(), salt, shamir.share_to_bytes(share)))
    return hashlib.sha256(data).digest()


def _box_aad(key_id: bytes, round: int, sender: str, receiver: str) -> bytes:
    return b"|".join((b"securefl-secagg-box", key_id, struct.pack(">Q", round), sender.encode(), receiver.encode()))


# --- messages: JSON objects of strings, numbers and hex; refused with ShareError when they do not fit ---
def _dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _loads(data: bytes, what: str, keys: set[str]) -> dict[str, Any]:
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ShareError(f"secagg {what} is not a JSON object: garbled or not from this scheme") from None
    if not isinstance(obj, dict) or set(obj) != keys:
        raise ShareError(f"secagg {what} must hold exactly the fields {sorted(keys)}")
    return obj


def _hex(value: object, what: str, size: int | None = None) -> bytes:
    try:
        out = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        out = None
    if out is None or (size is not None and len(out) != size):
        raise ShareError(f"secagg {what} is not {'hex' if size is None else f'{size} bytes of hex'}")
    return out


def _ids(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value) or len(set(value)) != len(value):
        raise ShareError(f"secagg {what} must be a list of distinct party ids")
    for p in value:
        check_party_id(p)
    return value


@dataclass(frozen=True)
class Advert:
    """A party's advertised public keys for one round, as signed."""

    party: str
    c_pk: bytes
    s_pk: bytes
    signature: bytes
    certificate: bytes

    def to_json(self) -> dict[str, str]:
        """The advertisement as JSON fields: the party id, and the keys, signature and certificate as hex."""
        return {"party": self.party, "c_pk": self.c_pk.hex(), "s_pk": self.s_pk.hex(),
                "sig": self.signature.hex(), "cert": self.certificate.hex()}

    @classmethod
    def from_json(cls, obj: object) -> Advert:
        """The advertisement :meth:`to_json` wrote; :class:`ShareError` unless ``obj`` holds exactly its five fields,
        a valid party id, 32-byte public keys and hex signature and certificate.  The signature is not verified here.
        """
        if not isinstance(obj, dict) or set(obj) != {"party", "c_pk", "s_pk", "sig", "cert"}:
            raise ShareError("a secagg advertisement must hold party, c_pk, s_pk, sig and cert")
        party = obj["party"]
        if not isinstance(party, str):
            raise ShareError("a secagg advertisement names no party")
        check_party_id(party)
        return cls(party, _hex(obj["c_pk"], "public key", 32), _hex(obj["s_pk"], "public key", 32),
                   _hex(obj["sig"], "signature"), _hex(obj["cert"], "certificate"))


@dataclass
class _Held:
    """The two shares a party holds of one neighbour's secrets, with their commitment salts."""

    b: int
    sk: int
    salt_b: bytes
    salt_sk: bytes


@dataclass
class _PartyRound:
    roster: tuple[str, ...]
    seed: bytes
    threshold: int
    neighbours: tuple[str, ...]
    c_sk: X25519PrivateKey | None
    s_sk: X25519PrivateKey | None
    stage: int = 0
    adverts: dict[str, Advert] = field(default_factory=dict)
    b: bytes | None = None
    held: dict[str, _Held] = field(default_factory=dict)
    live: tuple[str, ...] = ()
    in_round: bool = False
    protected: bool = False
    revealed: dict[str, str] = field(default_factory=dict)
    """Neighbour -> the kind of share of it this party let out ("b" or "sk"): it never lets out the other."""
    context: bytes = b""
    """The round's bound context (:meth:`SecAggScheme.bind_round`): the digest of the model it trained from."""
    confirmed: tuple[str, ...] | None = None
    """The one survivor set this party signed in the consistency round (it never signs another)."""


@dataclass
class _AggRound:
    key_id: bytes
    roster: tuple[str, ...]
    seed: bytes
    degree: int
    threshold: int
    adverts: dict[str, Advert] = field(default_factory=dict)
    boxes: dict[tuple[str, str], str] = field(default_factory=dict)
    commits: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)
    acks: dict[str, tuple[set[str], dict[str, str]]] = field(default_factory=dict)
    live: tuple[str, ...] = ()
    refused: dict[str, str] = field(default_factory=dict)
    """Parties whose setup message was garbled or misaddressed, with the reason: left out of the round."""
    confirmed: tuple[str, ...] = ()
    """The survivor set the kept confirmations vouch for (set by ``consistency_done``)."""
    confirmations: dict[str, dict[str, str]] = field(default_factory=dict)
    """Survivor -> its signed confirmation (``sig``, ``cert``, ``context`` as hex)."""
    context: bytes = b""
    """The context every confirmation named: what the survivors' pairwise masks were derived under."""
    _graph: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _live_graph: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def nbrs(self, party: str) -> tuple[str, ...]:
        if not self._graph:
            self._graph = graph(self.roster, self.seed, self.degree)
        return self._graph[party]

    def settle(self, live: tuple[str, ...]) -> None:
        """Fix the round's set L (and the graph restricted to it)."""
        self.live, members = live, set(live)
        self._live_graph = {p: tuple(q for q in self.nbrs(p) if q in members) for p in live}

    def live_nbrs(self, party: str) -> tuple[str, ...]:
        return self._live_graph.get(party, ())


class _PartyMaterial:
    """A party key's state: its bound identity (if any) and its rounds' secrets, in memory only."""

    __slots__ = ("identity", "rounds")

    def __init__(self) -> None:
        self.identity: PartyIdentity | None = None
        self.rounds: dict[int, _PartyRound] = {}


class _AggMaterial:
    """The aggregator key's state: each round's advertisements, commitments and set ``L``."""

    __slots__ = ("rounds",)

    def __init__(self) -> None:
        self.rounds: dict[int, _AggRound] = {}


def _take_each(st: _AggRound, replies: Mapping[str, bytes], take: Callable[[_AggRound, str, bytes], None]) -> None:
    """``take`` every reply; a :class:`ShareError` leaves its sender out of the round (recorded), not the round."""
    for sender, data in sorted(replies.items()):
        try:
            take(st, sender, data)
        except ShareError as exc:
            st.refused[sender] = str(exc)
            log.warning("secagg: %s is left out of the round: %s", sender, exc)


def _session(key_id: bytes, round: int, seed: bytes) -> bytes:
    """8 bytes naming one key exchange: an upload says which one it was masked under."""
    return hashlib.sha256(b"|".join((b"securefl-secagg-session", key_id, struct.pack(">Q", round), seed))).digest()[:8]


def _forget_old(rounds: dict[int, Any], current: int) -> None:
    for old in [r for r in rounds if r <= current - _KEEP_ROUNDS]:
        del rounds[old]


class SecAggScheme(Scheme, InteractiveSetup, ShareReveal, ConsistencyCheck, BindsRound):
    """SecAgg+ masking with dropout recovery (see the module docstring)."""

    name = "secagg"
    params_type = SecAggParams
    reveal_plan = RevealPlan.from_shares()
    threat_model = ThreatModel(
        key_holders={
            "party": ("fresh X25519 key pairs and a self-mask seed each round; Shamir shares of its neighbours' "
                      "seeds and mask keys (t-of-k)"),
            "aggregator": "no secret: advertised public keys, share commitments, and the shares it asks for",
            "authority": "not used: the key set is only a name; the parties make every round's keys",
        },
        aggregator_learns=("the weighted sum of the surviving parties' updates, their weights, the vector "
                           "length and who dropped; a masked update looks uniformly random"),
        party_learns="the fused model; shares of its neighbours' secrets, fewer than t of which reveal nothing",
        collusion=("the aggregator with fewer than t of a party's neighbours cannot unmask it; t of its "
                   "neighbours with the aggregator can (the threshold is a majority of the neighbourhood). A "
                   "released sum of the victim and t-1 colluders minus their inputs is the victim's update, so a "
                   "sum is unmasked only from at least min_contributors updates (default t+1; checked by the "
                   "aggregator and by every party before it gives a share)"),
        dropouts=("parties may drop after the key exchange as long as each dropped party and each survivor "
                  "keep at least t surviving neighbours, and at least min_contributors parties survive; the sum is "
                  "then exact over the survivors"),
        not_protected=("integrity (a malicious aggregator can drop updates, and with crypto.verify_aggregate = "
                       "\"off\" also alter them; it cannot tell parties "
                       "different dropout sets or models: the consistency round needs floor(2n/3)+1 survivors' "
                       "signatures over one set, so at most n/3 parties may drop between upload and shares), "
                       "the weights and vector length (public), values beyond clip (clipped)"),
        malicious_aggregator=("the weighted sum of at least max(t, min_contributors) survivors that all signed one "
                              "survivor set (the consistency round, Bonawitz et al. 2017 section 4), every one of "
                              "them trained from one global model (checked in their signed statements)"),
        malicious_aggregator_unverified=("the same sum of at least max(t, min_contributors) survivors that signed "
                                         "one survivor set (the consistency round is always on); only the check "
                                         "of the signed statements that all trained from one model is absent"),
    )

    params: SecAggParams

    def __init__(self, params: SecAggParams | None = None) -> None:
        super().__init__(params)
        self._fp = self.params.fixed_point()
        k = self.params.ring_bits
        self._dtype = np.dtype("<u4") if k <= 32 else np.dtype("<u8")
        self._mask = self._dtype.type((1 << k) - 1)
        self._weights = IntegerWeights(self.params.weight_scale, self.params.max_total_weight, "crypto.secagg",
                                       room="ring bits", wraps="the masked sum")

    @property
    def declarations(self) -> Declarations:
        """The default declarations, with ``value_bound``: ``clip`` (values beyond it are clipped, with a warning)."""
        return dataclasses.replace(super().declarations,
                                   value_bound=self._value_bound)

    @property
    def _value_bound(self) -> float:
        return float(self.params.clip)

    def tolerance(self, weights: Sequence[float]) -> float:
        """Stochastic rounding (one step per value), plus the effect of rounding weights to integers."""
        eps = self.params.weight_error([float(w) for w in weights])
        clip = float(self.params.clip)
        weight_part = 2 * clip * eps / (1 - eps) if eps < 1 else float("inf")
        return self._fp.value_error() + weight_part + 1e-12 * clip

    # --- keys ------------------------------------------------------------------------
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """Only a name for the key set: every round's keys are made by the parties during setup."""
        key_id = random_bytes(16)
        parties = {pid: PartyKey(self.name, key_id, _PartyMaterial(), holds_secret=False,
                                 owner=check_party_id(pid)) for pid in party_ids}
        return KeySet(aggregator=AggregatorKey(self.name, key_id, _AggMaterial(), holds_secret=False),
                      parties=parties, authority=AuthorityKey(self.name, key_id, None, holds_secret=False),
                      key_id=key_id)

    def bind_identity(self, key: PartyKey, identity: PartyIdentity) -> None:
        """Sign this party's advertisements with ``identity`` and require its neighbours' to verify."""
        self._party(key).identity = identity

    def _check_key(self, key: Key) -> None:
        material = key.unwrap(self.name)
        expected = {Role.PARTY: _PartyMaterial, Role.AGGREGATOR: _AggMaterial}.get(key.role, type(None))
        if not isinstance(material, expected):
            raise MismatchError("key", f"{key!r} carries no secagg material for its role")

    def _party(self, key: PartyKey) -> _PartyMaterial:
        self._check_key(key)
        material: _PartyMaterial = key.unwrap(self.name)
        return material

    def _agg(self, key: AggregatorKey) -> _AggMaterial:
        self._check_key(key)
        material: _AggMaterial = key.unwrap(self.name)
        return material

    def _material_to_bytes(self, key: Key) -> bytes:
        return b""  # nothing long-term: a round's secrets never leave the process that made them

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        if data or cls is FunctionKey:
            raise MalformedCiphertextError("secagg keys carry no material (and there are no function keys)")
        return {Role.PARTY: _PartyMaterial, Role.AGGREGATOR: _AggMaterial}.get(role, lambda: None)()

    # --- setup (aggregator side) -------------------------------------------------------
    def setup_steps(self, round: int) -> int:
        """4, every round (steps 0-3 of the module docstring): every round's keys are made fresh."""
        return _STEPS

    def setup_messages(self, key: AggregatorKey, *, round: int, step: int, parties: Sequence[str],
                       replies: Mapping[str, bytes]) -> Mapping[str, bytes]:
        """Aggregator, steps 0-3: the roster and a fresh graph seed; each party's neighbours' advertisements;
        the share boxes addressed to it; the round's set ``L``.

        A reply that fails its checks leaves only its sender out of the round (recorded, logged);
        :class:`ShareError` for a step outside 0-3, or a later step of a round whose step 0 did not run here.
        """
        state = self._agg(key)
        if step == 0:
            roster = tuple(sorted(parties))
            n = len(roster)
            st = _AggRound(key.key_id, roster, random_bytes(32), self.params.degree(n), self.params.share_threshold(n))
            _forget_old(state.rounds, round)
            state.rounds[round] = st
            msg = _dumps({"key_id": key.key_id.hex(), "round": round, "seed": st.seed.hex(), "roster": list(roster)})
            return dict.fromkeys(roster, msg)
        st = self._agg_round(state, round)
        if step == 1:
            _take_each(st, replies, self._take_advert)
            return {p: _dumps({"adverts": [st.adverts[q].to_json() for q in st.nbrs(p) if q in st.adverts]})
                    for p in st.adverts}
        if step == 2:
            _take_each(st, replies, self._take_boxes)
            inbox: dict[str, dict[str, str]] = {p: {} for p in replies if p not in st.refused}
            for (sender, to), box in st.boxes.items():
                if to in inbox and sender not in st.refused:
                    inbox[to][sender] = box
            return {p: _dumps({"boxes": box}) for p, box in inbox.items()}
        if step == 3:
            _take_each(st, replies, self._take_ack)
            st.settle(self._settle(st))
            msg = _dumps({"live": list(st.live)})
            return {p: msg for p in replies if p not in st.refused}
        raise ShareError(f"secagg has {_STEPS} setup steps, asked for step {step}")

    def _take_advert(self, st: _AggRound, sender: str, data: bytes) -> None:
        advert = Advert.from_json(_loads(data, "advertisement", {"advert"})["advert"])
        if advert.party != sender or sender not in st.roster:
            raise ShareError(f"{sender} sent an advertisement for {advert.party!r}")
        st.adverts[sender] = advert

    def _take_boxes(self, st: _AggRound, sender: str, data: bytes) -> None:
        obj = _loads(data, "share boxes", {"boxes", "commits"})
        boxes, commits = obj["boxes"], obj["commits"]
        if not isinstance(boxes, dict) or not isinstance(commits, dict) or set(boxes) != set(commits):
            raise ShareError(f"{sender}'s share boxes and commitments do not match")
        taken: dict[tuple[str, str], tuple[str, tuple[bytes, bytes]]] = {}
        for to, box in boxes.items():
            c = commits[to]
            if to not in st.nbrs(sender) or not isinstance(box, str) or not isinstance(c, list) or len(c) != 2:
                raise ShareError(f"{sender} addressed a share box to {to!r}, not one of its neighbours")
            taken[(sender, to)] = (box, (_hex(c[0], "commitment", 32), _hex(c[1], "commitment", 32)))
        for pair, (box, commit) in taken.items():  # all or nothing
            st.boxes[pair], st.commits[pair] = box, commit

    def _take_ack(self, st: _AggRound, sender: str, data: bytes) -> None:
        obj = _loads(data, "share acknowledgement", {"accepted", "rejected"})
        rejected = obj["rejected"]
        if not isinstance(rejected, dict) or not all(isinstance(k, str) for k in rejected):
            raise ShareError(f"{sender}'s acknowledgement is garbled")
        st.acks[sender] = (set(_ids(obj["accepted"], "accepted list")), dict(rejected))

    def _settle(self, st: _AggRound) -> tuple[str, ...]:
        """The round's set L (step 3 of the module docstring)."""
        accused = {s for _, rejected in st.acks.values() for s in rejected}
        live = {p for p in st.acks if p not in accused}
        while True:
            keep = set()
            for p in live:
                nbrs = [q for q in st.nbrs(p) if q in live]
                shared = all((p, q) in st.boxes and p in st.acks[q][0] for q in nbrs)
                if shared and (st.degree == 0 or len(nbrs) >= st.threshold):
                    keep.add(p)
            if keep == live:
                return tuple(sorted(live))
            live = keep

    def setup_done(self, key: AggregatorKey, *, round: int, replies: Mapping[str, bytes]) -> tuple[str, ...]:
        """The parties of ``L`` that confirmed it, sorted; a garbled confirmation leaves only its sender out."""
        st = self._agg_round(self._agg(key), round)
        ok: set[str] = set()

        def confirm(st: _AggRound, sender: str, data: bytes) -> None:
            if _loads(data, "setup confirmation", {"ok"})["ok"] is True and sender in st.live:
                ok.add(sender)

        _take_each(st, replies, confirm)
        return tuple(sorted(ok))

    def _agg_round(self, state: _AggMaterial, round: int) -> _AggRound:
        if round not in state.rounds:
            raise ShareError(f"round {round} was not set up at this aggregator: run the scheme's setup steps first")
        return state.rounds[round]

    # --- setup (party side) --------------------------------------------------------------
    def setup_reply(self, key: PartyKey, *, round: int, step: int, message: bytes) -> bytes:
        """Party, steps 0-3: its advertisement; its share boxes and commitments; its verdict on the boxes it got;
        whether it is in ``L``.  :class:`ShareError` for a step out of order or a message that fails its checks.
        """
        state, me = self._party(key), key.owner
        if me is None:
            raise ShareError(f"{key!r} names no party and cannot take part in a setup")
        if step == 0:
            return self._advertise(key, state, me, round, message)
        st = state.rounds.get(round)
        if st is None or st.stage != step - 1:
            raise ShareError(f"{me}: setup step {step} of round {round} arrived out of order (replayed or misrouted)")
        if step == 1:
            reply = self._share(key, st, state.identity, me, round, message)
        elif step == 2:
            reply = self._open_boxes(key, st, me, round, message)
        elif step == 3:
            live = _ids(_loads(message, "live set", {"live"})["live"], "live set")
            st.in_round = me in live
            if st.in_round:
                st.live = tuple(p for p in st.neighbours if p in set(live))
                missing = [p for p in st.live if p not in st.held]
                if missing or (st.neighbours and len(st.live) < st.threshold):
                    st.in_round = False
                    raise ShareError(f"{me}: the round's set names neighbours {missing} whose shares it does not "
                                     f"hold, or fewer than {st.threshold} neighbours: refused")
            reply = _dumps({"ok": st.in_round})
        else:
            raise ShareError(f"secagg has {_STEPS} setup steps, asked for step {step}")
        st.stage = step
        return reply

    def _advertise(self, key: PartyKey, state: _PartyMaterial, me: str, round: int, message: bytes) -> bytes:
        obj = _loads(message, "roster", {"key_id", "round", "seed", "roster"})
        if obj["key_id"] != key.key_id.hex() or obj["round"] != round:
            raise ShareError(f"{me}: a setup for another key set or round arrived as round {round}: refused")
        if round in state.rounds:
            raise ShareError(f"{me}: round {round} was set up already; a second setup (a replay) is refused")
        roster = tuple(_ids(obj["roster"], "roster"))
        if me not in roster:
            raise ShareError(f"{me}: the roster of round {round} does not name this party")
        seed = _hex(obj["seed"], "graph seed", 32)
        n = len(roster)
        c_sk, s_sk = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        st = _PartyRound(roster, seed, self.params.share_threshold(n),
                         neighbours(roster, seed, me, self.params.degree(n)), c_sk, s_sk)
        _forget_old(state.rounds, round)
        state.rounds[round] = st
        c_pk, s_pk = _raw_public(c_sk), _raw_public(s_sk)
        sig, cert = b"", b""
        if state.identity is not None:
            sig, cert = state.identity.sign(_advert_bytes(key.key_id, round, seed, me, c_pk, s_pk))
        return _dumps({"advert": Advert(me, c_pk, s_pk, sig, cert).to_json()})

    def _share(self, key: PartyKey, st: _PartyRound, identity: PartyIdentity | None, me: str, round: int,
               message: bytes) -> bytes:
        adverts = [Advert.from_json(a) for a in _list(_loads(message, "advertisements", {"adverts"})["adverts"])]
        for ad in adverts:
            if ad.party not in st.neighbours or ad.party in st.adverts:
                raise ShareError(f"{me}: an advertisement of {ad.party!r}, not a neighbour (or sent twice): refused")
            if identity is not None:
                identity.verify(ad.party, _advert_bytes(key.key_id, round, st.seed, ad.party, ad.c_pk, ad.s_pk),
                                ad.signature, ad.certificate)
            st.adverts[ad.party] = ad
        if identity is not None:
            log.info("%s: round %d: %d neighbours' advertisements verified against their certificates", me, round,
                     len(adverts))
        holders = sorted(st.adverts)
        if st.neighbours and len(holders) < st.threshold:
            raise ShareError(f"{me}: only {len(holders)} neighbours advertised keys, {st.threshold} are needed to "
                             "hold its shares")
        assert st.s_sk is not None and st.c_sk is not None
        st.b = random_bytes(32)
        boxes: dict[str, str] = {}
        commits: dict[str, list[str]] = {}
        if holders:
            xs = [st.roster.index(h) + 1 for h in holders]
            b_shares = shamir.split(st.b, xs, st.threshold)
            sk_shares = shamir.split(st.s_sk.private_bytes_raw(), xs, st.threshold)
            for h, x in zip(holders, xs, strict=True):
                salt_b, salt_sk = random_bytes(_SALT), random_bytes(_SALT)
                plain = (shamir.share_to_bytes(b_shares[x]) + shamir.share_to_bytes(sk_shares[x]) + salt_b
                         + salt_sk)
                box_key = derive(agree(st.c_sk, st.adverts[h].c_pk), b"share-box", key.key_id, round, me, h)
                nonce = random_bytes(12)
                sealed = ChaCha20Poly1305(box_key).encrypt(nonce, plain, _box_aad(key.key_id, round, me, h))
                boxes[h] = (nonce + sealed).hex()
                commits[h] = [_commit("b", key.key_id, round, me, h, salt_b, b_shares[x]).hex(),
                              _commit("sk", key.key_id, round, me, h, salt_sk, sk_shares[x]).hex()]
        return _dumps({"boxes": boxes, "commits": commits})

    def _open_boxes(self, key: PartyKey, st: _PartyRound, me: str, round: int, message: bytes) -> bytes:
        boxes = _loads(message, "share boxes", {"boxes"})["boxes"]
        if not isinstance(boxes, dict):
            raise ShareError(f"{me}: garbled share boxes")
        accepted, rejected = [], {}
        for sender, box in boxes.items():
            ad = st.adverts.get(sender)
            if ad is None or not isinstance(box, str):
                rejected[sender] = "a share box from a party that is not an advertised neighbour"
                continue
            try:
                st.held[sender] = self._unbox(key, st, me, round, ad, _hex(box, "share box"))
            except (ShareError, InvalidTag):
                rejected[sender] = "forged or corrupted share box (its AEAD check failed)"
                continue
            accepted.append(sender)
        st.c_sk = None  # its only use was the boxes
        return _dumps({"accepted": sorted(accepted), "rejected": rejected})

    def _unbox(self, key: PartyKey, st: _PartyRound, me: str, round: int, ad: Advert, raw: bytes) -> _Held:
        assert st.c_sk is not None
        if len(raw) < 12 + 16:
            raise ShareError("share box truncated")
        box_key = derive(agree(st.c_sk, ad.c_pk), b"share-box", key.key_id, round, ad.party, me)
        plain = ChaCha20Poly1305(box_key).decrypt(raw[:12], raw[12:], _box_aad(key.key_id, round, ad.party, me))
        n = shamir.SHARE_BYTES
        if len(plain) != 2 * n + 2 * _SALT:
            raise ShareError("share box holds the wrong number of bytes")
        return _Held(shamir.share_from_bytes(plain[:n]), shamir.share_from_bytes(plain[n:2 * n]),
                     plain[2 * n:2 * n + _SALT], plain[2 * n + _SALT:])

    # --- the round ---------------------------------------------------------------------
    def _applied_weight(self, weight: float) -> float:
        return self._integer_weight(weight) / self.params.weight_scale

    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        """Quantise, weight and mask one update (at the party); its round's secrets are erased after."""
        state, me = self._party(key), key.owner
        st = state.rounds.get(round)
        if st is None or st.stage != _STEPS - 1 or not st.in_round:
            raise ShareError(f"{me} was not set up for round {round}: the scheme's setup exchange "
                             "(setup_steps) must complete before a masked update can be made")
        if st.protected:
            raise KeyReuseError(f"{me} already masked an update for round {round}; its masks serve one update")
        st.protected = True
        assert st.b is not None and st.s_sk is not None and me is not None
        q = self._fp.encode(x)
        if q.clipped:
            warnings.warn(f"{q.clipped} of {x.size} values were outside [-{self.params.clip}, {self.params.clip}] "
                          "and were clipped; raise crypto.secagg.clip if this happens often",
                          ClippedValuesWarning, stacklevel=3)
        y = self._to_ring(q.values * np.int64(self._integer_weight(weight)))
        expand = Expander(x.size, self._dtype)
        y += expand(st.b)
        for j in st.live:
            mask = expand(self._pair_seed(st.s_sk, st.adverts[j].s_pk, key.key_id, round, me, j, st.context))
            if me < j:
                y += mask
            else:
                y -= mask
        st.b, st.s_sk = None, None
        y &= self._mask
        return self._header(_session(key.key_id, round, st.seed)) + y.tobytes()

    def _pair_seed(self, private: X25519PrivateKey, public: bytes, key_id: bytes, round: int, a: str,
                   b: str, context: bytes) -> bytes:
        return derive(agree(private, public), b"pairwise-mask", key_id, round, a, b, context)

    def _combine(self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int,
                 weights: Sequence[float]) -> Payload:
        """Sum the masked words mod ``2**k`` (associative: partial aggregates combine the same way)."""
        self._total_integer_weight(weights)
        round = updates[0].round
        session = _session(key.key_id, round, self._agg_round(self._agg(key), round).seed)
        total = np.zeros(length, dtype=self._dtype)
        for env in updates:
            total += self._words(env, session)
        total &= self._mask
        return self._header(session) + total.tobytes()

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        raise CryptoError("secagg reveals only from the survivors' unmasking shares: use share_request, "
                          "decryption_share and reveal_shares (the round engine and run_round do)")

    # --- unmasking -------------------------------------------------------------------------
    def share_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        """Every contributor is asked, ``t`` shares are needed, and the message names the parties of ``L`` that dropped.

        :class:`ShareError` if a contributor was not in ``L``, or the round was not set up here.
        """
        st = self._agg_round(self._agg(key), aggregate.round)
        survivors = set(aggregate.parties)
        strangers = survivors - set(st.live)
        if strangers:
            raise ShareError(f"{sorted(strangers)} contributed to round {aggregate.round} but were not set up for it")
        self._check_contributors("the aggregator", aggregate, len(st.roster))
        if st.confirmed != tuple(sorted(survivors)):
            raise ShareError(f"round {aggregate.round}: no consistency round vouched for this aggregate's "
                             "contributors: run consistency_request, consistency_reply and consistency_done first")
        dropped = [p for p in st.live if p not in survivors]
        confirmations = [{"party": p, **c} for p, c in sorted(st.confirmations.items())]
        return ShareRequest(parties=tuple(sorted(st.confirmations)), needed=st.threshold,
                            message=_dumps({"dropped": dropped, "confirmations": confirmations}))

    def _check_contributors(self, who: str | None, aggregate: Envelope, n: int) -> None:
        """:class:`PolicyError` unless ``aggregate`` sums at least ``min_contributors`` updates (federation of ``n``).

        A smaller sum minus the inputs of the other contributors (who may collude with
        the aggregator) is the remaining party's update: it is never unmasked.
        """
        count, least = len(aggregate.parties), self.params.contributors_needed(n)
        if count < least:
            raise PolicyError(
                f"{who}: the aggregate of round {aggregate.round} sums {count} update(s), fewer than the "
                f"{least} that crypto.secagg.min_contributors requires: it is not unmasked, since the sum minus the "
                f"other contributors' inputs would be one party's update. Let rounds wait for at least {least} "
                f"updates (federation.quorum = {least} or more), or, knowing that it weakens the guarantee, lower "
                "crypto.secagg.min_contributors")

    def decryption_share(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        """This party's shares: ``b`` of surviving neighbours, ``s`` keys of dropped ones, never both of one peer."""
        state, me = self._party(key), key.owner
        st = state.rounds.get(aggregate.round)
        if st is None or not st.in_round:
            raise ShareError(f"{me} holds no shares for round {aggregate.round}")
        request = _loads(message, "share request", {"dropped", "confirmations"})
        dropped = set(_ids(request["dropped"], "dropped list"))
        survivors = set(aggregate.parties)
        both = sorted(dropped & survivors)
        if both:
            raise ShareError(f"{me} was asked for both kinds of share of {both} (named survivor and dropped): refused")
        named = dropped | survivors
        if not named <= set(st.roster) or not set(st.live) <= named:
            raise ShareError(f"{me}: the share request does not account for every neighbour of its round: refused")
        self._check_contributors(me, aggregate, len(st.roster))  # the aggregator cannot be trusted to check
        if st.neighbours and len(survivors) < st.threshold:
            raise ShareError(f"{me}: only {len(survivors)} survivors, fewer than the threshold {st.threshold}: "
                             "refused (their sum would be one party's update)")
        self._check_confirmed(key, state, st, aggregate, request["confirmations"])
        out = []
        for peer in st.live:
            kind = "b" if peer in survivors else "sk"
            if st.revealed.setdefault(peer, kind) != kind:
                raise ShareError(f"{me} already let out the other kind of share of {peer}: refused (both kinds "
                                 "would unmask its update)")
        for peer in st.live:
            held, kind = st.held[peer], st.revealed[peer]
            value, salt = (held.b, held.salt_b) if kind == "b" else (held.sk, held.salt_sk)
            out.append({"of": peer, "kind": kind, "share": shamir.share_to_bytes(value).hex(), "salt": salt.hex()})
        return _dumps({"shares": out})

    # --- the consistency round (Bonawitz et al. 2017, section 4) ------------------------------
    def bind_round(self, key: PartyKey, *, round: int, context: bytes) -> None:
        """Derive this party's pairwise masks of ``round`` under ``context`` and sign it in the consistency round.

        The engine binds the digest of the global model the party trained from, so
        parties sent different models make masks that do not cancel, and their
        confirmations name different models (no survivor set gathers enough).
        :class:`ShareError` if ``round`` was not set up here or its update is already masked.
        """
        me = key.owner
        st = self._party(key).rounds.get(round)
        if st is None or st.protected:
            raise ShareError(f"{me}: round {round} is not set up here, or its update is already masked: its context "
                             "is bound after the setup exchange and before protect")
        st.context = bytes(context)

    def consistency_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        """Every contributor is asked to sign the survivor set; ``needed``: :meth:`SecAggParams.signatures_needed`.

        :class:`ShareError` if a contributor was not in ``L``; :class:`PolicyError` for too few contributors.
        """
        st = self._agg_round(self._agg(key), aggregate.round)
        strangers = set(aggregate.parties) - set(st.live)
        if strangers:
            raise ShareError(f"{sorted(strangers)} contributed to round {aggregate.round} but were not set up for it")
        self._check_contributors("the aggregator", aggregate, len(st.roster))
        st.confirmed, st.confirmations = (), {}
        return ShareRequest(parties=tuple(sorted(aggregate.parties)),
                            needed=self.params.signatures_needed(len(st.roster)))

    def consistency_reply(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        """This survivor's signature over the survivor set ``aggregate`` names, bound to its context.

        It signs only a set that names itself, holds at least ``min_contributors``
        parties of its roster, and is the one set it signs this round
        (:class:`~crypto_backends.errors.AggregateMismatchError` for a second, different set;
        :class:`PolicyError` for too few); :class:`KeyRoleError` when no identity is bound.
        """
        state, me = self._party(key), key.owner
        st = state.rounds.get(aggregate.round)
        if st is None or not st.in_round or not st.protected:
            raise ShareError(f"{me} masked no update in round {aggregate.round}: it has no survivor set to confirm")
        if bytes(message):
            raise ShareError(f"{me}: a secagg consistency request carries no message; this one is garbled")
        self._check_envelope(aggregate, key, kind="aggregate")
        survivors = tuple(sorted(aggregate.parties))
        if me not in survivors or not set(survivors) <= set(st.roster):
            raise self._mismatch(me, aggregate.round, f"asked to confirm survivors {list(survivors)}, which leave out "
                                 "this party (it uploaded) or name parties outside its roster")
        self._check_contributors(me, aggregate, len(st.roster))
        if st.confirmed is not None and st.confirmed != survivors:
            raise self._mismatch(me, aggregate.round, f"asked to confirm survivors {list(survivors)} after it "
                                 f"confirmed {list(st.confirmed)}: the aggregator shows parties different survivor "
                                 "sets")
        identity = self._identity(state, me)
        signature, certificate = identity.sign(_confirm_bytes(key.key_id, aggregate.round, st.seed, survivors,
                                                              st.context))
        st.confirmed = survivors
        return _dumps({"sig": signature.hex(), "cert": certificate.hex(), "context": st.context.hex()})

    def check_consistency(self, key: AggregatorKey, aggregate: Envelope, party: str, reply: bytes) -> None:
        """A confirmation must be well-formed hex from a contributor (its signature is checked by the parties)."""
        self._parse_confirmation(aggregate, party, reply)

    def consistency_done(self, key: AggregatorKey, aggregate: Envelope, replies: Mapping[str, bytes]) -> None:
        """Keep the confirmations for the share request; they must all name one context (one global model).

        :class:`~crypto_backends.errors.AggregateMismatchError` if they name several: the
        parties were sent different models, and their masks do not cancel.
        """
        st = self._agg_round(self._agg(key), aggregate.round)
        confirmations = {p: self._parse_confirmation(aggregate, p, r) for p, r in replies.items()}
        contexts = {c["context"] for c in confirmations.values()}
        if len(contexts) > 1:
            raise AggregateMismatchError(
                f"round {aggregate.round}: the survivors' confirmations name {len(contexts)} different global models: "
                "the parties were sent different models, so their masks do not cancel; nothing is unmasked")
        st.confirmed, st.confirmations = tuple(sorted(aggregate.parties)), confirmations
        st.context = bytes.fromhex(contexts.pop()) if contexts else b""

    def _parse_confirmation(self, aggregate: Envelope, party: str, reply: bytes) -> dict[str, str]:
        obj = _loads(reply, "confirmation", {"sig", "cert", "context"})
        if party not in aggregate.parties:
            raise ShareError(f"{party} confirmed round {aggregate.round} but did not contribute to it")
        for name in ("sig", "cert", "context"):
            _hex(obj[name], f"confirmation {name}")
        return {name: str(obj[name]) for name in ("sig", "cert", "context")}

    def _identity(self, state: _PartyMaterial, me: str | None) -> PartyIdentity:
        if state.identity is None:
            raise KeyRoleError(f"{me}: secagg's consistency round signs the survivor set with the party's identity, "
                               "and none is bound: bind one with bind_identity (the gRPC party binds its TLS "
                               "certificate; in one process use crypto_backends.identities.LocalAuthority)")
        return state.identity

    @staticmethod
    def _mismatch(me: str | None, round: int, what: str) -> AggregateMismatchError:
        """The typed refusal, logged at the party: it reveals nothing for the round."""
        log.error("secagg: %s refuses to reveal anything for round %d: %s", me, round, what)
        return AggregateMismatchError(f"{me}: round {round}: {what}; nothing is revealed for this round")

    def _check_confirmed(self, key: PartyKey, state: _PartyMaterial, st: _PartyRound, aggregate: Envelope,
                         confirmations: object) -> None:
        """At least :meth:`SecAggParams.signatures_needed` valid signatures, from distinct survivors, over the set
        this party signed and its own context; else :class:`~crypto_backends.errors.AggregateMismatchError`."""
        me, rnd = key.owner, aggregate.round
        identity = self._identity(state, me)
        survivors = tuple(sorted(aggregate.parties))
        if st.confirmed is None:
            raise self._mismatch(me, rnd, "asked for unmasking shares before it confirmed a survivor set (the "
                                 "consistency round was skipped)")
        if st.confirmed != survivors:
            raise self._mismatch(me, rnd, f"asked for shares of survivors {list(survivors)} after it confirmed "
                                 f"{list(st.confirmed)}: the aggregator shows parties different survivor sets")
        data = _confirm_bytes(key.key_id, rnd, st.seed, survivors, st.context)
        valid: set[str] = set()
        other_model = forged = 0
        for c in _list(confirmations):
            if not isinstance(c, dict) or set(c) != {"party", "sig", "cert", "context"}:
                raise ShareError(f"{me}: a confirmation in the share request of round {rnd} is garbled")
            party = c["party"]
            if not isinstance(party, str) or party in valid or party not in survivors:
                forged += 1
            elif c["context"] != st.context.hex():
                other_model += 1
            else:
                try:
                    identity.verify(party, data, _hex(c["sig"], "signature"), _hex(c["cert"], "certificate"))
                    valid.add(party)
                except ShareError:
                    forged += 1
        need = self.params.signatures_needed(len(st.roster))
        if len(valid) < need:
            raise self._mismatch(me, rnd, f"{len(valid)} valid survivors' signature(s) over its survivor set, "
                                 f"{need} are needed ({other_model} name another global model, {forged} are forged, "
                                 "duplicated, of another round or federation, or from non-survivors)")
        log.info("%s: round %d: %d survivors' signatures over the survivor set verified", me, rnd, len(valid))

    def _parse_shares(self, st: _AggRound, aggregate: Envelope, party: str, share: bytes) -> list[tuple[str, str, int]]:
        items = _list(_loads(share, "unmasking share", {"shares"})["shares"])
        survivors = set(aggregate.parties)
        out, seen = [], set()
        for item in items:
            if not isinstance(item, dict) or set(item) != {"of", "kind", "share", "salt"}:
                raise ShareError(f"{party}'s unmasking share is garbled")
            peer, kind = item["of"], item["kind"]
            if peer not in st.live or party not in st.live_nbrs(peer) or peer in seen:
                raise ShareError(f"{party} sent a share of {peer!r}, which it does not hold in round {aggregate.round}")
            if kind != ("b" if peer in survivors else "sk"):
                raise ShareError(f"{party} sent the wrong kind of share of {peer}")
            value = shamir.share_from_bytes(_hex(item["share"], "share", shamir.SHARE_BYTES))
            salt = _hex(item["salt"], "salt", _SALT)
            expected = st.commits[(peer, party)][0 if kind == "b" else 1]
            if not hmac.compare_digest(_commit(kind, st.key_id, aggregate.round, peer, party, salt, value),
                                       expected):
                raise ShareError(f"{party}'s share of {peer} does not match its commitment: forged or corrupted")
            seen.add(peer)
            out.append((peer, kind, value))
        return out

    def check_share(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> None:
        """Each share must be of a peer of ``L`` that ``party`` holds shares of, of the kind its survival calls for,
        at most one per peer, and match the commitment made in setup; else :class:`ShareError`.
        """
        st = self._agg_round(self._agg(key), aggregate.round)
        self._parse_shares(st, aggregate, party, share)

    def reveal_shares(self, key: AggregatorKey, aggregate: Envelope, shares: Mapping[str, bytes]) -> np.ndarray:
        """Rebuild survivors' self masks and dropped parties' mask keys, remove the masks, decode the sum."""
        st = self._agg_round(self._agg(key), aggregate.round)
        self._check_envelope(aggregate, key, kind="aggregate")
        self._check_contributors("the aggregator", aggregate, len(st.roster))
        pooled: dict[tuple[str, str], dict[int, int]] = {}
        for party, data in shares.items():
            x = st.roster.index(party) + 1
            for peer, kind, value in self._parse_shares(st, aggregate, party, data):
                pooled.setdefault((peer, kind), {})[x] = value
        survivors = set(aggregate.parties)
        length = aggregate.length
        total = self._words(aggregate, _session(key.key_id, aggregate.round, st.seed)).copy()
        expand = Expander(length, self._dtype)
        for peer in sorted(survivors):
            total -= expand(self._rebuild(st, pooled, peer, "b"))
        for gone in (p for p in st.live if p not in survivors):
            s_sk = X25519PrivateKey.from_private_bytes(self._rebuild(st, pooled, gone, "sk"))
            if _raw_public(s_sk) != st.adverts[gone].s_pk:
                raise ShareError(f"the shares of {gone}'s mask key rebuild another key: its shares were forged")
            for j in st.live_nbrs(gone):
                if j in survivors:  # j added sign(j, gone) * PRG(s_j,gone); take it out
                    mask = expand(self._pair_seed(s_sk, st.adverts[j].s_pk, key.key_id, aggregate.round, gone, j,
                                                  st.context))
                    if j < gone:
                        total -= mask
                    else:
                        total += mask
        total &= self._mask
        signed = self._signed(total)
        weight = self._total_integer_weight(aggregate.weights)
        self._fp.check_sum_range(signed, weight)
        return self._fp.decode(signed, divisor=self.params.weight_scale)

    def _rebuild(self, st: _AggRound, pooled: Mapping[tuple[str, str], Mapping[int, int]], peer: str,
                 kind: str) -> bytes:
        got = pooled.get((peer, kind), {})
        if len(got) < st.threshold:
            what = "self-mask seed" if kind == "b" else "mask key"
            raise ShareError(f"only {len(got)} valid share(s) of {peer}'s {what} arrived, {st.threshold} are needed: "
                             "too many of its neighbours dropped or sent bad shares")
        return shamir.combine(got, st.threshold)

    # --- helpers -------------------------------------------------------------------------
    def _integer_weight(self, weight: float) -> int:
        return self._weights.of(weight)

    def _total_integer_weight(self, weights: Sequence[float]) -> int:
        return self._weights.total(tuple(weights))

    def _to_ring(self, values: np.ndarray) -> np.ndarray:
        """Signed int64 values as words of ``Z_(2**k)`` (two's complement)."""
        return (values.view(np.uint64) & np.uint64(int(self._mask))).astype(self._dtype)

    def _signed(self, words: np.ndarray) -> np.ndarray:
        k = self.params.ring_bits
        signed = words.astype(np.uint64).view(np.int64) if k == 64 else words.astype(np.int64)
        if k < 64:
            signed[signed >= (1 << (k - 1))] -= 1 << k
        return signed

    def _header(self, session: bytes) -> bytes:
        return _HEADER.pack(self.params.ring_bits, self.params.layout_tag(), session)

    def _words(self, env: Envelope, session: bytes) -> np.ndarray:
        view = memoryview(env.payload).cast("B")
        if len(view) < _HEADER.size:
            raise MalformedCiphertextError("secagg payload is truncated inside its header")
        ring, tag, masked_under = _HEADER.unpack(view[:_HEADER.size])
        if ring != self.params.ring_bits or tag != self.params.layout_tag():
            raise MismatchError("scheme", "payload was masked with other clip, bits, weight_scale or max_total_weight "
                                      "values: every role must use the same [crypto.secagg] parameters")
        if not hmac.compare_digest(masked_under, session):
            raise ShareError(f"an update of {', '.join(env.parties)} was masked under another key exchange of round "
                             f"{env.round} (a replay, or sent before the aggregator restarted): it cannot be unmasked")
        body = view[_HEADER.size:]
        if len(body) % self._dtype.itemsize:
            raise MalformedCiphertextError(f"secagg payload body is {len(body)} bytes, not whole "
                                           f"{self._dtype.itemsize}-byte words: truncated")
        if len(body) // self._dtype.itemsize != env.length:
            raise MismatchError("length", f"payload holds {len(body) // self._dtype.itemsize} words, expected "
                                      f"{env.length}")
        words = np.frombuffer(body, dtype=self._dtype)
        if int(words.max(initial=0)) > int(self._mask):
            raise MalformedCiphertextError(f"payload holds words beyond the {self.params.ring_bits}-bit ring")
        return words


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ShareError("a secagg message field that must be a list is not")
    return value
