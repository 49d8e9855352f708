"""The ``fe`` scheme: multi-input inner-product functional encryption with a key authority.

Construction (per key set; ``G`` generates secp256k1's group of prime order ``q``;
``H_j`` are hash-to-curve points, see :mod:`.group`)::

    Setup      authority: master secret msk (32 random bytes);
               party i:   K_i = HMAC-SHA256(msk, "party" | key_id | id_i)
    Round key  k_{i,r,w} = HMAC-SHA512(K_i, "round" | r | w) mod q
    Encrypt    party i, round r, weight w, update x (length m):
               v_j = round(w / unit * clip(x_j) * scale)   an integer
               c_j = v_j * G + k_{i,r,w} * H_j         j = 0 .. m-1, one point each
    Combine    A_j = sum_i c_ij                        (aggregator, unweighted)
    KeyGen     policy check, then dk = sum_{i: y_i > 0} k_{i,r,y_i} mod q
    Decrypt    A_j - dk * H_j = (sum_i v_ij) * G; bounded discrete log; divide by scale

This is the one-time-pad layer of Abdalla, Catalano, Fiore, Gay and Ursu,
"Multi-Input Functional Encryption for Inner Products: Function-Hiding
Realizations and Constructions without Pairings", CRYPTO 2018 (ePrint 2017/972):
each coordinate j is one multi-input inner product over the parties, the pad of
party i is ``u_ij``, and the function key is ``sum_i y_i u_ij``.  Two deviations,
argued in SECURITY.md ("Scheme: fe"):

1. The pads ``u_ij = k_{i,r,w} * H_j`` are outputs of the Naor-Pinkas-Reingold
   key-homomorphic PRF ``F(k, j) = k * H(j)`` (DDH in the random-oracle model; Boneh,
   Lewi, Montgomery, Raghunathan, CRYPTO 2013), fresh for every party, round and
   coordinate.  Key homomorphism makes the function key ``sum_i u_ij`` one scalar
   ``dk`` for the whole round instead of one per coordinate, so the authority never
   needs the model's size.  This is the pattern of Chotard, Dufour Sans, Gay, Phan
   and Pointcheval's multi-client FE (ASIACRYPT 2018) with a key per round (label).
2. ACFGU reuse fixed pads across ciphertexts and hide them under a single-input IPFE
   layer.  With one value per party and coordinate an IPFE function key would
   reveal that layer's master secret, so it would add cost and no protection; we
   use every pad once instead (a fresh round key per round, and the party key
   refuses to encrypt a second, different update in one round).

Payloads (inside the envelope, whose header carries scheme, key set, round,
parties, weights and length): ``length`` uncompressed points of 64 bytes each
(``x || y``, big-endian: SEC 1 without its ``04`` prefix), nothing else; the
all-zero string stands for the identity (possible in an aggregate, negligible in
an update).  Uncompressed, because the aggregator then checks a point with the
curve equation instead of a square root: it costs 64 bytes per value instead of
33, and (with the C kernel of :mod:`.pointsum`) combining is about 24 times faster.  Every point is
checked to lie on the curve before use; a bad one is
:class:`MalformedCiphertextError` naming its sender and position.

Weights are the parties' own (sample counts, say): party i multiplies by ``w_i``
before rounding, and ``w_i`` is bound into its round key, so a function key works
only for the weight vector the parties declared; any other vector decrypts to
noise, reported as :class:`DecodingOverflowError`.  A zero (or absent) weight
leaves a party out, which is how dropouts are handled.

Costs (secp256k1 via coincurve, CPU time on this shared 2-core machine): encrypt
one value ~25-31 us, of which ~22-28 us is the constant-time multiplication by the
round key (libsecp256k1's ECDH path; see :func:`.group.secret_mul`); combine
~0.25 us per point (the C kernel of :mod:`.pointsum`: a curve-equation check and
an affine addition sharing one inversion per block of coordinates; ~5 us through
coincurve without it), threads over coordinate ranges; reveal ~30 us per
coordinate plus a vectorised table lookup.  pymife's curve25519 Damgard MIFE spends ~1.2 ms per
value (~2.3 ms with one instance per coordinate), phe ~8 ms at 2048 bits
(``securefl bench --baselines pymife_damgard,phe``).  Work on long vectors
is spread over ``workers`` processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import numbers
import struct
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..base import (
    Accumulator,
    AggregatorKey,
    Declarations,
    Envelope,
    Key,
    KeySet,
    PartyKey,
    Payload,
    RevealPlan,
    Role,
    Scheme,
    SchemeParams,
    ThreatModel,
)
from ..capabilities import FunctionKeys
from ..encoding import ClippedValuesWarning, FixedPoint
from ..envelope import MAX_ROUND, check_party_id
from ..errors import (
    CryptoError,
    InvalidInputError,
    InvalidParameterError,
    KeyReuseError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
)
from ..keys import AuthorityKey, FunctionKey, require_role
from ..randomness import random_bytes
from . import dlog, group, kernels, parallel, pointsum, policy, vartime

POINT_ENCODINGS = ("uncompressed", "compressed")
_MAX_EXACT = 2.0**52  # |w * clip * scale| must stay an exact float64 integer


@dataclass(frozen=True)
class FEParams(SchemeParams):
    """Parameters of ``fe``.

    ``clip``/``bits``: each value is clipped to ``[-clip, clip]`` and quantised with
    ``2**(bits-1) - 1`` steps per side, after multiplication by the party's weight.
    ``dlog_table_bits``: the baby-step table has ``2**dlog_table_bits`` entries (built
    once per process; 20 takes ~2 s and 25 MB); sums within +-that size cost one
    lookup.  ``min_parties``/``max_share``/``min_parties_changed``: the authority's
    inference-prevention policy (:mod:`.policy`); ``min_parties_changed`` is the fewest
    parties on which any linear combination of the granted weight vectors may be
    non-zero (2: no party's update alone), and :meth:`under_differential_privacy` turns
    it off.  ``policy_window``: the combinations counted are those of the grants
    within this many consecutive rounds (0, the default: the whole run).
    ``weight_unit``: weights are counted in these units before quantisation;
    decrypted sums can reach ``total_weight / weight_unit * 2**(bits-1)``, so raise it
    for large weights (sample counts in the hundreds of thousands) to keep the
    discrete logarithm small, at ``weight_unit`` times the rounding error.  ``0`` (the
    default) derives it from the federation when keys are made
    (:meth:`for_federation`): the smallest unit, at least 1, with which ``parties``
    weights of up to ``max_weight`` each stay within the discrete logarithm's reach;
    1 when no federation size is given.
    ``workers``: processes for long vectors (0 = one per CPU, 1 = none).
    ``points``: how payload points travel: ``"uncompressed"`` (the default; 64 bytes
    per value, combined by the C kernel of :mod:`.pointsum`) or ``"compressed"`` (33
    bytes per value; the aggregator takes a square root per point to decompress it,
    about 24x slower to combine).  Every role must use the same.
    The group is fixed (secp256k1, ~128-bit security), so no parameter lowers it.
    """

    clip: float = 8.0
    bits: int = 16
    dlog_table_bits: int = 20
    min_parties: int = 3
    max_share: float = 0.5
    weight_unit: float = 0.0
    max_weight: float = 4096.0
    workers: int = 0
    min_parties_changed: int = 2
    points: str = "uncompressed"
    policy_window: int = 0
    contributors_key: ClassVar[str] = "min_parties"

    def security_bits(self) -> int:
        """128: Pollard rho on secp256k1's 256-bit prime-order group (fixed: no parameter changes it)."""
        return 128  # Pollard rho on a 256-bit prime-order group

    def validate(self) -> None:
        """Raise :class:`InvalidParameterError` for any field outside its range or of the wrong type.

        Checked: ``clip``, ``bits`` (2-24), ``dlog_table_bits`` (4-26), ``min_parties`` (at least 2),
        ``max_share``, ``weight_unit``, ``max_weight``, ``min_parties_changed``, ``policy_window``, ``points``,
        ``workers``.
        """
        if not (isinstance(self.clip, (int, float)) and 0 < float(self.clip) < 1e9):
            raise InvalidParameterError(f"fe clip must be a positive number, got {self.clip!r}")
        if not (isinstance(self.bits, int) and 2 <= self.bits <= 24):
            raise InvalidParameterError(
                f"fe bits must be an integer in [2, 24], got {self.bits!r}: sums are recovered by a "
                "bounded discrete logarithm, so values must stay small (16 is the default)"
            )
        if not (isinstance(self.dlog_table_bits, int) and 4 <= self.dlog_table_bits <= 26):
            raise InvalidParameterError(
                f"fe dlog_table_bits must be an integer in [4, 26], got {self.dlog_table_bits!r}"
            )
        if not (isinstance(self.min_parties, int) and self.min_parties >= 2):
            raise InvalidParameterError(
                f"fe min_parties must be an integer >= 2, got {self.min_parties!r}: a function key "
                "for one party would decrypt that party's update"
            )
        if not (isinstance(self.max_share, (int, float)) and 0 < self.max_share <= 1):
            raise InvalidParameterError(f"fe max_share must be in (0, 1], got {self.max_share!r}")
        if not (isinstance(self.weight_unit, (int, float)) and 0 <= float(self.weight_unit) < 1e12):
            raise InvalidParameterError(
                f"fe weight_unit must be a positive number (or 0: derived from the federation), "
                f"got {self.weight_unit!r}"
            )
        if not (isinstance(self.max_weight, (int, float)) and 0 < float(self.max_weight) < 1e12):
            raise InvalidParameterError(f"fe max_weight must be a positive number, got {self.max_weight!r}")
        if isinstance(self.min_parties_changed, bool) or not (
            isinstance(self.min_parties_changed, int) and 0 <= self.min_parties_changed <= 1000
        ):
            raise InvalidParameterError(
                f"fe min_parties_changed must be an integer in [0, 1000], got {self.min_parties_changed!r}: "
                "2 (the default) refuses a key whose weight vector, with those granted before, would isolate one "
                "party; 0 or 1 turns the check off"
            )
        if isinstance(self.policy_window, bool) or not (
            isinstance(self.policy_window, int) and 0 <= self.policy_window <= MAX_ROUND
        ):
            raise InvalidParameterError(
                f"fe policy_window must be an integer in [0, {MAX_ROUND}], got {self.policy_window!r}: the number "
                "of consecutive rounds whose function keys the policy combines (0, the default, is the whole run)"
            )
        if self.points not in POINT_ENCODINGS:
            raise InvalidParameterError(
                f"fe points must be one of {', '.join(map(repr, POINT_ENCODINGS))}, got {self.points!r}: "
                "'uncompressed' (64 bytes per value, fast to combine) or 'compressed' (33 bytes, slow to combine)"
            )
        if not (isinstance(self.workers, int) and self.workers >= 0):
            raise InvalidParameterError(f"fe workers must be an integer >= 0 (0 = one per CPU), got {self.workers!r}")

    def fewest_contributors(self, parties: int) -> int | None:
        """``min_parties``: the authority grants no function key for fewer non-zero weights."""
        return self.min_parties

    def under_differential_privacy(self) -> FEParams:
        """Without the consecutive-round check: the noise of each released sum covers their differences."""
        return dataclasses.replace(self, min_parties_changed=0)

    def for_federation(self, parties: int) -> FEParams:
        """``weight_unit`` derived when it is 0: the smallest (>= 1) that keeps ``parties * max_weight`` decodable."""
        if self.weight_unit:
            return self
        max_int = 2 ** (self.bits - 1) - 1
        reach = (2 ** self.dlog_table_bits) + dlog.MAX_GIANT_STEPS * (2 ** (self.dlog_table_bits + 1) + 1)
        n = max(1, int(parties))
        unit = max(1.0, float(math.ceil(n * float(self.max_weight) * max_int / (reach - n))))  # n: rounding
        return dataclasses.replace(self, weight_unit=unit)

    @classmethod
    def presets(cls) -> Mapping[str, SchemeParams]:
        """``default``, and ``test``: a small table, a relaxed policy and one worker (fast tests, not deployments)."""
        return {
            "default": cls(),
            # Small table, a relaxed policy (the contract suite fuses two parties with
            # weights 1 and 3) and no worker processes.  The group is the real one.
            "test": cls(bits=12, dlog_table_bits=12, min_parties=2, max_share=1.0, workers=1, allow_insecure=True),
        }


class _PartyMaterial:
    """A party's PRF key, and the rounds it has encrypted (one update per round)."""

    __slots__ = ("_lock", "_used", "secret")

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._used: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def claim(self, round: int, fingerprint: bytes) -> None:
        with self._lock:
            previous = self._used.setdefault(round, fingerprint)
        if previous != fingerprint:
            raise KeyReuseError(
                f"this party key already encrypted a different update (or weight) for round {round}; "
                "two encryptions under one round's pads reveal their difference. Protect each round once"
            )


class _AuthorityMaterial:
    """The master secret, the federation's party ids, and the policy's per-round record."""

    __slots__ = ("ledger", "master", "parties")

    def __init__(self, master: bytes, parties: Sequence[str], ledger: policy.Ledger) -> None:
        self.master = master
        self.parties = tuple(parties)
        self.ledger = ledger


def _party_secret(master: bytes, key_id: bytes, party: str) -> bytes:
    return hmac.digest(master, b"securefl/fe/v1/party\x00" + key_id + party.encode(), "sha256")


def _check_round(round: object) -> int:
    if isinstance(round, bool) or not isinstance(round, numbers.Integral) or not 0 <= int(round) <= MAX_ROUND:
        raise InvalidInputError(f"round must be an integer in [0, {MAX_ROUND}], got {round!r}")
    return int(round)


def _round_scalar(secret: bytes, round: int, weight: float) -> int:
    label = b"securefl/fe/v1/round\x00" + struct.pack(">Qd", round, weight)
    # 512 bits reduced mod q: statistically uniform (distance < 2**-256).
    k = int.from_bytes(hmac.digest(secret, label, "sha512"), "big") % group.ORDER
    if not k:  # probability 2**-256
        raise CryptoError("derived a zero round key; this cannot happen in practice")
    return k


class FEScheme(Scheme, FunctionKeys):
    """Multi-input inner-product FE with a key authority (see the module docstring)."""

    name = "fe"
    params_type = FEParams
    reveal_plan = RevealPlan.with_function_key()
    threat_model = ThreatModel(
        key_holders={
            "party": "its own PRF key (derived by the authority from the master secret)",
            "aggregator": "no secret of its own; per round a function key (one scalar) for one approved weight vector",
            "authority": "the master secret, from which every party key and every function key is derived",
        },
        aggregator_learns=(
            "for each coordinate, the weighted sum over the parties of the approved weight vector, nothing else"
        ),
        party_learns="the fused model",
        collusion=(
            "authority + aggregator learn every update (the authority can derive every pad); aggregator + "
            "k parties learn the sum of the others; parties alone learn nothing"
        ),
        dropouts="the aggregator asks for a key covering only the parties that answered; the policy decides",
        not_protected=(
            "the sum itself (use dp on top), differencing rounds whose contributors differ by min_parties_changed "
            "or more parties, update validity (a party can spoil a round), traffic metadata"
        ),
        malicious_aggregator=(
            "the weighted sums the authority's function keys open, nothing else: the authority derives a key only "
            "for contributors and weights the parties signed (for this round and key set, one global model, at "
            "least the quorum and the DP minimum of distinct roster parties: a fabricated, replayed or withheld "
            "statement, or a changed weight, is refused), and refuses a key whose span with the keys it granted "
            "earlier isolates fewer than min_parties_changed parties (exact arithmetic), so combining rounds "
            "cannot single out a smaller group; a ciphertext the aggregator fabricates or replays does not cancel "
            "the round's pads (it decrypts to noise). It may still drop honest parties, down to the quorum"
        ),
        malicious_aggregator_unverified=(
            "the same: the span policy holds, over the contributors and weights the aggregator claims"
        ),
    )

    params: FEParams

    def __init__(self, params: SchemeParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._fp = FixedPoint(clip=float(p.clip), bits=p.bits)
        self._workers = parallel.worker_count(p.workers)
        self._unit = float(p.weight_unit or 1.0)  # 0 (auto) never given a federation size: whole weights

    # --- declarations -------------------------------------------------------------
    @property
    def declarations(self) -> Declarations:
        """The default declarations, with ``value_bound`` (``clip``) and the payload size (one point per value)."""
        return dataclasses.replace(super().declarations,
                                   value_bound=self._value_bound, payload_bytes=self._payload_bytes)

    @property
    def _value_bound(self) -> float:
        return float(self._fp.clip)

    def _payload_bytes(self, length: int) -> int:
        """One point per value: 64 bytes, or 33 with ``points = "compressed"``."""
        return length * self._size

    @property
    def _compressed(self) -> bool:
        return bool(self.params.points == "compressed")

    @property
    def _size(self) -> int:
        """Bytes per payload point."""
        return group.POINT_BYTES if self._compressed else group.WIRE_BYTES

    def tolerance(self, weights: Sequence[float]) -> float:
        """``n * weight_unit / (2 * scale * total weight)`` for ``n`` weights: each party's rounding (at most 1/2)."""
        # Each party rounds w_i * x_ij * scale to an integer (error <= 1/2), so the
        # weighted mean is off by at most n / (2 * scale * total weight).
        total = math.fsum(weights)
        return len(weights) * 0.5 * self._unit / (self._fp.scale * total) * (1 + 1e-9) + 1e-12

    # --- keys -----------------------------------------------------------------------
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """A fresh master secret (the authority's key), each party's PRF key derived from it; no aggregator material.

        :class:`InvalidInputError` for repeated ids, :class:`MalformedCiphertextError` for an invalid one.
        """
        if len(set(party_ids)) != len(party_ids):
            raise InvalidInputError("party ids must be distinct")
        key_id = random_bytes(16)
        master = random_bytes(32)
        parties = {
            pid: PartyKey(
                self.name, key_id, _PartyMaterial(_party_secret(master, key_id, check_party_id(pid))),
                holds_secret=True, owner=pid,
            )
            for pid in party_ids
        }
        authority = AuthorityKey(
            self.name, key_id, _AuthorityMaterial(master, party_ids, policy.Ledger()), holds_secret=True
        )
        return KeySet(
            aggregator=AggregatorKey(self.name, key_id, None, holds_secret=False),
            parties=parties,
            authority=authority,
            key_id=key_id,
        )

    def function_key(self, key: AuthorityKey, *, round: int, weights: Mapping[str, float]) -> FunctionKey:
        """The aggregator's key for one round and one weight vector, after the policy check.

        Zero or absent weights leave parties out (dropouts).  Raises
        :class:`PolicyError` (logged) for fewer than ``min_parties`` non-zero weights,
        a share above ``max_share``, a second, different vector for ``round``, a key for
        a round that had one under another key set, or a vector whose span with those
        granted in ``policy_window`` holds a vector on fewer than ``min_parties_changed``
        parties (:mod:`.policy`).
        """
        require_role(key, AuthorityKey, action="derive function keys")
        material: _AuthorityMaterial = key.unwrap(self.name)
        round = _check_round(round)
        for party, w in weights.items():
            if party not in material.parties:
                policy.refuse(round, f"party {party!r} is not a member of this federation")
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
                policy.refuse(round, f"weight {w!r} of party {party!r} is not a finite number >= 0")
        p = self.params
        policy.check(weights, round=round, min_parties=p.min_parties, max_share=float(p.max_share))
        vector = policy.canonical(weights)
        material.ledger.claim(
            round, vector, key_id=key.key_id, min_changed=p.min_parties_changed, window=p.policy_window
        )
        dk = 0
        for party, w in vector:
            dk += _round_scalar(_party_secret(material.master, key.key_id, party), round, w)
        policy.log.info("fe authority issued a function key for round %d over %d parties", round, len(vector))
        return FunctionKey(self.name, key.key_id, dk % group.ORDER, round=round, weights=dict(vector))

    # --- the round (the checks are Scheme's template methods) --------------------------
    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        material: _PartyMaterial = key.unwrap(self.name)
        ints = self._encode(x, weight)
        fingerprint = hashlib.sha256(struct.pack(">d", weight) + ints.tobytes()).digest()
        round = _check_round(round)
        material.claim(round, fingerprint)
        k = _round_scalar(material.secret, round, weight)
        raw = ints.astype("<i8").tobytes()
        jobs = [(k, a, raw[8 * a : 8 * b], self._compressed) for a, b in parallel.spans(x.size, self._workers)]
        return b"".join(parallel.run(kernels.encrypt, jobs, self._workers))

    def _combine(
        self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int, weights: Sequence[float]
    ) -> Payload:
        labels = [env.parties[0] if env.kind == "update" else "(partial aggregate)" for env in updates]
        return self._add_points([self._points(env) for env in updates], labels, length)

    def _add_points(self, payloads: Sequence[bytes | memoryview], labels: Sequence[str], length: int) -> bytes:
        """Coordinate-wise sum of point strings (batched affine additions, :mod:`.pointsum`)."""
        return pointsum.add(payloads, labels, length, self._workers, compressed=self._compressed)

    def accumulator(self, key: AggregatorKey, *, round: int) -> Accumulator:
        """A running aggregate that buffers a few uploads and sums them into the partial sum in one pass.

        A bad point rejects only its sender (:attr:`~crypto_backends.base.Accumulator.rejected`).
        """
        return _FEAccumulator(self, key, round=round)

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        """The weighted sum, decrypted with the authority's function key for this aggregate."""
        dk = self._check_function_key(function_key, aggregate)
        points = self._points(aggregate)
        n = aggregate.length
        # -dk is the aggregator's own function key, unlocking only the sum this reveal releases: variable time
        # is safe for it (vartime's docstring); party keys stay on the constant-time path.
        neg = (-dk) % group.ORDER
        wire = vartime.unmask(neg, points, n, self._workers, compressed=self._compressed)
        raw = np.frombuffer(wire, dtype=np.uint8).reshape(-1, group.WIRE_BYTES)
        comp = np.zeros((n, group.POINT_BYTES), dtype=np.uint8)
        comp[:, 0] = np.where(raw.any(axis=1), 2 | (raw[:, -1] & 1), 0)
        comp[:, 1:] = raw[:, :32]
        c, flat = group.POINT_BYTES, comp.tobytes()
        encoded = [flat[c * j : c * j + c] for j in range(n)]
        bound = self._sum_bound(aggregate.weights)
        table = dlog.table(self.params.dlog_table_bits)
        sums = table.solve(encoded, bound, dlog.reveal_budget(table, n, bound))
        return sums.astype(np.float64) * (self._unit / self._fp.scale)

    # --- helpers --------------------------------------------------------------------------
    def _encode(self, x: np.ndarray, weight: float) -> np.ndarray:
        factor = weight / self._unit * self._fp.scale
        if factor * float(self._fp.clip) >= _MAX_EXACT:
            raise InvalidInputError(
                f"weight {weight} is too large for fe's integer encoding; normalise the weights "
                "(e.g. fractions of the total or sample counts below a million)"
            )
        clip = float(self._fp.clip)
        clipped = int(np.count_nonzero(np.abs(x) > clip))
        if clipped:
            warnings.warn(
                f"{clipped} of {x.size} values were outside [-{clip}, {clip}] and were clipped; raise "
                "crypto.fe.clip if this happens often",
                ClippedValuesWarning,
                stacklevel=4,  # the caller of Scheme.protect
            )
        ints: np.ndarray = np.rint(np.clip(x, -clip, clip) * factor).astype(np.int64)
        return ints

    def _sum_bound(self, weights: Sequence[float]) -> int:
        return int(math.fsum(w / self._unit * self._fp.max_int + 0.5 for w in weights))

    def _points(self, env: Envelope) -> bytes | memoryview:
        """The payload's points, checked for length; not copied when they are read-only bytes already
        (a 100k-value update is 6.4 MB: copying a hundred of them cost a fifth of a combine)."""
        data = env.payload
        if not (isinstance(data, bytes) or (isinstance(data, memoryview) and isinstance(data.obj, bytes)
                                            and data.c_contiguous and data.itemsize == 1)):
            data = bytes(data)  # a mutable buffer could change under an accumulator that keeps it
        size = memoryview(data).nbytes
        point = self._size
        if size != point * env.length:
            cls = MalformedCiphertextError if size % point else MismatchError
            other = group.WIRE_BYTES if self._compressed else group.POINT_BYTES
            hint = ""
            if size == other * env.length and env.length:
                cls = MalformedCiphertextError
                hint = (f": it holds {other}-byte points, so its sender uses another crypto.fe.points; every role "
                        "must use the same")
            message = f"payload holds {size} bytes, expected {point * env.length} for {env.length} points{hint}"
            raise MalformedCiphertextError(message) if cls is MalformedCiphertextError else MismatchError(
                "length", message)
        return data

    def _check_function_key(self, function_key: FunctionKey | None, aggregate: Envelope) -> int:
        if function_key is None:
            raise KeyRoleError("fe aggregates are revealed with a function key: ask the key authority for one")
        if not isinstance(function_key, FunctionKey):
            raise KeyRoleError(f"expected a FunctionKey, got {type(function_key).__name__}")
        dk = function_key.unwrap(self.name)
        if function_key.key_id != aggregate.key_id:
            raise MismatchError("key", "the function key belongs to another key set than the aggregate")
        if function_key.round != aggregate.round:
            raise MismatchError(
                "round",
                f"the function key is for round {function_key.round}, the aggregate is of round {aggregate.round}",
            )
        expected = dict(zip(aggregate.parties, aggregate.weights, strict=True))
        if policy.canonical(function_key.weights) != policy.canonical(expected):
            raise MismatchError(
                "key", "the function key was issued for other parties or weights than the aggregate holds: ask the "
                "authority for a key for exactly the aggregate's contributors"
            )
        return int(dk)

    # --- the policy's record, per federation -------------------------------------------------
    def policy_record(self, key: AuthorityKey) -> bytes:
        """Every function key granted (round, key set, weight vector digest, contributors): see :mod:`.policy`."""
        require_role(key, AuthorityKey, action="export the policy record")
        material: _AuthorityMaterial = key.unwrap(self.name)
        return material.ledger.to_bytes()

    def adopt_policy_record(self, key: AuthorityKey, record: bytes) -> None:
        """Make ``key``'s policy answer as if it had issued the keys in ``record`` (another key set's, say)."""
        require_role(key, AuthorityKey, action="adopt a policy record")
        material: _AuthorityMaterial = key.unwrap(self.name)
        if not record:
            return
        ledger, pos = policy.Ledger.from_bytes(bytes(record))
        if pos != len(record):
            raise MalformedCiphertextError("trailing bytes after the fe policy record")
        material.ledger.merge(ledger)

    # --- key serialisation --------------------------------------------------------------------
    def _material_to_bytes(self, key: Key) -> bytes:
        material = key.unwrap(self.name)
        if isinstance(key, PartyKey):
            secret: bytes = material.secret
            return secret
        if isinstance(key, AuthorityKey):
            master: bytes = material.master
            record: bytes = material.ledger.to_bytes()
            return master + policy.names_to_bytes(material.parties) + record
        if isinstance(key, FunctionKey):
            return group.scalar_bytes(material)
        return b""

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        try:
            if cls is PartyKey:
                if len(data) != 32:
                    raise MalformedCiphertextError("a party key is 32 bytes")
                return _PartyMaterial(bytes(data))
            if cls is AuthorityKey:
                return _load_authority(bytes(data))
            if cls is FunctionKey:
                if len(data) != 32:
                    raise MalformedCiphertextError("a function key is 32 bytes")
                return int.from_bytes(data, "big") % group.ORDER
            if data:
                raise MalformedCiphertextError("the aggregator key carries no material")
            return None
        except (MalformedCiphertextError, struct.error, UnicodeDecodeError) as exc:
            raise MalformedCiphertextError(f"garbled fe key material: {exc}") from None


class _FEAccumulator(Accumulator):
    """Up to :attr:`BATCH` uploads buffered, then summed with the partial sum in one pass over the coordinates.

    Each fold re-reads (and re-checks) the partial sum once, so folding a few
    uploads at a time keeps that overhead at ``1 / BATCH`` of the work, while memory
    stays the partial sum plus ``BATCH`` uploads.  A point that does not parse shows when its
    batch is folded; the culprit search then sums each buffered upload alone, as
    :meth:`securefl.core.aggregator.Aggregator.combine` always did, and only the
    bad ones are rejected (:attr:`rejected`).
    """

    BATCH = 8
    scheme: FEScheme

    def __init__(self, scheme: FEScheme, key: AggregatorKey, *, round: int) -> None:
        super().__init__(scheme, key, round=round)
        self._sum: bytes | None = None
        self._pending: list[tuple[str, bytes | memoryview]] = []

    def _fold(self, update: Envelope, weights: Sequence[float]) -> None:
        self._pending.append((update.party, self.scheme._points(update)))  # the length is checked here
        if len(self._pending) >= self.BATCH:
            self._finish()

    def _finish(self) -> None:
        pending = self._pending
        length = int(self.length or 0)
        while pending:
            labels = [p for p, _ in pending]
            payloads = [b for _, b in pending]
            if self._sum is not None:
                labels, payloads = ["(partial aggregate)", *labels], [self._sum, *payloads]
            try:
                self._sum = self.scheme._add_points(payloads, labels, length)
                pending = []
            except MalformedCiphertextError:
                bad = {p: err for p, b in pending if (err := self._solo_error(p, b, length))}
                if not bad:
                    raise
                for party, err in bad.items():
                    self._reject(party, err)
                pending = [(p, b) for p, b in pending if p not in bad]
        self._pending = []

    def _solo_error(self, party: str, points: bytes | memoryview, length: int) -> str | None:
        try:
            self.scheme._add_points([points], [party], length)
        except MalformedCiphertextError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _payload(self) -> Payload:
        assert self._sum is not None
        return self._sum


def _load_authority(data: bytes) -> _AuthorityMaterial:
    master, pos = data[:32], 32
    if len(master) != 32:
        raise MalformedCiphertextError("truncated master secret")
    parties, pos = policy.names_from_bytes(data, pos)
    ledger, pos = policy.Ledger.from_bytes(data, pos)
    if pos != len(data):
        raise MalformedCiphertextError("trailing bytes")
    return _AuthorityMaterial(master, parties, ledger)


__all__ = ["POINT_ENCODINGS", "FEParams", "FEScheme"]
