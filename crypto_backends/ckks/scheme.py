"""The ``ckks`` scheme: approximate homomorphic encryption (CKKS) on TenSEAL.

Cheon, Kim, Kim and Song, "Homomorphic Encryption for Arithmetic of Approximate
Numbers", ASIACRYPT 2017; TenSEAL (Benaissa et al., 2021) over Microsoft SEAL.

Roles.  The dealer (``keygen``) makes one CKKS secret key and keeps a copy in
the :class:`AuthorityKey`.  Every party gets a :class:`PartyKey` holding the
secret-key context: parties encrypt with it (symmetric RLWE encryption, which
is faster and less noisy than public-key encryption, and secure since the
encryptors are exactly the key holders) and decrypt the aggregate.  The
aggregator gets an :class:`AggregatorKey` whose context carries the encryption
parameters and *no key at all*: it can add ciphertexts, and neither decrypt nor
encrypt.

Weights.  A party multiplies its update by its weight before encrypting, so the
aggregator only adds: no multiplicative depth, so the data primes hold only the
weighted sum's headroom and precision; a fresh upload is sent seeded, about 27
bytes per value at the default (see :mod:`.params`, :mod:`.codec`).  ``reveal``
returns the weighted sum.

Publishing.  A decryption seen together with its ciphertext reveals the secret
key (Li and Micciancio 2021).  The aggregator holds every aggregate ciphertext,
so any decrypted aggregate that leaves the parties must go through
:meth:`CKKSScheme.release`, which adds noise flooding (:mod:`.flooding`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as seal

from ..base import Accumulator, Declarations, Payload, RevealPlan, Scheme, SchemeParams, ThreatModel
from ..capabilities import BlockFold
from ..encoding import ClippedValuesWarning
from ..envelope import Envelope, check_party_id
from ..errors import (
    DecodingOverflowError,
    DecryptionError,
    InvalidInputError,
    InvalidParameterError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
    PolicyError,
)
from ..keys import AggregatorKey, AuthorityKey, FunctionKey, Key, KeySet, PartyKey, Role
from ..randomness import random_bytes
from . import codec
from .flooding import flood, flooding_sigma
from .params import AUTO_PARTIES, CKKSParams

_KEY_ID_DOMAIN = b"securefl/ckks/v1/key-set"
# Tail bound, in standard deviations, of one slot's error in tolerance(); 8 sigma
# is exceeded with probability about 1e-15 per value.
_TAIL_SIGMAS = 8.0


class _Material:
    """A key's TenSEAL context, plus how many aggregates this handle has published.

    The count enforces ``flooding_queries`` per key handle in this process (like
    a privacy-budget accountant); it is not persisted by ``dump_key``, and other
    holders of the same key set keep their own counts.
    """

    __slots__ = ("context", "published", "_lock", "_tools")

    def __init__(self, context: ts.Context) -> None:
        self.context = context
        self.published = 0
        self._lock = threading.Lock()
        self._tools: codec.SealTools | None = None

    def tools(self) -> codec.SealTools:
        """SEAL's encoder, evaluator and (for secret holders) encryptor and decryptor on this context."""
        with self._lock:
            if self._tools is None:
                self._tools = codec.SealTools(self.context, self.context.global_scale)
            return self._tools

    def charge_publication(self, limit: int) -> None:
        with self._lock:
            if self.published >= limit:
                raise PolicyError(
                    f"this key has published {self.published} aggregates, the flooding_queries={limit} "
                    "its noise flooding is sized for: more would let the decryption error (and so the secret "
                    "key) be averaged out. Generate a new key set, or size [crypto.ckks] flooding_queries "
                    "for the whole run"
                )
            self.published += 1


class CKKSScheme(Scheme, BlockFold):
    """CKKS weighted sums; parties hold the secret key, the aggregator none (module docstring)."""

    name = "ckks"
    params_type = CKKSParams
    reveal_plan = RevealPlan.at_parties(PartyKey, AuthorityKey)
    threat_model = ThreatModel(
        key_holders={
            "party": "the shared CKKS secret key (TenSEAL secret context)",
            "aggregator": "the encryption parameters only: no secret, public, relinearisation or Galois key",
            "authority": "the dealer's copy of the secret key, made at keygen",
        },
        aggregator_learns=(
            "nothing about the updates beyond their length, senders and weights (IND-CPA under RLWE); "
            "a published fused model if the parties publish one (flooded, see release())"
        ),
        party_learns="the weighted sum of the contributors' updates, hence the fused model",
        collusion=(
            "any single party holds the secret key: a party colluding with the aggregator decrypts every "
            "other party's individual update"
        ),
        dropouts="any subset may answer; the sum is over the contributors the aggregate names",
        not_protected=(
            "updates against a party that colludes with the aggregator; with crypto.verify_aggregate = \"off\", "
            "a protocol-deviating aggregator that has the parties decrypt and publish a crafted aggregate; "
            "integrity (a party can send any update); a decrypted aggregate released without release() "
            "(Li-Micciancio key recovery)"
        ),
        malicious_aggregator=(
            "only the weighted sum of the signed updates of at least the quorum of parties (federation.quorum; the "
            "DP minimum if larger), trained from one global model, as "
            "the parties publish it (flooded): a party decrypts an aggregate only with the contributors' signed "
            "statements and once it has checked that it is exactly the fold of their signed uploads, so a single "
            "upload passed off as the aggregate, or one zero-padded to pass for the sum of several parties, is "
            "refused by every party (AggregateMismatchError)"
        ),
        malicious_aggregator_unverified=(
            "any one party's update: each party holds the CKKS secret key and decrypts and publishes whatever "
            "it is sent as the aggregate, a single upload included"
        ),
    )

    params: CKKSParams

    def __init__(self, params: SchemeParams | None = None) -> None:
        if isinstance(params, CKKSParams) or params is None:
            # auto headroom never given a federation size: resolve it for AUTO_PARTIES parties
            params = (params or CKKSParams()).for_federation(AUTO_PARTIES)
        super().__init__(params)

    # --- declarations -----------------------------------------------------------------
    @property
    def declarations(self) -> Declarations:
        """The base declarations with this key size's value bound and payload size."""
        return dataclasses.replace(super().declarations,
                                   value_bound=self._value_bound, payload_bytes=self._payload_bytes)

    @property
    def _value_bound(self) -> float:
        return float(self.params.clip)

    CHUNK_OVERHEAD = 4096
    """Bytes of SEAL's header and seed around one ciphertext's coefficients (measured: about 110)."""

    def _payload_bytes(self, length: int) -> int:
        """The chunk count, then per chunk its framing and a ciphertext of at most 2 polynomials of N
        coefficients, 8 bytes per data prime (an honest upload is seeded: one polynomial, compressed)."""
        p = self.params
        chunk = 2 * p.poly_modulus_degree * (len(p.coeff_mod_bit_sizes) - 1) * 8 + self.CHUNK_OVERHEAD + 8
        return 4 + -(-length // p.slots) * chunk

    def tolerance(self, weights: Sequence[float]) -> float:
        """8 times one slot's error bound (encryption and float64 rounding), divided by the total weight.

        This is the error of :meth:`reveal`; what :meth:`release` publishes is wider
        (:meth:`publish_sigma` per value of the weighted sum).
        """
        total = math.fsum(weights)
        return _TAIL_SIGMAS * self.params.slot_error_sd(len(weights), total) / total

    # --- keys ---------------------------------------------------------------------------
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """One secret key for the federation, made here (at the dealer)."""
        for pid in party_ids:
            check_party_id(pid)
        p = self.params
        try:
            ctx = ts.context(
                ts.SCHEME_TYPE.CKKS, p.poly_modulus_degree, coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes),
                encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC, n_threads=p.n_threads,
            )
        except codec.TENSEAL_ERRORS as exc:
            raise InvalidParameterError(f"TenSEAL refused the CKKS parameters {p.as_dict()}: {exc}") from None
        ctx.global_scale = p.scale
        secret, public = _secret_bytes(ctx), _public_bytes(ctx)
        key_id = hashlib.sha256(_KEY_ID_DOMAIN + random_bytes(32) + public).digest()[:16]
        parties = {
            pid: PartyKey(self.name, key_id, _Material(self._context(secret)), holds_secret=True, owner=pid)
            for pid in party_ids
        }
        aggregator = AggregatorKey(self.name, key_id, _Material(self._context(public)), holds_secret=False)
        authority = AuthorityKey(self.name, key_id, _Material(ctx), holds_secret=True)
        return KeySet(aggregator=aggregator, parties=parties, authority=authority, key_id=key_id)

    def _context(self, data: bytes) -> ts.Context:
        try:
            return ts.context_from(data, n_threads=self.params.n_threads)
        except codec.TENSEAL_ERRORS:
            raise MalformedCiphertextError("garbled ckks key material: not a TenSEAL context") from None

    def _material_to_bytes(self, key: Key) -> bytes:
        ctx = key.unwrap(self.name).context
        return _secret_bytes(ctx) if ctx.is_private() else _public_bytes(ctx)

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        if cls is FunctionKey:
            raise MalformedCiphertextError("the ckks scheme has no function keys")
        ctx = self._context(bytes(data))
        if cls is AggregatorKey and ctx.is_private():
            raise KeyRoleError(
                "this aggregator key carries a CKKS secret key: the aggregator must hold the public "
                "context only; re-export it with the scheme's dump_key on the aggregator's key"
            )
        if cls is not AggregatorKey and not ctx.is_private():
            raise KeyRoleError(f"a {cls.__name__} needs the CKKS secret key, and this material has none")
        self._check_context_params(ctx)
        return _Material(ctx)

    def _check_context_params(self, ctx: ts.Context) -> None:
        p = self.params
        seal = ctx.seal_context().data
        got = (
            seal.key_context_data().parms().poly_modulus_degree(),
            seal.key_context_data().total_coeff_modulus_bit_count(),
            seal.first_context_data().total_coeff_modulus_bit_count(),
            ctx.global_scale,
        )
        # SEAL's primes are slightly below 2**bits, so a total can be a bit short of the sum of sizes.
        want = (p.poly_modulus_degree, p.total_bits, p.data_bits, p.scale)
        close = got[0] == want[0] and got[3] == want[3] and all(
            want[i] - len(p.coeff_mod_bit_sizes) <= got[i] <= want[i] for i in (1, 2)
        )
        if not close:
            raise MismatchError(
                "key", f"this ckks key was made for other parameters (N={got[0]}, {got[1]}-bit modulus, scale "
                f"{got[3]:g}) than configured (N={want[0]}, {want[1]}-bit modulus, scale {want[3]:g}): "
                "configure the same [crypto.ckks] parameters as the key set's dealer"
            )

    # --- the round (the checks are Scheme's template methods) --------------------------
    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        """Clip to ``[-clip, clip]``, multiply by ``weight``, encrypt chunk by chunk (at the party)."""
        tools = key.unwrap(self.name).tools()
        if weight > self.params.max_total_weight:
            raise InvalidInputError(
                f"weight {weight:g} exceeds max_total_weight {self.params.max_total_weight:g}, so the sum could "
                "wrap around; raise [crypto.ckks] max_weight (with max_total_weight = 0 it sizes the headroom) "
                "or use weights in larger units"
            )
        clip, slots = float(self.params.clip), self.params.slots
        payload, clipped = codec.encrypt_chunks(tools, x, weight=weight, clip=clip, slots=slots)
        if clipped:
            warnings.warn(
                f"{clipped} of {x.size} update values were beyond clip={self.params.clip:g} and were clipped; "
                "raise [crypto.ckks] clip if that is not intended",
                ClippedValuesWarning,
                stacklevel=3,  # the caller of Scheme.protect
            )
        return payload

    def _combine(
        self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int, weights: Sequence[float]
    ) -> Payload:
        """Add the ciphertexts chunk by chunk (at the aggregator; no key needed beyond the parameters)."""
        tools = key.unwrap(self.name).tools()
        self._check_total_weight(weights)
        n_chunks = codec.chunk_count(length, self.params.slots)
        # Check every upload's framing before any ciphertext work, so a bad one fails fast.
        views = [codec.split(u.payload, n_chunks) for u in updates]
        blobs = []
        for i in range(n_chunks):
            acc = codec.load(tools, views[0][i], index=i)
            for chunks in views[1:]:
                codec.add_into(tools, acc, codec.load(tools, chunks[i], index=i), index=i)
            blobs.append(codec.serialize(acc))
        return codec.frame(blobs)

    def accumulator(self, key: AggregatorKey, *, round: int) -> Accumulator:
        """A running encrypted weighted sum of round ``round``'s updates under ``key``."""
        return _CKKSAccumulator(self, key, round=round)

    # --- BlockFold: one block per ciphertext chunk (crypto.verify_aggregate = "sampled") -----
    def block_count(self, length: int) -> int:
        """One block per CKKS ciphertext: ``length`` values over ``slots`` per ciphertext."""
        return codec.chunk_count(length, self.params.slots)

    def blocks(self, key: AggregatorKey, envelope: Envelope) -> list[memoryview]:
        """Each chunk's serialized ciphertext, the framing and checksums checked."""
        return codec.split(envelope.payload, self.block_count(envelope.length))

    def fold_blocks(self, key: AggregatorKey, index: int, blocks: Sequence[bytes | memoryview]) -> bytes:
        """The sum of ciphertexts ``blocks``, serialized as the accumulator serializes its chunk ``index``."""
        tools = key.unwrap(self.name).tools()
        acc = codec.load(tools, memoryview(blocks[0]), index=index)
        for b in blocks[1:]:
            codec.add_into(tools, acc, codec.load(tools, memoryview(b), index=index), index=index)
        return codec.serialize(acc)

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        """Decrypt the weighted sum (at a party, or the dealer).  Not for release: see :meth:`publish`."""
        tools = key.unwrap(self.name).tools()
        self._check_total_weight(aggregate.weights)
        length, slots = aggregate.length, self.params.slots
        views = codec.split(aggregate.payload, codec.chunk_count(length, slots))
        out = np.empty(length)
        for i, (start, stop) in enumerate(codec.chunk_bounds(length, slots)):
            ct = codec.load(tools, views[i], index=i)
            try:
                out[start:stop] = codec.decrypt_chunk(tools, ct, stop - start)
            except codec.TENSEAL_ERRORS:
                raise DecryptionError("decryption failed") from None
        # An aggregate under another key (same parameters, forged fingerprint) or a corrupted one
        # decrypts to values near q / scale, far beyond anything honest parties can sum to.
        honest = float(self.params.clip) * aggregate.total_weight * (1 + 1e-9)
        limit = honest + _TAIL_SIGMAS * self.params.slot_error_sd(len(aggregate.parties), aggregate.total_weight)
        if length and not float(np.max(np.abs(out))) <= limit:
            raise DecryptionError("decryption failed")
        return out

    def _publish(self, key: Key, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
        """:meth:`publish` is :meth:`reveal` plus noise flooding, for a weighted sum that leaves the key holders.

        Adds N(0, sigma^2) per value from the OS CSPRNG with sigma from
        :meth:`publish_sigma`, then rounds to a grid near sigma/16.  What is
        promised: the flooding rule of :mod:`.flooding` for ``flooding_bits`` of
        statistical security over ``flooding_queries`` publications.  Not
        promised: anything after more publications than that under one key set
        (this key handle refuses them with :class:`PolicyError`; generate new
        keys), nor anything for decryptions released without it.
        """
        key.unwrap(self.name).charge_publication(self.params.flooding_queries)
        return flood(total, self.publish_sigma(aggregate))

    def publish_sigma(self, aggregate: Envelope) -> float:
        """Standard deviation of the flooding noise :meth:`publish` adds to each value of the weighted sum."""
        chunks = codec.chunk_count(aggregate.length, self.params.slots)
        return flooding_sigma(self.params, len(aggregate.parties), chunks, aggregate.total_weight)

    def _check_total_weight(self, weights: Sequence[float]) -> None:
        total = math.fsum(weights)
        if total > self.params.max_total_weight:
            raise DecodingOverflowError(
                f"the contributors' total weight {total:g} exceeds max_total_weight "
                f"{self.params.max_total_weight:g}: their weighted sum could wrap around modulo the data prime. "
                "Raise [crypto.ckks] max_total_weight (lowering scale_bits to fit) or use weights in larger units"
            )


class _CKKSAccumulator(Accumulator):
    """One running ciphertext per chunk, added to in place (rolled back if a later chunk refuses)."""

    scheme: CKKSScheme
    _sums: list[seal.Ciphertext] | None = None

    def _fold(self, update: Envelope, weights: Sequence[float]) -> None:
        tools = self.key.unwrap(self.scheme.name).tools()
        self.scheme._check_total_weight(weights)
        n_chunks = codec.chunk_count(update.length, self.scheme.params.slots)
        chunks = codec.split(update.payload, n_chunks)
        cts = [codec.load(tools, chunks[i], index=i) for i in range(n_chunks)]
        if self._sums is None:
            self._sums = cts
            return
        done = 0
        try:
            for i, (acc, ct) in enumerate(zip(self._sums, cts, strict=True)):
                codec.add_into(tools, acc, ct, index=i)
                done += 1
        except MalformedCiphertextError:
            for acc, ct in zip(self._sums[:done], cts[:done], strict=True):
                codec.sub_from(tools, acc, ct)  # exact: ciphertext coefficients are residues
            raise

    def _payload(self) -> Payload:
        assert self._sums is not None
        return codec.frame_ciphertexts(self._sums)


def _secret_bytes(ctx: ts.Context) -> bytes:
    """The context with its secret key and nothing else (symmetric encryption needs no public key)."""
    data: bytes = ctx.serialize(
        save_public_key=False, save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    return data


def _public_bytes(ctx: ts.Context) -> bytes:
    """The parameters only: enough to add ciphertexts, not to encrypt or decrypt."""
    data: bytes = ctx.serialize(
        save_public_key=False, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    return data


__all__ = ["CKKSParams", "CKKSScheme", "ClippedValuesWarning"]
